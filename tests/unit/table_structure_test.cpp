#include <doctest/doctest.h>

#include <string>

#include "table_structure.h"

using namespace chsidecar;

namespace {

// DESCRIBE TABLE t FORMAT TSV for
//   (a UInt32, b String DEFAULT 'x', c UInt32 MATERIALIZED a*2, d UInt32 ALIAS a+1,
//    e Enum8('it''s' = 1, 'b\\c' = 2))
// as the two test servers answer it.
const std::string kDescribe18 =
    "a\tUInt32\t\t\t\n"
    "b\tString\tDEFAULT\t\\'x\\'\t\n"
    "e\tEnum8(\\'it\\\\\\'s\\' = 1, \\'b\\\\\\\\c\\' = 2)\t\t\t\n"
    "c\tUInt32\tMATERIALIZED\tCAST(a * 2, \\'UInt32\\')\t\n"
    "d\tUInt32\tALIAS\tCAST(a + 1, \\'UInt32\\')\t\n";
const std::string kDescribe26 =
    "a\tUInt32\t\t\t\t\t\n"
    "b\tString\tDEFAULT\t\\'x\\'\t\t\t\n"
    "c\tUInt32\tMATERIALIZED\ta * 2\t\t\t\n"
    "d\tUInt32\tALIAS\ta + 1\t\t\t\n"
    "e\tEnum8(\\'it\\\\\\'s\\' = 1, \\'b\\\\\\\\c\\' = 2)\t\t\t\t\t\n";

std::vector<std::string> names(const std::vector<RowBinaryColumn>& columns) {
  std::vector<std::string> out;
  for (const RowBinaryColumn& c : columns) out.push_back(c.name);
  return out;
}

}  // namespace

TEST_CASE("parse_describe reads both servers' answers") {
  using Kind = TableColumn::Kind;
  for (const std::string& answer : {kDescribe18, kDescribe26}) {
    TableStructure t;
    REQUIRE(parse_describe(answer, t));
    REQUIRE(t.columns.size() == 5);
    auto column = [&t](const char* name) {
      const TableColumn* found = nullptr;
      for (const TableColumn& c : t.columns)
        if (c.name == name) found = &c;
      REQUIRE(found != nullptr);
      return found;
    };
    const TableColumn* e = column("e");
    CHECK(e->type == "Enum8('it\\'s' = 1, 'b\\\\c' = 2)");
    CHECK(e->known);
    CHECK(e->parsed.width == 1);
    CHECK(column("a")->kind == Kind::kOrdinary);
    CHECK(column("b")->kind == Kind::kDefault);
    CHECK(column("c")->kind == Kind::kMaterialized);
    CHECK(column("d")->kind == Kind::kAlias);
  }
}

TEST_CASE("parse_describe: extra rows left out, anything unknown refused") {
  TableStructure t;
  // describe_include_subcolumns=1 in a profile: an is_subcolumn field.
  REQUIRE(parse_describe("t\tTuple(x UInt8)\t\t\t\t\t\t0\nt.x\tUInt8\t\t\t\t\t\t1\n", t));
  CHECK(t.columns.size() == 1);
  CHECK(t.columns[0].known);
  REQUIRE(parse_describe("x\tEPH\tEPHEMERAL\t\t\t\t\n", t));
  CHECK(t.columns[0].kind == TableColumn::Kind::kEphemeral);
  CHECK_FALSE(t.columns[0].known);  // a type the walker does not read is kept, unknown
  CHECK_FALSE(parse_describe("", t));
  CHECK_FALSE(parse_describe("a\tUInt8\n", t));                  // describe_compact_output
  CHECK_FALSE(parse_describe("a\tUInt8\tSOMETHING\t\t\t\t\n", t));  // another kind
  CHECK_FALSE(parse_describe("a\tUInt8\t\t\t\t\t\tx\n", t));     // not a flag
  CHECK_FALSE(parse_describe("a\\q\tUInt8\t\t\t\t\t\n", t));     // an escape not known
  CHECK_FALSE(parse_describe("a\tUInt8\t\t\t\t\t", t));          // cut
}

TEST_CASE("insert_columns picks what ClickHouse writes") {
  TableStructure t;
  REQUIRE(parse_describe(kDescribe26 + "f\tUInt8\tEPHEMERAL\t\t\t\t\n", t));
  std::vector<RowBinaryColumn> cols;
  std::string signature;
  // No list: ordinary and DEFAULT columns in order.
  REQUIRE(insert_columns(t, {}, cols, signature));
  CHECK(names(cols) == std::vector<std::string>{"a", "b", "e"});
  CHECK(signature.substr(0, 9) == std::string("a\0UInt32\0", 9));
  // A list: those, in its order; EPHEMERAL may be listed.
  REQUIRE(insert_columns(t, {"e", "a", "f"}, cols, signature));
  CHECK(names(cols) == std::vector<std::string>{"e", "a", "f"});
  CHECK_FALSE(insert_columns(t, {"a", "c"}, cols, signature));  // MATERIALIZED
  CHECK_FALSE(insert_columns(t, {"d"}, cols, signature));       // ALIAS
  CHECK_FALSE(insert_columns(t, {"zz"}, cols, signature));      // not in the table
  CHECK_FALSE(insert_columns(t, {"a", "a"}, cols, signature));  // twice
}

TEST_CASE("structure_key keeps users, databases and tables apart") {
  std::vector<QueryParam> none;
  std::string k = structure_key("t", none, {});
  CHECK(k != structure_key("db.t", none, {}));
  CHECK(k != structure_key("t", {{"user", "alice"}}, {}));
  CHECK(k != structure_key("t", {{"database", "other"}}, {}));
  CHECK(k != structure_key("t", none, {{"X-ClickHouse-User", "alice"}}));
  CHECK(k != structure_key("t", none, {{"X-ClickHouse-Database", "other"}}));
  CHECK(structure_key("t", {{"user", "alice"}, {"password", "a"}}, {}) !=
        structure_key("t", {{"user", "alice"}, {"password", "b"}}, {}));
  // Other settings do not matter.
  CHECK(k == structure_key("t", {{"max_threads", "1"}}, {{"Content-Type", "x"}}));
  CHECK(describe_sql("`my db`.t") == "DESCRIBE TABLE `my db`.t FORMAT TSV");
}

TEST_CASE("structure_error: the codes that make the columns be asked again") {
  for (int code : {10, 16, 20, 33, 44, 53, 60, 117, 626}) CHECK(structure_error(code));
  for (int code : {0, 6, 27, 241, 252, 516}) CHECK_FALSE(structure_error(code));
}
