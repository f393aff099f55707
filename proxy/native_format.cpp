#include "native_format.h"

#include <vector>

#include "binary_reader.h"
#include "column_type.h"

namespace chsidecar {

namespace {

using Kind = ColumnType::Kind;

// LowCardinality index type: the key width in the low byte, then flags.
constexpr uint64_t kNeedGlobalDictionary = 1u << 8;
constexpr uint64_t kHasAdditionalKeys = 1u << 9;
constexpr uint64_t kNeedUpdateDictionary = 1u << 10;
constexpr uint64_t kSharedDictionariesWithAdditionalKeys = 1;

struct Walker {
  BinaryReader in;
  std::string why;

  bool fail(std::string message) {
    why = std::move(message);
    return false;
  }

  // What the bulk serialization writes before any data (the prefixes).
  bool prefix(const ColumnType& t) {
    switch (t.kind) {
      case Kind::kNullable:
      case Kind::kArray: return prefix(t.args[0]);
      case Kind::kTuple:
      case Kind::kMap:
        for (const ColumnType& a : t.args)
          if (!prefix(a)) return false;
        return true;
      case Kind::kLowCardinality: {
        uint64_t version;
        if (!in.u64(version)) return fail("data ends in a LowCardinality key version");
        if (version != kSharedDictionariesWithAdditionalKeys)
          return fail("unknown LowCardinality key version " + std::to_string(version));
        return true;
      }
      default: return true;
    }
  }

  bool data(const ColumnType& t, uint64_t rows) {
    switch (t.kind) {
      case Kind::kFixed:
      case Kind::kFixedString:
        return in.skip(rows, t.width) || fail("data ends inside a column of fixed-width values");
      case Kind::kString:
        for (uint64_t i = 0; i < rows; ++i) {
          std::string_view s;
          if (!in.string(s)) return fail("data ends inside a String column");
        }
        return true;
      case Kind::kNullable:
        if (!in.skip(rows, 1)) return fail("data ends inside a null map");
        return data(t.args[0], rows);
      case Kind::kArray:
      case Kind::kMap: {
        uint64_t last = 0;
        for (uint64_t i = 0; i < rows; ++i) {
          uint64_t offset;
          if (!in.u64(offset)) return fail("data ends inside array offsets");
          if (offset < last) return fail("array offsets go back");
          last = offset;
        }
        if (last > in.left()) return fail("array offsets point past the data");
        if (t.kind == Kind::kArray) return data(t.args[0], last);
        return data(t.args[0], last) && data(t.args[1], last);
      }
      case Kind::kTuple:
        for (const ColumnType& a : t.args)
          if (!data(a, rows)) return false;
        return true;
      case Kind::kLowCardinality: return low_cardinality(t, rows);
    }
    return false;
  }

  bool low_cardinality(const ColumnType& t, uint64_t rows) {
    if (rows == 0) return fail("a LowCardinality column of no rows (server versions differ)");
    const ColumnType& keys_type = t.args[0].kind == Kind::kNullable ? t.args[0].args[0] : t.args[0];
    while (rows > 0) {
      uint64_t type, key_count, index_count;
      if (!in.u64(type)) return fail("data ends in a LowCardinality index type");
      if ((type & ~uint64_t{0xFF}) != (kHasAdditionalKeys | kNeedUpdateDictionary) || (type & 0xFF) > 3)
        return fail((type & kNeedGlobalDictionary) != 0
                        ? "a LowCardinality column with a global dictionary"
                        : "an unknown LowCardinality index type");
      size_t width = size_t{1} << (type & 0xFF);
      if (!in.u64(key_count)) return fail("data ends in a LowCardinality key count");
      if (!data(keys_type, key_count)) return false;
      if (!in.u64(index_count)) return fail("data ends in a LowCardinality index count");
      if (index_count == 0 || index_count > rows)
        return fail("LowCardinality indexes do not match the rows");
      size_t at = in.pos();
      if (!in.skip(index_count, width)) return fail("data ends inside LowCardinality indexes");
      for (uint64_t i = 0; i < index_count; ++i)
        if (in.peek_le(at + i * width, width) >= key_count)
          return fail("a LowCardinality index beyond its keys");
      rows -= index_count;
    }
    return true;
  }
};

// A column whose bulk data is the concatenation of its rows' data.
bool concatenates(const ColumnType& t) {
  switch (t.kind) {
    case Kind::kFixed:
    case Kind::kFixedString:
    case Kind::kString: return true;
    case Kind::kNullable: return t.args[0].kind != Kind::kNullable && concatenates(t.args[0]);
    default: return false;
  }
}

void put_varuint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_string(std::string& out, std::string_view s) {
  put_varuint(out, s.size());
  out.append(s);
}

}  // namespace

bool merge_native_blocks(std::string_view blocks, std::string& out) {
  Walker w{BinaryReader(blocks), {}};
  std::vector<std::string_view> names, type_names;
  std::vector<ColumnType> types;
  // Per block with rows, per column: where its null map begins, where its
  // values begin, where they end (the null map is empty unless Nullable).
  struct Ranges {
    size_t begin, values, end;
  };
  std::vector<Ranges> ranges;
  uint64_t total_rows = 0;
  size_t block_count = 0;
  while (!w.in.done()) {
    uint64_t columns, rows;
    if (!w.in.varuint(columns) || !w.in.varuint(rows) || columns == 0) return false;
    if (block_count++ == 0) {
      names.resize(columns);
      type_names.resize(columns);
      types.resize(columns);
    } else if (columns != names.size()) {
      return false;
    }
    for (uint64_t c = 0; c < columns; ++c) {
      std::string_view name, type_name;
      if (!w.in.string(name) || !w.in.string(type_name)) return false;
      if (block_count == 1) {
        names[c] = name;
        type_names[c] = type_name;
        if (!parse_column_type(type_name, types[c]) || !concatenates(types[c])) return false;
      } else if (name != names[c] || type_name != type_names[c]) {
        return false;
      }
      if (rows == 0) continue;
      const ColumnType& t = types[c];
      Ranges r{w.in.pos(), w.in.pos(), 0};
      if (t.kind == Kind::kNullable) {
        if (!w.in.skip(rows, 1)) return false;
        r.values = w.in.pos();
      }
      if (!w.data(t.kind == Kind::kNullable ? t.args[0] : t, rows)) return false;
      r.end = w.in.pos();
      ranges.push_back(r);
    }
    total_rows += rows;
  }
  if (block_count == 0) return false;
  size_t blocks_with_rows = ranges.size() / names.size();
  std::string merged;
  merged.reserve(blocks.size());
  put_varuint(merged, names.size());
  put_varuint(merged, total_rows);
  for (size_t c = 0; c < names.size(); ++c) {
    put_string(merged, names[c]);
    put_string(merged, type_names[c]);
    if (total_rows == 0) continue;
    for (size_t b = 0; b < blocks_with_rows; ++b) {
      const Ranges& r = ranges[b * names.size() + c];
      merged.append(blocks.substr(r.begin, r.values - r.begin));
    }
    for (size_t b = 0; b < blocks_with_rows; ++b) {
      const Ranges& r = ranges[b * names.size() + c];
      merged.append(blocks.substr(r.values, r.end - r.values));
    }
  }
  out = std::move(merged);
  return true;
}

bool walk_native(std::string_view data, NativeBody& body, NativeError& error) {
  body = NativeBody{};
  Walker w{BinaryReader(data), {}};
  std::string structure;
  std::vector<ColumnType> types;
  auto fail = [&](std::string message) {
    error = {body.block_count, std::move(message)};
    return false;
  };
  while (!w.in.done()) {
    ++body.block_count;
    uint64_t columns, rows;
    if (!w.in.varuint(columns) || !w.in.varuint(rows)) return fail("data ends in a block header");
    if (columns == 0) return fail("a block of no columns");
    if (body.block_count > 1 && columns != body.column_count)
      return fail("a block with another number of columns than the first");
    structure.clear();
    for (uint64_t c = 0; c < columns; ++c) {
      std::string_view name, type_name;
      if (!w.in.string(name) || !w.in.string(type_name))
        return fail("data ends in a column's name or type");
      structure.append(name).push_back('\0');
      structure.append(type_name).push_back('\0');
      if (body.block_count == 1) {
        types.emplace_back();
        if (!parse_column_type(type_name, types.back()))
          return fail("a type the sidecar does not walk: " + std::string(type_name));
      } else if (structure != std::string_view(body.structure).substr(0, structure.size())) {
        return fail("a block with other names or types than the first");
      }
      if (rows == 0) continue;  // no data, not even prefixes
      if (!w.prefix(types[c]) || !w.data(types[c], rows))
        return fail(w.why + " (column " + std::string(name) + ")");
    }
    if (body.block_count == 1) {
      body.structure = structure;
      body.column_count = columns;
    }
    body.row_count += rows;
  }
  return true;
}

}  // namespace chsidecar
