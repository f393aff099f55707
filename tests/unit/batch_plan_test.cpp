// Unit tests for batch_plan.h: which request parts decide whether a
// connection's remembered INSERT plan may be reused.
#include <doctest/doctest.h>

#include "batch_plan.h"

using namespace chsidecar;

TEST_CASE("plan_key tells apart every header the routing reads") {
  const std::string target = "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow";
  std::vector<Header> none;
  std::string base = plan_key(target, none);
  CHECK(plan_key(target, {{"Content-Type", "application/json"}, {"User-Agent", "x"}}) == base);
  CHECK(plan_key(target + "&x=1", none) != base);
  for (const char* name : {"Authorization", "X-ClickHouse-User", "X-ClickHouse-Key",
                           "X-ClickHouse-Database", "X-ClickHouse-Quota", "Content-Encoding"}) {
    CAPTURE(name);
    std::string empty = plan_key(target, {{name, ""}});
    CHECK(empty != base);  // present but empty is not absent
    CHECK(plan_key(target, {{name, "a"}}) != empty);
    CHECK(plan_key(target, {{name, "a"}}) != plan_key(target, {{name, "b"}}));
  }
  // header names are case-insensitive, values are not
  CHECK(plan_key(target, {{"x-clickhouse-user", "a"}}) == plan_key(target, {{"X-ClickHouse-User", "a"}}));
  CHECK(plan_key(target, {{"X-ClickHouse-User", "a"}}) != plan_key(target, {{"X-ClickHouse-User", "A"}}));
  // one value cannot pose as another header's
  CHECK(plan_key(target, {{"X-ClickHouse-User", "a"}}) != plan_key(target, {{"X-ClickHouse-Key", "a"}}));
}
