#include "exchange.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "app.h"
#include "body_decoder.h"
#include "connection.h"
#include "http_response.h"
#include "log.h"
#include "replicas.h"
#include "spool.h"
#include "spooled_rows.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {

// A 373 is raised before the query runs, so a retry is safe. The session is
// busy with a request of another client, or with a query of its own that
// ClickHouse still runs after the sidecar answered (an upstream timeout, a
// cut answer): retry after 5, 20, 80 ms, ... up to 1 s apart.
constexpr uint64_t kRetry373FirstDelayMs = 5;
constexpr uint64_t kRetry373MaxDelayMs = 1'000;
constexpr size_t kCodePrefixBytes = 10;  // "Code: 373,"

// True if `data` has at least `n` lines (the last one may lack its line end).
bool has_lines(std::string_view data, size_t n) {
  size_t lines = !data.empty() && data.back() != '\n' ? 1 : 0;
  for (size_t at = data.find('\n'); at != std::string_view::npos && lines < n;
       at = data.find('\n', at + 1))
    ++lines;
  return lines >= n;
}

// ClickHouse opened no session for the request: it has no such session
// (372), would not open one (374), or did not let the user in (192-195,
// 516). Such a session holds no slot of --max-sessions.
bool refuses_session(int code) {
  switch (code) {
    case 192: case 193: case 194: case 195: case 372: case 374: case 516:
      return true;
    default:
      return false;
  }
}

// The client side of the current answer, for http_response's framing.
ClientLeg client_leg(const App& app, const Connection& connection, int http_minor, bool close) {
  return {http_minor, close, connection.requests(), app.keep_alive_policy()};
}

bool is_373(std::string_view body) {
  return body.substr(0, kCodePrefixBytes) == "Code: 373," ||
         body.substr(0, kCodePrefixBytes) == "Code: 373.";
}

}  // namespace

Exchange::Exchange(App& app, Connection& connection, RequestHead head)
    : app_(app), connection_(connection), head_(std::move(head)), share_(app.memory()) {
  body_complete_ = !head_.has_body;
  started_ns_ = uv_hrtime();
  bytes_at_start_ = connection.bytes_written();
}

Exchange::~Exchange() {
  if (structure_ticket_ != nullptr) structure_ticket_->done = nullptr;
  close_handle(retry_timer_);
  app_.memory().cancel(this);
  share_.release();
}

// The state diagram of exchange.h; every move goes through enter().
bool Exchange::can_enter(State from, State to) {
  if (to == State::kDone) return from != State::kDone;
  switch (from) {
    case State::kAdmitting:
      return to == State::kRouting;
    case State::kRouting:
      return to == State::kAdmitting || to == State::kRouting || to == State::kDecoding ||
             to == State::kWaitingTurn || to == State::kCollecting || to == State::kUpstream;
    case State::kDecoding:
      return to == State::kRouting;
    case State::kWaitingTurn:
      return to == State::kUpstream;
    case State::kCollecting:
      return to == State::kBatched || to == State::kUpstream || to == State::kAwaitingColumns ||
             to == State::kRouting;
    case State::kAwaitingColumns:
      return to == State::kRouting;
    case State::kBatched:
      return false;
    case State::kUpstream:  // again: failover to another replica
      return to == State::kUpstream || to == State::kHoldingHead;
    case State::kHoldingHead:
      return to == State::kUpstream || to == State::kAbortingFor373;
    case State::kAbortingFor373:
      return to == State::kRetryWait;
    case State::kRetryWait:
      return to == State::kUpstream;
    case State::kDone:
      return false;
  }
  return false;
}

void Exchange::enter(State next) {
  assert(can_enter(state_, next));
  state_ = next;
}

void Exchange::start() {
  app_.proxy_metrics().requests_in_flight.get().add(1);
  // Only the bare "/ping" is ClickHouse's ping; with a query string it is a
  // query whose parameters the server checks (code 115 for an unknown one).
  if (head_.target == "/ping" && (head_.method == "GET" || head_.method == "HEAD")) {
    route_ = "ping";
    answer_status_ = 200;
    close_after_ = !head_.keep_alive || app_.draining();
    connection_.write(ping_response(app_.server_facts().ping_headers, head_.method == "HEAD",
                                    client_leg(app_, connection_, head_.http_minor, close_after_)));
    complete();
    return;
  }
  // Memory first: nothing of the request is held or sent before it has its share.
  need_ = body_share();
  if (app_.memory().admit(need_)) {
    admitted();
    route();
    return;
  }
  if (app_.config().memory_wait_ms == 0 || app_.draining()) {
    respond_memory_full();
    return;
  }
  enter(State::kAdmitting);
  app_.wait_for_memory(this, need_);
}

// The most the body can hold (wants_body() keeps it there): all of it if it
// is small, else --body-buffer and the one read that crosses it.
uint64_t Exchange::body_share() const {
  if (!head_.has_body) return 0;
  uint64_t cap = app_.config().body_buffer_bytes + App::kReadBufferBytes;
  return head_.content_length >= 0 ? std::min<uint64_t>(head_.content_length, cap) : cap;
}

void Exchange::admitted() {
  share_.adopt(need_);
  // Reserved once: appends never reallocate (a doubling would hold twice the share).
  body_.reserve(share_.bytes());
  enter(State::kRouting);
}

void Exchange::memory_granted() {
  if (state_ != State::kAdmitting) {  // cannot happen: abort() cancels the wait
    app_.memory().give(need_);
    return;
  }
  admitted();
  connection_.body_consumed();  // reading resumes (before route(), which may end us)
  route();
}

void Exchange::memory_refused() {
  if (state_ == State::kAdmitting) respond_memory_full();
}

void Exchange::respond_memory_full() {
  const MemoryBudget& m = app_.memory();
  app_.proxy_metrics().memory_refused.get().inc();
  // A body not read yet is left unread: the connection ends after the answer.
  respond_error({503, kTooManySimultaneousQueries,
                 "Memory limit of the sidecar reached (--max-memory " + std::to_string(m.limit()) +
                     " bytes; " + std::to_string(m.used()) +
                     " in use by request bodies, queued answers and batches, " +
                     std::to_string(m.waiting()) + " requests waiting)"},
                1, !body_complete_);
}

// Decides how the request runs (router.h): alone, batched, or in its
// session's order.
void Exchange::route() {
  enter(State::kRouting);
  if (use_plan()) return;
  RouteContext context;
  context.session_mode = app_.config().session_mode;
  context.batch_mode = app_.config().batch_mode;
  context.ack_mode = app_.config().ack_mode;
  context.server_async_insert = app_.server_facts().async_insert;
  context.server_any_case_encoding = app_.server_facts().modern_encodings;
  context.session_is_stateful = [this](const std::string& key) { return app_.sessions().is_stateful(key); };
  context.server_row_binary_with_defaults = app_.server_facts().row_binary_with_defaults;
  context.table_structure = [this](const std::string& key) { return app_.structures().find(key); };
  Route route = route_request(head_, routing_body(), body_complete_, context, decoding_);
  if (!route.structure.key.empty()) app_.structures().use(route.structure);
  route_ = route.label;
  sniff_insert_ = route.sniff_insert;
  upstream_target_ = std::move(route.upstream_target);
  if (route.action == Route::Action::kNeedBody) {
    send_continue();
    return;  // append_body() routes again when more of the SQL is here
  }
  if (route.action == Route::Action::kNeedDecodedBody) {
    await_decoding(route.body_coding);
    return;
  }
  if (route.has_session)
    app_.proxy_metrics().session_requests.at({route.stateful ? "stateful" : "stateless"}).inc();
  switch (route.action) {
    case Route::Action::kNeedBody:
    case Route::Action::kNeedDecodedBody:
    case Route::Action::kForward:
      forward();
      return;
    case Route::Action::kBatch:
      if (route.plan_reusable)
        connection_.plan_memo().remember(
            head_.target, head_.headers, server_facts_bits(),
            {route.plan, std::string(routing_body().substr(0, route.data_offset)), route.session_key});
      use(std::move(route.plan), route.data_offset);
      return;
    case Route::Action::kSession:
      break;
  }
  decoded_.clear();  // it waits its turn with the body as sent
  decoded_.shrink_to_fit();
  session_timeout_ms_ = route.session_timeout_ms;
  session_key_ = std::move(route.session_key);
  switch (app_.sessions().admit(session_key_, this, session_timeout_ms_)) {
    case SessionTable::Admit::kRun:
      in_session_ = true;
      forward();
      return;
    case SessionTable::Admit::kQueued:
      in_session_ = true;
      enter(State::kWaitingTurn);
      return;
    case SessionTable::Admit::kQueueFull:
      respond_error({503, kTooManySimultaneousQueries,
                     "Too many requests waiting in one session (--session-queue-max " +
                         std::to_string(app_.config().session_queue_max) + ")"},
                    1);
      return;
    case SessionTable::Admit::kTableFull:
      respond_error({503, kTooManySimultaneousQueries,
                     "Too many stateful sessions (--max-sessions " +
                         std::to_string(app_.config().max_sessions) + ")"},
                    1);
      return;
  }
}

// The body routing reads: decoded once its SQL was found inside an encoding.
std::string_view Exchange::routing_body() const {
  return decoding_ == BodyDecoding::kDecoded ? std::string_view(decoded_) : std::string_view(body_);
}

// The SQL is inside the body's `coding`: the whole body is collected,
// decoded and routed again (kDecoding).
void Exchange::await_decoding(BodyCoding coding) {
  enter(State::kDecoding);
  decode_coding_ = coding;
  send_continue();
  if (body_complete_ || !body_rewindable_) decode_for_routing();  // else finish_body() decodes it
}

// The whole body is here, or more than body_buffer of it (which then goes
// alone, streamed): decode it within the limits and route again.
void Exchange::decode_for_routing() {
  decoding_ = BodyDecoding::kFailed;
  if (body_complete_ && body_rewindable_ &&
      decode_body(decode_coding_, body_, app_.config().max_decompressed_bytes,
                  app_.config().max_compression_ratio, decoded_) == DecodeResult::kOk)
    decoding_ = BodyDecoding::kDecoded;
  if (decoding_ != BodyDecoding::kDecoded) decoded_.clear();
  route();
}

void Exchange::send_continue() {
  if (!head_.expect_continue || continue_sent_ || body_complete_) return;
  continue_sent_ = true;
  connection_.write("HTTP/1.1 100 Continue\r\n\r\n");
}

// The facts about the server a routing decision reads, as PlanMemo compares them.
unsigned Exchange::server_facts_bits() const {
  const ServerFacts& facts = app_.server_facts();
  return (facts.async_insert ? 1u : 0u) | (facts.modern_encodings ? 2u : 0u);
}

// The connection's last INSERT had the same URL, headers and SQL: take its
// plan instead of parsing again (batch_plan.h).
bool Exchange::use_plan() {
  if (app_.config().batch_mode != BatchMode::kAuto || head_.method != "POST" || !head_.has_body)
    return false;
  const PlanMemo::Entry* memo =
      connection_.plan_memo().find(head_.target, head_.headers, server_facts_bits());
  if (memo == nullptr) return false;
  // Remembered only from a session the router batched (not pinned by
  // --session-mode or session_check): one that holds state since runs in order.
  if (!memo->session_key.empty() && app_.sessions().is_stateful(memo->session_key)) return false;
  size_t data_offset = 0;
  if (!memo->sql_prefix.empty()) {
    if (decoding_ == BodyDecoding::kRaw && memo->plan->coding != BodyCoding::kIdentity) {
      await_decoding(memo->plan->coding);  // the SQL is inside the encoding, as last time
      return true;
    }
    if (decoding_ == BodyDecoding::kFailed ||
        routing_body().substr(0, memo->sql_prefix.size()) != memo->sql_prefix)
      return false;
    data_offset = memo->sql_prefix.size();
  }
  if (!memo->session_key.empty())
    app_.proxy_metrics().session_requests.at({"stateless"}).inc();
  upstream_target_ = memo->plan->passthrough_target;
  use(memo->plan, data_offset);
  return true;
}

void Exchange::use(std::shared_ptr<const BatchPlan> plan, size_t data_offset) {
  plan_ = std::move(plan);
  target_ = std::shared_ptr<const BatchTarget>(plan_, &plan_->target);
  data_offset_ = data_offset;
  route_ = "insert_batched";
  enter(State::kCollecting);
  send_continue();
  if (body_complete_) submit_batch();
}

// The whole body is here: its rows join a batch, or it goes alone.
void Exchange::submit_batch() {
  if (wait_for_columns()) return;
  // A decoded copy of the body lives until this function returns; it
  // counts in the memory budget meanwhile.
  std::string decoded;
  MemoryCharge decoded_charge{app_.memory()};
  std::string_view data;
  RowChunk chunk;
  if (!batch_data(decoded, decoded_charge, data) || !split_batchable(data, chunk)) {
    forward();
    return;
  }
  key_by_chunk(chunk);
  enter(State::kBatched);
  // The rows move into a batch (or the spool's queue), which counts them
  // itself; the body and its decoded copy are freed on return.
  decoded_charge.release();
  share_.release();
  hand_over(chunk);
}

// RowBinary whose table's columns were not known when it was routed:
// routed again once they are (structure_cache.h), at most once, waiting in
// kAwaitingColumns meanwhile; alone if they do not come. False when the
// plan needs no columns or has them.
bool Exchange::wait_for_columns() {
  const BatchPlan& plan = *plan_;
  if (!needs_table_structure(plan.format) || plan.options.columns != nullptr) return false;
  if (structure_ticket_ == nullptr) {
    structure_ticket_ = std::make_shared<StructureTicket>();
    if (app_.structures().find(plan.target.structure_key) != nullptr) {
      route();  // answered while the body came
      return true;
    }
    structure_ticket_->done = [this] { route(); };
    if (app_.structures().wait(plan.target.structure_key, structure_ticket_)) {
      enter(State::kAwaitingColumns);
      return true;
    }
  }
  forward();
  return true;
}

// The rows' bytes, decoded when the plan says the body is compressed
// (into `decoded`, charged to `charge`). False when ClickHouse should read
// the body as it is, alone: too large, too compressed (a bomb stops early),
// corrupt, or no room for it in the memory budget.
bool Exchange::batch_data(std::string& decoded, MemoryCharge& charge, std::string_view& data) {
  if (decoding_ == BodyDecoding::kDecoded) {
    data = std::string_view(decoded_).substr(std::min(data_offset_, decoded_.size()));
    return true;
  }
  data = std::string_view(body_).substr(std::min(data_offset_, body_.size()));
  if (plan_->coding == BodyCoding::kIdentity) return true;
  MemoryBudget& memory = app_.memory();
  uint64_t limit = std::min<uint64_t>(app_.config().max_decompressed_bytes, memory.available());
  if (decode_body(plan_->coding, data, limit, app_.config().max_compression_ratio, decoded) !=
      DecodeResult::kOk)
    return false;
  charge.take(decoded.capacity());
  data = decoded;
  return true;
}

// Splits `data` into `chunk`. False when the rows go alone: a batch
// already, or rows the splitter cannot read exactly as ClickHouse would.
bool Exchange::split_batchable(std::string_view data, RowChunk& chunk) {
  const BatchPlan& plan = *plan_;
  // At least as many lines as --passthrough-rows: a batch already, sent as it
  // is (lines are never fewer than rows in the line formats). ClickHouse
  // checks it, so checking it here first would only cost time.
  if (!binary_format(plan.format) && has_lines(data, app_.config().passthrough_rows)) return false;
  // Malformed rows included: the client gets ClickHouse's own answer, and
  // in a batch they could not change what other requests' rows become.
  RowError error;
  if (!split_rows(plan.format, data, chunk, error, plan.options)) {
    // Rows that do not walk by a table's learnt columns: a column may have come.
    if (!plan.target.structure_key.empty()) app_.structures().refresh(plan.target.structure_key);
    return false;
  }
  // Nothing to batch (ClickHouse still checks the table), or a batch already:
  // waiting for others would only slow it down.
  if (chunk.row_count == 0 || chunk.row_count >= app_.config().passthrough_rows) return false;
  // A header naming another number of columns than the INSERT: ClickHouse
  // reads every row against it (and may take it, with defaults).
  size_t columns = plan.insert.column_count;
  return chunk.header.empty() || columns == 0 ||
         header_name_count(plan.format, chunk.header, plan.options) == columns;
}

// The merge key also holds what the chunk says of its rows.
void Exchange::key_by_chunk(const RowChunk& chunk) {
  if (!chunk.header.empty()) {
    // The header line is part of this request's key: its own copy of the target.
    auto with_header = std::make_shared<BatchTarget>(plan_->target);
    with_header->header_lines = std::string(chunk.header);
    with_header->key.append(chunk.header);
    target_ = std::move(with_header);
  }
  if (!chunk.structure.empty()) {
    // Native: every block of a batch has these names and types.
    auto with_structure = std::make_shared<BatchTarget>(*target_);
    with_structure->key.push_back('\0');
    with_structure->key.append(chunk.structure);
    target_ = std::move(with_structure);
  }
}

// The rows go to the spool (an early answer) or wait in a batch.
void Exchange::hand_over(const RowChunk& chunk) {
  // An early answer only for a key ClickHouse has taken rows of (batcher.h):
  // an unproven one waits for its batch, and gets ClickHouse's answer.
  if (plan_->spool_ack && app_.batcher().proven(target_->key)) {
    spool_rows(chunk);
    return;
  }
  ticket_ = std::make_shared<BatchTicket>();
  ticket_->waiter = this;
  Batcher::Add added = app_.batcher().add(*target_, chunk, ticket_);
  if (added != Batcher::Add::kAccepted) {
    ticket_->waiter = nullptr;
    if (added == Batcher::Add::kOverMemory) respond_memory_full();
    else respond_buffers_full();
    return;
  }
  body_.clear();
  body_.shrink_to_fit();
  decoded_.clear();
  decoded_.shrink_to_fit();
}

// Answers once the rows are fsynced to the spool; the batch commits later.
void Exchange::spool_rows(const RowChunk& chunk) {
  // Spooled rows also wait in memory for their batch: the same cap applies.
  if (app_.batcher().buffered_bytes() + chunk.rows.size() > app_.config().buffer_max_bytes) {
    respond_buffers_full();
    return;
  }
  if (!app_.memory().try_take(chunk.rows.size())) {
    respond_memory_full();
    return;
  }
  auto spooled = std::make_shared<SpooledRows>(app_.batcher(), app_.memory(), app_.spool(),
                                               app_.config(), app_.batch_metrics(), target_, chunk,
                                               chunk.rows.size());
  spooled->waiter = this;
  Spool::Append appended = app_.spool().append(spooled->record(), spooled->id, spooled);
  if (appended == Spool::Append::kQueued) {
    ticket_ = std::move(spooled);
    body_.clear();
    body_.shrink_to_fit();
    return;
  }
  const Config& config = app_.config();
  std::string why;
  switch (appended) {
    case Spool::Append::kFull:
      why = "The spool is full (--spool-max-bytes " + std::to_string(config.spool_max_bytes) + ")";
      break;
    case Spool::Append::kNoSpace:
      why = "The spool's disk takes no writes (--spool-dir " + config.spool_dir + ": " +
            std::strerror(app_.spool().write_error()) +
            "); nothing was inserted. Early answers resume once a write succeeds (tried every "
            "second); INSERTs without wait_for_async_insert=0 are served meanwhile";
      break;
    case Spool::Append::kDeadLettersFull:
      why = "The dead-letter files in --spool-dir " + config.spool_dir +
            " reached --dead-letter-max-bytes " + std::to_string(config.dead_letter_max_bytes) +
            "; nothing was inserted. Early answers resume once dead-letter-*.jsonl files are "
            "moved away (checked every 5 seconds)";
      break;
    default:
      why = "The spool is not available (--spool-dir)";
  }
  respond_error({503, kTooManySimultaneousQueries, why}, 1);
}

void Exchange::respond_buffers_full() {
  respond_error({503, kTooManySimultaneousQueries,
                 "Insert buffers are full (--buffer-max-bytes " +
                     std::to_string(app_.config().buffer_max_bytes) + ")"},
                1);
}

void Exchange::batch_done(const BatchResult& result) {
  if (state_ == State::kDone) return;
  answer_status_ = result.status;
  close_after_ = !head_.keep_alive || app_.draining();
  std::string& answer = connection_.answer_buffer();
  answer.clear();
  append_whole_answer(answer, result.status, result.reason, result.headers, result.body,
                      client_leg(app_, connection_, head_.http_minor, close_after_));
  connection_.write_now(answer);
  complete();
}

void Exchange::session_turn() {
  if (state_ != State::kWaitingTurn) return;
  forward();
}

void Exchange::forward() {
  enter(State::kUpstream);
  decoded_.clear();  // alone: the body goes as the client sent it
  decoded_.shrink_to_fit();
  if (std::string_view(route_) == "insert_batched") route_ = "insert_passthrough";
  send_continue();
  Replicas& replicas = app_.replicas();
  UpstreamPool* pool;
  if (in_session_) {
    // A stateful session's state lives on one replica: stay there, or fail clearly.
    size_t replica = app_.sessions().replica(session_key_);
    if (replica == SIZE_MAX) {
      replica = replicas.choose_index();
      app_.sessions().set_replica(session_key_, replica);
    } else if (!replicas.healthy(replica)) {
      respond_error({502, kNetworkError,
                     "The replica of this session, " + replicas.at(replica).display_name() +
                         ", is down: the session's state (temporary tables, settings) is lost"});
      return;
    }
    pool = &replicas.at(replica);
  } else {
    pool = &replicas.choose();
  }
  forward_to(pool);
}

UpstreamRequest Exchange::upstream_request() const {
  UpstreamRequest request;
  request.method = head_.method;
  request.target = upstream_target_;
  request.has_body = head_.has_body;
  request.body_length = head_.content_length;
  // Headers named in Connection are hop-by-hop too.
  const Header* connection_header = find_header(head_.headers, "Connection");
  for (const Header& h : head_.headers) {
    if (is_hop_by_hop(h.name) || iequals(h.name, "Host") || iequals(h.name, "Content-Length"))
      continue;
    if (connection_header != nullptr && connection_header->value.find(h.name) != std::string::npos)
      continue;
    request.headers.push_back(h);
  }
  return request;
}

void Exchange::forward_to(UpstreamPool* pool) {
  pool_ = pool;
  enter(State::kUpstream);
  UpstreamRequest request = upstream_request();
  if (pool_->submit(this, std::move(request)) == UpstreamPool::Submit::kQueueFull) {
    respond_error({503, kTooManySimultaneousQueries,
                   "Too many requests waiting for an upstream connection (--queue-max " +
                       std::to_string(app_.config().queue_max) + ")"},
                  1);
  }
}

void Exchange::append_body(const char* data, size_t size) {
  if (state_ == State::kDone) return;
  if (state_ == State::kAdmitting) {  // bytes of the read that brought the head; kept for later
    body_.append(data, size);
    body_received_ += size;
    return;
  }
  if (sniff_insert_) {
    sniff_insert_ = false;
    if (std::string_view(route_) == "query" && starts_with_insert(std::string_view(data, size)))
      route_ = "insert_passthrough";
  }
  body_.append(data, size);
  body_received_ += size;
  if (body_received_ > app_.config().body_buffer_bytes) body_rewindable_ = false;
  if (state_ == State::kCollecting && !body_rewindable_) forward();  // too big to batch
  else if (state_ == State::kDecoding) { if (!body_rewindable_) decode_for_routing(); }
  else if (state_ == State::kRouting) route();
  else if (on_upstream(state_)) pool_->resume_body(this);
}

void Exchange::finish_body() {
  if (state_ == State::kDone) return;
  body_complete_ = true;
  if (state_ == State::kAdmitting) return;
  if (state_ == State::kCollecting) submit_batch();
  else if (state_ == State::kDecoding) decode_for_routing();
  else if (state_ == State::kRouting) route();
  else if (on_upstream(state_)) pool_->resume_body(this);
}

bool Exchange::wants_body() const {
  if (state_ == State::kAdmitting) return false;
  // Routing and collecting read at most body_buffer bytes and then move on.
  if (state_ == State::kDone || state_ == State::kRouting || state_ == State::kDecoding ||
      state_ == State::kCollecting)
    return true;
  // A body no longer resendable holds sent bytes until half of it is sent:
  // count them too, so the body stays within its share.
  size_t held = body_rewindable_ ? body_.size() - body_sent_ : body_.size();
  return held < app_.config().body_buffer_bytes;
}

size_t Exchange::upstream_read_body(char* buf, size_t size) {
  size_t available = body_.size() - body_sent_;
  if (available == 0) return body_complete_ ? 0 : kUpstreamPause;
  size_t n = std::min(size, available);
  std::memcpy(buf, body_.data() + body_sent_, n);
  body_sent_ += n;
  if (!body_rewindable_) {
    // Sent bytes can no longer be resent: drop them, cheaply.
    if (body_sent_ == body_.size()) {
      body_.clear();
      body_sent_ = 0;
    } else if (body_sent_ >= body_.size() / 2) {
      body_.erase(0, body_sent_);
      body_sent_ = 0;
    }
  }
  connection_.body_consumed();
  return n;
}

bool Exchange::upstream_rewind_body() {
  if (!body_rewindable_) return false;
  body_sent_ = 0;
  return true;
}

bool Exchange::holds_for_373() const {
  uint64_t wait_ns = app_.config().session_lock_wait_ms * 1'000'000;
  return in_session_ && status_ == 500 && body_rewindable_ &&
         (first_373_ns_ == 0 ? wait_ns > 0 : uv_hrtime() - first_373_ns_ < wait_ns);
}

void Exchange::upstream_response_head(int status, std::string reason,
                                      std::vector<Header> headers) {
  status_ = status;
  reason_ = std::move(reason);
  response_headers_ = std::move(headers);
  if (holds_for_373()) {
    enter(State::kHoldingHead);
    return;
  }
  send_head();
}

// The upstream's head with the client leg's framing (http_response.h).
void Exchange::send_head() {
  if (head_sent_ || connection_.closing()) return;
  head_sent_ = true;
  answer_status_ = status_;
  bool head_only = head_.method == "HEAD" || status_ == 204 || status_ == 304;
  bool close = !head_.keep_alive || app_.draining() ||
               (head_.expect_continue && !continue_sent_ && !body_complete_);
  ForwardedHead head = forwarded_head(status_, reason_, response_headers_, head_only,
                                      client_leg(app_, connection_, head_.http_minor, close));
  chunked_ = head.chunked;
  close_after_ = head.close;
  connection_.write(head.bytes);
}

void Exchange::send_data(const char* data, size_t size) {
  if (size == 0) return;
  if (chunked_) connection_.write(chunk_header(size));
  connection_.write(std::string_view(data, size));
  if (chunked_) connection_.write(kChunkTrailer);
}

size_t Exchange::upstream_response_data(const char* data, size_t size) {
  if (connection_.closing() || state_ == State::kDone) return 0;
  if (state_ == State::kHoldingHead) {
    if (held_body_.size() + size < kCodePrefixBytes) {  // too short to tell yet
      held_body_.append(data, size);
      return size;
    }
    std::string probe = held_body_ + std::string(data, std::min(size, kCodePrefixBytes));
    if (is_373(probe)) {
      enter(State::kAbortingFor373);
      return 0;  // abort the transfer; upstream_done() schedules the retry
    }
    enter(State::kUpstream);
    send_head();
    send_data(held_body_.data(), held_body_.size());
    held_body_.clear();
  }
  // Paused at --response-buffer, or at the memory budget while some of the
  // answer is still queued: once the client has read it all, the answer
  // moves on, whatever others hold.
  size_t pending = connection_.pending_write_bytes();
  if (pending >= app_.config().response_buffer_bytes || (pending > 0 && app_.memory().over(size)))
    return CURL_WRITEFUNC_PAUSE;
  if (head_.method != "HEAD") send_data(data, size);
  return size;
}

void Exchange::client_drained() {
  if (on_upstream(state_)) pool_->resume_response(this);
}

void Exchange::upstream_done(const UpstreamOutcome& outcome) {
  if (state_ == State::kDone) return;
  if (state_ == State::kAbortingFor373) {
    schedule_373_retry();
    return;
  }
  if (outcome.code != CURLE_OK && !connection_.closing()) {
    if (head_sent_) {
      // The status is out; only a cut connection tells the client the answer
      // is incomplete. Every byte the upstream sent goes out first (26.x
      // ends a query that fails mid-stream with the exception and a close,
      // without the last chunk): then the same close, without a last chunk.
      log_event(LogLevel::kWarn, "upstream_failed_mid_response",
                {{"upstream", pool_->display_name()}, {"error", outcome.error}});
      leave_session();
      enter(State::kDone);
      record(answer_status_);
      connection_.close_when_flushed();
      return;
    }
    // Without a connection (refused, unresolved, or the connect timed out)
    // nothing reached the server: another replica may take the request (a
    // stateful session may not move).
    bool never_sent = !outcome.connected;
    if (never_sent && !in_session_ && failovers_ + 1 < app_.replicas().size() && upstream_rewind_body()) {
      ++failovers_;
      size_t next = app_.replicas().choose_index(app_.replicas().index_of(pool_));
      forward_to(&app_.replicas().at(next));
      return;
    }
    bool timeout = outcome.code == CURLE_OPERATION_TIMEDOUT &&
                   outcome.error.find("too slow") != std::string::npos;
    log_event(LogLevel::kWarn, timeout ? "upstream_timeout" : "upstream_unreachable",
              {{"upstream", pool_->display_name()}, {"error", outcome.error}});
    if (timeout) {
      respond_error({504, kTimeoutExceeded,
                     "Upstream " + pool_->display_name() + " sent nothing for " +
                         std::to_string(app_.config().upstream_timeout_ms / 1000) +
                         " s (--upstream-timeout)"});
    } else {
      respond_error({502, kNetworkError,
                     "Cannot get an answer from upstream " + pool_->display_name() + ": " +
                         outcome.error});
    }
    return;
  }
  if (state_ == State::kHoldingHead) {
    enter(State::kUpstream);
    send_head();
    send_data(held_body_.data(), held_body_.size());
  }
  if (chunked_) connection_.write(kLastChunk);
  session_refused_ = refuses_session(outcome.exception_code);
  complete();
}

void Exchange::schedule_373_retry() {
  enter(State::kRetryWait);
  if (retry_timer_ == nullptr) {
    retry_timer_ = make_handle<uv_timer_t>();
    uv_timer_init(app_.loop(), retry_timer_);
    retry_timer_->data = this;
  }
  log_event(LogLevel::kDebug, "session_locked_retry", {{"attempt", std::to_string(retries_373_ + 1)}});
  app_.proxy_metrics().upstream_retries.at({pool_->display_name(), "session_locked"}).inc();
  uint64_t now = uv_hrtime();
  if (first_373_ns_ == 0) first_373_ns_ = now;
  uint64_t left_ms = app_.config().session_lock_wait_ms - std::min(
      app_.config().session_lock_wait_ms, (now - first_373_ns_) / 1'000'000);
  uint64_t delay_ms = kRetry373MaxDelayMs;
  if (retries_373_ < 5) delay_ms = std::min(delay_ms, kRetry373FirstDelayMs << (2 * retries_373_));
  uv_timer_start(retry_timer_, &Exchange::on_retry_timer, std::min(delay_ms, left_ms), 0);
  ++retries_373_;
}

void Exchange::on_retry_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Exchange*>(timer->data);
  if (self == nullptr || self->state_ != State::kRetryWait) return;
  self->held_body_.clear();
  self->status_ = 0;
  self->body_sent_ = 0;
  self->forward();
}

void Exchange::respond_error(const ChError& error, int retry_after_s, bool close) {
  // Without the whole body read, the connection cannot carry another request
  // unless the client still sends it; a client told to wait for 100 won't.
  close_after_ = close || !head_.keep_alive || app_.draining() ||
                 (head_.expect_continue && !continue_sent_ && !body_complete_);
  answer_status_ = error.http_status;
  if (!connection_.closing()) connection_.write(error_response(error, close_after_, retry_after_s));
  complete();
}

void Exchange::leave_session() {
  if (!in_session_) return;
  in_session_ = false;
  app_.sessions().finished(session_key_, this, app_.now_ms(), session_refused_);
}

void Exchange::complete() {
  if (state_ == State::kDone) return;
  enter(State::kDone);
  body_.clear();
  body_.shrink_to_fit();
  share_.release();
  decoded_.clear();
  decoded_.shrink_to_fit();
  leave_session();
  record(answer_status_);
  connection_.exchange_finished(close_after_);
}

// Counts the request and writes its access line; once per exchange. The
// path goes without its query string, which may hold a password.
void Exchange::record(int status) {
  assert(state_ == State::kDone);  // entered once: recorded once
  ProxyMetrics& pm = app_.proxy_metrics();
  double seconds = static_cast<double>(uv_hrtime() - started_ns_) / 1e9;
  pm.requests.at({route_, status_label(status)}).inc();
  pm.request_duration.at({route_}).observe(seconds);
  pm.requests_in_flight.get().add(-1);
  if (!app_.config().access_log) return;
  std::string_view path = split_target(head_.target).path;
  constexpr size_t kMaxPathBytes = 256;
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3f", seconds * 1000);
  log_event(LogLevel::kInfo, "access",
            {{"method", head_.method},
             {"path", std::string(path.substr(0, kMaxPathBytes))},
             {"status", std::to_string(status)},
             {"duration_ms", duration},
             {"bytes_in", std::to_string(body_received_)},
             {"bytes_out", std::to_string(connection_.bytes_written() - bytes_at_start_)},
             {"route", route_}});
}

void Exchange::abort() {
  if (state_ == State::kDone) return;
  State was = state_;
  enter(State::kDone);
  if (was == State::kAdmitting) app_.memory().cancel(this);
  share_.release();
  record(head_sent_ ? answer_status_ : 499);  // 499: the client went away first
  if (on_upstream(was) && pool_ != nullptr) pool_->cancel(this);
  if (ticket_ != nullptr) ticket_->waiter = nullptr;  // the rows are still inserted
  if (structure_ticket_ != nullptr) structure_ticket_->done = nullptr;
  if (retry_timer_ != nullptr) uv_timer_stop(retry_timer_);
  if (in_session_) {
    in_session_ = false;
    app_.sessions().cancel(session_key_, this, app_.now_ms());
  }
}

}  // namespace chsidecar
