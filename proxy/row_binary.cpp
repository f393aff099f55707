#include "row_binary.h"

#include "binary_reader.h"

namespace chsidecar {

namespace {

using Kind = ColumnType::Kind;

bool value(BinaryReader& in, const ColumnType& t) {
  switch (t.kind) {
    case Kind::kFixed:
    case Kind::kFixedString: return in.skip(1, t.width);
    case Kind::kString: {
      std::string_view s;
      return in.string(s);
    }
    case Kind::kNullable: {
      uint8_t is_null;
      if (!in.u8(is_null) || is_null > 1) return false;  // a flag other than 0/1: alone
      return is_null == 1 || value(in, t.args[0]);
    }
    case Kind::kArray:
    case Kind::kMap: {
      uint64_t size;
      if (!in.varuint(size) || size > in.left()) return false;  // each element takes a byte or more
      for (uint64_t i = 0; i < size; ++i)
        for (const ColumnType& a : t.args)
          if (!value(in, a)) return false;
      return true;
    }
    case Kind::kTuple:
      for (const ColumnType& a : t.args)
        if (!value(in, a)) return false;
      return true;
    case Kind::kLowCardinality: return value(in, t.args[0]);
  }
  return false;
}

// The header's column count, then `names` of them.
bool header_names(BinaryReader& in, std::vector<std::string_view>& names, RowBinaryError& error) {
  uint64_t columns;
  if (!in.varuint(columns) || columns == 0 || columns > in.left()) {
    error = {0, "no column count in the header"};
    return false;
  }
  names.resize(columns);
  for (std::string_view& name : names) {
    if (!in.string(name)) {
      error = {0, "data ends in the header's names"};
      return false;
    }
  }
  return true;
}

// The rows from the reader's position to the end, each a value of every type.
bool walk_rows(BinaryReader& in, std::string_view data, const std::vector<const ColumnType*>& types,
               bool with_defaults, RowBinaryBody& body, RowBinaryError& error) {
  body.header = data.substr(0, in.pos());
  body.rows = data.substr(in.pos());
  body.column_count = types.size();
  while (!in.done()) {
    ++body.row_count;
    for (const ColumnType* t : types) {
      uint8_t use_default = 0;
      if (with_defaults && (!in.u8(use_default) || use_default > 1)) {
        error = {body.row_count, "a default flag that is neither 0 nor 1, or none"};
        return false;
      }
      if (use_default == 0 && !value(in, *t)) {
        error = {body.row_count, "a value that does not end within the data"};
        return false;
      }
    }
  }
  return true;
}

}  // namespace

bool walk_row_binary(std::string_view data, RowBinaryBody& body, RowBinaryError& error) {
  body = RowBinaryBody{};
  BinaryReader in(data);
  std::vector<std::string_view> names;
  if (!header_names(in, names, error)) return false;
  std::vector<ColumnType> types(names.size());
  std::vector<const ColumnType*> order;
  for (ColumnType& type : types) {
    std::string_view type_name;
    if (!in.string(type_name)) {
      error = {0, "data ends in the header's types"};
      return false;
    }
    if (!parse_column_type(type_name, type)) {
      error = {0, "a type the sidecar does not walk: " + std::string(type_name)};
      return false;
    }
    order.push_back(&type);
  }
  return walk_rows(in, data, order, false, body, error);
}

bool walk_row_binary_described(std::string_view data, const std::vector<RowBinaryColumn>& columns,
                               RowBinaryLayout layout, RowBinaryBody& body, RowBinaryError& error) {
  body = RowBinaryBody{};
  BinaryReader in(data);
  std::vector<const ColumnType*> order;
  auto take = [&](const RowBinaryColumn& c) {
    if (!c.known) error = {0, "a type the sidecar does not walk, of column " + c.name};
    order.push_back(&c.type);
    return c.known;
  };
  if (layout != RowBinaryLayout::kWithNames) {
    if (columns.empty()) {
      error = {0, "no columns"};
      return false;
    }
    for (const RowBinaryColumn& c : columns)
      if (!take(c)) return false;
    return walk_rows(in, data, order, layout == RowBinaryLayout::kWithDefaults, body, error);
  }
  std::vector<std::string_view> names;
  if (!header_names(in, names, error)) return false;
  std::vector<bool> named(columns.size(), false);
  for (std::string_view name : names) {
    size_t i = 0;
    while (i < columns.size() && columns[i].name != name) ++i;
    if (i == columns.size() || named[i]) {
      error = {0, "the header names a column not written, or twice: " + std::string(name)};
      return false;
    }
    named[i] = true;
    if (!take(columns[i])) return false;
  }
  return walk_rows(in, data, order, false, body, error);
}

size_t row_binary_column_count(std::string_view header) {
  BinaryReader in(header);
  uint64_t columns;
  return in.varuint(columns) ? columns : 0;
}

}  // namespace chsidecar
