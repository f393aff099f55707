// Unit tests for memory_budget.h: admission, waiting in order, expiry, and
// the bytes counted beyond the limit.
#include <doctest/doctest.h>

#include <vector>

#include "memory_budget.h"

using namespace chsidecar;

namespace {

struct Waiter final : MemoryWaiter {
  void memory_granted() override { ++granted; }
  void memory_refused() override { ++refused; }
  int granted = 0;
  int refused = 0;
};

}  // namespace

TEST_CASE("admit takes a share while it fits, then refuses") {
  MemoryBudget b(100);
  CHECK(b.admit(60));
  CHECK(b.used() == 60);
  CHECK_FALSE(b.admit(41));
  CHECK(b.admit(40));
  CHECK(b.available() == 0);
  // A request needing nothing is refused too once the budget is used up.
  CHECK_FALSE(b.admit(0));
  b.give(1);
  CHECK(b.admit(0));
  CHECK(b.peak() == 100);
}

TEST_CASE("take counts bytes beyond the limit; admit refuses until they are gone") {
  MemoryBudget b(100);
  b.take(150);
  CHECK(b.over());
  CHECK(b.available() == 0);
  CHECK_FALSE(b.admit(0));
  CHECK_FALSE(b.try_take(1));
  b.give(150);
  CHECK(b.used() == 0);
  CHECK(b.admit(100));
}

TEST_CASE("waiters are granted in order; new requests do not overtake them") {
  MemoryBudget b(100);
  CHECK(b.admit(90));
  Waiter big, small;
  b.wait(&big, 50, 1000);
  b.wait(&small, 5, 1000);
  // 10 bytes are free, but the front waiter needs 50: nobody goes ahead.
  CHECK(b.grant().empty());
  CHECK_FALSE(b.admit(5));
  // Running work may still take what fits.
  CHECK(b.try_take(5));
  b.give(5);
  b.give(45);
  std::vector<MemoryWaiter*> granted = b.grant();
  REQUIRE(granted.size() == 2);
  CHECK(granted[0] == &big);
  CHECK(granted[1] == &small);
  CHECK(b.used() == 100);
  CHECK_FALSE(b.has_waiters());
}

TEST_CASE("expire returns the waiters past their deadline; cancel removes one") {
  MemoryBudget b(10);
  CHECK(b.admit(10));
  Waiter a, c, d;
  b.wait(&a, 1, 100);
  b.wait(&c, 1, 200);
  b.wait(&d, 1, 300);
  b.cancel(&c);
  b.cancel(&c);  // idempotent
  std::vector<MemoryWaiter*> expired = b.expire(150);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0] == &a);
  CHECK(b.waiting() == 1);
  CHECK(b.used() == 10);  // nothing was taken for them
  b.give(10);
  std::vector<MemoryWaiter*> granted = b.grant();
  REQUIRE(granted.size() == 1);
  CHECK(granted[0] == &d);
  CHECK(b.used() == 1);
}

TEST_CASE("a charge gives back what it holds once: on release or when it goes away") {
  MemoryBudget b(100);
  {
    MemoryCharge charge(b);
    charge.take(30);  // counted here
    CHECK(b.try_take(20));
    charge.adopt(20);  // taken by the caller
    CHECK(b.used() == 50);
    CHECK(charge.bytes() == 50);
    charge.release();
    charge.release();  // nothing left to give
    CHECK(b.used() == 0);
    charge.take(10);
  }
  CHECK(b.used() == 0);
}
