#include "connection.h"

#include <cassert>

#include "app.h"
#include "exchange.h"
#include "http_parser.h"
#include "http_response.h"
#include "log.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {

// After a final answer and a shutdown, input is read and dropped this long so
// the client sees the answer instead of a reset.
constexpr uint64_t kLingerMs = 2'000;
// Output buffers up to this size stay allocated between answers.
constexpr size_t kKeptOutputBytes = 4096;

struct WriteRequest {
  uv_write_t req;
  Connection* connection;
  std::string data;
};

Connection* from(llhttp_t* parser) { return parser_owner<Connection>(parser); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Connection::Connection(App& app) : app_(app) {
  tcp_ = make_handle<uv_tcp_t>(app.loop(), uv_tcp_init, this);
  timer_ = make_handle<uv_timer_t>(app.loop(), uv_timer_init, this);
  init_request_parser(parser_, this);
}

// Output never written (the client went away) leaves the budget with us.
Connection::~Connection() { app_.memory().give(pending_write_bytes_); }

bool Connection::waiting_answer() const {
  return message_complete_ && exchange_ != nullptr && !exchange_->done();
}

void Connection::written(size_t bytes) {
  pending_write_bytes_ -= bytes;
  app_.memory().give(bytes);
}

void Connection::start(bool over_capacity) {
  if (over_capacity) {
    reject({503, kNoFreeConnection,
            "Too many client connections (--max-connections " +
                std::to_string(app_.config().max_connections) + ")"},
           1);
    return;
  }
  uv_tcp_nodelay(tcp_, 1);
  arm_timer(app_.config().header_timeout_ms);
  update_reading();
}

// The transitions of the state diagram in connection.h.
void Connection::enter(State next) {
  switch (next) {
    case State::kIdle: assert(state_ == State::kActive); break;
    case State::kReadingHead: assert(state_ == State::kIdle); break;
    case State::kActive: assert(state_ == State::kReadingHead); break;
    case State::kFlushing:
      assert(state_ == State::kIdle || state_ == State::kReadingHead || state_ == State::kActive);
      break;
    case State::kLingering: assert(state_ == State::kFlushing); break;
    case State::kClosing: assert(state_ != State::kClosing); break;
  }
  state_ = next;
}

// The deadline moves with every request; the uv timer is only restarted when
// the deadline comes earlier than the timer's. A timer that fires before the
// deadline re-arms itself for the rest (on_timer).
void Connection::arm_timer(uint64_t ms) {
  if (timer_ == nullptr) return;
  deadline_ms_ = uv_now(app_.loop()) + ms;
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer_)) || deadline_ms_ < timer_due_ms_) {
    timer_due_ms_ = deadline_ms_;
    uv_timer_start(timer_, &Connection::on_timer, ms, 0);
  }
}

void Connection::update_reading() {
  if (state_ == State::kClosing) return;
  // While an answer is pending the socket stays watched until the next
  // request's bytes arrive: stopping and restarting it around every request
  // would cost two epoll_ctl calls each.
  bool hold_pipelined = waiting_answer() && !pipelined_.empty();
  bool want = state_ == State::kLingering ||
              (state_ != State::kFlushing && !hold_pipelined &&
               (exchange_ == nullptr || waiting_answer() || exchange_->wants_body()));
  if (want && !reading_) {
    if (uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read) == 0) reading_ = true;
  } else if (!want && reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
}

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Connection*>(handle->data);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  // Full reads only for the body of an admitted request: bytes read before
  // a request is admitted (its head, a pipelined request) are held outside
  // the memory budget, so they come in small reads.
  bool body = self->exchange_ != nullptr && !self->message_complete_ &&
              !self->exchange_->waiting_for_memory();
  *buf = self->app_.read_buffer(body ? App::kReadBufferBytes : App::kHeadReadBytes);
}

void Connection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<Connection*>(stream->data);
  if (self == nullptr || self->state_ == State::kClosing) return;
  if (nread > 0) {
    if (self->state_ == State::kLingering) return;
    if (self->waiting_answer()) {  // a pipelined request: kept until the answer is out
      self->pipelined_.append(buf->base, static_cast<size_t>(nread));
      self->update_reading();
      return;
    }
    self->feed(buf->base, static_cast<size_t>(nread));
    return;
  }
  if (nread == 0) return;
  if (self->waiting_answer()) {
    // The client half-closed after its request: answer, then close.
    self->close_after_answer_ = true;
    uv_read_stop(stream);
    self->reading_ = false;
    return;
  }
  self->close(nread == UV_EOF ? "client_closed" : "client_read_error");
}

void Connection::feed(const char* data, size_t size) {
  while (state_ != State::kClosing && !ending()) {
    if (!head_scanner_.done()) {
      size_t used;
      const char* problem = nullptr;
      if (head_scanner_.feed(std::string_view(data, size), used, problem) == HeadScanner::Result::kBad) {
        reject({400, kBadRequestParameter, std::string("Malformed HTTP request: ") + problem});
        return;
      }
    }
    llhttp_errno_t err = llhttp_execute(&parser_, data, size);
    if (err == HPE_OK) break;
    if (err == HPE_PAUSED) {
      size_t used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      data += used;
      size -= used;
      if (exchange_ != nullptr && !exchange_->done()) {
        pipelined_.assign(data, size);
        break;
      }
      if (!retire_exchange()) return;
      llhttp_resume(&parser_);
      continue;
    }
    if (err == HPE_USER || ending()) return;  // a callback has answered already
    reject({400, kBadRequestParameter,
            std::string("Malformed HTTP request: ") + llhttp_get_error_reason(&parser_)});
    return;
  }
  update_reading();
}

bool Connection::retire_exchange() {
  if (retired_ != nullptr) {
    // The next request's head reuses the buffers of the one before.
    RequestHead old = retired_->take_head();
    url_ = std::move(old.target);
    url_.clear();
    headers_ = std::move(old.headers);
    headers_.clear();
  }
  retired_ = std::move(exchange_);
  message_complete_ = false;
  head_scanner_.reset();
  if (close_after_answer_ || app_.draining()) {
    close_when_flushed();
    return false;
  }
  enter(State::kIdle);
  arm_timer(app_.config().idle_timeout_ms);
  return true;
}

void Connection::exchange_finished(bool close_after) {
  if (state_ == State::kClosing) return;
  close_after_answer_ |= close_after;
  if (!message_complete_) {
    // The answer is out before the whole request arrived: read and drop the
    // rest of the body, unless the connection ends anyway.
    if (close_after_answer_) close_when_flushed();
    else update_reading();
    return;
  }
  if (!retire_exchange()) return;
  llhttp_resume(&parser_);
  std::string rest = std::move(pipelined_);
  pipelined_.clear();
  if (!rest.empty()) feed(rest.data(), rest.size());
  else update_reading();
}

void Connection::body_consumed() { update_reading(); }

void Connection::drain() {
  if (state_ == State::kClosing) return;
  if (exchange_ == nullptr && state_ != State::kReadingHead) {
    close("shutdown");
    return;
  }
  close_after_answer_ = true;
}

bool Connection::queue_output(std::string_view data) {
  if (state_ == State::kClosing || data.empty()) return false;
  bytes_written_ += data.size();
  out_.append(data);
  pending_write_bytes_ += data.size();
  app_.memory().take(data.size());  // queued answers count against --max-memory
  return true;
}

void Connection::write(std::string_view data) {
  if (!queue_output(data) || flush_scheduled_) return;
  flush_scheduled_ = true;
  app_.schedule_flush(this);
}

// Once scheduled, App's flush list holds the connection: that flush sends
// the answer too (flushing here would leave the entry behind).
void Connection::write_now(std::string_view answer) {
  if (queue_output(answer) && !flush_scheduled_) flush_output();
}

void Connection::flush_output() {
  flush_scheduled_ = false;
  if (state_ == State::kClosing || out_.empty() || uv_write_pending_) return;
  uv_buf_t buf = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int n = uv_try_write(stream(), &buf, 1);
  if (n < 0 && n != UV_EAGAIN) {
    close("client_write_error");
    return;
  }
  size_t done = n > 0 ? static_cast<size_t>(n) : 0;
  written(done);
  if (done == out_.size()) {
    // The buffer is kept for the next answer, unless a large one grew it.
    if (out_.capacity() > kKeptOutputBytes) out_ = std::string();
    else out_.clear();
    after_flush();
    return;
  }
  auto* req = new WriteRequest{{}, this, out_.substr(done)};
  out_ = std::string();
  req->req.data = req;
  uv_buf_t rest = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  if (uv_write(&req->req, stream(), &rest, 1, &Connection::on_write) != 0) {
    written(req->data.size());
    delete req;
    close("client_write_error");
    return;
  }
  uv_write_pending_ = true;
  arm_active_timer();
}

void Connection::on_write(uv_write_t* uv_req, int status) noexcept {
  auto* req = static_cast<WriteRequest*>(uv_req->data);
  Connection* self = req->connection;
  self->written(req->data.size());
  self->uv_write_pending_ = false;
  delete req;
  if (self->state_ == State::kClosing) return;
  if (status < 0) {
    self->close("client_write_error");
    return;
  }
  if (!self->out_.empty()) {
    self->flush_output();  // bytes queued while this write was in flight
    return;
  }
  self->arm_active_timer();
  self->after_flush();
}

// Everything queued has reached the socket buffer.
void Connection::after_flush() {
  if (ending()) {
    if (pending_write_bytes_ == 0) linger();
    return;
  }
  if (exchange_ != nullptr && pending_write_bytes_ <= app_.config().response_buffer_bytes / 2)
    exchange_->client_drained();
}

void Connection::reject(const ChError& error, int retry_after_s) {
  log_event(LogLevel::kDebug, "client_rejected",
            {{"status", std::to_string(error.http_status)}, {"reason", error.message}});
  app_.proxy_metrics().requests.at({"rejected", status_label(error.http_status)}).inc();
  if (app_.config().access_log)
    log_event(LogLevel::kInfo, "access",
              {{"route", "rejected"}, {"status", std::to_string(error.http_status)}});
  write(error_response(error, true, retry_after_s));
  close_when_flushed();
}

void Connection::close_when_flushed() {
  if (ending() || state_ == State::kClosing) return;
  enter(State::kFlushing);
  update_reading();
  if (pending_write_bytes_ == 0) linger();
}

// Sends FIN, then drops whatever the client still sends, for a while, so the
// answer is not destroyed by a reset.
void Connection::linger() {
  if (state_ != State::kFlushing) return;
  enter(State::kLingering);
  auto* req = new uv_shutdown_t{};
  req->data = this;
  if (uv_shutdown(req, stream(), &Connection::on_shutdown) != 0) {
    delete req;
    close("done");
    return;
  }
  arm_timer(kLingerMs);
  update_reading();
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) noexcept {
  auto* self = static_cast<Connection*>(req->data);
  delete req;
  if (status == UV_ECANCELED) return;  // closed meanwhile
  if (status < 0 && self->state_ != State::kClosing) self->close("done");
}

void Connection::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Connection*>(timer->data);
  if (self == nullptr || self->deadline_ms_ == kNoDeadline) return;
  uint64_t now = uv_now(self->app_.loop());
  if (now < self->deadline_ms_) {
    self->timer_due_ms_ = self->deadline_ms_;
    uv_timer_start(timer, &Connection::on_timer, self->deadline_ms_ - now, 0);
    return;
  }
  if (self->state_ == State::kLingering) {
    self->close("done");
  } else if (self->state_ == State::kReadingHead) {
    self->reject({408, kTimeoutExceeded,
                  "Request headers not received within " +
                      std::to_string(self->app_.config().header_timeout_ms) +
                      " ms (--header-timeout)"});
  } else if (self->state_ == State::kIdle) {
    self->close("idle_timeout");
  } else if ((self->state_ == State::kActive || self->state_ == State::kFlushing) &&
             self->uv_write_pending_) {
    log_event(LogLevel::kInfo, "client_write_timeout",
              {{"pending_bytes", std::to_string(self->pending_write_bytes_)}});
    self->close("write_timeout");
  } else if (self->state_ == State::kActive && !self->message_complete_) {
    if (self->bytes_written_ > self->bytes_before_answer_) {
      self->close("body_timeout");  // an answer has begun: no room for another
      return;
    }
    self->reject({408, kTimeoutExceeded,
                  "No byte of the request body within " +
                      std::to_string(self->app_.config().body_timeout_ms) +
                      " ms (--body-timeout)"});
  }
}

// While a request is active the timer watches the slower side: a client
// that stops sending its body, or one that stops reading its answer.
void Connection::arm_active_timer() {
  if (state_ != State::kActive && state_ != State::kFlushing) return;
  if (uv_write_pending_) arm_timer(app_.config().write_timeout_ms);
  else if (!message_complete_) arm_timer(app_.config().body_timeout_ms);
  else deadline_ms_ = kNoDeadline;  // the timer may still fire: on_timer ignores it
}

void Connection::close(const char* reason) {
  if (state_ == State::kClosing) return;
  enter(State::kClosing);
  if (flush_scheduled_) app_.cancel_flush(this);
  log_event(LogLevel::kDebug, "client_closed", {{"reason", reason}});
  if (reading_) uv_read_stop(stream());
  reading_ = false;
  close_handle(timer_);
  timer_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), &Connection::on_closed);
}

void Connection::on_closed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<Connection*>(handle->data);
  delete reinterpret_cast<uv_tcp_t*>(handle);
  if (self->exchange_ != nullptr) self->exchange_->abort();
  self->app_.connection_closed(self);  // frees `self`
}

int Connection::on_message_begin(llhttp_t* parser) noexcept {
  Connection* self = from(parser);
  self->enter(State::kReadingHead);
  self->url_.clear();
  self->headers_.clear();
  self->header_bytes_ = 0;
  self->in_header_value_ = false;
  self->message_complete_ = false;
  self->arm_timer(self->app_.config().header_timeout_ms);
  return 0;
}

int Connection::on_url(llhttp_t* parser, const char* at, size_t size) noexcept {
  Connection* self = from(parser);
  self->url_.append(at, size);
  self->header_bytes_ += size;
  const Config& c = self->app_.config();
  if (self->url_.size() > c.max_url_bytes) {
    self->reject({414, kLimitExceeded,
                  "Request target longer than " + std::to_string(c.max_url_bytes) +
                      " bytes (--max-url-bytes)"});
    return -1;
  }
  return 0;
}

int Connection::check_header_bytes() {
  const Config& c = app_.config();
  if (header_bytes_ <= c.max_header_bytes) return 0;
  reject({431, kLimitExceeded,
          "Request headers larger than " + std::to_string(c.max_header_bytes) +
              " bytes (--max-header-bytes)"});
  return -1;
}

int Connection::on_header_field(llhttp_t* parser, const char* at, size_t size) noexcept {
  Connection* self = from(parser);
  if (self->in_header_value_ || self->headers_.empty()) {
    self->headers_.emplace_back();
    self->in_header_value_ = false;
  }
  self->headers_.back().name.append(at, size);
  self->header_bytes_ += size;
  const Config& c = self->app_.config();
  if (self->headers_.size() > c.max_headers) {
    self->reject({431, kLimitExceeded,
                  "More than " + std::to_string(c.max_headers) + " header fields (--max-headers)"});
    return -1;
  }
  return self->check_header_bytes();
}

int Connection::on_header_value(llhttp_t* parser, const char* at, size_t size) noexcept {
  Connection* self = from(parser);
  self->in_header_value_ = true;
  self->headers_.back().value.append(at, size);
  self->header_bytes_ += size;
  return self->check_header_bytes();
}

int Connection::on_headers_complete(llhttp_t* parser) noexcept {
  Connection* self = from(parser);
  self->enter(State::kActive);
  self->bytes_before_answer_ = self->bytes_written_;
  self->arm_active_timer();
  RequestHead head;
  head.method = request_method(*parser);
  head.target = std::move(self->url_);
  head.http_minor = parser->http_major == 1 ? parser->http_minor : 0;
  for (Header& h : self->headers_) h.value.resize(trim(h.value).size());  // trailing blanks
  head.headers = std::move(self->headers_);
  head.keep_alive = llhttp_should_keep_alive(parser) != 0;
  bool chunked = (parser->flags & F_CHUNKED) != 0;
  if (parser->method == HTTP_CONNECT) {  // ClickHouse answers 501 too; no tunnel here
    self->reject({501, kNotImplemented, "Method CONNECT is not supported"});
    return -1;
  }
  if (parser->http_major != 1) {  // HTTP/0.9 (no version) or 2.0 in an HTTP/1 request line
    self->reject({400, kBadRequestParameter, "Malformed HTTP request: HTTP version not supported"});
    return -1;
  }
  for (const Header& h : head.headers) {
    if (h.name.empty() || h.value.find_first_of("\r\n") != std::string::npos) {
      self->reject({400, kBadRequestParameter, "Malformed HTTP request: invalid header line"});
      return -1;
    }
  }
  // A Transfer-Encoding that does not end in chunked leaves the body's length
  // unknown: refuse it here, before anything is forwarded (llhttp would only
  // object after this callback).
  if (!chunked && find_header(head.headers, "Transfer-Encoding") != nullptr) {
    self->reject({400, kBadRequestParameter,
                  "Malformed HTTP request: Transfer-Encoding other than chunked"});
    return -1;
  }
  // ClickHouse takes a POST body only with a Content-Length or with
  // Transfer-Encoding "chunked" alone ("gzip, chunked" is neither): 411,
  // as it answers.
  const Header* transfer = find_header(head.headers, "Transfer-Encoding");
  if (head.method == "POST" && !(parser->flags & F_CONTENT_LENGTH) &&
      (transfer == nullptr || !iequals(transfer->value, "chunked"))) {
    self->reject({411, kLengthRequired,
                  "There is neither Transfer-Encoding header nor Content-Length header"});
    return -1;
  }
  head.has_body = chunked || ((parser->flags & F_CONTENT_LENGTH) && parser->content_length > 0);
  head.content_length = chunked ? -1 : static_cast<int64_t>(parser->content_length);
  if (const Header* expect = find_header(head.headers, "Expect"))
    head.expect_continue = iequals(expect->value, "100-continue");
  self->url_.clear();
  self->headers_.clear();
  ++self->requests_;
  self->exchange_ = std::make_unique<Exchange>(self->app_, *self, std::move(head));
  self->exchange_->start();
  return self->state_ == State::kClosing ? -1 : 0;
}

int Connection::on_body(llhttp_t* parser, const char* at, size_t size) noexcept {
  Connection* self = from(parser);
  if (self->state_ == State::kClosing) return -1;
  self->arm_active_timer();
  if (self->exchange_ != nullptr) self->exchange_->append_body(at, size);
  return 0;
}

int Connection::on_message_complete(llhttp_t* parser) noexcept {
  Connection* self = from(parser);
  if (self->state_ == State::kClosing) return -1;
  // finish_body() may complete the exchange; parsing resumes in feed(), not
  // from inside this callback.
  if (self->exchange_ != nullptr) self->exchange_->finish_body();
  self->message_complete_ = true;
  self->arm_active_timer();
  return HPE_PAUSED;
}

}  // namespace chsidecar
