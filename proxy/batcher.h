// Folding small INSERTs into few large ones.
//
// Each merge key (credentials, database, table, columns, format, header
// line, settings) has one buffer, a KeyBuffer. Validated rows of a request
// are appended to the buffer of their key; the buffer is flushed as one
// upstream INSERT when it reaches flush_rows or flush_bytes, or when its
// oldest row has waited the flush delay. The delay adapts: a quiet table
// is flushed after flush_delay_min; a busy one waits up to flush_delay_max
// so that it gets about max_parts_per_second new parts. At most
// max_inflight_flushes flushes of one key run at once; meanwhile full
// batches queue as they are.
// No batch is larger than flush_rows (or the INSERT's own smaller
// max_insert_block_size) and flush_bytes, except one request that is larger
// alone: so ClickHouse reads a batch as one block and commits all or none.
//
// Every request is answered only with ClickHouse's answer for its rows: 200
// once the batch holding them was committed, or the error. When ClickHouse
// rejects a batch for bad data, the batch is split along request
// boundaries and the halves are sent again (bisection), so only the
// requests whose rows are bad get the error and the others are committed
// once. Errors that concern the whole key (unknown table, auth) fail every
// request of the batch without bisection. A table with dependent views may
// have committed a batch that failed (table_check.h): it is never bisected
// and retried only where the retry is deduplicated; its clients get the
// error and its spooled rows go to the dead letters.
//
// Memory: buffered and in-flight batch bytes are bounded by
// buffer_max_bytes, and count against the memory budget (set_memory());
// beyond either add() refuses rows a client waits for (rows acknowledged
// from the spool are always taken, and counted). Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "batch_target.h"
#include "body_encoder.h"
#include "config.h"
#include "flush_verdict.h"
#include "memory_budget.h"
#include "request.h"
#include "rows.h"
#include "upstream_pool.h"
#include "upstream_sink.h"

namespace chsidecar {

class Batcher {
 public:
  // kOverCapacity: --buffer-max-bytes; kOverMemory: --max-memory.
  enum class Add { kAccepted, kOverCapacity, kOverMemory };

  // `config` and `upstream` (Replicas, or a fake in tests) must outlive
  // the batcher.
  Batcher(uv_loop_t* loop, const Config& config, UpstreamSink& upstream);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Appends one request's validated rows. On kAccepted the ticket's waiter
  // (if any) gets batch_done() later, unless it cleared the ticket first.
  // `spool_id` != 0 marks rows already acknowledged from the spool: they are
  // retried until committed and dead-lettered if ClickHouse refuses them.
  Add add(const BatchTarget& target, const RowChunk& chunk, std::shared_ptr<BatchTicket> ticket,
          uint64_t spool_id = 0);

  // Replays rows of the spool that were last sent as one batch (`ids` in
  // order, to `request_target`): they are sent again as that very request.
  void add_sent_batch(const BatchTarget& target, std::string request_target,
                      const std::vector<RowChunk>& chunks, const std::vector<uint64_t>& ids);

  // Whether an early answer (from the spool) may be given for rows of
  // `key`: a batch of that key committed within --early-ack-proof, which
  // proves its credentials, grants and table; or since then nothing has
  // committed at all (an outage: nothing can say otherwise). A refusal of
  // the whole key (auth, access, no table) withdraws the proof. Rows of a
  // key not proven wait for their batch's commit, and get ClickHouse's answer.
  bool proven(const std::string& key) const;
  // Rows of `key` were in the spool at start-up: answered early, so proven
  // before the restart (the proof holds until ClickHouse says otherwise).
  void vouch_replayed(const std::string& key);

  // Counters and histograms of batches (may stay null).
  void set_metrics(struct BatchMetrics* metrics) { metrics_ = metrics; }

  // Seconds the oldest row not yet committed has waited (0 when none).
  double oldest_row_age_seconds() const;

  // The budget buffered bytes count against (may stay null: no budget).
  // REQUIRES: set before the first add(); `memory` outlives the batcher.
  void set_memory(MemoryBudget* memory) { memory_ = memory; }

  // The spool that holds spooled rows (may stay null: no spooled rows).
  void set_spool(class Spool* spool) { spool_ = spool; }

  // Whether the server knows insert_deduplication_token; when it does, a
  // batch first sent from then on carries a token, the same on every try.
  void set_dedup_token(bool supported) { dedup_token_ = supported; }

  // Whether the server knows async_insert (21.11 and later, on by default
  // in newer ones): a batch is one already, so it goes with async_insert=0
  // (a second buffer would only add latency and change deduplication).
  void set_async_insert_known(bool known) { async_insert_known_ = known; }

  // The coding batches are sent in from now on (body_encoder.h); a batch
  // keeps the coding of its first try. kNone until set.
  void set_upstream_coding(UpstreamCoding coding) { upstream_coding_ = coding; }

  // Flushes every buffer now and from now on without delay (shutdown).
  void flush_all();

  // True when no row is buffered or in flight.
  bool idle() const { return buffered_bytes_ == 0 && flushes_.empty(); }

  // Called with ClickHouse's code whenever a batch of `target` failed with
  // an answer that has one (before it is split, retried or answered).
  void set_error_callback(std::function<void(const BatchTarget& target, int code)> callback) {
    on_error_ = std::move(callback);
  }

  // Called once whenever the batcher becomes idle while draining.
  void set_idle_callback(std::function<void()> callback) { on_idle_ = std::move(callback); }

  // Answers waiting clients whose deadline passed (503, rows not inserted)
  // and forgets buffers of keys unused for a while. Call about every second.
  void expire(uint64_t now_ms);

  // Closes timers; fails nothing (call when idle, or at forced exit).
  void close();

  uint64_t buffered_bytes() const { return buffered_bytes_; }

  // Tables batched into whose retries will not be deduplicated although
  // batches carry a token (not Replicated, no
  // non_replicated_deduplication_window): checked once per merge key, on
  // servers with insert_deduplication_token. Also logged (table_without_dedup).
  const std::set<std::string>& tables_without_dedup() const { return without_dedup_; }

 private:
  struct Part {
    size_t offset;
    size_t size;
    size_t rows;
    std::shared_ptr<BatchTicket> ticket;
    uint64_t spool_id;     // 0 when the client waits for the commit
    uint64_t deadline_ms;  // when a waiting client stops waiting for retries
  };
  struct Batch {
    std::string data;
    std::vector<Part> parts;
    size_t rows = 0;
    // Path and query string, with any dedup token: decided for the first
    // try, the same for every other (and in the batch record, written when
    // it is decided; a replayed batch's comes from its record).
    std::string request_target;
  };
  struct KeyBuffer;
  class Flush;

  KeyBuffer& buffer_for(const BatchTarget& target, bool spooled);
  void append(Batch& batch, const KeyBuffer& buffer, std::string_view rows, bool needs_newline,
              const Part& part);
  static size_t row_limit(const BatchTarget& target, size_t limit);
  Batch take_pending(KeyBuffer& buffer);
  void seal(KeyBuffer& buffer);
  void schedule(KeyBuffer& buffer);
  // Sends full batches, then the forming one if `forming`, while flush slots are free.
  void flush(KeyBuffer& buffer, bool forming);
  void send(KeyBuffer& buffer, Batch batch, const Flush* split_from = nullptr);
  void batch_recorded(Flush& flush, bool ok);
  const std::string& request_target(const KeyBuffer& buffer, Batch& batch) const;
  void submit(Flush& flush);
  // A try ended: classified (flush_verdict.h), then acted on.
  void flush_done(Flush& flush, const UpstreamOutcome& outcome);
  FlushTry try_facts(const Flush& flush, const UpstreamOutcome& outcome) const;
  void note_try(Flush& flush, const FlushVerdict& verdict);
  void schedule_retry(Flush& flush, const FlushVerdict& verdict, const UpstreamOutcome& outcome);
  void bisect(Flush& flush, const FlushVerdict& verdict);
  void fail(Flush& flush, const FlushVerdict& verdict);
  void retry(Flush& flush);
  void retire(Flush& flush);
  void answer(const KeyBuffer& buffer, Batch& batch, const BatchResult& result,
              std::string_view dead_letter_note = {});
  BatchResult not_committed_result(const KeyBuffer& buffer);
  BatchResult unknown_outcome_result(const KeyBuffer& buffer);
  static Batch rebuild(const KeyBuffer& buffer, const Batch& batch, size_t begin, size_t end,
                       const std::vector<bool>* keep);
  void maybe_idle();
  void grow_buffered(uint64_t bytes);
  void shrink_buffered(uint64_t bytes);
  static void on_timer(uv_timer_t* timer) noexcept;

  uv_loop_t* loop_;
  const Config& config_;
  UpstreamSink& upstream_;
  std::unordered_map<std::string, std::unique_ptr<KeyBuffer>> buffers_;
  std::list<std::unique_ptr<Flush>> flushes_;
  std::vector<std::unique_ptr<Flush>> finished_;  // freed later: may be on the stack
  uint64_t buffered_bytes_ = 0;
  uint64_t commits_ = 0;  // batches committed so far
  uint64_t last_commit_ms_ = 0;
  std::unordered_map<std::string, uint64_t> proven_;
  std::set<std::string> without_dedup_;  // key -> when a batch of it last committed
  bool flush_now_ = false;
  bool dedup_token_ = false;
  bool async_insert_known_ = false;
  UpstreamCoding upstream_coding_ = UpstreamCoding::kNone;
  class Spool* spool_ = nullptr;
  MemoryBudget* memory_ = nullptr;
  struct BatchMetrics* metrics_ = nullptr;
  std::function<void()> on_idle_;
  std::function<void(const BatchTarget&, int)> on_error_;
};

}  // namespace chsidecar
