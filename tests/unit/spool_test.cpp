// Unit tests for spool.h: when the next group is written (group commit),
// and when a segment may end. A real spool in a temporary directory, on a
// private loop.
#include <doctest/doctest.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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
  explicit SpoolRig(uint64_t group_wait_ms, uint64_t segment_bytes = 8 << 20) {
    char tmpl[] = "/tmp/chsidecar-spool-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    config_.spool_dir = (std::filesystem::path(dir_) / "spool").string();
    config_.spool_group_wait_ms = group_wait_ms;
    config_.spool_segment_bytes = segment_bytes;
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

  std::shared_ptr<Durable> append(const std::string& rows = "{\"a\":1}\n") {
    auto waiter = std::make_shared<Durable>();
    uint64_t id = 0;
    CHECK(spool_->append(SpoolRows{target_, rows, 1, false}, id, waiter) ==
          Spool::Append::kQueued);
    return waiter;
  }

  // What a start-up on a copy of the spool directory, taken now, would
  // replay: the files as a kill -9 at this moment would leave them.
  SpoolReplay replay_of_copy() {
    Config copy = config_;
    copy.spool_dir = dir_ + "/copy";
    std::filesystem::copy(config_.spool_dir, copy.spool_dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    SpoolReplay replay;
    {
      Spool spool(&loop, copy);
      std::string error;
      REQUIRE_MESSAGE(spool.open(error, replay), error);
      spool.close();
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    std::filesystem::remove_all(copy.spool_dir);
    return replay;
  }

  bool has_file(const std::string& name) const {
    return std::filesystem::exists(std::filesystem::path(config_.spool_dir) / name);
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

  // One request written alone, then three queued behind it and written
  // together: the spool is left with nothing queued after a group of three.
  void end_with_three_durable() {
    auto a = append();
    std::vector<std::shared_ptr<Durable>> queued = {append(), append(), append()};
    REQUIRE(run_until([&] {
      return a->done && std::all_of(queued.begin(), queued.end(), [](auto& w) { return w->done; });
    }));
    REQUIRE(spool_->fsyncs() == 2);
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

TEST_CASE("the next group waits for half as many requests as the spool held") {
  SpoolRig rig(60'000);
  rig.end_with_three_durable();
  // Three requests were in the spool when the last group was durable: the
  // next group waits for two (a 60 s wait would fail the test below).
  auto c = rig.append();
  CHECK_FALSE(rig.run_until([&] { return c->done; }, 200));
  CHECK(rig.spool().fsyncs() == 2);
  auto d = rig.append();
  CHECK(rig.run_until([&] { return c->done && d->done; }));
  CHECK(rig.spool().fsyncs() == 3);  // c and d in one group
}

TEST_CASE("requests queued behind a group are written at once when they are half of the spool") {
  SpoolRig rig(60'000);
  auto a = rig.append();  // written at once
  auto b = rig.append();  // queued behind it: one of the two in the spool
  CHECK(rig.run_until([&] { return a->done && b->done; }));
  CHECK(rig.spool().fsyncs() == 2);
}

TEST_CASE("a group that does not fill is written when the group wait is over") {
  SpoolRig rig(100);
  rig.end_with_three_durable();
  uint64_t durable = uv_hrtime();
  auto c = rig.append();
  REQUIRE(rig.run_until([&] { return c->done; }));
  double waited_ms = double(uv_hrtime() - durable) / 1e6;
  CHECK(waited_ms >= 90);  // libuv's timers count whole milliseconds
  CHECK(rig.spool().fsyncs() == 3);
}

TEST_CASE("a batch record is written at once, with the requests waiting for the group") {
  SpoolRig rig(60'000);
  rig.end_with_three_durable();
  auto c = rig.append();
  auto batch = std::make_shared<Durable>();
  CHECK(rig.spool().record_batch(SpoolBatch{"/?query=INSERT", {1, 2}}, batch));
  CHECK(rig.run_until([&] { return c->done && batch->done; }));
  CHECK(rig.spool().fsyncs() == 3);
}

TEST_CASE("--spool-group-wait 0 writes the next group at once") {
  SpoolRig rig(0);
  auto a = rig.append();
  auto b = rig.append();
  CHECK(rig.run_until([&] { return a->done && b->done; }));
  CHECK(rig.spool().fsyncs() == 2);
}

TEST_CASE("a segment ends only once the commit record of its rows is durable") {
  // Rows of 2,500 bytes in segments of 4 KiB: ids 1 and 2 fill the first
  // segment, 3 and 4 go to the second. One batch holds 1, 2 and 3.
  SpoolRig rig(0, 4096);
  std::string row(2500, 'x');
  for (int i = 0; i < 2; ++i) {
    auto a = rig.append(row);
    REQUIRE(rig.run_until([&] { return a->done; }));
  }
  REQUIRE(rig.run_until([&] {
    return rig.spool().segments_created() + rig.spool().segments_reused() == 2;
  }));
  auto third = rig.append(row);
  auto fourth = rig.append("{}\n");
  auto batch = std::make_shared<Durable>();
  REQUIRE(rig.spool().record_batch(SpoolBatch{"/?query=INSERT", {1, 2, 3}}, batch));
  REQUIRE(rig.run_until([&] { return third->done && fourth->done && batch->done; }));
  REQUIRE(rig.has_file("segment-00000000000000000001.log"));
  // The batch commits while a group is on its way to the disk, so its commit
  // record waits; a kill now must find the batch whole, not its third row
  // alone (sent again as new rows, that row would be inserted twice).
  auto fifth = rig.append("{}\n");
  rig.spool().committed({1, 2, 3});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // what the thread pool does meanwhile
  SpoolReplay replay = rig.replay_of_copy();
  REQUIRE(replay.batches.size() == 1);
  CHECK(replay.batches[0].records.size() == 3);
  REQUIRE(!replay.unsent.empty());  // and 5, once its write is done
  CHECK(replay.unsent[0].id == 4);
  // Once the commit record is durable, the first segment ends (kept as the
  // spare) and its room returns.
  REQUIRE(rig.run_until([&] { return fifth->done && rig.spool().idle(); }));
  CHECK(rig.run_until([&] { return !rig.has_file("segment-00000000000000000001.log"); }));
  SpoolReplay after = rig.replay_of_copy();
  CHECK(after.batches.empty());
  CHECK(after.unsent.size() == 2);
}
