// Unit tests for insert_query.h: recognising a batchable INSERT.
#include <doctest/doctest.h>

#include <string>

#include "insert_query.h"

using namespace chsidecar;

namespace {

constexpr auto kInsert = InsertParse::kInsert;
constexpr auto kNotInsert = InsertParse::kNotInsert;
constexpr auto kNeedMore = InsertParse::kNeedMore;

InsertParse whole(std::string_view sql) {
  InsertQuery q;
  return parse_insert(sql, true, q);
}
InsertParse head(std::string_view sql) {
  InsertQuery q;
  return parse_insert(sql, false, q);
}

InsertQuery parsed(std::string_view sql) {
  InsertQuery q;
  REQUIRE(parse_insert(sql, true, q) == kInsert);
  return q;
}

// The inline data of a complete text.
std::string_view data_of(std::string_view sql) { return sql.substr(parsed(sql).data_offset); }

}  // namespace

TEST_CASE("parse_insert reads table, columns and format") {
  InsertQuery q = parsed("INSERT INTO events FORMAT JSONEachRow\n{\"a\":1}");
  CHECK(q.table == "events");
  CHECK(q.columns.empty());
  CHECK(q.format == "JSONEachRow");

  q = parsed("insert into db.events format CSV\n");
  CHECK(q.table == "db.events");
  CHECK(q.format == "CSV");

  q = parsed("INSERT INTO TABLE db.t (a, b) FORMAT TSV\n1\t2\n");
  CHECK(q.table == "db.t");
  CHECK(q.columns == "(a, b)");
  CHECK(q.format == "TSV");

  q = parsed("Insert Into Table t Format TabSeparatedWithNames\n");
  CHECK(q.table == "t");
  CHECK(q.format == "TabSeparatedWithNames");

  q = parsed("INSERT INTO `my table` FORMAT CSV\n");
  CHECK(q.table == "`my table`");
  q = parsed("INSERT INTO \"my table\" FORMAT CSV\n");
  CHECK(q.table == "\"my table\"");
  q = parsed("INSERT INTO `my db`.`my table`(x) FORMAT CSV\n");
  CHECK(q.table == "`my db`.`my table`");
  CHECK(q.columns == "(x)");
  q = parsed("INSERT INTO db.\"t.x\" FORMAT CSV\n");
  CHECK(q.table == "db.\"t.x\"");
  q = parsed("INSERT INTO `a\\`b` FORMAT CSV\n");  // an escaped backquote
  CHECK(q.table == "`a\\`b`");
  q = parsed("INSERT INTO table_x FORMAT CSV\n");  // not the TABLE keyword
  CHECK(q.table == "table_x");
  q = parsed("INSERT INTO t_1 FORMAT CSV\n");
  CHECK(q.table == "t_1");
}

TEST_CASE("parse_insert normalises column lists idempotently") {
  CHECK(parsed("INSERT INTO t ( a ,b ) FORMAT CSV\n").columns == "(a, b)");
  CHECK(parsed("INSERT INTO t(a,b,c) FORMAT CSV\n").columns == "(a, b, c)");
  CHECK(parsed("INSERT INTO t (\n\ta,\n\tb\n) FORMAT CSV\n").columns == "(a, b)");
  CHECK(parsed("INSERT INTO t (a, b) FORMAT CSV\n").columns == "(a, b)");
  CHECK(parsed("INSERT INTO t (`x y`, b) FORMAT CSV\n").columns == "(`x y`, b)");
  CHECK(parsed("INSERT INTO t (a, `b,c`) FORMAT CSV\n").columns == "(a, `b,c`)");
  CHECK(parsed("INSERT INTO t (a, `b)`) FORMAT CSV\n").columns == "(a, `b)`)");
  // Normalising a normalised list changes nothing.
  for (std::string_view sql : {"INSERT INTO t ( a ,b ) FORMAT CSV\n", "INSERT INTO t(a,\n b ,c) VALUES (1,2,3)",
                               "INSERT INTO t (  x  ) FORMAT CSV\n", "INSERT INTO t (a, ` b`,c) FORMAT CSV\n"}) {
    CAPTURE(sql);
    InsertQuery once = parsed(sql);
    InsertQuery twice = parsed(insert_sql(once));
    CHECK(twice.columns == once.columns);
    CHECK(twice.table == once.table);
    CHECK(twice.format == once.format);
  }
  // The same columns written two ways batch together.
  CHECK(insert_sql(parsed("INSERT INTO t ( a ,b ) FORMAT CSV\n")) ==
        insert_sql(parsed("insert into t (a,b) format CSV 1,2")));
}

TEST_CASE("parse_insert recognises VALUES") {
  std::string_view sql = "INSERT INTO t VALUES (1),(2)";
  InsertQuery q = parsed(sql);
  CHECK(q.format == "Values");
  CHECK(q.table == "t");
  CHECK(sql.substr(q.data_offset) == " (1),(2)");  // right after the keyword

  q = parsed("insert into t (a) values(1)");
  CHECK(q.format == "Values");
  CHECK(q.columns == "(a)");
  CHECK(data_of("insert into t (a) values(1)") == "(1)");
  CHECK(data_of("INSERT INTO t VALUES\n(1)") == "\n(1)");
  CHECK(parsed("INSERT INTO t FORMAT Values (1)").format == "Values");
}

TEST_CASE("parse_insert: where the data begins after FORMAT") {
  // Only blanks before the first newline: the data begins after it.
  CHECK(data_of("INSERT INTO t FORMAT CSV\n1,2\n") == "1,2\n");
  CHECK(data_of("INSERT INTO t FORMAT CSV   \t\n1,2\n") == "1,2\n");
  CHECK(data_of("INSERT INTO t FORMAT CSV\r\n1,2\n") == "1,2\n");
  CHECK(data_of("INSERT INTO t FORMAT CSV \r\n1,2\n") == "1,2\n");
  // Only the first newline goes.
  CHECK(data_of("INSERT INTO t FORMAT CSV\n\n1,2\n") == "\n1,2\n");
  CHECK(data_of("INSERT INTO t FORMAT TSV\n\t2\n") == "\t2\n");
  // Data on the same line: after the blanks.
  CHECK(data_of("INSERT INTO t FORMAT CSV 1,2\n") == "1,2\n");
  CHECK(data_of("INSERT INTO t FORMAT CSV  \t 1,2\n") == "1,2\n");
  CHECK(data_of("INSERT INTO t FORMAT JSONEachRow {\"a\":1}") == "{\"a\":1}");
  // No data.
  CHECK(data_of("INSERT INTO t FORMAT CSV").empty());
  CHECK(data_of("INSERT INTO t FORMAT CSV  ").empty());
  CHECK(data_of("INSERT INTO t FORMAT CSV\n").empty());
}

TEST_CASE("parse_insert skips comments") {
  InsertQuery q = parsed("-- load\nINSERT /* a */ INTO /* b */ db.t -- c\n (a) /*d*/ FORMAT /* e */ CSV\n1\n");
  CHECK(q.table == "db.t");
  CHECK(q.columns == "(a)");
  CHECK(q.format == "CSV");
  CHECK(data_of("/* x */ INSERT INTO t FORMAT CSV\n1\n") == "1\n");
  CHECK(whole("/* INSERT INTO t FORMAT CSV */ SELECT 1") == kNotInsert);
  CHECK(whole("-- INSERT INTO t FORMAT CSV\nSELECT 1") == kNotInsert);
  CHECK(whole("/* unterminated INSERT INTO t FORMAT CSV") == kNotInsert);
}

TEST_CASE("parse_insert passes other statements through") {
  CHECK(whole("INSERT INTO t SELECT * FROM s") == kNotInsert);
  CHECK(whole("INSERT INTO t (a) SELECT 1") == kNotInsert);
  CHECK(whole("INSERT INTO t WITH 1 AS x SELECT x") == kNotInsert);
  CHECK(whole("INSERT INTO t SETTINGS async_insert=1 FORMAT CSV\n1\n") == kNotInsert);
  CHECK(whole("INSERT INTO t (a) SETTINGS x=1 VALUES (1)") == kNotInsert);
  CHECK(whole("INSERT INTO FUNCTION remote('h', db.t) FORMAT CSV\n1\n") == kNotInsert);
  CHECK(whole("INSERT INTO TABLE FUNCTION s3('x') FORMAT CSV\n") == kNotInsert);
  CHECK(whole("INSERT INTO t") == kNotInsert);
  CHECK(whole("INSERT INTO t FORMAT") == kNotInsert);
  CHECK(whole("INSERT INTO t (a, b FORMAT CSV") == kNotInsert);
  CHECK(whole("INSERT INTO t (* EXCEPT (b)) VALUES (1)") == kNotInsert);
  CHECK(head("INSERT INTO t (COLUMNS('a') ") == kNotInsert);
  CHECK(whole("INSERT t FORMAT CSV\n") == kNotInsert);
  CHECK(whole("INSERTINTO t FORMAT CSV\n") == kNotInsert);
  CHECK(whole("SELECT 1") == kNotInsert);
  CHECK(whole("") == kNotInsert);
  CHECK(whole("   ") == kNotInsert);
  CHECK(whole("SELECT 'INSERT INTO t FORMAT CSV'") == kNotInsert);
  CHECK(head("SELECT ") == kNotInsert);
  CHECK(head("INSERT INTO t SELECT ") == kNotInsert);
  CHECK(head("INSERT INTO t SETTINGS ") == kNotInsert);
  CHECK(head("INSERT INTO FUNCTION ") == kNotInsert);
}

TEST_CASE("parse_insert needs more of a partial INSERT, never refusing it") {
  for (std::string_view sql : {
           "INSERT INTO db.t (a, b) FORMAT CSV\n1,2\n",
           "INSERT INTO db.t (a, b) FORMAT CSV 1,2\n",
           "insert into table `my db`.\"my t\" ( a ,b )FORMAT JSONEachRow\r\n{\"a\":1}",
           "-- c\nINSERT /* x */ INTO t /* y */ FORMAT TSV\n1\n",
           "INSERT INTO t VALUES (1), (2)",
           "INSERT INTO t(a)VALUES(1)",
           "INSERT INTO TABLE t FORMAT CSV\n",
       }) {
    CAPTURE(sql);
    InsertQuery full = parsed(sql);
    for (size_t n = 0; n <= sql.size(); ++n) {
      std::string_view part = sql.substr(0, n);
      CAPTURE(part);
      InsertQuery q;
      InsertParse r = parse_insert(part, false, q);
      if (n < full.data_offset) {
        CHECK(r == kNeedMore);
      } else if (n > full.data_offset) {
        REQUIRE(r == kInsert);
      }
      if (r == kInsert) {
        CHECK(q.table == full.table);
        CHECK(q.columns == full.columns);
        CHECK(q.format == full.format);
        CHECK(q.data_offset == full.data_offset);
      }
    }
  }
}

TEST_CASE("parse_insert: specific partial texts") {
  CHECK(head("") == kNeedMore);
  CHECK(head("  ") == kNeedMore);
  CHECK(head("INS") == kNeedMore);
  CHECK(head("INSERT") == kNeedMore);
  CHECK(head("INSERT IN") == kNeedMore);
  CHECK(head("INSERT INTO TAB") == kNeedMore);
  CHECK(head("INSERT INTO db.") == kNeedMore);
  CHECK(head("INSERT INTO `my ta") == kNeedMore);
  CHECK(head("INSERT INTO t (a, b") == kNeedMore);
  CHECK(head("INSERT INTO t (a, b) FORM") == kNeedMore);
  CHECK(head("INSERT INTO t (a, b) FORMAT") == kNeedMore);
  CHECK(head("INSERT INTO t (a, b) FORMAT ") == kNeedMore);
  CHECK(head("INSERT INTO t FORMAT CSV") == kNeedMore);      // the name may go on
  CHECK(head("INSERT INTO t FORMAT CSV ") == kNeedMore);     // a newline may follow
  CHECK(head("INSERT INTO t FORMAT CSV\r") == kNeedMore);
  CHECK(head("INSERT INTO t VALU") == kNeedMore);
  CHECK(head("INSERT INTO t VALUES") == kNeedMore);          // VALUES_X is a table... or not
  CHECK(head("INSERT -") == kNeedMore);                      // maybe a comment
  CHECK(head("INSERT /* x") == kNeedMore);
  CHECK(head("INSERT -- x") == kNeedMore);
  CHECK(head("INSERT INTO t SET") == kNeedMore);
  CHECK(head("INSERT INTO t FORMAT CSV\n") == kInsert);
  CHECK(head("INSERT INTO t FORMAT CSV 1") == kInsert);
  CHECK(head("INSERT INTO t VALUES ") == kInsert);
  CHECK(head("INSERT INTO t VALUES(") == kInsert);
}

TEST_CASE("insert_sql writes the INSERT a batch is sent with") {
  InsertQuery q;
  q.table = "db.t";
  q.format = "CSV";
  CHECK(insert_sql(q) == "INSERT INTO db.t FORMAT CSV");
  q.columns = "(a, b)";
  CHECK(insert_sql(q) == "INSERT INTO db.t (a, b) FORMAT CSV");

  for (std::string_view sql : {"insert into table `x`.\"y\" ( a , b ) format TSVWithNames\n",
                               "INSERT INTO t VALUES (1)", "INSERT INTO t(c)FORMAT JSONEachRow {}"}) {
    CAPTURE(sql);
    InsertQuery a = parsed(sql);
    std::string text = insert_sql(a);
    InsertQuery b = parsed(text);
    CHECK(b.table == a.table);
    CHECK(b.columns == a.columns);
    CHECK(b.format == a.format);
    CHECK(b.data_offset == text.size());
    CHECK(insert_sql(b) == text);
  }
}
