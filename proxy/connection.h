// One client socket: HTTP/1.1 parsing with llhttp, keep-alive, pipelining,
// timeouts and the write queue.
//
// States, each entered by one named step (enter() asserts the transition):
//   kIdle        keep-alive, waiting for a request; idle timeout armed
//   kReadingHead a request has begun; header timeout armed
//   kActive      an Exchange owns the request (body and write timeouts)
//   kFlushing    no further request: nothing is read, the queued answer is
//                written out (write timeout), then FIN (close_when_flushed)
//   kLingering   FIN sent; input is read and dropped until EOF or kLingerMs,
//                so that the client sees the answer rather than a reset
//   kClosing     uv_close called; the object is freed in the close callback,
//                never before
//   kIdle -> kReadingHead -> kActive -> kIdle (keep-alive);
//   kIdle, kReadingHead, kActive -> kFlushing -> kLingering;
//   any -> kClosing (close(), idempotent).
//
// Pipelined requests are answered in order by handling one at a time: the
// parser pauses at the end of each message, the bytes after it are kept,
// and parsing resumes once the exchange is done. The socket is not read
// while the current request's body buffer is full (backpressure), nor once
// bytes after a finished message wait for its answer (at most one read).
//
// Memory: queued output counts against App's memory budget (taken when
// queued, given back when written or when the connection is freed). Until
// its request is admitted (exchange.h) a connection reads at most
// App::kHeadReadBytes at a time, so what it holds outside the budget is its
// head and one small read.
//
// Limits (max header bytes and count, URL length, header and idle timeouts)
// answer in ClickHouse's error format and close. Malformed HTTP (llhttp in
// strict mode) gets 400 and a close: the stream cannot be resynchronised.
//
// Owned by App (created on accept, freed in its close callback). Loop
// thread only.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "batch_plan.h"
#include "head_scanner.h"
#include "http_headers.h"
#include "http_parser.h"
#include "result.h"

namespace chsidecar {

class App;
class Exchange;

class Connection {
 public:
  explicit Connection(App& app);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The socket to accept into. REQUIRES: called once, before start().
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(tcp_); }

  // Starts reading. `over_capacity` answers 503 and closes instead.
  void start(bool over_capacity);

  // Queues bytes for the client. Bytes written during one loop iteration
  // go out together in one system call, when App flushes (flush_output).
  void write(std::string_view data);
  // For an answer that is whole: hands it to the socket at once (with
  // anything queued before it), so the client goes on while the loop does
  // the rest of its iteration.
  void write_now(std::string_view answer);

  // A buffer to build a whole answer in before write_now(); its capacity is
  // kept between the answers of the connection (no allocation per answer).
  std::string& answer_buffer() { return answer_; }

  // Hands the queued bytes to the socket. Called by App once per iteration.
  void flush_output();
  size_t pending_write_bytes() const { return pending_write_bytes_; }
  // Bytes handed to write() since the connection began (for access logs).
  uint64_t bytes_written() const { return bytes_written_; }
  // Requests begun on this connection, the current one included.
  uint64_t requests() const { return requests_; }

  // The exchange finished its answer. `close_after`: no further request.
  void exchange_finished(bool close_after);

  // The exchange consumed body bytes; reading may resume.
  void body_consumed();

  // The last batchable INSERT's plan on this connection (batch_plan.h).
  PlanMemo& plan_memo() { return plan_memo_; }

  // The App is draining: close now if idle, else after the current answer.
  void drain();

  // Reads nothing more; once every queued byte is written, sends FIN and
  // closes (an answer cut by the upstream ends the way the upstream ended it).
  void close_when_flushed();

  // Idempotent. Stops everything and frees the connection in the close
  // callback; the exchange is aborted there, outside any curl callback.
  void close(const char* reason);
  bool closing() const { return state_ == State::kClosing; }

 private:
  enum class State { kIdle, kReadingHead, kActive, kFlushing, kLingering, kClosing };
  void enter(State next);
  // Flushing or lingering: the connection takes no further request.
  bool ending() const { return state_ == State::kFlushing || state_ == State::kLingering; }

  void feed(const char* data, size_t size);
  bool retire_exchange();
  void resume_after_exchange();
  void reject(const ChError& error, int retry_after_s = 0);
  bool queue_output(std::string_view data);  // false: closing, or nothing to queue
  void written(size_t bytes);                // queued bytes reached the socket (or were dropped)
  void after_flush();
  void linger();
  void update_reading();
  // The whole request is read and its answer is not complete yet.
  bool waiting_answer() const;
  void arm_timer(uint64_t ms);

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_timer(uv_timer_t* timer) noexcept;
  static void on_closed(uv_handle_t* handle) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;

  static int on_message_begin(llhttp_t* parser) noexcept;
  static int on_url(llhttp_t* parser, const char* at, size_t size) noexcept;
  static int on_header_field(llhttp_t* parser, const char* at, size_t size) noexcept;
  static int on_header_value(llhttp_t* parser, const char* at, size_t size) noexcept;
  static int on_headers_complete(llhttp_t* parser) noexcept;
  static int on_body(llhttp_t* parser, const char* at, size_t size) noexcept;
  static int on_message_complete(llhttp_t* parser) noexcept;
  friend struct ParserSettings<Connection>;  // reads the parser callbacks

  App& app_;
  uv_tcp_t* tcp_;
  uv_timer_t* timer_;
  static constexpr uint64_t kNoDeadline = UINT64_MAX;
  uint64_t deadline_ms_ = kNoDeadline;  // when on_timer acts (uv_now time)
  uint64_t timer_due_ms_ = 0;            // when timer_ fires, if active
  llhttp_t parser_;
  State state_ = State::kIdle;

  // The request being parsed.
  std::string url_;
  std::vector<Header> headers_;
  bool in_header_value_ = false;
  size_t header_bytes_ = 0;
  bool message_complete_ = false;

  HeadScanner head_scanner_;   // refuses what llhttp lets through (see head_scanner.h)
  std::string out_;            // queued by write(), not yet handed to the socket
  std::string answer_;         // answer_buffer()
  bool flush_scheduled_ = false;
  bool uv_write_pending_ = false;
  uint64_t bytes_before_answer_ = 0;  // bytes_written_ when the current request began
  void arm_active_timer();
  int check_header_bytes();  // 0, or -1 after answering 431

  PlanMemo plan_memo_;
  std::unique_ptr<Exchange> exchange_;
  std::unique_ptr<Exchange> retired_;  // freed later: its methods may be on the stack
  std::string pipelined_;              // bytes after a message that waits for its answer
  bool reading_ = false;
  bool close_after_answer_ = false;
  uint64_t requests_ = 0;
  size_t pending_write_bytes_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace chsidecar
