// Unit tests for batch_plan.h: which request parts decide whether a
// connection's remembered INSERT plan may be reused.
#include <doctest/doctest.h>

#include "batch_plan.h"

using namespace chsidecar;

namespace {

using Headers = std::vector<Header>;

// Whether a plan made for (t1, h1) is reused for (t2, h2). The connection
// asks plan_key_matches; it must agree with comparing built keys.
bool reused(const std::string& t1, const Headers& h1, const std::string& t2, const Headers& h2) {
  bool matches = plan_key_matches(plan_key(t1, h1), t2, h2);
  CHECK(matches == (plan_key(t1, h1) == plan_key(t2, h2)));
  return matches;
}

}  // namespace

TEST_CASE("a plan is reused only for the same target and routing headers") {
  const std::string target = "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow";
  Headers none;
  CHECK(reused(target, none, target, none));
  CHECK(reused(target, none, target, {{"User-Agent", "x"}}));
  CHECK_FALSE(reused(target, none, target + "&x=1", none));
  CHECK_FALSE(reused(target + "&x=1", none, target, none));
  CHECK_FALSE(reused(target, none, "", none));
  for (const char* name : {"Authorization", "X-ClickHouse-User", "X-ClickHouse-Key",
                           "X-ClickHouse-Database", "X-ClickHouse-Quota", "Content-Encoding",
                           "Content-Type"}) {
    CAPTURE(name);
    CHECK(reused(target, {{name, "a"}}, target, {{name, "a"}}));
    CHECK_FALSE(reused(target, none, target, {{name, ""}}));  // present but empty is not absent
    CHECK_FALSE(reused(target, {{name, ""}}, target, none));
    CHECK_FALSE(reused(target, {{name, ""}}, target, {{name, "a"}}));
    CHECK_FALSE(reused(target, {{name, "a"}}, target, {{name, "b"}}));
    CHECK_FALSE(reused(target, {{name, "a"}}, target, {{name, "a"}, {name, "b"}}));  // ClickHouse reads the first
    CHECK_FALSE(reused(target, {{name, "a"}}, target, {{name, "ab"}}));
    CHECK_FALSE(reused(target, {{name, "ab"}}, target, {{name, "a"}}));
  }
  // header names are case-insensitive, values are not
  CHECK(reused(target, {{"x-clickhouse-user", "a"}}, target, {{"X-ClickHouse-User", "a"}}));
  CHECK_FALSE(reused(target, {{"X-ClickHouse-User", "a"}}, target, {{"X-ClickHouse-User", "A"}}));
  // one value cannot pose as another header's
  CHECK_FALSE(reused(target, {{"X-ClickHouse-User", "a"}}, target, {{"X-ClickHouse-Key", "a"}}));
}

TEST_CASE("a connection's memo answers only for the same request and server facts") {
  const std::string target = "/?wait_for_async_insert=0";
  Headers lz4 = {{"Content-Encoding", "lz4"}};
  PlanMemo memo;
  CHECK(memo.find(target, lz4, 1) == nullptr);
  auto plan = std::make_shared<BatchPlan>();
  memo.remember(target, lz4, 1, {plan, "INSERT INTO t FORMAT Native\n", ""});
  const PlanMemo::Entry* entry = memo.find(target, lz4, 1);
  REQUIRE(entry != nullptr);
  CHECK(entry->plan == plan);
  CHECK(entry->sql_prefix == "INSERT INTO t FORMAT Native\n");
  CHECK(memo.find(target, lz4, 3) == nullptr);  // the server turned out to know more
  CHECK(memo.find(target, {{"Content-Encoding", "zstd"}}, 1) == nullptr);
  CHECK(memo.find(target + "&x=1", lz4, 1) == nullptr);
}
