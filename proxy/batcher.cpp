#include "batcher.h"

#include <algorithm>
#include <cstring>

#include "ch_errors.h"
#include "http_response.h"
#include "log.h"
#include "result.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {
// Error text kept from a failed flush; ClickHouse's messages are short.
constexpr size_t kMaxErrorBody = 64 * 1024;
// A key's buffer is forgotten after this long without a row.
constexpr uint64_t kTableIdleMs = 60'000;
}  // namespace

struct Batcher::Table {
  Batcher* owner = nullptr;
  BatchTarget target;
  Batch pending;
  uv_timer_t* timer = nullptr;
  bool timer_armed = false;
  uint64_t last_flush_ms = 0;
  uint64_t last_used_ms = 0;
  int inflight = 0;
};

// One upstream INSERT of one batch (or of a bisected half of one).
class Batcher::Flush final : public UpstreamClient {
 public:
  Flush(Batcher& batcher, Table& table, Batch batch)
      : batcher_(batcher), table_(table), batch_(std::move(batch)) {}

  Table& table() { return table_; }
  Batch& batch() { return batch_; }
  const BatchResult& result() const { return result_; }

  size_t upstream_read_body(char* buf, size_t size) override {
    size_t n = std::min(size, batch_.data.size() - sent_);
    std::memcpy(buf, batch_.data.data() + sent_, n);
    sent_ += n;
    return n;
  }
  bool upstream_rewind_body() override {
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
  Table& table_;
  Batch batch_;
  size_t sent_ = 0;
  BatchResult result_;
};

Batcher::Batcher(uv_loop_t* loop, const Config& config, UpstreamPool& pool)
    : loop_(loop), config_(config), pool_(pool) {}

Batcher::~Batcher() { close(); }

void Batcher::close() {
  for (auto& [key, table] : tables_) {
    close_handle(table->timer);
    table->timer = nullptr;
  }
  for (auto& flush : flushes_) pool_.cancel(flush.get());
  flushes_.clear();
  finished_.clear();
}

Batcher::Add Batcher::add(const BatchTarget& target, const RowChunk& chunk,
                          std::shared_ptr<BatchTicket> ticket) {
  finished_.clear();
  size_t bytes = chunk.rows.size() + 1;
  if (buffered_bytes_ + bytes > config_.buffer_max_bytes) return Add::kOverCapacity;
  auto& slot = tables_[target.key];
  if (slot == nullptr) {
    slot = std::make_unique<Table>();
    slot->owner = this;
    slot->target = target;
    slot->timer = make_handle<uv_timer_t>();
    uv_timer_init(loop_, slot->timer);
    slot->timer->data = slot.get();
  }
  Table& table = *slot;
  table.last_used_ms = uv_now(loop_);
  size_t before = table.pending.data.size();
  append(table.pending, table, chunk.rows, chunk.needs_newline, chunk.row_count, std::move(ticket));
  buffered_bytes_ += table.pending.data.size() - before;
  if (flush_now_ || table.pending.rows >= config_.flush_rows ||
      table.pending.data.size() >= config_.flush_bytes)
    flush(table);
  else
    schedule(table);
  return Add::kAccepted;
}

void Batcher::append(Batch& batch, const Table& table, std::string_view rows, bool needs_newline,
                     size_t row_count, std::shared_ptr<BatchTicket> ticket) {
  if (batch.data.empty()) batch.data = table.target.header_lines;
  else batch.data.append(chunk_separator(table.target.format));
  size_t offset = batch.data.size();
  batch.data.append(rows);
  if (needs_newline) batch.data.push_back('\n');
  batch.parts.push_back(Part{offset, batch.data.size() - offset, row_count, std::move(ticket)});
  batch.rows += row_count;
}

// Arms the key's timer for the first row of a new batch. A key that was
// flushed recently waits longer, so it gets at most max_parts_per_second parts.
void Batcher::schedule(Table& table) {
  if (table.timer_armed || table.pending.parts.empty()) return;
  uint64_t now = uv_now(loop_);
  uint64_t interval = 1000 / std::max<uint64_t>(1, config_.max_parts_per_second);
  uint64_t delay = config_.flush_delay_min_ms;
  if (table.last_flush_ms != 0 && now < table.last_flush_ms + interval)
    delay = std::clamp(table.last_flush_ms + interval - now, config_.flush_delay_min_ms,
                       config_.flush_delay_max_ms);
  table.timer_armed = true;
  uv_timer_start(table.timer, &Batcher::on_timer, delay, 0);
}

void Batcher::on_timer(uv_timer_t* timer) noexcept {
  auto* table = static_cast<Table*>(timer->data);
  if (table == nullptr) return;
  table->timer_armed = false;
  table->owner->finished_.clear();
  table->owner->flush(*table);
}

void Batcher::flush(Table& table) {
  if (table.pending.parts.empty()) return;
  if (table.inflight >= static_cast<int>(config_.max_inflight_flushes)) return;  // flush_done() retries
  if (table.timer_armed) {
    uv_timer_stop(table.timer);
    table.timer_armed = false;
  }
  table.last_flush_ms = uv_now(loop_);
  Batch batch = std::move(table.pending);
  table.pending = Batch{};
  send(table, std::move(batch));
}

void Batcher::send(Table& table, Batch batch) {
  ++table.inflight;
  flushes_.push_back(std::make_unique<Flush>(*this, table, std::move(batch)));
  Flush& started = *flushes_.back();
  UpstreamRequest request;
  request.method = "POST";
  request.target = table.target.upstream_target;
  request.headers = table.target.headers;
  request.has_body = true;
  request.body_length = static_cast<int64_t>(started.batch().data.size());
  log_event(LogLevel::kDebug, "batch_flush",
            {{"table", table.target.table},
             {"rows", std::to_string(started.batch().rows)},
             {"requests", std::to_string(started.batch().parts.size())},
             {"bytes", std::to_string(started.batch().data.size())}});
  if (pool_.submit(&started, std::move(request)) == UpstreamPool::Submit::kQueueFull) {
    UpstreamOutcome outcome;
    outcome.code = CURLE_COULDNT_CONNECT;
    outcome.error = "the upstream queue is full (--queue-max)";
    flush_done(started, outcome);
  }
}

std::pair<Batcher::Batch, Batcher::Batch> Batcher::bisect(const Table& table, const Batch& batch) {
  std::pair<Batch, Batch> halves;
  size_t middle = batch.parts.size() / 2;
  for (size_t i = 0; i < batch.parts.size(); ++i) {
    const Part& part = batch.parts[i];
    Batch& half = i < middle ? halves.first : halves.second;
    append(half, table, std::string_view(batch.data).substr(part.offset, part.size), false,
           part.rows, part.ticket);
  }
  return halves;
}

void Batcher::answer(Batch& batch, const BatchResult& result) {
  for (Part& part : batch.parts)
    if (part.ticket->waiter != nullptr) {
      BatchWaiter* waiter = part.ticket->waiter;
      part.ticket->waiter = nullptr;
      waiter->batch_done(result);
    }
}

void Batcher::flush_done(Flush& done, const UpstreamOutcome& outcome) {
  Table& table = done.table();
  Batch& batch = done.batch();
  --table.inflight;
  BatchResult result = done.result();
  bool committed = outcome.code == CURLE_OK && result.status == 200;
  if (outcome.code != CURLE_OK) {
    ChError error(502, kNetworkError,
                  "Cannot insert a batch into upstream " + pool_.display_name() + ": " + outcome.error);
    result = BatchResult{502, "Bad Gateway",
                         {{"Content-Type", "text/plain; charset=UTF-8"},
                          {"X-ClickHouse-Exception-Code", std::to_string(kNetworkError.number)}},
                         error_body(error)};
  }
  if (!committed && outcome.code == CURLE_OK && batch.parts.size() > 1 &&
      classify_error(exception_code(result.body, result.headers)) == ErrorClass::kData) {
    log_event(LogLevel::kInfo, "batch_bisect",
              {{"table", table.target.table}, {"requests", std::to_string(batch.parts.size())},
               {"code", std::to_string(exception_code(result.body, result.headers))}});
    auto [left, right] = bisect(table, batch);
    buffered_bytes_ += left.data.size() + right.data.size();
    buffered_bytes_ -= batch.data.size();
    send(table, std::move(left));
    send(table, std::move(right));
  } else {
    if (!committed)
      log_event(LogLevel::kWarn, "batch_failed",
                {{"table", table.target.table}, {"status", std::to_string(result.status)},
                 {"requests", std::to_string(batch.parts.size())}});
    buffered_bytes_ -= batch.data.size();
    answer(batch, result);
  }
  // Retire the flush; it is on the stack of the pool's callback.
  for (auto it = flushes_.begin(); it != flushes_.end(); ++it) {
    if (it->get() == &done) {
      finished_.push_back(std::move(*it));
      flushes_.erase(it);
      break;
    }
  }
  if (!table.pending.parts.empty()) {
    if (flush_now_ || table.pending.rows >= config_.flush_rows ||
        table.pending.data.size() >= config_.flush_bytes || !table.timer_armed)
      flush(table);
  }
  maybe_idle();
}

void Batcher::flush_all() {
  flush_now_ = true;
  for (auto& [key, table] : tables_) flush(*table);
  maybe_idle();
}

void Batcher::maybe_idle() {
  if (flush_now_ && idle() && on_idle_) on_idle_();
}

void Batcher::expire(uint64_t now_ms) {
  finished_.clear();
  for (auto it = tables_.begin(); it != tables_.end();) {
    Table& t = *it->second;
    if (t.inflight == 0 && t.pending.parts.empty() && now_ms > t.last_used_ms + kTableIdleMs) {
      close_handle(t.timer);
      it = tables_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace chsidecar
