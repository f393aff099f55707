#include "batcher.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <random>

#include "body_encoder.h"
#include "ch_errors.h"
#include "flush_verdict.h"
#include "http_response.h"
#include "log.h"
#include "metrics.h"
#include "native_format.h"
#include "result.h"
#include "spool.h"
#include "table_check.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {

// Error text kept from a failed flush; ClickHouse's messages are short.
constexpr size_t kMaxErrorBody = 64 * 1024;
// A KeyBuffer is forgotten after this long without a row.
constexpr uint64_t kBufferIdleMs = 60'000;

uint64_t fnv1a(std::string_view data, uint64_t hash = 1469598103934665603ull) {
  for (unsigned char c : data) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

}  // namespace

// The rows of one merge key (spooled rows have a key of their own): the
// batch forming, full batches waiting for a flush slot, the flush timer.
struct Batcher::KeyBuffer {
  Batcher* owner = nullptr;
  BatchTarget target;
  size_t max_rows = 0;     // --flush-rows, or the INSERT's own smaller max_insert_block_size
  Batch pending;           // the batch forming now
  std::deque<Batch> full;  // batches at the size limit, waiting for a flush slot
  uv_timer_t* timer = nullptr;
  bool timer_armed = false;
  uint64_t last_flush_ms = 0;
  uint64_t last_used_ms = 0;
  int inflight = 0;
  TableCheck dedup_check;  // once per key, where batches carry a token (see table_facts)
};

// One upstream INSERT of one batch (or of a bisected half of one), tried
// until it has an answer that is not transient.
class Batcher::Flush final : public UpstreamClient {
 public:
  Flush(Batcher& batcher, KeyBuffer& buffer, Batch batch)
      : batcher_(batcher), buffer_(buffer), batch_(std::move(batch)) {}
  ~Flush() {
    close_handle(retry_timer_);
    if (record_waiter_ != nullptr) record_waiter_->flush = nullptr;
  }

  // Waits for the batch record in the spool; told nothing once the flush is gone.
  std::shared_ptr<SpoolWaiter> record_waiter() {
    record_waiter_ = std::make_shared<RecordWaiter>();
    record_waiter_->flush = this;
    return record_waiter_;
  }

  KeyBuffer& key_buffer() { return buffer_; }
  Batch& batch() { return batch_; }
  const Batch& batch() const { return batch_; }
  const BatchResult& result() const { return result_; }
  int attempts() const { return attempts_; }
  // Whether batches committed since this one first failed (`commits`: the
  // batcher's count now); false before its first failure.
  bool committed_since_first_failure(uint64_t commits) const {
    return failed_ && commits > commits_at_first_failure_;
  }
  void note_failure(uint64_t commits) {
    if (!failed_) commits_at_first_failure_ = commits;
    failed_ = true;
  }
  // A try ended without an answer after the whole batch went out: the
  // server may have inserted it.
  void note_unknown_outcome() { maybe_inserted_ |= whole_body_sent_ || sent_ == wire().size(); }
  // A half of a batch that may have been inserted may have been too.
  void inherit_unknown_outcome(const Flush& whole) { maybe_inserted_ |= whole.maybe_inserted_; }
  // Tries the server answered with a transient code that may be this
  // batch's own (memory or time limits, file errors).
  int own_transient_failures() const { return own_transient_failures_; }
  void note_own_transient_failure() { ++own_transient_failures_; }
  bool maybe_inserted() const { return maybe_inserted_; }

  // What the table is, asked after this try failed with an answer (see
  // table_check.h); true once known for the current try.
  bool table_checked() const { return table_checked_try_ == attempts_; }
  const TableFacts& table_facts() const { return table_facts_; }
  void check_table(UpstreamSink& upstream, const UpstreamOutcome& outcome) {
    table_checked_try_ = attempts_;
    check_.start(upstream, buffer_.target.table, batch_.request_target, buffer_.target.headers,
                 [this, outcome](const TableFacts& facts) {
                   table_facts_ = facts;
                   batcher_.flush_done(*this, outcome);
                 });
  }

  // Prepares the next try: the same bytes, a fresh answer.
  void begin_try() {
    ++attempts_;
    sent_ = 0;
    whole_body_sent_ = false;
    result_ = BatchResult{};
  }

  void retry_after(uv_loop_t* loop, uint64_t delay_ms) {
    if (retry_timer_ == nullptr) {
      retry_timer_ = make_handle<uv_timer_t>();
      uv_timer_init(loop, retry_timer_);
      retry_timer_->data = this;
    }
    uv_timer_start(retry_timer_, [](uv_timer_t* t) noexcept {
      auto* self = static_cast<Flush*>(t->data);
      if (self != nullptr) self->batcher_.retry(*self);
    }, delay_ms, 0);
  }

  void replace_batch(Batch batch) {
    batch_ = std::move(batch);
    shaped_ = false;
    merged_.clear();
    encoded_.clear();
    coding_ = UpstreamCoding::kNone;
  }

  // The bytes sent: the batch (Native blocks made one, native_format.h),
  // compressed once in `coding` (kept for every try; plain if the library
  // fails).
  void encode(UpstreamCoding coding) {
    if (!shaped_) {
      shaped_ = true;
      if (buffer_.target.format == RowFormat::kNative && batch_.parts.size() > 1 &&
          !merge_native_blocks(batch_.data, merged_))
        merged_.clear();
    }
    if (coding == coding_ || plain().empty()) return;
    coding_ = encode_body(coding, plain(), encoded_) ? coding : UpstreamCoding::kNone;
  }
  UpstreamCoding coding() const { return coding_; }
  std::string_view wire() const {
    return coding_ == UpstreamCoding::kNone ? plain() : std::string_view(encoded_);
  }
  std::string_view plain() const { return merged_.empty() ? std::string_view(batch_.data) : std::string_view(merged_); }

  size_t upstream_read_body(char* buf, size_t size) override {
    std::string_view bytes = wire();
    size_t n = std::min(size, bytes.size() - sent_);
    std::memcpy(buf, bytes.data() + sent_, n);
    sent_ += n;
    return n;
  }
  bool upstream_rewind_body() override {
    // The pool resends on a fresh connection: what went out before counts.
    whole_body_sent_ |= sent_ == wire().size();
    sent_ = 0;
    return true;
  }
  void upstream_response_head(int status, std::string reason, std::vector<Header> headers) override {
    result_.status = status;
    result_.reason = std::move(reason);
    result_.headers.clear();
    for (Header& h : headers)
      if (!is_hop_by_hop(h.name) && !iequals(h.name, "Content-Length"))
        result_.headers.push_back(std::move(h));
  }
  size_t upstream_response_data(const char* data, size_t size) override {
    size_t room = kMaxErrorBody - std::min(kMaxErrorBody, result_.body.size());
    result_.body.append(data, std::min(room, size));
    return size;
  }
  void upstream_done(const UpstreamOutcome& outcome) override { batcher_.flush_done(*this, outcome); }

 private:
  Batcher& batcher_;
  KeyBuffer& buffer_;
  Batch batch_;
  UpstreamCoding coding_ = UpstreamCoding::kNone;
  bool shaped_ = false;  // merged_ made, if it is made at all
  std::string merged_;   // batch_.data's Native blocks as one; empty: not merged
  std::string encoded_;  // plain() in coding_
  size_t sent_ = 0;
  bool whole_body_sent_ = false;  // this try, before a rewind
  int attempts_ = 0;
  bool failed_ = false;
  bool maybe_inserted_ = false;
  int own_transient_failures_ = 0;
  uint64_t commits_at_first_failure_ = 0;
  BatchResult result_;
  uv_timer_t* retry_timer_ = nullptr;
  int table_checked_try_ = -1;
  TableFacts table_facts_;
  TableCheck check_;
  struct RecordWaiter final : SpoolWaiter {
    Flush* flush = nullptr;
    void spool_durable(bool ok) override {
      if (flush != nullptr) flush->batcher_.batch_recorded(*flush, ok);
    }
  };
  std::shared_ptr<RecordWaiter> record_waiter_;
};

Batcher::Batcher(uv_loop_t* loop, const Config& config, UpstreamSink& upstream)
    : loop_(loop), config_(config), upstream_(upstream) {}

Batcher::~Batcher() { close(); }

void Batcher::close() {
  for (auto& flush : flushes_) upstream_.cancel(flush.get());
  flushes_.clear();
  finished_.clear();
  for (auto& [key, buffer] : buffers_) {
    close_handle(buffer->timer);
    buffer->timer = nullptr;
  }
  buffers_.clear();
}

// Spooled rows batch apart from rows whose clients wait for the commit: a
// batch of spooled rows only can be sent again, as it was, after a crash.
Batcher::KeyBuffer& Batcher::buffer_for(const BatchTarget& target, bool spooled) {
  auto& slot = buffers_[spooled ? target.key + "\n(spooled)" : target.key];
  if (slot == nullptr) {
    slot = std::make_unique<KeyBuffer>();
    slot->owner = this;
    slot->target = target;
    slot->timer = make_handle<uv_timer_t>();
    uv_timer_init(loop_, slot->timer);
    slot->timer->data = slot.get();
    slot->max_rows = row_limit(target, config_.flush_rows);
    // Where batches carry a token, say which tables will not honour it.
    if (dedup_token_ && !spooled) {
      const std::string table = target.table;
      slot->dedup_check.start(upstream_, target.table, target.upstream_target,
                              target.headers, [this, table](const TableFacts& facts) {
                                if (facts.deduplicates || !without_dedup_.insert(table).second) return;
                                log_event(LogLevel::kWarn, "table_without_dedup",
                                          {{"table", table},
                                           {"consequence",
                                            "a batch retried after an unknown outcome may be "
                                            "inserted twice (plain MergeTree needs "
                                            "non_replicated_deduplication_window > 0)"}});
                              });
    }
  }
  return *slot;
}

void Batcher::grow_buffered(uint64_t bytes) {
  buffered_bytes_ += bytes;
  if (memory_ != nullptr) memory_->take(bytes);
}

void Batcher::shrink_buffered(uint64_t bytes) {
  buffered_bytes_ -= bytes;
  if (memory_ != nullptr) memory_->give(bytes);
}

Batcher::Add Batcher::add(const BatchTarget& target, const RowChunk& chunk,
                          std::shared_ptr<BatchTicket> ticket, uint64_t spool_id) {
  finished_.clear();
  size_t bytes = chunk.rows.size() + 1;
  // Rows already acknowledged from the spool are never refused.
  if (spool_id == 0 && buffered_bytes_ + bytes > config_.buffer_max_bytes) return Add::kOverCapacity;
  if (spool_id == 0 && memory_ != nullptr && !memory_->fits_more(bytes)) return Add::kOverMemory;
  KeyBuffer& buffer = buffer_for(target, spool_id != 0);
  uint64_t now = uv_now(loop_);
  buffer.last_used_ms = now;
  if (metrics_ != nullptr) metrics_->rows_received.at({target.table}).inc(double(chunk.row_count));
  // A batch never grows past the limits, also while flushes wait for a slot:
  // beyond max_insert_block_size ClickHouse commits it in pieces, and a
  // piece committed before a bad row would be sent again by the bisection.
  if (!buffer.pending.parts.empty() &&
      (buffer.pending.rows + chunk.row_count > buffer.max_rows ||
       buffer.pending.data.size() + chunk.rows.size() + 1 > config_.flush_bytes))
    seal(buffer);
  size_t before = buffer.pending.data.size();
  append(buffer.pending, buffer, chunk.rows, chunk.needs_newline,
         Part{0, 0, chunk.row_count, std::move(ticket), spool_id, now + config_.upstream_timeout_ms});
  grow_buffered(buffer.pending.data.size() - before);
  if (buffer.pending.rows >= buffer.max_rows || buffer.pending.data.size() >= config_.flush_bytes)
    seal(buffer);
  if (flush_now_ || !buffer.full.empty()) flush(buffer, flush_now_);
  schedule(buffer);
  return Add::kAccepted;
}

void Batcher::add_sent_batch(const BatchTarget& target, std::string request_target,
                             const std::vector<RowChunk>& chunks, const std::vector<uint64_t>& ids) {
  finished_.clear();
  KeyBuffer& buffer = buffer_for(target, true);
  uint64_t now = uv_now(loop_);
  buffer.last_used_ms = now;
  Batch batch;
  batch.request_target = std::move(request_target);
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (metrics_ != nullptr)
      metrics_->rows_received.at({target.table}).inc(double(chunks[i].row_count));
    append(batch, buffer, chunks[i].rows, chunks[i].needs_newline,
           Part{0, 0, chunks[i].row_count, nullptr, ids[i], now + config_.upstream_timeout_ms});
  }
  grow_buffered(batch.data.size());
  buffer.full.push_back(std::move(batch));
  flush(buffer, flush_now_);
}

// The INSERT's own max_insert_block_size, when it sets one below `limit`.
size_t Batcher::row_limit(const BatchTarget& target, size_t limit) {
  std::string_view query = split_target(target.upstream_target).query;
  if (const QueryParam* p = find_setting(parse_query(query), "max_insert_block_size")) {
    uint64_t rows = 0;
    if (parse_u64(p->value, rows) && rows > 0) limit = std::min<uint64_t>(limit, rows);
  }
  return limit;
}

// The forming batch leaves the buffer: its flush delay no longer runs.
Batcher::Batch Batcher::take_pending(KeyBuffer& buffer) {
  if (buffer.timer_armed) {
    uv_timer_stop(buffer.timer);
    buffer.timer_armed = false;
  }
  Batch batch = std::move(buffer.pending);
  buffer.pending = Batch{};
  return batch;
}

// The forming batch is full: it waits for a flush slot as it is.
void Batcher::seal(KeyBuffer& buffer) { buffer.full.push_back(take_pending(buffer)); }

void Batcher::append(Batch& batch, const KeyBuffer& buffer, std::string_view rows, bool needs_newline,
                     const Part& part) {
  if (batch.data.empty()) batch.data = buffer.target.header_lines;
  else batch.data.append(chunk_separator(buffer.target.format));
  Part placed = part;
  placed.offset = batch.data.size();
  batch.data.append(rows);
  if (needs_newline) batch.data.push_back('\n');
  placed.size = batch.data.size() - placed.offset;
  batch.rows += placed.rows;
  batch.parts.push_back(std::move(placed));
}

// Parts [begin, end) of `batch` (those with keep[i], when given) as a new batch.
Batcher::Batch Batcher::rebuild(const KeyBuffer& buffer, const Batch& batch, size_t begin, size_t end,
                                const std::vector<bool>* keep) {
  Batch out;
  for (size_t i = begin; i < end; ++i) {
    if (keep != nullptr && !(*keep)[i]) continue;
    const Part& part = batch.parts[i];
    buffer.owner->append(out, buffer, std::string_view(batch.data).substr(part.offset, part.size),
                        false, part);
  }
  return out;
}

// Arms the key's timer for the first row of a new batch. A key that was
// flushed recently waits longer, so it gets at most max_parts_per_second parts.
void Batcher::schedule(KeyBuffer& buffer) {
  if (buffer.timer_armed || buffer.pending.parts.empty()) return;
  uint64_t now = uv_now(loop_);
  uint64_t interval = 1000 / std::max<uint64_t>(1, config_.max_parts_per_second);
  uint64_t delay = config_.flush_delay_min_ms;
  if (buffer.last_flush_ms != 0 && now < buffer.last_flush_ms + interval)
    delay = std::clamp(buffer.last_flush_ms + interval - now, config_.flush_delay_min_ms,
                       config_.flush_delay_max_ms);
  buffer.timer_armed = true;
  uv_timer_start(buffer.timer, &Batcher::on_timer, delay, 0);
}

void Batcher::on_timer(uv_timer_t* timer) noexcept {
  auto* buffer = static_cast<KeyBuffer*>(timer->data);
  if (buffer == nullptr) return;
  buffer->timer_armed = false;
  buffer->owner->finished_.clear();
  buffer->owner->flush(*buffer, true);
}

void Batcher::flush(KeyBuffer& buffer, bool forming) {
  // Without a free slot, retire() resumes.
  while (buffer.inflight < static_cast<int>(config_.max_inflight_flushes)) {
    Batch batch;
    if (!buffer.full.empty()) {
      batch = std::move(buffer.full.front());
      buffer.full.pop_front();
    } else if (forming && !buffer.pending.parts.empty()) {
      batch = take_pending(buffer);
    } else {
      return;
    }
    buffer.last_flush_ms = uv_now(loop_);
    send(buffer, std::move(batch));
  }
}

void Batcher::send(KeyBuffer& buffer, Batch batch, const Flush* split_from) {
  ++buffer.inflight;
  flushes_.push_back(std::make_unique<Flush>(*this, buffer, std::move(batch)));
  Flush& flush = *flushes_.back();
  if (split_from != nullptr) flush.inherit_unknown_outcome(*split_from);
  // Its first try waits for the batch record (a replay must send the same
  // request); a batch whose request is decided already has its record.
  SpoolBatch record;
  if (spool_ != nullptr && flush.batch().request_target.empty())
    for (const Part& part : flush.batch().parts)
      if (part.spool_id != 0) record.ids.push_back(part.spool_id);
  if (!record.ids.empty()) {
    record.request_target = request_target(buffer, flush.batch());
    if (spool_->record_batch(record, flush.record_waiter())) return;
  }
  submit(flush);
}

// Decided once per batch: a try must not gain a token the first one lacked
// (the server learnt about at start-up meanwhile), nor lose it.
const std::string& Batcher::request_target(const KeyBuffer& buffer, Batch& batch) const {
  if (!batch.request_target.empty()) return batch.request_target;
  batch.request_target = buffer.target.upstream_target;
  if (async_insert_known_) batch.request_target += "&async_insert=0";
  if (dedup_token_) {
    // The same bytes of the same key carry the same token.
    char token[32];
    std::snprintf(token, sizeof token, "%016llx",
                  static_cast<unsigned long long>(fnv1a(batch.data, fnv1a(buffer.target.key))));
    batch.request_target += std::string("&insert_deduplication_token=chsidecar-") + token;
    // A retry after a view failed then reaches the views too, deduplicated
    // there as well (by default a block the table skips skips its views).
    batch.request_target += "&deduplicate_blocks_in_dependent_materialized_views=1";
  }
  return batch.request_target;
}

void Batcher::batch_recorded(Flush& flush, bool ok) {
  finished_.clear();
  if (!ok)
    log_event(LogLevel::kWarn, "batch_record_failed",
              {{"table", flush.key_buffer().target.table},
               {"effect", "after a crash its rows may be inserted twice"}});
  submit(flush);
}

void Batcher::submit(Flush& flush) {
  KeyBuffer& buffer = flush.key_buffer();
  flush.begin_try();
  UpstreamRequest request;
  request.method = "POST";
  request.target = request_target(buffer, flush.batch());
  request.headers = buffer.target.headers;
  // Compressed once; a later try sends the same bytes (the dedup token is
  // of the plain rows, whatever the coding).
  flush.encode(upstream_coding_);
  if (flush.coding() != UpstreamCoding::kNone)
    request.headers.push_back({"Content-Encoding", std::string(coding_name(flush.coding()))});
  request.has_body = true;
  request.body_length = static_cast<int64_t>(flush.wire().size());
  log_event(LogLevel::kDebug, "batch_flush",
            {{"table", buffer.target.table},
             {"rows", std::to_string(flush.batch().rows)},
             {"requests", std::to_string(flush.batch().parts.size())},
             {"bytes", std::to_string(flush.batch().data.size())},
             {"attempt", std::to_string(flush.attempts())},
             {"wire_bytes", std::to_string(flush.wire().size())}});
  // Every try goes to the healthy replica with the least work.
  if (upstream_.submit(&flush, std::move(request)) == UpstreamPool::Submit::kQueueFull) {
    UpstreamOutcome outcome;
    outcome.code = CURLE_COULDNT_CONNECT;
    outcome.error = "the upstream queue is full (--queue-max)";
    flush_done(flush, outcome);
  }
}

// Answers every part: waiting clients get `result`; spooled rows, whose
// clients were answered long ago, are marked committed or dead-lettered.
BatchResult Batcher::not_committed_result(const KeyBuffer&) {
  return error_result({503, kTimeoutExceeded,
                       "The rows were not inserted: upstream " + upstream_.display_name() +
                           " did not accept them within --upstream-timeout"});
}

BatchResult Batcher::unknown_outcome_result(const KeyBuffer&) {
  return error_result({503, kUnknownStatusOfInsert,
                       "The rows may or may not have been inserted: upstream " +
                           upstream_.display_name() +
                           " took the whole batch but gave no answer within --upstream-timeout"});
}

void Batcher::vouch_replayed(const std::string& key) { proven_.emplace(key, uv_now(loop_)); }

bool Batcher::proven(const std::string& key) const {
  if (config_.early_ack_proof_ms == 0) return true;  // the clients are trusted
  auto it = proven_.find(key);
  if (it == proven_.end()) return false;
  uint64_t until = it->second + config_.early_ack_proof_ms;
  return uv_now(loop_) < until || last_commit_ms_ < until;
}

void Batcher::answer(const KeyBuffer& buffer, Batch& batch, const BatchResult& result,
                     std::string_view dead_letter_note) {
  bool committed = result.status == 200;
  if (committed) {
    last_commit_ms_ = uv_now(loop_);
    proven_[buffer.target.key] = last_commit_ms_;
  } else if (classify_error(exception_code(result.body, result.headers)) == ErrorClass::kPermanent) {
    proven_.erase(buffer.target.key);
  }
  if (metrics_ != nullptr && committed) {
    metrics_->rows_flushed.at({buffer.target.table}).inc(double(batch.rows));
    metrics_->batch_rows.get().observe(double(batch.rows));
    metrics_->batch_bytes.get().observe(double(batch.data.size()));
  }
  std::vector<uint64_t> done_ids;
  for (Part& part : batch.parts) {
    if (metrics_ != nullptr && committed && part.spool_id == 0 && part.ticket != nullptr &&
        part.ticket->waiter != nullptr)
      metrics_->rows_acknowledged.at({buffer.target.table}).inc(double(part.rows));
    if (part.spool_id != 0) {
      if (!committed && metrics_ != nullptr)
        metrics_->rows_dead_lettered.at({buffer.target.table}).inc(double(part.rows));
      if (committed) {
        done_ids.push_back(part.spool_id);
      } else if (spool_ != nullptr) {  // committed in the spool once the line is on disk
        SpoolData data;
        data.id = part.spool_id;
        data.target = buffer.target;
        data.rows = batch.data.substr(part.offset, part.size);
        data.row_count = part.rows;
        spool_->dead_letter(data, result.body + std::string(dead_letter_note));
      }
    }
    if (part.ticket != nullptr && part.ticket->waiter != nullptr) {
      BatchWaiter* waiter = part.ticket->waiter;
      part.ticket->waiter = nullptr;
      waiter->batch_done(result);
    }
  }
  if (spool_ != nullptr) spool_->committed(done_ids);
}

// The facts of the try that just ended (flush_verdict.h).
FlushTry Batcher::try_facts(const Flush& done, const UpstreamOutcome& outcome) const {
  const BatchResult& result = done.result();
  FlushTry t;
  t.transfer_ok = outcome.code == CURLE_OK;
  t.response_started = outcome.response_started;
  t.status = result.status;
  t.body_has_exception = result.body.find("Exception") != std::string::npos;
  t.exception_code = outcome.exception_code;
  t.requests = done.batch().parts.size();
  t.table_checked = done.table_checked();
  t.table_has_views = done.table_facts().has_views;
  t.table_deduplicates = done.table_facts().deduplicates;
  t.own_transient_failures = static_cast<uint64_t>(done.own_transient_failures());
  t.others_committed_since_first_failure = done.committed_since_first_failure(commits_);
  t.retry_limit = config_.retry_limit;
  t.dedup_token = dedup_token_;
  return t;
}

void Batcher::flush_done(Flush& done, const UpstreamOutcome& outcome) {
  FlushVerdict verdict = classify_flush(try_facts(done, outcome));
  if (verdict.action != FlushAction::kCheckTable) {
    note_try(done, verdict);
    if (verdict.code != 0 && on_error_) on_error_(done.key_buffer().target, verdict.code);
  }
  switch (verdict.action) {
    case FlushAction::kCheckTable:
      done.check_table(upstream_, outcome);  // comes back here with the facts
      return;
    case FlushAction::kCommitted:
      answer(done.key_buffer(), done.batch(), done.result());
      break;
    case FlushAction::kRetry:
      schedule_retry(done, verdict, outcome);
      return;  // still in flight for its key
    case FlushAction::kBisect:
      bisect(done, verdict);
      break;
    case FlushAction::kFail:
    case FlushAction::kFailMaybeInTable:
      fail(done, verdict);
      break;
  }
  retire(done);
}

// The batch's history and the counters, for a try that was classified.
void Batcher::note_try(Flush& done, const FlushVerdict& verdict) {
  const KeyBuffer& buffer = done.key_buffer();
  bool committed = verdict.action == FlushAction::kCommitted;
  if (committed) ++commits_;
  else done.note_failure(commits_);
  if (verdict.no_answer) done.note_unknown_outcome();
  if (verdict.own_limit) done.note_own_transient_failure();
  if (verdict.gave_up)
    log_event(LogLevel::kWarn, "batch_retry_limit",
              {{"table", buffer.target.table}, {"attempts", std::to_string(done.attempts())},
               {"code", std::to_string(verdict.code)},
               {"requests", std::to_string(done.batch().parts.size())}});
  if (metrics_ == nullptr) return;
  metrics_->flushes.at({verdict.metric_label}).inc();
  if (!committed && verdict.error_class == ErrorClass::kTransient)
    metrics_->retries.at({buffer.target.table}).inc();
}

void Batcher::schedule_retry(Flush& done, const FlushVerdict& verdict,
                             const UpstreamOutcome& outcome) {
  log_event(LogLevel::kWarn, "batch_retry",
            {{"table", done.key_buffer().target.table},
             {"attempt", std::to_string(done.attempts())},
             {"code", std::to_string(verdict.code)},
             {"error", outcome.code != CURLE_OK ? outcome.error
                                                : std::string("HTTP ") + std::to_string(done.result().status)}});
  uint64_t delay = config_.retry_backoff_min_ms << std::min(done.attempts() - 1, 20);
  delay = std::min(delay, config_.retry_backoff_max_ms);
  static std::minstd_rand jitter(std::random_device{}());
  delay = delay / 2 + jitter() % (delay / 2 + 1);  // "equal jitter"
  done.retry_after(loop_, std::max<uint64_t>(delay, 1));
}

void Batcher::bisect(Flush& done, const FlushVerdict& verdict) {
  KeyBuffer& buffer = done.key_buffer();
  const Batch& batch = done.batch();
  log_event(LogLevel::kInfo, "batch_bisect",
            {{"table", buffer.target.table}, {"requests", std::to_string(batch.parts.size())},
             {"code", std::to_string(verdict.code)}});
  size_t middle = batch.parts.size() / 2;
  Batch left = rebuild(buffer, batch, 0, middle, nullptr);
  Batch right = rebuild(buffer, batch, middle, batch.parts.size(), nullptr);
  grow_buffered(left.data.size() + right.data.size());
  send(buffer, std::move(left), &done);
  send(buffer, std::move(right), &done);
}

void Batcher::fail(Flush& done, const FlushVerdict& verdict) {
  const KeyBuffer& buffer = done.key_buffer();
  std::vector<LogField> fields = {
      {"table", buffer.target.table},
      {"status", std::to_string(done.result().status)},
      {"code", std::to_string(verdict.code)},
      {"requests", std::to_string(done.batch().parts.size())}};
  if (verdict.action != FlushAction::kFailMaybeInTable) {
    log_event(LogLevel::kWarn, "batch_failed", fields);
    answer(buffer, done.batch(), done.result());
    return;
  }
  // A dependent view failed after the table's part was written, perhaps.
  fields.push_back({"effect", "the table has dependent views and may hold the rows: not sent again"});
  log_event(LogLevel::kWarn, "batch_failed", fields);
  answer(buffer, done.batch(), done.result(),
         "; chsidecar: the table has dependent views, so these rows may be in it already; "
         "they were not sent again");
}

// Sends a batch again after a transient error. Clients that stopped waiting
// are answered now. While no try can have inserted the batch, their rows
// leave it first: they must never be committed after the client was told
// they were not. Once a try may have inserted it, they are told so (319) and
// the batch keeps its bytes, so that the server's deduplication (the token,
// or a replicated table's block hash) recognises the retry.
void Batcher::retry(Flush& flush) {
  finished_.clear();
  KeyBuffer& buffer = flush.key_buffer();
  Batch& batch = flush.batch();
  uint64_t now = uv_now(loop_);
  std::vector<bool> keep(batch.parts.size(), true);
  bool dropped = false;
  for (size_t i = 0; i < batch.parts.size(); ++i) {
    Part& part = batch.parts[i];
    bool waiting = part.ticket != nullptr && part.ticket->waiter != nullptr;
    if (part.spool_id == 0 && (!waiting || now >= part.deadline_ms)) {
      if (!flush.maybe_inserted()) {
        keep[i] = false;
        dropped = true;
      }
      if (waiting) {
        BatchWaiter* waiter = part.ticket->waiter;
        part.ticket->waiter = nullptr;
        waiter->batch_done(flush.maybe_inserted() ? unknown_outcome_result(buffer)
                                                  : not_committed_result(buffer));
      }
    }
  }
  if (dropped) {
    Batch kept = rebuild(buffer, batch, 0, batch.parts.size(), &keep);
    shrink_buffered(batch.data.size());
    grow_buffered(kept.data.size());
    flush.replace_batch(std::move(kept));
  }
  if (flush.batch().parts.empty()) {
    retire(flush);
    return;
  }
  submit(flush);
}

void Batcher::retire(Flush& done) {
  KeyBuffer& buffer = done.key_buffer();
  --buffer.inflight;
  shrink_buffered(done.batch().data.size());
  // The flush may be on the stack (a pool callback): free it later.
  for (auto it = flushes_.begin(); it != flushes_.end(); ++it) {
    if (it->get() == &done) {
      finished_.push_back(std::move(*it));
      flushes_.erase(it);
      break;
    }
  }
  // The forming batch goes too if its timer fired while every slot was busy.
  flush(buffer, flush_now_ || !buffer.timer_armed);
  maybe_idle();
}

double Batcher::oldest_row_age_seconds() const {
  uint64_t now = uv_now(loop_);
  uint64_t oldest = now;
  auto consider = [&](const Batch& batch) {
    if (!batch.parts.empty())
      oldest = std::min(oldest, batch.parts.front().deadline_ms - config_.upstream_timeout_ms);
  };
  for (const auto& [key, buffer] : buffers_) {
    consider(buffer->pending);
    for (const Batch& batch : buffer->full) consider(batch);
  }
  for (const auto& flush : flushes_) consider(flush->batch());
  return double(now - oldest) / 1000.0;
}

void Batcher::flush_all() {
  flush_now_ = true;
  for (auto& [key, buffer] : buffers_) flush(*buffer, true);
  maybe_idle();
}

void Batcher::maybe_idle() {
  if (flush_now_ && idle() && on_idle_) on_idle_();
}

void Batcher::expire(uint64_t now_ms) {
  finished_.clear();
  // Clients waiting for a commit stop waiting at their deadline, also while
  // their rows are still buffered behind flushes that keep failing.
  // Answered only after every buffer is changed: an answer may let its
  // client's next, pipelined request in, and add() it to these buffers.
  std::vector<std::pair<BatchWaiter*, BatchResult>> answers;
  auto expire_batch = [&](KeyBuffer& buffer, Batch& batch) {
    std::vector<bool> keep(batch.parts.size(), true);
    bool dropped = false;
    for (size_t i = 0; i < batch.parts.size(); ++i) {
      Part& part = batch.parts[i];
      if (part.spool_id != 0 || now_ms < part.deadline_ms) continue;
      keep[i] = false;
      dropped = true;
      if (part.ticket != nullptr && part.ticket->waiter != nullptr) {
        answers.emplace_back(part.ticket->waiter, not_committed_result(buffer));
        part.ticket->waiter = nullptr;
      }
    }
    if (!dropped) return;
    Batch kept = rebuild(buffer, batch, 0, batch.parts.size(), &keep);
    shrink_buffered(batch.data.size());
    grow_buffered(kept.data.size());
    batch = std::move(kept);
  };
  for (auto& [key, buffer] : buffers_) {
    expire_batch(*buffer, buffer->pending);
    for (Batch& batch : buffer->full) expire_batch(*buffer, batch);
    std::erase_if(buffer->full, [](const Batch& batch) { return batch.parts.empty(); });
  }
  std::erase_if(proven_, [this](const auto& entry) { return !proven(entry.first); });
  for (auto it = buffers_.begin(); it != buffers_.end();) {
    KeyBuffer& t = *it->second;
    if (t.inflight == 0 && t.pending.parts.empty() && t.full.empty() &&
        now_ms > t.last_used_ms + kBufferIdleMs) {
      close_handle(t.timer);
      it = buffers_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [waiter, result] : answers) waiter->batch_done(result);
}

}  // namespace chsidecar
