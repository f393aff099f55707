// Walking RowBinary bodies, byte for byte: RowBinaryWithNamesAndTypes,
// RowBinary, RowBinaryWithNames and RowBinaryWithDefaults.
//
// A row is each column's value in the type's per-value binary
// serialization: fixed-width values; strings as VarUInt length and bytes;
// Nullable as a UInt8 null flag (1: no value follows); Array and Map as a
// VarUInt element count then the elements (a Map's as key, value pairs);
// Tuple as its elements; LowCardinality(T) as T. The formats differ in
// where the types come from and what precedes the rows:
//
// - RowBinaryWithNamesAndTypes: a header (VarUInt column count, the names,
//   then the types, each a String). With ClickHouse's default
//   input_format_with_types_use_header=1 a server reads the values by the
//   header's types (it refuses a header whose types differ from the
//   table's), so the header alone says where every row ends.
// - RowBinary: no header; the values of the INSERT's columns (its column
//   list, or the table's insertable columns) in order. The types are the
//   table's, learnt with DESCRIBE TABLE (table_structure.h) and given here.
// - RowBinaryWithNames: a header of count and names, each naming one of
//   the INSERT's columns once; the values of those, by their table types.
// - RowBinaryWithDefaults (23.7+): as RowBinary, each value preceded by a
//   byte: 1 = the column's default, no value follows; 0 = a value follows.
//   ClickHouse takes any other byte as 1; the walker refuses it.
//
// A walk accepts a body only when every type it reads by is known
// (column_type.h), every header name is one of the given columns, and the
// rows end exactly at the end of the data; anything else is refused, and
// the request goes to ClickHouse alone (router.h, exchange.h). Settings
// that change how ClickHouse reads these bodies make the request go alone
// before it is walked (router.cpp). Pure; the views point into the data.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "column_type.h"

namespace chsidecar {

struct RowBinaryBody {
  std::string_view header;  // count, names (and types): sent once per batch, part of the key
  std::string_view rows;
  size_t column_count = 0;
  size_t row_count = 0;
};

struct RowBinaryError {
  size_t row = 0;  // 1-based; 0 for the header
  std::string message;
};

// RowBinaryWithNamesAndTypes: the types are in the header.
bool walk_row_binary(std::string_view data, RowBinaryBody& body, RowBinaryError& error);

// One column an INSERT writes, with the table's type for it; `known` is
// false for a type the walker does not read (column_type.h).
struct RowBinaryColumn {
  std::string name;
  bool known = false;
  ColumnType type;
};

enum class RowBinaryLayout {
  kPlain,         // RowBinary
  kWithNames,     // RowBinaryWithNames
  kWithDefaults,  // RowBinaryWithDefaults
};

// RowBinary, RowBinaryWithNames and RowBinaryWithDefaults, by the types of
// `columns`: for kPlain and kWithDefaults every column in order; for
// kWithNames the columns the header names (each of `columns` at most once).
bool walk_row_binary_described(std::string_view data, const std::vector<RowBinaryColumn>& columns,
                               RowBinaryLayout layout, RowBinaryBody& body, RowBinaryError& error);

// The column count a header starts with (0 if it does not parse).
size_t row_binary_column_count(std::string_view header);

}  // namespace chsidecar
