// Unit tests for column_type.h, native_format.h and row_binary.h, on bytes
// that ClickHouse 18.16 and 26.7 wrote (tests/unit/data/native, made by
// make_fixtures.py there).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "column_type.h"
#include "native_format.h"
#include "row_binary.h"
#include "rows.h"

using namespace chsidecar;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(CHSIDECAR_TEST_DATA) + "/native/" + name, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), name);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

struct Fixture {
  const char* name;
  size_t rows;
  bool on_18;  // 18.16 has the types
};

constexpr Fixture kFixtures[] = {
    {"ints", 3, true},        {"wide", 2, false},         {"floats", 2, true},
    {"dates", 2, false},      {"ids", 2, false},          {"decimals", 2, false},
    {"enums", 2, true},       {"strings", 3, true},       {"nullable", 3, true},
    {"arrays", 3, true},      {"empty_arrays", 2, true},  {"tuples", 2, true},
    {"named_tuple", 2, false}, {"map", 2, false},         {"bool", 2, false},
    {"low_cardinality", 3, true}, {"lc_array", 3, true},  {"lc_wide", 300, true},
    {"lc_tuple", 2, false},   {"multi_block", 5, true},
};

std::vector<std::string> native_files(const Fixture& f) {
  std::vector<std::string> files{std::string(f.name) + ".26.native"};
  if (f.on_18) files.push_back(std::string(f.name) + ".18.native");
  return files;
}

long native_rows(std::string_view data) {
  NativeBody body;
  NativeError error;
  return walk_native(data, body, error) ? static_cast<long>(body.row_count) : -1;
}

long row_binary_rows(std::string_view data) {
  RowBinaryBody body;
  RowBinaryError error;
  return walk_row_binary(data, body, error) ? static_cast<long>(body.row_count) : -1;
}

}  // namespace

TEST_CASE("parse_column_type knows the walked types and nothing else") {
  ColumnType t;
  for (const char* known :
       {"UInt8", "Int256", "Float64", "Bool", "Date32", "DateTime", "DateTime('UTC')",
        "DateTime64(3)", "DateTime64(6, 'Europe/Paris')", "UUID", "IPv6", "Decimal(9, 2)",
        "Decimal(76, 10)", "Decimal128(4)", "Enum8('a' = 1, 'b,)' = 2)", "String", "FixedString(16)",
        "Nullable(String)", "Array(Array(Nullable(Int32)))", "Tuple(UInt8, String)",
        "Tuple(a UInt8, `b c` Array(String))", "Map(String, Array(UInt64))",
        "LowCardinality(Nullable(String))", "LowCardinality(FixedString(2))"}) {
    CHECK_MESSAGE(parse_column_type(known, t), known);
  }
  for (const char* unknown :
       {"", "IntervalDay", "Dynamic", "JSON", "Variant(String, UInt8)", "Object('json')",
        "AggregateFunction(sum, UInt64)", "SimpleAggregateFunction(sum, UInt64)", "Nothing",
        "string", "Tuple()", "Decimal(0, 0)", "Decimal(77, 2)", "Decimal(9, 10)", "FixedString(0)",
        "DateTime64(10)", "Array(UInt8", "LowCardinality(Array(String))", "Nullable(Dynamic)",
        "Map(String)", "Enum8(1)"}) {
    CHECK_MESSAGE(!parse_column_type(unknown, t), unknown);
  }
  REQUIRE(parse_column_type("Decimal(20, 2)", t));
  CHECK(t.width == 16);
  REQUIRE(parse_column_type("Map(String, UInt16)", t));
  CHECK(t.kind == ColumnType::Kind::kMap);
  CHECK(t.args[1].width == 2);
}

TEST_CASE("walk_native reads what 18.16 and 26.7 write, type by type") {
  for (const Fixture& f : kFixtures) {
    for (const std::string& file : native_files(f)) {
      std::string data = fixture(file);
      NativeBody body;
      NativeError error;
      CHECK_MESSAGE(walk_native(data, body, error), file, ": ", error.message);
      CHECK_MESSAGE(body.row_count == f.rows, file);
    }
  }
}

TEST_CASE("walk_native: the structure is the names and types; blocks of one body share it") {
  NativeBody body;
  NativeError error;
  REQUIRE(walk_native(fixture("multi_block.26.native"), body, error));
  CHECK(body.block_count == 3);
  CHECK(body.structure == std::string("a\0UInt64\0s\0String\0", 18));
  // Two requests' bodies concatenate into one of the same structure.
  std::string two = fixture("ints.26.native") + fixture("ints.18.native");
  REQUIRE(walk_native(two, body, error));
  CHECK(body.row_count == 6);
  // A block of another structure after the first: alone.
  std::string mixed = fixture("ints.26.native") + fixture("strings.26.native");
  CHECK(!walk_native(mixed, body, error));
  CHECK(error.block == 2);
  // An empty body: no blocks, no rows.
  REQUIRE(walk_native("", body, error));
  CHECK(body.row_count == 0);
}

TEST_CASE("merge_native_blocks writes the block ClickHouse writes for the same rows") {
  for (const char* server : {"18", "26"}) {
    CAPTURE(server);
    std::string suffix = std::string(".") + server + ".native";
    for (auto [blocks, one] : {std::pair{"multi_block", "one_block"},
                               std::pair{"nullable_blocks", "nullable_block"}}) {
      CAPTURE(blocks);
      std::string data = fixture(blocks + suffix), merged;
      NativeBody body;
      NativeError error;
      REQUIRE(walk_native(data, body, error));
      REQUIRE(body.block_count > 1);
      REQUIRE(merge_native_blocks(data, merged));
      CHECK(merged == fixture(one + suffix));
      // A single block comes out as it went in.
      std::string again;
      REQUIRE(merge_native_blocks(merged, again));
      CHECK(again == merged);
    }
  }
  // Requests' bodies of one structure.
  std::string a = fixture("nullable_block.26.native"), merged;
  REQUIRE(merge_native_blocks(a + a + a, merged));
  NativeBody body;
  NativeError error;
  REQUIRE(walk_native(merged, body, error));
  CHECK(body.block_count == 1);
  CHECK(body.row_count == 15);
  std::string ints = fixture("ints.26.native");
  REQUIRE(merge_native_blocks(ints + ints, merged));
  CHECK(native_rows(merged) == 6);
  CHECK(merged.size() < 2 * ints.size());
}

TEST_CASE("merge_native_blocks keeps the blocks of columns it does not concatenate") {
  std::string out = "untouched";
  for (const char* name : {"arrays.26.native", "map.26.native", "tuples.26.native",
                           "low_cardinality.26.native", "lc_array.18.native"}) {
    CAPTURE(name);
    std::string data = fixture(name);
    CHECK_FALSE(merge_native_blocks(data + data, out));
    CHECK(out == "untouched");
  }
  // Blocks of two structures, truncated data, nothing at all.
  CHECK_FALSE(merge_native_blocks(fixture("ints.26.native") + fixture("strings.26.native"), out));
  std::string ints = fixture("ints.26.native");
  CHECK_FALSE(merge_native_blocks(ints.substr(0, ints.size() - 1), out));
  CHECK_FALSE(merge_native_blocks("", out));
  CHECK(out == "untouched");
}

TEST_CASE("walk_native refuses every truncation and trailing garbage") {
  for (const Fixture& f : kFixtures) {
    for (const std::string& file : native_files(f)) {
      std::string data = fixture(file);
      for (size_t n = 1; n < data.size(); ++n) {
        long rows = native_rows(std::string_view(data).substr(0, n));
        // Only a cut at a block boundary reads, with fewer rows.
        CHECK_MESSAGE(rows < static_cast<long>(f.rows), file, " cut at ", n);
      }
      CHECK_MESSAGE(native_rows(data + '\x01') == -1, file);
    }
  }
}

TEST_CASE("walk_native sends alone what it does not walk exactly") {
  NativeError error;
  NativeBody body;
  CHECK(!walk_native(fixture("unknown.26.native"), body, error));
  CHECK(error.message.find("IntervalDay") != std::string::npos);
  // A LowCardinality column of no rows inside an Array: 18.16 writes a
  // chunk for it, 26.7 nothing.
  CHECK(native_rows(unhex("0102016c1d4172726179284c6f7743617264696e616c69747928537472696e67292901000000"
                          "000000000000000000000000000000000000000000000006000000000000010000000000"
                          "0000000000000000000000")) == -1);
  CHECK(native_rows(unhex("0102016c1d4172726179284c6f7743617264696e616c69747928537472696e6729290100"
                          "0000000000000000000000000000000000000000000000")) == -1);
  // A LowCardinality index beyond its keys (3 keys: "", "0", "1").
  std::string lc = fixture("low_cardinality.26.native");
  REQUIRE(native_rows(lc) == 3);
  std::string lc1 = unhex("0103016c164c6f7743617264696e616c69747928537472696e672901000000000000000006"
                          "00000000000003000000000000000001300131030000000000000001" "0201");
  REQUIRE(native_rows(lc1) == 3);
  lc1[lc1.size() - 2] = 3;
  CHECK(native_rows(lc1) == -1);
  // A global dictionary (flag 1 << 8) is not what INSERTs send.
  lc1[lc1.size() - 2] = 2;
  lc1[40] = 0x07;
  CHECK(native_rows(lc1) == -1);
  // A block of no columns; array offsets going back.
  CHECK(native_rows(unhex("0001")) == -1);
  std::string arrays = unhex("0102016113417272617928537472696e6729" "0200000000000000" "0100000000000000"
                             "0161");
  CHECK(native_rows(arrays) == -1);
}

TEST_CASE("walk_row_binary reads what 26.7 writes; the header comes apart") {
  for (const Fixture& f : kFixtures) {
    std::string file = std::string(f.name) + ".26.rbnt";
    std::string data = fixture(file);
    RowBinaryBody body;
    RowBinaryError error;
    REQUIRE_MESSAGE(walk_row_binary(data, body, error), file, ": ", error.message);
    CHECK_MESSAGE(body.row_count == f.rows, file);
    CHECK(body.header.size() + body.rows.size() == data.size());
    // Rows of two requests with this header concatenate.
    std::string two = data + std::string(body.rows);
    CHECK(row_binary_rows(two) == static_cast<long>(2 * f.rows));
    for (size_t n = 1; n < data.size(); ++n)
      CHECK_MESSAGE(row_binary_rows(std::string_view(data).substr(0, n)) < static_cast<long>(f.rows),
                    file, " cut at ", n);
  }
  CHECK(row_binary_rows(fixture("unknown.26.rbnt")) == -1);
  // A null flag other than 0 or 1: alone.
  CHECK(row_binary_rows(unhex("0101610f4e756c6c61626c652855496e743829" "00" "07")) == 1);
  CHECK(row_binary_rows(unhex("0101610f4e756c6c61626c652855496e743829" "02")) == -1);
}

TEST_CASE("split_rows: Native and RowBinaryWithNamesAndTypes chunks") {
  RowChunk chunk;
  RowError error;
  CHECK(row_format("Native") == RowFormat::kNative);
  CHECK(row_format("RowBinaryWithNamesAndTypes") == RowFormat::kRowBinaryWithNamesAndTypes);
  CHECK(row_format("RowBinary") == RowFormat::kRowBinary);
  CHECK(row_format("RowBinaryWithNames") == RowFormat::kRowBinaryWithNames);
  CHECK(row_format("RowBinaryWithDefaults") == RowFormat::kRowBinaryWithDefaults);
  std::string native = fixture("nullable.18.native");
  REQUIRE(split_rows(RowFormat::kNative, native, chunk, error));
  CHECK(chunk.rows == native);
  CHECK(chunk.header.empty());
  CHECK(chunk.row_count == 3);
  CHECK(chunk.structure == std::string("n\0Nullable(UInt64)\0s\0Nullable(String)\0", 38));
  CHECK(chunk_separator(RowFormat::kNative).empty());
  std::string rb = fixture("strings.26.rbnt");
  REQUIRE(split_rows(RowFormat::kRowBinaryWithNamesAndTypes, rb, chunk, error));
  CHECK(chunk.row_count == 3);
  CHECK(header_name_count(RowFormat::kRowBinaryWithNamesAndTypes, chunk.header) == 2);
  CHECK(chunk.structure.empty());
  CHECK(!split_rows(RowFormat::kNative, native.substr(0, native.size() - 1), chunk, error));
  CHECK(error.message.find("Native block 1") == 0);
}
