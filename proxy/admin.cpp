#include "admin.h"

#include <cstdio>

#include "app.h"
#include "http_parser.h"
#include "http_response.h"
#include "json_text.h"
#include "log.h"
#include "request.h"
#include "uv_handle.h"

namespace chsidecar {

// One admin client: reads one request, answers it, closes.
class AdminConnection {
  friend struct ParserSettings<AdminConnection>;  // reads the parser callbacks

 public:
  explicit AdminConnection(Admin& admin);
  AdminConnection(const AdminConnection&) = delete;
  AdminConnection& operator=(const AdminConnection&) = delete;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(tcp_); }
  void start();
  void close(const char* reason);  // idempotent; freed in the close callback

 private:
  void feed(const char* data, size_t size);
  void respond(int status, std::string_view content_type, const std::string& body, bool head_only);

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_timer(uv_timer_t* timer) noexcept;
  static void on_closed(uv_handle_t* handle) noexcept;
  static int on_url(llhttp_t* parser, const char* at, size_t size) noexcept;
  static int on_message_complete(llhttp_t* parser) noexcept;

  Admin& admin_;
  uv_tcp_t* tcp_;
  uv_timer_t* timer_;
  llhttp_t parser_;
  std::string url_;
  size_t received_ = 0;
  bool complete_ = false;
  bool answered_ = false;
  bool closing_ = false;
  uint64_t started_ns_ = uv_hrtime();
  char buffer_[4096];
};

namespace {

struct AdminWrite {
  uv_write_t req;
  AdminConnection* connection;
  std::string data;
};


}  // namespace

AdminConnection::AdminConnection(Admin& admin) : admin_(admin) {
  uv_loop_t* loop = admin.app().loop();
  tcp_ = make_handle<uv_tcp_t>(loop, uv_tcp_init, this);
  timer_ = make_handle<uv_timer_t>(loop, uv_timer_init, this);
  init_request_parser(parser_, this);
}

void AdminConnection::start() {
  uv_timer_start(timer_, &AdminConnection::on_timer, Admin::kTimeoutMs, 0);
  if (uv_read_start(stream(), &AdminConnection::on_alloc, &AdminConnection::on_read) != 0)
    close("admin_read_error");
}

void AdminConnection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<AdminConnection*>(handle->data);
  *buf = uv_buf_init(self->buffer_, sizeof self->buffer_);
}

void AdminConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<AdminConnection*>(stream->data);
  if (self == nullptr || self->closing_) return;
  if (nread > 0) {
    if (!self->answered_) self->feed(buf->base, static_cast<size_t>(nread));
    return;
  }
  if (nread < 0) self->close("admin_client_closed");
}

void AdminConnection::feed(const char* data, size_t size) {
  received_ += size;
  if (received_ > Admin::kMaxRequestBytes) {
    respond(431, "text/plain; charset=UTF-8", "request too large\n", false);
    return;
  }
  llhttp_errno_t err = llhttp_execute(&parser_, data, size);
  if (err != HPE_OK && err != HPE_PAUSED) {
    respond(400, "text/plain; charset=UTF-8", "bad request\n", false);
    return;
  }
  if (!complete_) return;
  std::string method(request_method(parser_));
  int status = 200;
  std::string content_type;
  std::string body = admin_.answer(method, split_target(url_).path, status, content_type);
  respond(status, content_type, body, method == "HEAD");
}

void AdminConnection::respond(int status, std::string_view content_type, const std::string& body,
                              bool head_only) {
  if (answered_) return;
  answered_ = true;
  ProxyMetrics& pm = admin_.app().proxy_metrics();
  pm.requests.at({"admin", status_label(status)}).inc();
  pm.request_duration.at({"admin"}).observe(static_cast<double>(uv_hrtime() - started_ns_) / 1e9);
  std::vector<Header> headers = {{"Content-Type", std::string(content_type)},
                                 {"Content-Length", std::to_string(body.size())},
                                 {"Cache-Control", "no-store"},
                                 {"Connection", "close"}};
  auto* w = new AdminWrite{{}, this, serialize_head(status, status_reason(status), headers)};
  if (!head_only) w->data += body;
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, stream(), &buf, 1, &AdminConnection::on_write) != 0) {
    delete w;
    close("admin_write_error");
  }
}

void AdminConnection::on_write(uv_write_t* req, int) noexcept {
  auto* w = static_cast<AdminWrite*>(req->data);
  AdminConnection* self = w->connection;
  delete w;
  self->close("done");
}

void AdminConnection::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<AdminConnection*>(timer->data);
  if (self != nullptr) self->close("admin_timeout");
}

void AdminConnection::close(const char*) {
  if (closing_) return;
  closing_ = true;
  uv_read_stop(stream());
  close_handle(timer_);
  timer_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), &AdminConnection::on_closed);
}

void AdminConnection::on_closed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<AdminConnection*>(handle->data);
  delete reinterpret_cast<uv_tcp_t*>(handle);
  self->admin_.connection_closed(self);  // frees `self`
}

int AdminConnection::on_url(llhttp_t* parser, const char* at, size_t size) noexcept {
  auto* self = parser_owner<AdminConnection>(parser);
  self->url_.append(at, size);
  return 0;
}

int AdminConnection::on_message_complete(llhttp_t* parser) noexcept {
  auto* self = parser_owner<AdminConnection>(parser);
  self->complete_ = true;
  return HPE_PAUSED;
}

Admin::Admin(App& app) : app_(app) {}

Admin::~Admin() { close(); }

int Admin::start() {
  return listener_.start(app_.loop(), app_.config().admin_listen, 128, &Admin::on_connection, this);
}

void Admin::on_connection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<Admin*>(server->data);
  if (self == nullptr || status < 0) return;
  auto* c = new AdminConnection(*self);
  if (accept_connection(server, c, self->connections_, kMaxConnections) != Accepted::kYes) {
    c->close("admin_rejected");
    return;
  }
  c->start();
}

void Admin::connection_closed(AdminConnection* c) {
  connections_.erase(c);
  delete c;
}

void Admin::close() {
  listener_.close();
  std::vector<AdminConnection*> open(connections_.begin(), connections_.end());
  for (AdminConnection* c : open) c->close("shutdown");
}

void Admin::add_status(std::string key, std::function<std::string()> json) {
  extra_status_.emplace_back(std::move(key), std::move(json));
}

std::string Admin::answer(std::string_view method, std::string_view path, int& status,
                          std::string& content_type) {
  content_type = "text/plain; charset=UTF-8";
  if (method != "GET" && method != "HEAD") {
    status = 405;
    return "only GET and HEAD\n";
  }
  status = 200;
  if (path == "/metrics") {
    content_type = "text/plain; version=0.0.4; charset=utf-8";
    return app_.metrics().render();
  }
  if (path == "/live") return "ok\n";
  if (path == "/ready") {
    if (const char* reason = app_.not_ready_reason()) {
      status = 503;
      return std::string("not ready: ") + reason + "\n";
    }
    return "ready\n";
  }
  if (path == "/status") {
    content_type = "application/json";
    return status_json();
  }
  status = 404;
  return "not found; try /metrics /live /ready /status\n";
}

std::string Admin::status_json() {
  const Config& c = app_.config();
  const char* not_ready = app_.not_ready_reason();
  std::string out = "{\"version\":";
  append_json_string(out, CHSIDECAR_VERSION);
  out += ",\"uptime_seconds\":" + std::to_string((app_.now_ms() - app_.start_ms()) / 1000);
  out += ",\"draining\":";
  out += app_.draining() ? "true" : "false";
  out += ",\"ready\":";
  out += not_ready == nullptr ? "true" : "false";
  if (not_ready != nullptr) {
    out += ",\"not_ready_reason\":";
    append_json_string(out, not_ready);
  }
  out += ",\"upstreams\":[";
  Replicas& replicas = app_.replicas();
  for (size_t i = 0; i < replicas.size(); ++i) {
    UpstreamPool& pool = replicas.at(i);
    out += i == 0 ? "{\"name\":" : ",{\"name\":";
    append_json_string(out, pool.display_name());  // host:port, never the userinfo
    out += ",\"healthy\":";
    out += replicas.healthy(i) ? "true" : "false";
    out += ",\"pool\":{\"busy\":" + std::to_string(pool.busy_slots()) +
           ",\"size\":" + std::to_string(pool.size()) +
           ",\"queued\":" + std::to_string(pool.queued()) +
           ",\"queue_max\":" + std::to_string(c.queue_max) + "}}";
  }
  out += "]";
  out += ",\"sessions\":{\"stateful\":" + std::to_string(app_.sessions().size()) +
         ",\"queued\":" + std::to_string(app_.sessions().queued()) +
         ",\"max\":" + std::to_string(c.max_sessions) + "}";
  out += ",\"batch\":{\"mode\":";
  out += c.batch_mode == BatchMode::kAuto ? "\"auto\"" : "\"off\"";
  out += ",\"buffered_bytes\":" + std::to_string(app_.batcher().buffered_bytes()) +
         ",\"buffer_max_bytes\":" + std::to_string(c.buffer_max_bytes);
  out += ",\"upstream_version\":";
  append_json_string(out, app_.server_facts().version);
  out += ",\"dedup_token\":";
  out += app_.server_facts().dedup_token ? "true" : "false";
  out += ",\"tables_without_dedup\":[";
  bool first = true;
  for (const std::string& table : app_.batcher().tables_without_dedup()) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, table);
  }
  out += "]}";
  Spool& spool = app_.spool();  // its directory is not shown: paths are not the prober's business
  out += ",\"spool\":{\"enabled\":";
  out += spool.enabled() ? "true" : "false";
  out += ",\"bytes\":" + std::to_string(spool.bytes()) +
         ",\"max_bytes\":" + std::to_string(spool.enabled() ? c.spool_max_bytes : 0) +
         ",\"fsyncs\":" + std::to_string(spool.fsyncs()) +
         ",\"dead_lettered_rows\":" + std::to_string(spool.dead_lettered_rows()) + "}";
  out += ",\"connections\":{\"clients\":" + std::to_string(app_.connections()) +
         ",\"max\":" + std::to_string(c.max_connections) +
         ",\"admin\":" + std::to_string(connections_.size()) + "}";
  for (auto& [key, json] : extra_status_) {
    out += ',';
    append_json_string(out, key);
    out += ':';
    out += json();
  }
  out += "}\n";
  return out;
}

}  // namespace chsidecar
