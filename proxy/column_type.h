// ClickHouse column types, as far as the sidecar walks their bytes.
//
// parse_column_type() reads a type name as ClickHouse writes it in a
// Native block or a RowBinaryWithNamesAndTypes header ("UInt32",
// "Nullable(String)", "DateTime64(3, 'UTC')", "Map(String, Array(UInt8))",
// "Tuple(a UInt8, b String)", "LowCardinality(Nullable(String))") into the
// shape its serializations have: a fixed width, a length-prefixed string,
// or a wrapper around other types. Only canonical spellings of the types
// listed in the enum are known; anything else (an alias, Dynamic, JSON,
// Variant, AggregateFunction, a parameter that does not parse) is unknown,
// and a request carrying it goes to ClickHouse alone, never guessed at.
// Pure; the result owns its data.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace chsidecar {

struct ColumnType {
  enum class Kind {
    kFixed,           // numbers, Bool, dates, UUID, IP, Decimal, Enum: `width` bytes
    kString,          // VarUInt length, bytes
    kFixedString,     // `width` bytes
    kNullable,        // args[0]
    kArray,           // args[0]
    kTuple,           // args (at least one)
    kMap,             // args[0] keys, args[1] values
    kLowCardinality,  // args[0]: a string, fixed or Nullable of those
  };
  Kind kind = Kind::kFixed;
  size_t width = 0;
  std::vector<ColumnType> args;
};

// Fills `out` and returns true when `text` is a type the sidecar walks.
bool parse_column_type(std::string_view text, ColumnType& out);

}  // namespace chsidecar
