// Unit tests for sessions.h: ordering, caps, cancel and expiry of sessions.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "sessions.h"

using namespace chsidecar;

namespace {

using Admit = SessionTable::Admit;

// Records the order session_turn() is called in; optionally acts in it.
struct Waiter final : SessionWaiter {
  Waiter(int id, std::vector<int>& turns) : id(id), turns(turns) {}
  void session_turn() override {
    turns.push_back(id);
    if (on_turn) on_turn();
  }
  int id;
  std::vector<int>& turns;
  std::function<void()> on_turn;
};

Config small_config(uint64_t max_sessions = 100, uint64_t queue_max = 100) {
  Config c;
  c.max_sessions = max_sessions;
  c.session_queue_max = queue_max;
  return c;
}

const std::string kKey = SessionTable::key("alice", "s1");

}  // namespace

TEST_CASE("key tells users and session ids apart") {
  CHECK(SessionTable::key("alice", "s1") == SessionTable::key("alice", "s1"));
  CHECK(SessionTable::key("alice", "s1") != SessionTable::key("bob", "s1"));
  CHECK(SessionTable::key("alice", "s1") != SessionTable::key("alice", "s2"));
  // No concatenation ambiguity between the parts.
  CHECK(SessionTable::key("ab", "c") != SessionTable::key("a", "bc"));
}

TEST_CASE("one request runs at a time; the rest take turns in arrival order") {
  Config config = small_config();
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns);

  CHECK_FALSE(table.is_stateful(kKey));
  CHECK(table.admit(kKey, &a, 60'000) == Admit::kRun);
  CHECK(table.is_stateful(kKey));
  CHECK(table.size() == 1);
  CHECK(table.admit(kKey, &b, 60'000) == Admit::kQueued);
  CHECK(table.admit(kKey, &c, 60'000) == Admit::kQueued);
  CHECK(table.queued() == 2);
  CHECK(turns.empty());  // nobody's turn comes from admit()

  table.finished(kKey, &a, 1000);
  CHECK(turns == std::vector<int>{2});
  CHECK(table.queued() == 1);

  // Only the holder's finished() passes the turn on.
  table.finished(kKey, &c, 1100);
  CHECK(turns == std::vector<int>{2});
  table.finished(kKey, &a, 1100);
  CHECK(turns == std::vector<int>{2});
  table.finished(SessionTable::key("bob", "s1"), &b, 1100);
  CHECK(turns == std::vector<int>{2});

  table.finished(kKey, &b, 1200);
  CHECK(turns == std::vector<int>{2, 3});
  CHECK(table.queued() == 0);
  table.finished(kKey, &c, 1300);
  CHECK(turns == std::vector<int>{2, 3});

  // The session stays stateful and idle: the next request runs at once.
  CHECK(table.is_stateful(kKey));
  CHECK(table.admit(kKey, &a, 60'000) == Admit::kRun);
  CHECK(turns == std::vector<int>{2, 3});
}

TEST_CASE("sessions are independent of each other") {
  Config config = small_config();
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns);
  const std::string other = SessionTable::key("bob", "s1");
  CHECK(table.admit(kKey, &a, 60'000) == Admit::kRun);
  CHECK(table.admit(other, &b, 60'000) == Admit::kRun);
  CHECK(table.admit(kKey, &c, 60'000) == Admit::kQueued);
  CHECK(table.size() == 2);
  table.finished(other, &b, 10);
  CHECK(turns.empty());
  table.finished(kKey, &a, 10);
  CHECK(turns == std::vector<int>{3});
}

TEST_CASE("a turn taken inside session_turn() keeps the order") {
  // A request whose turn comes may finish at once (an error answered
  // locally); the table must be consistent when session_turn() runs.
  Config config = small_config();
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns), d(4, turns);
  b.on_turn = [&] { table.finished(kKey, &b, 50); };
  c.on_turn = [&] { table.cancel(kKey, &c, 60); };
  REQUIRE(table.admit(kKey, &a, 60'000) == Admit::kRun);
  REQUIRE(table.admit(kKey, &b, 60'000) == Admit::kQueued);
  REQUIRE(table.admit(kKey, &c, 60'000) == Admit::kQueued);
  REQUIRE(table.admit(kKey, &d, 60'000) == Admit::kQueued);
  table.finished(kKey, &a, 40);
  CHECK(turns == std::vector<int>{2, 3, 4});
  CHECK(table.queued() == 0);
  // d holds the session now.
  Waiter e(5, turns);
  CHECK(table.admit(kKey, &e, 60'000) == Admit::kQueued);
  table.finished(kKey, &d, 70);
  CHECK(turns == std::vector<int>{2, 3, 4, 5});
}

TEST_CASE("a full session queue refuses and leaves nothing behind") {
  Config config = small_config(100, 2);
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns), d(4, turns);
  CHECK(table.admit(kKey, &a, 10'000) == Admit::kRun);
  CHECK(table.admit(kKey, &b, 10'000) == Admit::kQueued);
  CHECK(table.admit(kKey, &c, 10'000) == Admit::kQueued);
  CHECK(table.admit(kKey, &d, 3'600'000) == Admit::kQueueFull);
  CHECK(table.queued() == 2);
  // Other sessions have their own queue.
  Waiter e(5, turns);
  CHECK(table.admit(SessionTable::key("alice", "s2"), &e, 10'000) == Admit::kRun);

  table.finished(kKey, &a, 100);
  table.finished(kKey, &b, 200);
  table.finished(kKey, &c, 300);
  CHECK(turns == std::vector<int>{2, 3});  // d never gets a turn
  // With room again, d is admitted.
  CHECK(table.admit(kKey, &d, 10'000) == Admit::kRun);
  table.finished(kKey, &d, 400);

  CHECK(table.expire(400 + 10'000 + SessionTable::kExpiryMarginMs - 1) == 0);
  CHECK(table.expire(400 + 10'000 + SessionTable::kExpiryMarginMs) == 1);
  CHECK_FALSE(table.is_stateful(kKey));
}

TEST_CASE("a refused request does not change the session's timeout") {
  Config config = small_config(100, 1);
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns);
  REQUIRE(table.admit(kKey, &a, 10'000) == Admit::kRun);
  REQUIRE(table.admit(kKey, &b, 10'000) == Admit::kQueued);
  REQUIRE(table.admit(kKey, &c, 3'600'000) == Admit::kQueueFull);
  table.finished(kKey, &a, 100);
  table.finished(kKey, &b, 200);
  CHECK(table.expire(200 + 10'000 + SessionTable::kExpiryMarginMs) == 1);
}

TEST_CASE("a full table refuses new sessions but not existing ones") {
  Config config = small_config(2, 10);
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns), d(4, turns);
  const std::string k1 = SessionTable::key("u", "1"), k2 = SessionTable::key("u", "2"),
                    k3 = SessionTable::key("u", "3");
  CHECK(table.admit(k1, &a, 1000) == Admit::kRun);
  CHECK(table.admit(k2, &b, 1000) == Admit::kRun);
  CHECK(table.admit(k3, &c, 1000) == Admit::kTableFull);
  CHECK(table.size() == 2);
  CHECK_FALSE(table.is_stateful(k3));  // nothing left behind
  CHECK(table.admit(k1, &d, 1000) == Admit::kQueued);

  // Once a session expires there is room again.
  table.finished(k2, &b, 0);
  CHECK(table.expire(1000 + SessionTable::kExpiryMarginMs) == 1);
  CHECK(table.admit(k3, &c, 1000) == Admit::kRun);
  CHECK(table.size() == 2);
}

TEST_CASE("cancel removes the holder or a waiter") {
  Config config = small_config();
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns), d(4, turns);
  REQUIRE(table.admit(kKey, &a, 60'000) == Admit::kRun);
  REQUIRE(table.admit(kKey, &b, 60'000) == Admit::kQueued);
  REQUIRE(table.admit(kKey, &c, 60'000) == Admit::kQueued);
  REQUIRE(table.admit(kKey, &d, 60'000) == Admit::kQueued);

  // A waiter in the middle: no turn changes hands.
  table.cancel(kKey, &c, 10);
  CHECK(turns.empty());
  CHECK(table.queued() == 2);
  // Cancelling again, or a stranger, or in an unknown session, is harmless.
  table.cancel(kKey, &c, 10);
  table.cancel(SessionTable::key("x", "y"), &a, 10);
  CHECK(table.queued() == 2);
  CHECK(turns.empty());

  // The holder: the next waiter gets its turn.
  table.cancel(kKey, &a, 20);
  CHECK(turns == std::vector<int>{2});
  CHECK(table.queued() == 1);
  table.finished(kKey, &b, 30);
  CHECK(turns == std::vector<int>{2, 4});  // c was cancelled
  CHECK(table.queued() == 0);

  // Cancelling the last holder leaves the session idle and stateful.
  table.cancel(kKey, &d, 40);
  CHECK(table.is_stateful(kKey));
  CHECK(table.admit(kKey, &a, 60'000) == Admit::kRun);
}

TEST_CASE("expire drops only idle sessions past timeout plus margin") {
  Config config = small_config();
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns), d(4, turns);
  const std::string idle = SessionTable::key("u", "idle"), busy = SessionTable::key("u", "busy"),
                    waiting = SessionTable::key("u", "waiting"),
                    longer = SessionTable::key("u", "longer");
  const uint64_t margin = SessionTable::kExpiryMarginMs;

  REQUIRE(table.admit(idle, &a, 10'000) == Admit::kRun);
  table.finished(idle, &a, 1'000);
  REQUIRE(table.admit(busy, &b, 10'000) == Admit::kRun);  // runs for ever
  REQUIRE(table.admit(longer, &c, 60'000) == Admit::kRun);
  table.finished(longer, &c, 1'000);
  REQUIRE(table.admit(waiting, &d, 10'000) == Admit::kRun);
  Waiter e(5, turns);
  REQUIRE(table.admit(waiting, &e, 10'000) == Admit::kQueued);
  REQUIRE(table.size() == 4);

  // Not yet: the margin has not passed.
  CHECK(table.expire(1'000 + 10'000) == 0);
  CHECK(table.expire(1'000 + 10'000 + margin - 1) == 0);
  CHECK(table.size() == 4);
  CHECK(table.expire(1'000 + 10'000 + margin) == 1);
  CHECK_FALSE(table.is_stateful(idle));
  CHECK(table.is_stateful(busy));
  CHECK(table.is_stateful(waiting));
  CHECK(table.is_stateful(longer));

  // Far in the future only idle sessions go; the busy ones stay.
  CHECK(table.expire(1'000 + 60'000 + margin) == 1);
  CHECK_FALSE(table.is_stateful(longer));
  CHECK(table.expire(1'000'000'000) == 0);
  CHECK(table.size() == 2);
  CHECK(table.queued() == 1);

  // The idle clock starts when the last request finished.
  table.finished(waiting, &d, 2'000'000'000);
  CHECK(turns == std::vector<int>{5});
  table.finished(waiting, &e, 2'000'000'100);
  CHECK(table.expire(2'000'000'100 + 10'000 + margin - 1) == 0);
  CHECK(table.expire(2'000'000'100 + 10'000 + margin) == 1);
  CHECK(table.size() == 1);

  // A later admit with a new timeout applies to the idle session.
  table.finished(busy, &b, 3'000'000'000);
  REQUIRE(table.admit(busy, &b, 1'000) == Admit::kRun);
  table.finished(busy, &b, 3'000'000'000);
  CHECK(table.expire(3'000'000'000 + 1'000 + margin) == 1);
  CHECK(table.size() == 0);
}

TEST_CASE("a session ClickHouse refused is forgotten unless it ran before") {
  Config config = small_config();
  SessionTable table(config);
  std::vector<int> turns;
  Waiter a(1, turns), b(2, turns), c(3, turns);

  // Its first request got 374 (bad session_timeout): nothing on the server.
  REQUIRE(table.admit(kKey, &a, 60'000) == Admit::kRun);
  table.finished(kKey, &a, 0, /*refused=*/true);
  CHECK_FALSE(table.is_stateful(kKey));
  CHECK(table.size() == 0);

  // A session that ran keeps its state when a later request is refused.
  REQUIRE(table.admit(kKey, &a, 60'000) == Admit::kRun);
  table.finished(kKey, &a, 0);
  REQUIRE(table.admit(kKey, &b, 60'000) == Admit::kRun);
  table.finished(kKey, &b, 0, /*refused=*/true);
  CHECK(table.is_stateful(kKey));

  // A refused first request with others waiting hands over its turn.
  const std::string other = SessionTable::key("bob", "s2");
  REQUIRE(table.admit(other, &a, 60'000) == Admit::kRun);
  REQUIRE(table.admit(other, &c, 60'000) == Admit::kQueued);
  table.finished(other, &a, 0, /*refused=*/true);
  CHECK(table.is_stateful(other));
  CHECK(turns == std::vector<int>{3});
}
