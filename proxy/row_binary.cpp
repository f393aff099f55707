#include "row_binary.h"

#include <vector>

#include "binary_reader.h"
#include "column_type.h"

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

}  // namespace

bool walk_row_binary(std::string_view data, RowBinaryBody& body, RowBinaryError& error) {
  body = RowBinaryBody{};
  BinaryReader in(data);
  uint64_t columns;
  if (!in.varuint(columns) || columns == 0 || columns > in.left()) {
    error = {0, "no column count in the header"};
    return false;
  }
  for (uint64_t c = 0; c < columns; ++c) {
    std::string_view name;
    if (!in.string(name)) {
      error = {0, "data ends in the header's names"};
      return false;
    }
  }
  std::vector<ColumnType> types(columns);
  for (uint64_t c = 0; c < columns; ++c) {
    std::string_view type_name;
    if (!in.string(type_name)) {
      error = {0, "data ends in the header's types"};
      return false;
    }
    if (!parse_column_type(type_name, types[c])) {
      error = {0, "a type the sidecar does not walk: " + std::string(type_name)};
      return false;
    }
  }
  body.header = data.substr(0, in.pos());
  body.rows = data.substr(in.pos());
  body.column_count = columns;
  while (!in.done()) {
    ++body.row_count;
    for (const ColumnType& t : types) {
      if (!value(in, t)) {
        error = {body.row_count, "a value that does not end within the data"};
        return false;
      }
    }
  }
  return true;
}

size_t row_binary_column_count(std::string_view header) {
  BinaryReader in(header);
  uint64_t columns;
  return in.varuint(columns) ? columns : 0;
}

}  // namespace chsidecar
