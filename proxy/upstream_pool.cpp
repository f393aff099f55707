#include "upstream_pool.h"

#include <algorithm>
#include <cstdio>

#include "ch_errors.h"
#include "log.h"
#include "metrics.h"
#include "url_parts.h"
#include "uv_handle.h"

namespace chsidecar {

// One easy handle and the state of the transfer it runs.
struct Slot {
  UpstreamPool* pool = nullptr;
  CURL* easy = nullptr;
  UpstreamClient* client = nullptr;
  UpstreamRequest request;
  curl_slist* header_list = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  int status = 0;
  std::string reason;
  std::vector<Header> response_headers;
  bool response_started = false;
  bool send_paused = false;
  bool recv_paused = false;
  bool retried = false;
  uint64_t started_ns = 0;  // uv_hrtime() at start, for the duration histogram
  std::string error_head;   // first bytes of an error answer: its "Code: N"
  // --upstream-timeout: the transfer ends when the upstream moved no byte
  // for that long while it was not paused for the client (curl's own
  // low-speed check averages over 5 s and counts the request's bytes, so a
  // 1 s limit fired after 6 s).
  uv_timer_t* idle_timer = nullptr;
  uint64_t last_progress_ms = 0;  // uv_now() of the last byte either way
  curl_off_t sent = 0, received = 0;  // bytes on the wire so far, from curl's progress
  bool connected = false;             // the request's connection is open (or reused)
};

namespace {
constexpr size_t kErrorHeadBytes = 32;
}  // namespace

namespace {

// The request line's target for the upstream. curl would parse a URL and
// change it (drop a #fragment, refuse "*" or an absolute-form target, which
// ClickHouse answers), so the client's target goes as it came, after the
// base URL's path if it has one.
std::string request_target(std::string_view prefix, std::string_view target) {
  if (prefix.empty()) return std::string(target);
  if (size_t scheme = target.find("://");
      scheme != std::string_view::npos && target.find_first_of("/?") > scheme) {
    // absolute-form: only its path and query can follow a prefix
    size_t rest = target.find_first_of("/?", scheme + 3);
    target = rest == std::string_view::npos ? "/" : target.substr(rest);
  }
  if (target.empty() || (target[0] != '/' && target[0] != '?')) return std::string(target);
  return std::string(prefix) + (target[0] == '?' ? "/" : "") + std::string(target);
}

// ClickHouse's code of the slot's error answer, 0 if it is none.
int answer_code(const Slot& slot) {
  return slot.status >= 400 ? exception_code(slot.error_head, slot.response_headers) : 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

UpstreamPool::UpstreamPool(uv_loop_t* loop, const Config& config, std::string base_url)
    : loop_(loop), config_(config), base_url_(std::move(base_url)) {
  // The authority ends at the first '/' only, as it always did here; for a
  // URL that --upstream accepts (no '?' or '#') that is split_url's default.
  UrlParts parts = split_url(base_url_, "/");
  display_name_ = parts.host_port;
  origin_url_ = base_url_.substr(0, base_url_.size() - parts.rest.size()) + "/";
  path_prefix_ = parts.rest;
  multi_ = curl_multi_init();
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &UpstreamPool::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &UpstreamPool::on_timer_request);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(config.pool_size));
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(config.pool_size));
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
  timer_ = make_handle<uv_timer_t>();
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  for (uint64_t i = 0; i < config.pool_size; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->pool = this;
    slot->easy = curl_easy_init();
    slot->idle_timer = make_handle<uv_timer_t>();
    uv_timer_init(loop_, slot->idle_timer);
    slot->idle_timer->data = slot.get();
    slots_.push_back(std::move(slot));
  }
}

UpstreamPool::~UpstreamPool() { close(); }

void UpstreamPool::close() {
  if (multi_ == nullptr) return;
  queue_.clear();
  for (auto& slot : slots_) {
    if (slot->client != nullptr) {
      curl_multi_remove_handle(multi_, slot->easy);
      release(*slot);
    }
  }
  for (auto& slot : slots_) {
    curl_easy_cleanup(slot->easy);
    close_handle(slot->idle_timer);
  }
  slots_.clear();
  curl_multi_cleanup(multi_);  // closes cached connections through on_socket
  multi_ = nullptr;
  for (auto& [fd, sock] : sockets_) close_handle(sock->poll);
  sockets_.clear();
  close_handle(timer_);
  timer_ = nullptr;
}

Slot* UpstreamPool::idle_slot() {
  for (auto& slot : slots_)
    if (slot->client == nullptr) return slot.get();
  return nullptr;
}

UpstreamPool::Submit UpstreamPool::submit(UpstreamClient* client, UpstreamRequest request) {
  client->upstream_pool_ = this;
  if (Slot* slot = idle_slot(); slot != nullptr && queue_.empty()) {
    start(*slot, client, std::move(request));
    return Submit::kStarted;
  }
  if (queue_.size() >= config_.queue_max) return Submit::kQueueFull;
  queue_.push_back(Pending{client, std::move(request)});
  return Submit::kQueued;
}

void UpstreamPool::cancel(UpstreamClient* client) {
  if (Slot* slot = client->upstream_slot_) {
    curl_multi_remove_handle(multi_, slot->easy);
    count_transfer(*slot, "aborted", answer_code(*slot));
    release(*slot);
    start_queued();
    return;
  }
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [client](const Pending& p) { return p.client == client; });
  if (it != queue_.end()) queue_.erase(it);
}

void UpstreamPool::resume_body(UpstreamClient* client) {
  Slot* slot = client->upstream_slot_;
  if (slot == nullptr || !slot->send_paused) return;
  slot->send_paused = false;
  apply_pause(*slot);
}

void UpstreamPool::resume_response(UpstreamClient* client) {
  Slot* slot = client->upstream_slot_;
  if (slot == nullptr || !slot->recv_paused) return;
  slot->recv_paused = false;
  apply_pause(*slot);
}

void UpstreamPool::apply_pause(Slot& slot) {
  slot.last_progress_ms = uv_now(loop_);  // the wait for the client is over
  int mask = (slot.send_paused ? CURLPAUSE_SEND : 0) | (slot.recv_paused ? CURLPAUSE_RECV : 0);
  curl_easy_pause(slot.easy, mask);
}

void UpstreamPool::start(Slot& slot, UpstreamClient* client, UpstreamRequest request) {
  slot.client = client;
  slot.request = std::move(request);
  slot.retried = false;
  client->upstream_slot_ = &slot;
  ++busy_;
  slot.started_ns = uv_hrtime();
  configure(slot);
  uv_timer_start(slot.idle_timer, &UpstreamPool::on_idle_timer, no_byte_limit_ms(slot), 0);
  curl_multi_add_handle(multi_, slot.easy);
}

uint64_t UpstreamPool::no_byte_limit_ms(const Slot& slot) const {
  uint64_t own = slot.request.no_byte_timeout_ms;
  return own != 0 ? own : config_.upstream_timeout_ms;
}

void UpstreamPool::on_idle_timer(uv_timer_t* timer) noexcept {
  auto* slot = static_cast<Slot*>(timer->data);
  if (slot == nullptr || slot->client == nullptr) return;
  UpstreamPool* pool = slot->pool;
  uint64_t limit = pool->no_byte_limit_ms(*slot);
  uint64_t now = uv_now(pool->loop_);
  // The client's turn, or the connection still opening (--connect-timeout's part).
  if (slot->send_paused || slot->recv_paused || !slot->connected) slot->last_progress_ms = now;
  uint64_t idle = now - slot->last_progress_ms;
  if (idle < limit) {
    uv_timer_start(timer, &UpstreamPool::on_idle_timer, limit - idle, 0);
    return;
  }
  std::snprintf(slot->error, sizeof slot->error,
                "Operation too slow: no byte from the upstream for %llu ms",
                static_cast<unsigned long long>(idle));
  pool->finish(*slot, CURLE_OPERATION_TIMEDOUT);
  pool->start_queued();
}

void UpstreamPool::configure(Slot& slot) {
  CURL* e = slot.easy;
  const UpstreamRequest& r = slot.request;
  curl_easy_reset(e);
  slot.status = 0;
  slot.reason.clear();
  slot.response_headers.clear();
  slot.response_started = false;
  slot.send_paused = false;
  slot.recv_paused = false;
  slot.error[0] = '\0';
  slot.error_head.clear();

  curl_easy_setopt(e, CURLOPT_URL, origin_url_.c_str());
  curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, request_target(path_prefix_, r.target).c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, &slot);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot.error);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
  curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 64L * 1024);
  slot.sent = slot.received = 0;
  slot.connected = false;
  slot.last_progress_ms = uv_now(loop_);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &UpstreamPool::on_connected);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, &slot);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &UpstreamPool::on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, &slot);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &UpstreamPool::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &slot);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &UpstreamPool::on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &slot);
  if (slot.retried) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);

  curl_slist_free_all(slot.header_list);
  slot.header_list = nullptr;
  bool has_accept = false, has_content_type = false;
  for (const Header& h : r.headers) {
    has_accept |= iequals(h.name, "Accept");
    has_content_type |= iequals(h.name, "Content-Type");
    // curl sends "Name;" as a header with an empty value.
    std::string line = h.value.empty() ? h.name + ";" : h.name + ": " + h.value;
    slot.header_list = curl_slist_append(slot.header_list, line.c_str());
  }
  // Remove what curl would add on its own, so the upstream sees the client's headers.
  slot.header_list = curl_slist_append(slot.header_list, "Expect:");
  if (!has_accept) slot.header_list = curl_slist_append(slot.header_list, "Accept:");
  if (!has_content_type) slot.header_list = curl_slist_append(slot.header_list, "Content-Type:");

  if (r.has_body) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, &UpstreamPool::on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &slot);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, &UpstreamPool::on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, &slot);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body_length));
    if (r.body_length < 0)
      slot.header_list = curl_slist_append(slot.header_list, "Transfer-Encoding: chunked");
    if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else if (r.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (r.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    // An empty body still gets its Content-Length: 0, or the server waits for one.
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, slot.header_list);
}

void UpstreamPool::release(Slot& slot) {
  uv_timer_stop(slot.idle_timer);
  if (slot.client != nullptr) {
    slot.client->upstream_slot_ = nullptr;
    slot.client = nullptr;
    --busy_;
  }
  slot.request = UpstreamRequest{};
  curl_slist_free_all(slot.header_list);
  slot.header_list = nullptr;
}

void UpstreamPool::start_queued() {
  while (!queue_.empty()) {
    Slot* slot = idle_slot();
    if (slot == nullptr) return;
    Pending next = std::move(queue_.front());
    queue_.pop_front();
    start(*slot, next.client, std::move(next.request));
  }
}

void UpstreamPool::finish(Slot& slot, CURLcode code) {
  bool connection_lost = code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR ||
                         code == CURLE_GOT_NOTHING;
  long new_connections = 0;
  curl_easy_getinfo(slot.easy, CURLINFO_NUM_CONNECTS, &new_connections);
  curl_multi_remove_handle(multi_, slot.easy);
  if (connection_lost && slot.status == 0 && !slot.retried && new_connections == 0 &&
      slot.client->upstream_rewind_body()) {
    count_stale_connection_retry(slot.error);
    slot.retried = true;
    configure(slot);
    curl_multi_add_handle(multi_, slot.easy);
    return;
  }
  UpstreamOutcome outcome;
  outcome.code = code;
  outcome.response_started = slot.response_started;
  // A stale-connection retry means the first try had a connection (and may
  // have sent the request), whatever happened to the fresh one.
  outcome.connected = slot.connected || slot.retried;
  outcome.exception_code = answer_code(slot);
  if (code != CURLE_OK) outcome.error = slot.error[0] ? slot.error : curl_easy_strerror(code);
  const char* result = code == CURLE_OPERATION_TIMEDOUT ? "timeout"
                       : slot.status >= 400             ? "http_error"
                       : code == CURLE_WRITE_ERROR || code == CURLE_ABORTED_BY_CALLBACK ||
                               code == CURLE_READ_ERROR
                           ? "aborted"
                       : code != CURLE_OK ? "network_error"
                                          : "ok";
  count_transfer(slot, result, outcome.exception_code);
  bool aborted_here = code == CURLE_WRITE_ERROR || code == CURLE_ABORTED_BY_CALLBACK ||
                      code == CURLE_READ_ERROR;
  // A request curl could not even start says nothing of the server's health.
  bool local_error = code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL ||
                     code == CURLE_BAD_FUNCTION_ARGUMENT || code == CURLE_OUT_OF_MEMORY ||
                     code == CURLE_FAILED_INIT;
  if (health_observer_ && slot.request.tells_health && !aborted_here && !local_error) {
    bool failed = (code != CURLE_OK && !slot.response_started) || slot.status == 502 ||
                  slot.status == 503 || slot.status == 504;
    health_observer_(!failed);
  }
  UpstreamClient* client = slot.client;
  release(slot);
  client->upstream_done(outcome);
}

void UpstreamPool::count_stale_connection_retry(const char* error) {
  log_event(LogLevel::kDebug, "upstream_stale_connection_retry",
            {{"upstream", display_name_}, {"error", error}});
  if (metrics_ != nullptr) metrics_->upstream_retries.at({display_name_, "stale_connection"}).inc();
}

void UpstreamPool::count_transfer(Slot& slot, const char* result, int code) {
  if (metrics_ == nullptr) return;
  metrics_->upstream_requests.at({display_name_, result, ch_code_label(code)}).inc();
  metrics_->upstream_duration.at({display_name_})
      .observe(static_cast<double>(uv_hrtime() - slot.started_ns) / 1e9);
}

void UpstreamPool::check_done() {
  int pending;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &pending)) {
    if (msg->msg != CURLMSG_DONE) continue;
    // Read what we need from the message before the handle is removed.
    CURL* easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    Slot* slot = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &slot);
    if (slot != nullptr && slot->client != nullptr) finish(*slot, code);
  }
  start_queued();
}

// One watcher per socket number, kept across requests: a keep-alive
// connection taken from curl's cache costs one epoll_ctl to watch again
// instead of a watcher set up anew. curl may close a socket without a word
// once it stopped watching it (CURL_POLL_REMOVE), so the watcher is stopped
// then; a stopped watcher serves whatever socket next has that number.
int UpstreamPool::on_socket(CURL*, curl_socket_t fd, int action, void* pool_ptr,
                            void*) noexcept {
  auto* pool = static_cast<UpstreamPool*>(pool_ptr);
  if (action == CURL_POLL_REMOVE && !pool->sockets_.contains(fd)) return 0;
  std::unique_ptr<CurlSocket>& sock = pool->sockets_[fd];
  if (sock == nullptr) {
    sock = std::make_unique<CurlSocket>();
    sock->pool = pool;
    sock->fd = fd;
    sock->poll = make_handle<uv_poll_t>();
    uv_poll_init_socket(pool->loop_, sock->poll, fd);
    sock->poll->data = sock.get();
  }
  int events = 0;
  if (action == CURL_POLL_IN || action == CURL_POLL_INOUT) events |= UV_READABLE;
  if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT) events |= UV_WRITABLE;
  if (events == 0) uv_poll_stop(sock->poll);
  else uv_poll_start(sock->poll, events, &UpstreamPool::on_poll);
  return 0;
}

void UpstreamPool::on_poll(uv_poll_t* poll, int status, int events) noexcept {
  auto* sock = static_cast<CurlSocket*>(poll->data);
  if (sock == nullptr) return;
  UpstreamPool* pool = sock->pool;
  curl_socket_t fd = sock->fd;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(pool->multi_, fd, flags, &running);
  pool->check_done();
}

int UpstreamPool::on_timer_request(CURLM*, long timeout_ms, void* pool_ptr) noexcept {
  auto* pool = static_cast<UpstreamPool*>(pool_ptr);
  if (timeout_ms < 0) uv_timer_stop(pool->timer_);
  else uv_timer_start(pool->timer_, &UpstreamPool::on_timer, static_cast<uint64_t>(timeout_ms), 0);
  return 0;
}

void UpstreamPool::on_timer(uv_timer_t* timer) noexcept {
  auto* pool = static_cast<UpstreamPool*>(timer->data);
  if (pool == nullptr || pool->multi_ == nullptr) return;
  int running;
  curl_multi_socket_action(pool->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  pool->check_done();
}

size_t UpstreamPool::on_header(char* data, size_t size, size_t n, void* slot_ptr) noexcept {
  auto& slot = *static_cast<Slot*>(slot_ptr);
  size_t len = size * n;
  std::string_view line(data, len);
  if (slot.client == nullptr) return 0;
  slot.last_progress_ms = uv_now(slot.pool->loop_);
  if (line.substr(0, 5) == "HTTP/") {
    // A new status line: an interim 1xx answer resets what came before.
    slot.response_headers.clear();
    size_t sp = line.find(' ');
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    slot.status = 0;
    for (size_t i = 0; i < rest.size() && i < 3 && rest[i] >= '0' && rest[i] <= '9'; ++i)
      slot.status = slot.status * 10 + (rest[i] - '0');
    slot.reason = std::string(trim(rest.size() > 3 ? rest.substr(3) : std::string_view()));
    return len;
  }
  std::string_view content = trim(line);
  if (content.empty()) {
    if (slot.status >= 200 && !slot.response_started) {
      slot.response_started = true;
      slot.client->upstream_response_head(slot.status, std::move(slot.reason),
                                          std::move(slot.response_headers));
      slot.response_headers.clear();
    }
    return len;
  }
  size_t colon = content.find(':');
  if (colon != std::string_view::npos && slot.status >= 400 &&
      iequals(trim(content.substr(0, colon)), "X-ClickHouse-Exception-Code"))
    slot.error_head = "Code: " + std::string(trim(content.substr(colon + 1))) + ",";
  if (colon != std::string_view::npos)
    slot.response_headers.push_back(
        {std::string(trim(content.substr(0, colon))), std::string(trim(content.substr(colon + 1)))});
  return len;
}

size_t UpstreamPool::on_write(char* data, size_t size, size_t n, void* slot_ptr) noexcept {
  auto& slot = *static_cast<Slot*>(slot_ptr);
  if (slot.client == nullptr) return 0;
  slot.last_progress_ms = uv_now(slot.pool->loop_);
  if (slot.status >= 400 && slot.error_head.size() < kErrorHeadBytes)
    slot.error_head.append(data, std::min(size * n, kErrorHeadBytes - slot.error_head.size()));
  size_t taken = slot.client->upstream_response_data(data, size * n);
  if (taken == CURL_WRITEFUNC_PAUSE) slot.recv_paused = true;
  return taken;
}

size_t UpstreamPool::on_read(char* buf, size_t size, size_t n, void* slot_ptr) noexcept {
  auto& slot = *static_cast<Slot*>(slot_ptr);
  if (slot.client == nullptr) return CURL_READFUNC_ABORT;
  size_t got = slot.client->upstream_read_body(buf, size * n);
  if (got == kUpstreamPause) slot.send_paused = true;
  return got;
}

// Bytes that left for the upstream or came from it (a body trickling out
// through a full socket buffer is progress too).
int UpstreamPool::on_progress(void* slot_ptr, curl_off_t, curl_off_t received, curl_off_t,
                              curl_off_t sent) noexcept {
  auto& slot = *static_cast<Slot*>(slot_ptr);
  if (sent != slot.sent || received != slot.received) {
    slot.sent = sent;
    slot.received = received;
    slot.last_progress_ms = uv_now(slot.pool->loop_);
  }
  return 0;
}

int UpstreamPool::on_connected(void* slot_ptr, char*, char*, int, int) noexcept {
  auto& slot = *static_cast<Slot*>(slot_ptr);
  // A second connection for one try: curl found the reused one closed before
  // any answer byte and sends the request again itself (the body rewound
  // through on_seek), the same retry the pool would make.
  if (slot.connected) slot.pool->count_stale_connection_retry("connection closed before the answer");
  slot.connected = true;
  slot.last_progress_ms = uv_now(slot.pool->loop_);
  return CURL_PREREQFUNC_OK;
}

int UpstreamPool::on_seek(void* slot_ptr, curl_off_t offset, int origin) noexcept {
  auto& slot = *static_cast<Slot*>(slot_ptr);
  if (slot.client == nullptr || offset != 0 || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  return slot.client->upstream_rewind_body() ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
}

}  // namespace chsidecar
