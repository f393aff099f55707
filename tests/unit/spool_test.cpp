// Unit tests for spool.h's group commit: when the next group is written.
// A real spool in a temporary directory, on a private loop.
#include <doctest/doctest.h>
#include <uv.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "batcher.h"
#include "config.h"
#include "spool.h"

using namespace chsidecar;

namespace {

struct Durable : SpoolWaiter {
  bool done = false;
  void spool_durable(bool ok) override {
    CHECK(ok);
    done = true;
  }
};

class SpoolRig {
 public:
  explicit SpoolRig(uint64_t group_wait_ms) {
    char tmpl[] = "/tmp/chsidecar-spool-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    config_.spool_dir = (std::filesystem::path(dir_) / "spool").string();
    config_.spool_group_wait_ms = group_wait_ms;
    uv_loop_init(&loop_);
    spool_ = std::make_unique<Spool>(&loop_, config_);
    std::string error;
    SpoolReplay replay;
    REQUIRE_MESSAGE(spool_->open(error, replay), error);
  }
  ~SpoolRig() {
    spool_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);  // the close callbacks
    spool_.reset();
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<Durable> append() {
    auto waiter = std::make_shared<Durable>();
    uint64_t id = 0;
    CHECK(spool_->append(SpoolRows{target_, "{\"a\":1}\n", 1, false}, id, waiter) ==
          Spool::Append::kQueued);
    return waiter;
  }

  // Runs the loop until `done`; false if that takes `limit_ms` or more.
  bool run_until(const std::function<bool()>& done, uint64_t limit_ms = 5'000) {
    uint64_t deadline = uv_hrtime() + limit_ms * 1'000'000;
    uv_timer_t watchdog;  // keeps uv_run from blocking past the deadline
    uv_timer_init(&loop_, &watchdog);
    uv_timer_start(&watchdog, [](uv_timer_t*) {}, 10, 10);
    while (!done() && uv_hrtime() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return done();
  }

  Spool& spool() { return *spool_; }

 private:
  std::string dir_;
  Config config_;
  uv_loop_t loop_;
  std::unique_ptr<Spool> spool_;
  BatchTarget target_{.key = "k",
                      .table = "t",
                      .upstream_target = "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow",
                      .headers = {},
                      .format = RowFormat::kJSONEachRow,
                      .header_lines = "",
                      .structure_key = ""};
};

}  // namespace

TEST_CASE("a lone writer's requests are written at once, whatever the group wait") {
  SpoolRig rig(60'000);
  for (int i = 0; i < 3; ++i) {
    auto a = rig.append();
    CHECK(rig.run_until([&] { return a->done; }));
  }
  CHECK(rig.spool().fsyncs() == 3);
}

TEST_CASE("the next group waits for as many requests as the spool held") {
  SpoolRig rig(60'000);
  auto a = rig.append();  // written at once
  auto b = rig.append();  // queued behind it
  REQUIRE(rig.run_until([&] { return a->done; }));
  // Two requests were in the spool when a's group was durable: b's group
  // waits for a second one (a 60 s wait would fail the test below).
  CHECK_FALSE(rig.run_until([&] { return b->done; }, 200));
  CHECK(rig.spool().fsyncs() == 1);
  auto c = rig.append();
  CHECK(rig.run_until([&] { return b->done && c->done; }));
  CHECK(rig.spool().fsyncs() == 2);  // b and c in one group
}

TEST_CASE("a group that does not fill is written when the group wait is over") {
  SpoolRig rig(100);
  auto a = rig.append();
  auto b = rig.append();
  REQUIRE(rig.run_until([&] { return a->done; }));
  uint64_t durable_a = uv_hrtime();
  REQUIRE(rig.run_until([&] { return b->done; }));
  double waited_ms = double(uv_hrtime() - durable_a) / 1e6;
  CHECK(waited_ms >= 90);  // libuv's timers count whole milliseconds
  CHECK(rig.spool().fsyncs() == 2);
}

TEST_CASE("a batch record is written at once, with the requests waiting for the group") {
  SpoolRig rig(60'000);
  auto a = rig.append();
  auto b = rig.append();
  REQUIRE(rig.run_until([&] { return a->done; }));
  auto batch = std::make_shared<Durable>();
  CHECK(rig.spool().record_batch(SpoolBatch{"/?query=INSERT", {1, 2}}, batch));
  CHECK(rig.run_until([&] { return b->done && batch->done; }));
  CHECK(rig.spool().fsyncs() == 2);
}

TEST_CASE("--spool-group-wait 0 writes the next group at once") {
  SpoolRig rig(0);
  auto a = rig.append();
  auto b = rig.append();
  CHECK(rig.run_until([&] { return a->done && b->done; }));
  CHECK(rig.spool().fsyncs() == 2);
}
