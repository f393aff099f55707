#include <doctest/doctest.h>

#include "table_check.h"

using namespace chsidecar;

TEST_CASE("table_check_sql names the table as the INSERT wrote it") {
  std::string sql = table_check_sql("events");
  CHECK(sql.find("database = currentDatabase() AND name = 'events'") != std::string::npos);
  sql = table_check_sql("db.events");
  CHECK(sql.find("database = 'db' AND name = 'events'") != std::string::npos);
  sql = table_check_sql("`my db`.`t.x`");
  CHECK(sql.find("database = 'my db' AND name = 't.x'") != std::string::npos);
  sql = table_check_sql("\"a\"\"b\".`c\\`d`");
  CHECK(sql.find("database = 'a\"b' AND name = 'c`d'") != std::string::npos);
  // A quote in a name cannot end the literal.
  sql = table_check_sql("`x' OR 1 --`");
  CHECK(sql.find("name = 'x\\' OR 1 --'") != std::string::npos);
  CHECK(sql.find("dependencies_table") != std::string::npos);
}

TEST_CASE("parse_table_check reads one row, and anything else means views and no dedup") {
  TableFacts f = parse_table_check("0\t0\n");
  CHECK_FALSE(f.has_views);
  CHECK_FALSE(f.deduplicates);
  f = parse_table_check("1\t1\n");
  CHECK(f.has_views);
  CHECK(f.deduplicates);
  for (std::string_view other : {"", "0\t0", "0\t0\n0\t0\n", "Code: 60, e.displayText()", "2\t0\n"}) {
    CAPTURE(other);
    f = parse_table_check(other);
    CHECK(f.has_views);
    CHECK_FALSE(f.deduplicates);
  }
}
