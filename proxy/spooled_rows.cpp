#include "spooled_rows.h"

#include <cerrno>
#include <cstring>

#include "batcher.h"
#include "config.h"
#include "metrics.h"

namespace chsidecar {

RowChunk spooled_chunk(const SpoolRows& rows) {
  RowChunk chunk;
  chunk.rows = rows.rows;
  chunk.row_count = rows.row_count;
  chunk.needs_newline = rows.needs_newline;
  return chunk;
}

RowChunk spooled_chunk(const SpoolData& record) {
  return spooled_chunk(SpoolRows{record.target, record.rows, record.row_count, record.needs_newline});
}

SpooledRows::SpooledRows(Batcher& batcher, MemoryBudget& memory, const Spool& spool,
                         const Config& config, BatchMetrics& metrics,
                         std::shared_ptr<const BatchTarget> target, const RowChunk& chunk,
                         uint64_t charged)
    : batcher_(batcher),
      spool_(spool),
      config_(config),
      metrics_(metrics),
      target_(std::move(target)),
      rows_(chunk.rows),
      row_count_(chunk.row_count),
      needs_newline_(chunk.needs_newline),
      charge_(memory) {
  charge_.adopt(charged);
}

void SpooledRows::spool_durable(bool ok) {
  charge_.release();  // the batcher counts them from here
  if (ok) batcher_.add(*target_, spooled_chunk(record()), nullptr, id);
  BatchWaiter* to = waiter;
  if (to == nullptr) return;
  waiter = nullptr;
  if (ok) {
    metrics_.rows_acknowledged.at({target_->table}).inc(double(row_count_));
    static const BatchResult kSpooled{200, "OK", {{"Content-Type", "text/plain; charset=UTF-8"}}, ""};
    to->batch_done(kSpooled);
    return;
  }
  int why = spool_.write_error();
  ChError error(503, kTooManySimultaneousQueries,
                "The rows could not be written to the spool (--spool-dir " + config_.spool_dir +
                    ": " + std::strerror(why != 0 ? why : EIO) + "); nothing was inserted");
  to->batch_done(error_result(error, 1));
}

void replay_spooled(Batcher& batcher, SpoolReplay replay) {
  for (SpoolReplay::Batch& batch : replay.batches) {
    std::vector<RowChunk> chunks;
    std::vector<uint64_t> ids;
    for (const SpoolData& record : batch.records) {
      batcher.vouch_replayed(record.target.key);
      chunks.push_back(spooled_chunk(record));
      ids.push_back(record.id);
    }
    batcher.add_sent_batch(batch.records.front().target, std::move(batch.request_target), chunks,
                           ids);
  }
  for (const SpoolData& record : replay.unsent) {
    batcher.vouch_replayed(record.target.key);
    batcher.add(record.target, spooled_chunk(record), nullptr, record.id);
  }
}

}  // namespace chsidecar
