// Unit tests for batcher.h, driven through a fake upstream (FakeUpstream, an
// UpstreamSink) on a real uv loop: the tests see every request the batcher
// sends and answer it as ClickHouse would. No spool, no memory budget.
#include <doctest/doctest.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "batcher.h"
#include "config.h"
#include "upstream_sink.h"

using namespace chsidecar;

namespace {

// Takes requests and keeps them until the test answers them.
class FakeUpstream final : public UpstreamSink {
 public:
  struct Sent {
    UpstreamClient* client;
    UpstreamRequest request;
    std::string body;  // read from the client at submit()
  };

  UpstreamPool::Submit submit(UpstreamClient* client, UpstreamRequest request) override {
    Sent sent{client, std::move(request), {}};
    if (sent.request.has_body) {
      char buf[4096];
      for (size_t n; (n = client->upstream_read_body(buf, sizeof buf)) != 0;) sent.body.append(buf, n);
    }
    (sent.request.method == "GET" ? checks : inserts).push_back(std::move(sent));
    return UpstreamPool::Submit::kQueued;
  }
  void cancel(UpstreamClient* client) override {
    std::erase_if(inserts, [client](const Sent& s) { return s.client == client; });
    std::erase_if(checks, [client](const Sent& s) { return s.client == client; });
    ++cancelled;
  }
  std::string display_name() override { return "fake:8123"; }

  // Answers the oldest INSERT not answered yet, as ClickHouse would.
  void answer_insert(int status, int code = 0) { answer(take(inserts), status, code); }
  // Ends the oldest INSERT without an answer, after its whole body went out.
  void drop_insert() {
    Sent s = take(inserts);
    answered.push_back(s);
    UpstreamOutcome outcome;
    outcome.code = CURLE_RECV_ERROR;
    outcome.error = "connection lost";
    outcome.connected = true;
    s.client->upstream_done(outcome);
  }
  // Answers every table check: no views, deduplicating as told.
  void answer_checks(bool has_views = false, bool deduplicates = false) {
    while (!checks.empty())
      answer(take(checks), 200, 0, std::string(has_views ? "1" : "0") + "\t" + (deduplicates ? "1" : "0") + "\n");
  }

  std::vector<Sent> inserts;  // sent, not answered yet, oldest first
  std::vector<Sent> checks;
  std::vector<Sent> answered;  // every INSERT answered, in order
  int cancelled = 0;

 private:
  Sent take(std::vector<Sent>& from) {
    REQUIRE_FALSE(from.empty());
    Sent s = std::move(from.front());
    from.erase(from.begin());
    return s;
  }
  void answer(Sent s, int status, int code, std::string body = {}) {
    if (status != 200 && body.empty())
      body = "Code: " + std::to_string(code) + ". DB::Exception: injected by the test";
    if (s.request.method != "GET") answered.push_back(s);
    s.client->upstream_response_head(status, status == 200 ? "OK" : "Error", {});
    if (!body.empty()) s.client->upstream_response_data(body.data(), body.size());
    UpstreamOutcome outcome;
    outcome.response_started = true;
    outcome.connected = true;
    outcome.exception_code = status == 200 ? 0 : code;
    s.client->upstream_done(outcome);
  }
};

// A request waiting for its rows' batch.
struct Waiter final : BatchWaiter {
  std::shared_ptr<BatchTicket> ticket = std::make_shared<BatchTicket>();
  std::vector<int> statuses;  // every answer it got
  std::string body;           // the last one's
  Waiter() { ticket->waiter = this; }
  void batch_done(const BatchResult& result) override {
    statuses.push_back(result.status);
    body = result.body;
  }
};

BatchTarget target_of(std::string table) {
  BatchTarget t;
  t.key = "key:" + table;
  t.table = table;
  t.upstream_target = "/?query=INSERT%20INTO%20" + table + "%20FORMAT%20JSONEachRow";
  t.format = RowFormat::kJSONEachRow;
  return t;
}

class BatcherRig {
 public:
  BatcherRig() {
    config.flush_delay_min_ms = 1;
    config.flush_delay_max_ms = 1;
    config.max_parts_per_second = 1000;
    config.retry_backoff_min_ms = 1;
    config.retry_backoff_max_ms = 1;
    uv_loop_init(&loop);
  }
  ~BatcherRig() {
    if (batcher != nullptr) batcher->close();
    uv_run(&loop, UV_RUN_DEFAULT);  // the close callbacks
    batcher.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }
  Batcher& start() {
    batcher = std::make_unique<Batcher>(&loop, config, upstream);
    return *batcher;
  }

  // One request of one row.
  Batcher::Add add(const BatchTarget& target, std::string_view row, Waiter& waiter) {
    RowChunk chunk;
    chunk.rows = row;
    chunk.row_count = 1;
    return batcher->add(target, chunk, waiter.ticket);
  }
  // Runs the loop until its timers are quiet (flush delays, retry backoffs).
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }

  Config config;
  uv_loop_t loop;
  FakeUpstream upstream;
  std::unique_ptr<Batcher> batcher;
};

}  // namespace

TEST_CASE("rows of two keys are batched and flushed apart, after the flush delay") {
  BatcherRig rig;
  rig.start();
  BatchTarget a = target_of("a"), b = target_of("b");
  Waiter w1, w2, w3;
  REQUIRE(rig.add(a, R"({"x":1})", w1) == Batcher::Add::kAccepted);
  REQUIRE(rig.add(b, R"({"x":2})", w2) == Batcher::Add::kAccepted);
  REQUIRE(rig.add(a, R"({"x":3})", w3) == Batcher::Add::kAccepted);
  CHECK(rig.upstream.inserts.empty());  // nothing before the delay
  rig.run();
  REQUIRE(rig.upstream.inserts.size() == 2);
  for (const FakeUpstream::Sent& s : rig.upstream.inserts) {
    if (s.request.target.starts_with(a.upstream_target)) CHECK(s.body == "{\"x\":1}\n{\"x\":3}");
    else CHECK(s.body == "{\"x\":2}");
    CHECK(s.request.method == "POST");
  }
  rig.upstream.answer_insert(200);
  rig.upstream.answer_insert(200);
  for (Waiter* w : {&w1, &w2, &w3}) CHECK(w->statuses == std::vector<int>{200});
  CHECK(rig.batcher->idle());
}

TEST_CASE("a batch is flushed at once at --flush-rows, and at --flush-bytes") {
  BatcherRig rig;
  rig.config.flush_delay_min_ms = rig.config.flush_delay_max_ms = 60'000;
  rig.config.flush_rows = 3;
  rig.config.flush_bytes = 20;
  rig.start();
  BatchTarget t = target_of("t");
  Waiter w[5];
  rig.add(t, "{}", w[0]);
  rig.add(t, "{}", w[1]);
  CHECK(rig.upstream.inserts.empty());
  rig.add(t, "{}", w[2]);  // the third row: --flush-rows
  REQUIRE(rig.upstream.inserts.size() == 1);
  CHECK(rig.upstream.inserts[0].body == "{}\n{}\n{}");
  rig.add(t, R"({"s":"012345678901"})", w[3]);  // 20 bytes: --flush-bytes
  REQUIRE(rig.upstream.inserts.size() == 2);
  CHECK(rig.upstream.inserts[1].body == R"({"s":"012345678901"})");
  rig.add(t, "{}", w[4]);  // waits for the (long) delay
  CHECK(rig.upstream.inserts.size() == 2);
  rig.upstream.answer_insert(200);
  rig.upstream.answer_insert(200);
  for (int i = 0; i < 4; ++i) CHECK(w[i].statuses == std::vector<int>{200});
  CHECK(w[4].statuses.empty());
  rig.batcher->flush_all();  // shutdown: the forming batch goes now
  REQUIRE(rig.upstream.inserts.size() == 1);
  rig.upstream.answer_insert(200);
  CHECK(w[4].statuses == std::vector<int>{200});
}

TEST_CASE("a batch with bad data is bisected down to the bad request; the others commit once") {
  BatcherRig rig;
  rig.start();
  BatchTarget t = target_of("t");
  Waiter w[4];
  for (int i = 0; i < 4; ++i) rig.add(t, "{\"i\":" + std::to_string(i) + "}", w[i]);
  rig.run();
  // ClickHouse takes a batch whole or not at all; row 2 is bad.
  auto answer_all = [&] {
    while (!rig.upstream.inserts.empty()) {
      bool bad = rig.upstream.inserts.front().body.find("{\"i\":2}") != std::string::npos;
      rig.upstream.answer_insert(bad ? 500 : 200, bad ? 27 : 0);
      rig.upstream.answer_checks();  // asked after each error answer: no views
    }
  };
  answer_all();
  // [0 1 2 3] fails, [0 1] commits, [2 3] fails, [2] fails, [3] commits.
  std::vector<std::string> sent;
  for (const FakeUpstream::Sent& s : rig.upstream.answered) sent.push_back(s.body);
  CHECK(sent == std::vector<std::string>{"{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n{\"i\":3}",
                                         "{\"i\":0}\n{\"i\":1}", "{\"i\":2}\n{\"i\":3}",
                                         "{\"i\":2}", "{\"i\":3}"});
  CHECK(w[0].statuses == std::vector<int>{200});
  CHECK(w[1].statuses == std::vector<int>{200});
  CHECK(w[2].statuses == std::vector<int>{500});
  CHECK(w[3].statuses == std::vector<int>{200});
  CHECK(rig.batcher->idle());
}

TEST_CASE("a transient error is retried with the same bytes and the same dedup token") {
  BatcherRig rig;
  Batcher& batcher = rig.start();
  batcher.set_dedup_token(true);
  BatchTarget t = target_of("t");
  Waiter w[2];
  rig.add(t, R"({"a":1})", w[0]);
  rig.add(t, R"({"a":2})", w[1]);
  rig.upstream.answer_checks(false, true);  // the key's dedup check: a deduplicating table
  rig.run();
  REQUIRE(rig.upstream.inserts.size() == 1);
  const std::string first_target = rig.upstream.inserts[0].request.target;
  const std::string first_body = rig.upstream.inserts[0].body;
  CHECK(first_target.find("&insert_deduplication_token=chsidecar-") != std::string::npos);
  rig.upstream.answer_insert(500, 252);  // too many parts
  rig.upstream.answer_checks(false, true);
  for (Waiter& x : w) CHECK(x.statuses.empty());
  rig.run();  // the backoff
  REQUIRE(rig.upstream.inserts.size() == 1);
  CHECK(rig.upstream.inserts[0].request.target == first_target);
  CHECK(rig.upstream.inserts[0].body == first_body);
  rig.upstream.answer_insert(200);
  for (Waiter& x : w) CHECK(x.statuses == std::vector<int>{200});
  CHECK(batcher.idle());
}

TEST_CASE("a batch that fails as a whole answers every request the error once, and is not resent") {
  struct Case {
    const char* what;
    int status;
    int code;
    bool table_checked;  // asked after the error (table_check.h)
  };
  const Case cases[] = {
      {"a refusal of the whole key (no such table)", 404, 60, false},
      {"bad data in a table with dependent views", 500, 27, true},
      {"too many parts in a table with views, without a dedup token", 500, 252, true},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.what));
    BatcherRig rig;
    rig.start();
    BatchTarget t = target_of("t");
    Waiter w[3];
    for (Waiter& x : w) rig.add(t, "{}", x);
    rig.run();
    rig.upstream.answer_insert(c.status, c.code);
    CHECK(rig.upstream.checks.size() == (c.table_checked ? 1u : 0u));
    rig.upstream.answer_checks(true, false);  // has views
    rig.run();
    CHECK(rig.upstream.inserts.empty());
    CHECK(rig.upstream.answered.size() == 1);
    for (Waiter& x : w) CHECK(x.statuses == std::vector<int>{c.status});
  }
}

TEST_CASE("a request that went away is not answered; its rows still commit") {
  BatcherRig rig;
  rig.start();
  BatchTarget t = target_of("t");
  Waiter kept, gone;
  rig.add(t, "{}", kept);
  rig.add(t, "{}", gone);
  gone.ticket->waiter = nullptr;
  rig.run();
  REQUIRE(rig.upstream.inserts.size() == 1);
  CHECK(rig.upstream.inserts[0].body == "{}\n{}");
  rig.upstream.answer_insert(200);
  CHECK(kept.statuses == std::vector<int>{200});
  CHECK(gone.statuses.empty());
}

TEST_CASE("close() cancels the batches in flight with the upstream") {
  BatcherRig rig;
  rig.start();
  Waiter w;
  rig.add(target_of("t"), "{}", w);
  rig.run();
  REQUIRE(rig.upstream.inserts.size() == 1);
  rig.batcher->close();
  CHECK(rig.upstream.inserts.empty());
  CHECK(rig.upstream.cancelled == 1);
  CHECK(w.statuses.empty());
}

TEST_CASE("clients past their deadline at a retry: told 159 and their rows leave, or 319 once sent") {
  struct Case {
    const char* what;
    bool answered;        // the failed try had an answer (252) or none at all
    const char* code;     // what the clients are told
    bool resent;          // the rows go again
  };
  const Case cases[] = {
      {"an answer: nothing was inserted", true, "Code: 159.", false},
      {"no answer after the whole batch went out: maybe inserted", false, "Code: 319.", true},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.what));
    BatcherRig rig;
    rig.config.upstream_timeout_ms = 0;  // every client's deadline is now
    rig.start();
    BatchTarget t = target_of("t");
    Waiter w[2];
    for (Waiter& x : w) rig.add(t, "{}", x);
    rig.run();
    if (c.answered) {
      rig.upstream.answer_insert(500, 252);
      rig.upstream.answer_checks();
    } else {
      rig.upstream.drop_insert();
    }
    rig.run();  // the backoff, then the retry
    for (Waiter& x : w) {
      CHECK(x.statuses == std::vector<int>{503});
      CHECK(x.body.starts_with(c.code));
    }
    REQUIRE(rig.upstream.inserts.size() == (c.resent ? 1u : 0u));
    if (!c.resent) continue;
    CHECK(rig.upstream.inserts[0].body == rig.upstream.answered[0].body);  // the same bytes
    rig.upstream.answer_insert(200);
    for (Waiter& x : w) CHECK(x.statuses.size() == 1);  // answered once
    CHECK(rig.batcher->idle());
  }
}
