// Walking a RowBinaryWithNamesAndTypes body, byte for byte.
//
// The body is a header (VarUInt column count, the names, then the types,
// each a String) followed by rows; a row is each column's value in the
// type's per-value binary serialization: fixed-width values; strings as
// VarUInt length and bytes; Nullable as a UInt8 null flag (1: no value
// follows); Array and Map as a VarUInt element count then the elements
// (a Map's as key, value pairs); Tuple as its elements; LowCardinality(T)
// as T. With ClickHouse's default input_format_with_types_use_header=1 a
// server reads the values by the header's types (it refuses a header
// whose types differ from the table's), so the header alone says where
// every row ends; requests whose settings change that go alone (router).
//
// walk_row_binary() accepts a body only when the header's types are all
// known (column_type.h) and the rows end exactly at the end of the data.
// Plain RowBinary and RowBinaryWithNames carry no types: they would need
// the table's structure (DESCRIBE TABLE), which this pure walker does not
// have, so they are not batched. Pure; the views point into the data.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chsidecar {

struct RowBinaryBody {
  std::string_view header;  // count, names and types: sent once per batch, part of the key
  std::string_view rows;
  size_t column_count = 0;
  size_t row_count = 0;
};

struct RowBinaryError {
  size_t row = 0;  // 1-based; 0 for the header
  std::string message;
};

bool walk_row_binary(std::string_view data, RowBinaryBody& body, RowBinaryError& error);

// The column count a header starts with (0 if it does not parse).
size_t row_binary_column_count(std::string_view header);

}  // namespace chsidecar
