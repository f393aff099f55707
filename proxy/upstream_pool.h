// Keep-alive connections to one ClickHouse server, driven by the uv loop.
//
// The pool owns one curl multi handle and `pool_size` slots. A slot is one
// curl easy handle; curl's connection cache gives each running slot one
// keep-alive connection, so at most `pool_size` requests run at once and
// connections are reused. Requests beyond that wait in a FIFO of at most
// `queue_max` entries.
//
// curl is driven only by the loop: CURLMOPT_SOCKETFUNCTION maps curl's
// sockets to uv_poll_t handles and CURLMOPT_TIMERFUNCTION arms one
// uv_timer_t; both call curl_multi_socket_action. There is no
// curl_multi_perform and no thread. The timer callback only arms the timer
// (curl must not be re-entered from its own callbacks).
//
// A request that fails on a reused connection before any response byte
// arrived (ClickHouse closes idle connections after 3 s) is sent again, if
// its client can rewind the body: by curl itself (it asks through the seek
// callback; a few times at most) or else once by the pool, on a fresh
// connection. Each resend is counted in upstream_retries{reason=
// "stale_connection"}; --upstream-timeout counts on from the resend.
//
// Loop thread only. The pool never calls an UpstreamClient after cancel()
// or after upstream_done() for that client.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "http_headers.h"

namespace chsidecar {

struct ProxyMetrics;

struct UpstreamRequest {
  std::string method;
  std::string target;           // the request target, sent byte for byte (see request_target)
  std::vector<Header> headers;  // end-to-end headers to send (already filtered)
  bool has_body = false;
  int64_t body_length = -1;     // -1: unknown, sent chunked
  bool tells_health = true;     // its outcome goes to the health observer (a ping reports its own)
  uint64_t no_byte_timeout_ms = 0;  // ends it after this long without a byte; 0: --upstream-timeout
};

struct UpstreamOutcome {
  CURLcode code = CURLE_OK;
  std::string error;         // curl's description when code != CURLE_OK
  bool response_started = false;
  bool connected = false;    // a connection was open for it: bytes of it may have gone out
  int exception_code = 0;    // the "Code: N" of an error answer; 0: none
};

// Returned by UpstreamClient::upstream_read_body to say "no byte yet".
inline constexpr size_t kUpstreamPause = CURL_READFUNC_PAUSE;

// The side of a request that feeds the body and takes the answer. Methods
// are called from inside curl callbacks: they must not call back into the
// pool (no cancel/resume), only record state.
class UpstreamClient {
 public:
  // Copies up to `size` body bytes into `buf`; returns the count, 0 at the
  // end of the body, or kUpstreamPause when no byte is available yet.
  virtual size_t upstream_read_body(char* buf, size_t size) = 0;
  // Rewinds the body to its first byte; false when those bytes are gone.
  virtual bool upstream_rewind_body() = 0;
  // The status line and headers of the final (non-1xx) response.
  virtual void upstream_response_head(int status, std::string reason,
                                      std::vector<Header> headers) = 0;
  // Takes response body bytes; returns `size` when taken, 0 to abort, or
  // CURL_WRITEFUNC_PAUSE to pause (the same bytes come again after resume()).
  virtual size_t upstream_response_data(const char* data, size_t size) = 0;
  // The transfer ended; the pool forgets the client. Called outside curl
  // callbacks, so the client may call into the pool again.
  virtual void upstream_done(const UpstreamOutcome& outcome) = 0;

  // The pool the client was last submitted to, or null.
  class UpstreamPool* upstream_pool() const { return upstream_pool_; }

 protected:
  ~UpstreamClient() = default;

 private:
  friend class UpstreamPool;
  struct Slot* upstream_slot_ = nullptr;
  class UpstreamPool* upstream_pool_ = nullptr;
};

class UpstreamPool {
 public:
  enum class Submit { kStarted, kQueued, kQueueFull };

  // `base_url` like http://127.0.0.1:8123 (no trailing slash); `config` must
  // outlive the pool.
  UpstreamPool(uv_loop_t* loop, const Config& config, std::string base_url);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Starts `request` on an idle slot or queues it. `client` must stay alive
  // until upstream_done() or cancel().
  Submit submit(UpstreamClient* client, UpstreamRequest request);

  // Forgets `client`: drops it from the queue or aborts its transfer. No
  // callback reaches it afterwards. REQUIRES: not inside an UpstreamClient
  // callback.
  void cancel(UpstreamClient* client);

  // Resumes a paused body upload and/or response download.
  // REQUIRES: not inside an UpstreamClient callback.
  void resume_body(UpstreamClient* client);
  void resume_response(UpstreamClient* client);

  // Aborts everything and closes the uv handles; the pool may be destroyed
  // once the loop has run the close callbacks.
  void close();

  // Where upstream transfers are counted; `metrics` must outlive the pool.
  // Without it nothing is counted.
  void set_metrics(ProxyMetrics* metrics) { metrics_ = metrics; }

  // Told after each transfer whether the upstream itself failed (no answer,
  // or a 502/503/504 that ClickHouse does not send for query errors).
  void set_health_observer(std::function<void(bool upstream_ok)> observer) {
    health_observer_ = std::move(observer);
  }

  size_t busy_slots() const { return busy_; }
  size_t size() const { return slots_.size(); }
  size_t queued() const { return queue_.size(); }
  const std::string& base_url() const { return base_url_; }
  // host:port of the upstream, for error messages (no credentials).
  const std::string& display_name() const { return display_name_; }

 private:
  struct Pending {
    UpstreamClient* client;
    UpstreamRequest request;
  };

  void start(Slot& slot, UpstreamClient* client, UpstreamRequest request);
  void configure(Slot& slot);
  void finish(Slot& slot, CURLcode code);
  void release(Slot& slot);
  void start_queued();
  void check_done();
  void apply_pause(Slot& slot);
  void count_transfer(Slot& slot, const char* result, int code);
  void count_stale_connection_retry(const char* error);
  uint64_t no_byte_limit_ms(const Slot& slot) const;
  Slot* idle_slot();

  // The loop's watcher of a curl socket number (on_socket).
  struct CurlSocket {
    UpstreamPool* pool = nullptr;
    curl_socket_t fd = -1;
    uv_poll_t* poll = nullptr;
  };

  static int on_socket(CURL* easy, curl_socket_t fd, int action, void* pool, void* socket_ctx) noexcept;
  static int on_timer_request(CURLM* multi, long timeout_ms, void* pool) noexcept;
  static void on_timer(uv_timer_t* timer) noexcept;
  static void on_idle_timer(uv_timer_t* timer) noexcept;
  static void on_poll(uv_poll_t* poll, int status, int events) noexcept;
  static size_t on_header(char* data, size_t size, size_t n, void* slot) noexcept;
  static size_t on_write(char* data, size_t size, size_t n, void* slot) noexcept;
  static size_t on_read(char* buf, size_t size, size_t n, void* slot) noexcept;
  static int on_seek(void* slot, curl_off_t offset, int origin) noexcept;
  static int on_connected(void* slot, char* remote_ip, char* local_ip, int remote_port,
                          int local_port) noexcept;
  static int on_progress(void* slot, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow) noexcept;

  uv_loop_t* loop_;
  const Config& config_;
  std::string base_url_;
  std::string origin_url_;   // scheme://authority/ of base_url_: where curl connects
  std::string path_prefix_;  // base_url_'s path, put before origin-form targets
  std::string display_name_;
  CURLM* multi_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::deque<Pending> queue_;
  std::unordered_map<curl_socket_t, std::unique_ptr<CurlSocket>> sockets_;
  size_t busy_ = 0;
  ProxyMetrics* metrics_ = nullptr;
  std::function<void(bool)> health_observer_;
};

}  // namespace chsidecar
