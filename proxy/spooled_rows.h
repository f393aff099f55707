// The bridge from the spool to the batcher: rows answered early, from the
// spool (spool.h), on their way into a batch (batcher.h). They come two
// ways and reach the batcher through one function, spooled_chunk():
//
// - SpooledRows: one request's rows being appended to the spool. It is the
//   spool's waiter and the request's BatchTicket. Once the rows are durable
//   they join a batch, even if the client has gone away by then, and the
//   client (if still there) hears 200; when the write failed, it hears 503
//   and nothing is batched.
// - replay_spooled(): the records a start-up found not committed. Batches
//   that were in flight go again as the very same request; the other rows
//   are batched anew. Their keys count as proven (Batcher::vouch_replayed).
//
// Loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "batch_target.h"
#include "memory_budget.h"
#include "rows.h"
#include "spool.h"
#include "spool_record.h"

namespace chsidecar {

class Batcher;
struct BatchMetrics;
struct Config;

// A spooled record's rows as the batcher takes them. `rows` (`record`)
// must outlive the chunk.
RowChunk spooled_chunk(const SpoolRows& rows);
RowChunk spooled_chunk(const SpoolData& record);

class SpooledRows final : public BatchTicket, public SpoolWaiter {
 public:
  // `batcher`, `memory`, `spool`, `config` and `metrics` must outlive it.
  // `charged`: bytes of the rows the caller took from `memory`; given back
  // when the rows reach the batcher (which counts them from then on) or
  // when this goes away. The rows are copied.
  SpooledRows(Batcher& batcher, MemoryBudget& memory, const Spool& spool, const Config& config,
              BatchMetrics& metrics, std::shared_ptr<const BatchTarget> target,
              const RowChunk& chunk, uint64_t charged);
  SpooledRows(const SpooledRows&) = delete;
  SpooledRows& operator=(const SpooledRows&) = delete;

  // The record to append; Spool::append() sets `id`.
  SpoolRows record() const { return {*target_, rows_, row_count_, needs_newline_}; }
  uint64_t id = 0;

  void spool_durable(bool ok) override;

 private:
  Batcher& batcher_;
  const Spool& spool_;
  const Config& config_;
  BatchMetrics& metrics_;
  std::shared_ptr<const BatchTarget> target_;
  std::string rows_;
  size_t row_count_ = 0;
  bool needs_newline_ = false;
  MemoryCharge charge_;  // the rows' bytes, until they reach the batcher
};

// Hands the records of `replay` to `batcher`. REQUIRES: the batcher is set
// up (spool, coding, dedup) and the loop is about to run.
void replay_spooled(Batcher& batcher, SpoolReplay replay);

}  // namespace chsidecar
