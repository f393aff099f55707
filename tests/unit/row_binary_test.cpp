#include <doctest/doctest.h>

#include <string>

#include "row_binary.h"

using namespace chsidecar;

namespace {

RowBinaryColumn column(std::string name, std::string_view type) {
  RowBinaryColumn c;
  c.name = std::move(name);
  c.known = parse_column_type(type, c.type);
  return c;
}

// a UInt32, s String, n Nullable(UInt8)
const std::vector<RowBinaryColumn> kColumns = {column("a", "UInt32"), column("s", "String"),
                                               column("n", "Nullable(UInt8)")};

long walk(std::string_view data, RowBinaryLayout layout,
          const std::vector<RowBinaryColumn>& columns = kColumns) {
  RowBinaryBody body;
  RowBinaryError error;
  if (!walk_row_binary_described(data, columns, layout, body, error)) return -1;
  return static_cast<long>(body.row_count);
}

const std::string kRow1("\x01\x00\x00\x00" "\x02hi" "\x00\x07", 9);
const std::string kRow2("\x02\x00\x00\x00" "\x00" "\x01", 6);

}  // namespace

TEST_CASE("RowBinary rows walk by the given types") {
  CHECK(walk(kRow1, RowBinaryLayout::kPlain) == 1);
  CHECK(walk(kRow1 + kRow2, RowBinaryLayout::kPlain) == 2);
  CHECK(walk("", RowBinaryLayout::kPlain) == 0);
  for (size_t n = 1; n < kRow1.size(); ++n)
    CHECK_MESSAGE(walk(kRow1.substr(0, n), RowBinaryLayout::kPlain) == -1, "cut at ", n);
  CHECK(walk(kRow1 + "x", RowBinaryLayout::kPlain) == -1);
  // A type the walker does not read: alone.
  CHECK(walk(kRow1, RowBinaryLayout::kPlain, {column("a", "UInt32"), column("s", "JSON"), column("n", "UInt16")}) == -1);
  CHECK(walk(kRow1, RowBinaryLayout::kPlain, {}) == -1);
}

TEST_CASE("RowBinaryWithDefaults: a flag before each value") {
  // a given, s default, n given as NULL
  std::string row("\x00\x05\x00\x00\x00" "\x01" "\x00\x01", 8);
  CHECK(walk(row, RowBinaryLayout::kWithDefaults) == 1);
  CHECK(walk(row + row, RowBinaryLayout::kWithDefaults) == 2);
  CHECK(walk(row, RowBinaryLayout::kPlain) == -1);
  // ClickHouse takes any other flag as 1; the walker leaves that to it.
  std::string two("\x00\x05\x00\x00\x00" "\x02" "\x00\x01", 8);
  CHECK(walk(two, RowBinaryLayout::kWithDefaults) == -1);
  CHECK(walk(std::string("\x01\x01\x01", 3), RowBinaryLayout::kWithDefaults) == 1);
}

TEST_CASE("RowBinaryWithNames: a header naming written columns, once each") {
  std::string header("\x02\x01n\x01" "a", 5);  // n, a
  std::string row("\x00\x09" "\x03\x00\x00\x00", 6);
  RowBinaryBody body;
  RowBinaryError error;
  std::string data = header + row + row;
  REQUIRE(walk_row_binary_described(data, kColumns, RowBinaryLayout::kWithNames, body, error));
  CHECK(body.header == header);
  CHECK(body.row_count == 2);
  CHECK(body.column_count == 2);
  CHECK(row_binary_column_count(body.header) == 2);
  CHECK(walk(std::string("\x01\x01z", 3) + "\x00", RowBinaryLayout::kWithNames) == -1);  // not a column
  CHECK(walk(std::string("\x02\x01" "a\x01" "a", 5), RowBinaryLayout::kWithNames) == -1);  // twice
  CHECK(walk(std::string("\x00", 1), RowBinaryLayout::kWithNames) == -1);              // no columns
  CHECK(walk(header + row.substr(0, 3), RowBinaryLayout::kWithNames) == -1);
  CHECK(walk(header, RowBinaryLayout::kWithNames) == 0);
}
