// Unit tests for statement.h: which statements leave state in a session.
#include <doctest/doctest.h>

#include <string>

#include "statement.h"

using namespace chsidecar;

namespace {

constexpr auto kStateful = StatementKind::kStateful;
constexpr auto kStateless = StatementKind::kStateless;
constexpr auto kUnknown = StatementKind::kUnknown;

StatementKind whole(std::string_view sql) { return classify_statement(sql, true); }
StatementKind head(std::string_view sql) { return classify_statement(sql, false); }

}  // namespace

TEST_CASE("SET, USE and temporary tables are stateful") {
  CHECK(whole("SET max_threads = 1") == kStateful);
  CHECK(whole("USE db") == kStateful);
  CHECK(whole("CREATE TEMPORARY TABLE t (x UInt8)") == kStateful);
  CHECK(whole("DROP TEMPORARY TABLE t") == kStateful);
  CHECK(whole("DROP TEMPORARY TABLE IF EXISTS t") == kStateful);
  // The same with enough text to decide before the body is complete.
  CHECK(head("SET max_threads = 1") == kStateful);
  CHECK(head("USE db") == kStateful);
  CHECK(head("CREATE TEMPORARY TABLE t (x UInt8) ENGINE = Memory") == kStateful);
  CHECK(head("DROP TEMPORARY TABLE t") == kStateful);
}

TEST_CASE("CREATE OR REPLACE and REPLACE of a temporary table are stateful") {
  // ClickHouse's grammar: CREATE [OR REPLACE] TEMPORARY TABLE, and REPLACE
  // [TEMPORARY] TABLE.
  CHECK(whole("CREATE OR REPLACE TEMPORARY TABLE t (x UInt8)") == kStateful);
  CHECK(whole("create or replace temporary table t (x UInt8)") == kStateful);
  CHECK(whole("CREATE /* c */ OR -- c\n REPLACE\tTEMPORARY TABLE t (x UInt8)") == kStateful);
  CHECK(whole("REPLACE TEMPORARY TABLE t (x UInt8)") == kStateful);
  CHECK(head("CREATE OR REPLACE TEMPORARY TABLE t") == kStateful);
  CHECK(whole("CREATE OR REPLACE TABLE t (x UInt8) ENGINE = Memory") == kStateless);
  CHECK(whole("CREATE OR REPLACE VIEW v AS SELECT 1") == kStateless);
  CHECK(whole("REPLACE TABLE t (x UInt8) ENGINE = Memory") == kStateless);
  CHECK(whole("CREATE OR TEMPORARY TABLE t") == kStateless);  // not OR REPLACE
  CHECK(whole("CREATE ORREPLACE TEMPORARY TABLE t") == kStateless);
  CHECK(head("CREATE OR") == kUnknown);
  CHECK(head("CREATE OR ") == kUnknown);
  CHECK(head("CREATE OR REPLACE") == kUnknown);
  CHECK(head("CREATE OR REPLACE TEMP") == kUnknown);
  CHECK(head("REPLACE") == kUnknown);
  CHECK(head("REPLACE TEMPORARY ") == kStateful);
  CHECK(whole("CREATE OR") == kStateless);
  CHECK(whole("CREATE OR REPLACE") == kStateless);
}

TEST_CASE("keywords are case-insensitive") {
  CHECK(whole("set max_threads = 1") == kStateful);
  CHECK(whole("Set max_threads = 1") == kStateful);
  CHECK(whole("use db") == kStateful);
  CHECK(whole("create temporary table t (x UInt8)") == kStateful);
  CHECK(whole("Drop Temporary Table t") == kStateful);
  CHECK(whole("select 1") == kStateless);
  CHECK(whole("create table t (x UInt8) engine = Memory") == kStateless);
}

TEST_CASE("whitespace and comments before the keywords are skipped") {
  CHECK(whole("   SET a = 1") == kStateful);
  CHECK(whole("\n\t\r\n SET a = 1") == kStateful);
  CHECK(whole("-- a comment\nSET a = 1") == kStateful);
  CHECK(whole("--\nUSE db") == kStateful);
  CHECK(whole("# a hash comment\nUSE db") == kStateful);
  CHECK(whole("/* block */SET a = 1") == kStateful);
  CHECK(whole("/* multi\nline SELECT */ USE db") == kStateful);
  CHECK(whole("/**/SET a = 1") == kStateful);
  CHECK(whole(" -- one\n /* two */ # three\n\tSET a = 1") == kStateful);
  // Comments between the two keywords of CREATE/DROP TEMPORARY.
  CHECK(whole("CREATE /* x */ TEMPORARY TABLE t (x UInt8)") == kStateful);
  CHECK(whole("DROP -- x\n TEMPORARY TABLE t") == kStateful);
  CHECK(whole("CREATE\n\tTEMPORARY TABLE t (x UInt8)") == kStateful);
  // A comment that mentions SET does not make a SELECT stateful, and the
  // other way round.
  CHECK(whole("/* SET a = 1 */ SELECT 1") == kStateless);
  CHECK(whole("-- USE db\nSELECT 1") == kStateless);
  CHECK(whole("# SET\nSELECT 1") == kStateless);
  CHECK(whole("/* SELECT */ SET a = 1") == kStateful);
}

TEST_CASE("ordinary queries and DDL are stateless") {
  CHECK(whole("SELECT 1") == kStateless);
  CHECK(whole("INSERT INTO t VALUES (1)") == kStateless);
  CHECK(whole("INSERT INTO t FORMAT JSONEachRow\n{\"x\":1}") == kStateless);
  CHECK(whole("CREATE TABLE t (x UInt8) ENGINE = Memory") == kStateless);
  CHECK(whole("CREATE DATABASE d") == kStateless);
  CHECK(whole("DROP TABLE t") == kStateless);
  CHECK(whole("DROP TABLE IF EXISTS t") == kStateless);
  CHECK(whole("SHOW TABLES") == kStateless);
  CHECK(whole("WITH 1 AS x SELECT x") == kStateless);
  CHECK(whole("(SELECT 1)") == kStateless);
  CHECK(whole("SELECT 1 SETTINGS max_threads = 1") == kStateless);
  CHECK(head("SELECT 1") == kStateless);
  CHECK(head("INSERT INTO t VALUES (1)") == kStateless);
  CHECK(head("CREATE TABLE t (x UInt8)") == kStateless);
  CHECK(head("DROP TABLE t") == kStateless);
}

TEST_CASE("a first word the classifier does not know counts as stateful") {
  for (std::string_view sql : {"SETX a = 1", "SETTINGS_table", "settings", "USER", "USES", "SET_a",
                               "SET1", "UNDROP TABLE t", "BACKUP TABLE t TO Disk('b', 'x')",
                               "EXCHANGE TABLES a AND b"}) {
    CAPTURE(sql);
    CHECK(whole(sql) == kStateful);
  }
  CHECK(whole("ATTACH TEMPORARY TABLE t (x UInt8) ENGINE = Memory") == kStateful);
  CHECK(whole("DETACH TEMPORARY TABLE t") == kStateful);
  CHECK(whole("ATTACH TABLE t") == kStateless);
  CHECK(whole("(SELECT 1) UNION ALL (SELECT 2)") == kStateless);
}

TEST_CASE("identifiers that start like SET or USE are not mistaken") {
  CHECK(whole("SELECT * FROM settings") == kStateless);
  CHECK(whole("CREATE TEMPORARYX TABLE t") == kStateless);
  CHECK(whole("DROP TEMPORARY_t") == kStateless);
  // The keyword stops at punctuation.
  CHECK(whole("SET(") == kStateful);
  CHECK(whole("USE`db`") == kStateful);
  // Later keywords do not count, only the leading ones.
  CHECK(whole("SELECT 1; SET a = 1") == kStateless);
  CHECK(whole("CREATE TABLE temporary (x UInt8)") == kStateless);
}

TEST_CASE("truncated text is kUnknown unless it is the whole text") {
  // The first word could still grow: "SE" may become SET or SELECT, "SET"
  // may become SETTINGS_table.
  CHECK(head("") == kUnknown);
  CHECK(head("   ") == kUnknown);
  CHECK(head("S") == kUnknown);
  CHECK(head("SE") == kUnknown);
  CHECK(head("SET") == kUnknown);
  CHECK(head("  USE") == kUnknown);
  CHECK(head("SELEC") == kUnknown);
  // Inside a comment.
  CHECK(head("-- comment without end") == kUnknown);
  CHECK(head("# comment") == kUnknown);
  CHECK(head("/* comment") == kUnknown);
  CHECK(head("/* comment *") == kUnknown);
  // Cut right after the first character of a comment's opener (found by fuzzing:
  // "-" was taken for a statement of its own, "--\nSET" for the whole text).
  CHECK(head("-") == kUnknown);
  CHECK(head("  /") == kUnknown);
  CHECK(head("CREATE -") == kUnknown);
  // The second keyword of CREATE/DROP is missing or cut.
  CHECK(head("CREATE") == kUnknown);
  CHECK(head("CREATE ") == kUnknown);
  CHECK(head("CREATE TEMP") == kUnknown);
  CHECK(head("DROP TEMPORARY") == kUnknown);
  CHECK(head("DROP /* x") == kUnknown);
  // Once the word is followed by something, it is decided.
  CHECK(head("SET ") == kStateful);
  CHECK(head("SELECT ") == kStateless);
  CHECK(head("CREATE TABLE ") == kStateless);
  CHECK(head("DROP TEMPORARY ") == kStateful);
}

TEST_CASE("complete text is never kUnknown") {
  const char* texts[] = {"",       "   ",          "S",          "SE",        "SET",
                         "USE",    "CREATE",       "CREATE ",    "DROP TEMP", "-- only",
                         "# only", "/* unclosed",  "/* a */",    ";",         "CREATE TEMPORARY",
                         "DROP",   "CREATE OR REPLACE", "REPLACE", "\xC3\xA9t\xC3\xA9", "123",   "SELECT"};
  for (const char* text : texts) {
    CAPTURE(text);
    CHECK(whole(text) != kUnknown);
  }
  CHECK(whole("SET") == kStateful);
  CHECK(whole("USE") == kStateful);
  CHECK(whole("CREATE TEMPORARY") == kStateful);
  CHECK(whole("CREATE") == kStateless);
  CHECK(whole("") == kStateless);
  CHECK(whole("-- only") == kStateless);
}
