#include "app.h"

#include <csignal>
#include <cstdlib>

#include "connection.h"
#include "log.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {
constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr uint64_t kHousekeepingMs = 1'000;
}  // namespace

App::App(uv_loop_t* loop, const Config& config)
    : loop_(loop), config_(config), sessions_(config),
      read_buffer_(new char[kReadBufferBytes]) {
  pool_ = std::make_unique<UpstreamPool>(loop, config, config.upstreams.front());
  batcher_ = std::make_unique<Batcher>(loop, config, *pool_);
  batcher_->set_idle_callback([this] { maybe_finish_shutdown(); });
}

App::~App() = default;

uv_buf_t App::read_buffer() { return uv_buf_init(read_buffer_.get(), kReadBufferBytes); }

int App::start() {
  std::signal(SIGPIPE, SIG_IGN);
  listener_ = make_handle<uv_tcp_t>();
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(config_.listen.host.c_str(), config_.listen.port,
                       reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0)
    rc = uv_ip6_addr(config_.listen.host.c_str(), config_.listen.port,
                     reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc == 0) rc = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 1024, &App::on_connection);
  if (rc != 0) {
    close_handle(listener_);
    listener_ = nullptr;
    pool_->close();
    return rc;
  }
  sigterm_ = make_handle<uv_signal_t>();
  sigint_ = make_handle<uv_signal_t>();
  for (uv_signal_t* s : {sigterm_, sigint_}) {
    uv_signal_init(loop_, s);
    s->data = this;
  }
  uv_signal_start(sigterm_, &App::on_signal, SIGTERM);
  uv_signal_start(sigint_, &App::on_signal, SIGINT);
  housekeeping_ = make_handle<uv_timer_t>();
  uv_timer_init(loop_, housekeeping_);
  housekeeping_->data = this;
  uv_timer_start(housekeeping_, &App::on_housekeeping, kHousekeepingMs, kHousekeepingMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(housekeeping_));
  return 0;
}

void App::on_connection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<App*>(server->data);
  if (self == nullptr || status < 0) return;
  auto* connection = new Connection(*self);
  if (uv_accept(server, connection->stream()) != 0) {
    self->connections_.insert(connection);
    connection->close("accept_failed");
    return;
  }
  bool over = self->connections_.size() >= self->config_.max_connections;
  self->connections_.insert(connection);
  connection->start(over);
}

void App::connection_closed(Connection* connection) {
  connections_.erase(connection);
  delete connection;
  maybe_finish_shutdown();
}

// Shutdown completes when no client is connected and no batch is buffered or in flight.
void App::maybe_finish_shutdown() {
  if (draining_ && connections_.empty() && batcher_->idle()) finish_shutdown();
}

void App::on_signal(uv_signal_t* handle, int signum) noexcept {
  auto* self = static_cast<App*>(handle->data);
  if (self == nullptr) return;
  if (self->draining_) {
    log_event(LogLevel::kWarn, "shutdown_forced", {{"signal", std::to_string(signum)}});
    std::_Exit(1);
  }
  log_event(LogLevel::kInfo, "shutdown_started",
            {{"signal", std::to_string(signum)},
             {"connections", std::to_string(self->connections_.size())}});
  self->begin_shutdown();
}

void App::begin_shutdown() {
  if (draining_) return;
  draining_ = true;
  close_handle(listener_);
  listener_ = nullptr;
  grace_timer_ = make_handle<uv_timer_t>();
  uv_timer_init(loop_, grace_timer_);
  grace_timer_->data = this;
  uv_timer_start(grace_timer_, &App::on_grace_expired, config_.shutdown_grace_ms, 0);
  // Copy: drain() may close a connection, which erases it from the set.
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* c : open) c->drain();
  batcher_->flush_all();
  maybe_finish_shutdown();
}

void App::on_grace_expired(uv_timer_t* timer) noexcept {
  auto* self = static_cast<App*>(timer->data);
  if (self == nullptr) return;
  log_event(LogLevel::kWarn, "shutdown_grace_expired",
            {{"connections", std::to_string(self->connections_.size())}});
  std::vector<Connection*> open(self->connections_.begin(), self->connections_.end());
  for (Connection* c : open) c->close("shutdown_grace_expired");
  self->batcher_->close();
  self->finish_shutdown();
}

void App::on_housekeeping(uv_timer_t* timer) noexcept {
  auto* self = static_cast<App*>(timer->data);
  if (self == nullptr) return;
  self->batcher_->expire(self->now_ms());
  size_t dropped = self->sessions_.expire(self->now_ms());
  if (dropped > 0)
    log_event(LogLevel::kDebug, "sessions_expired", {{"count", std::to_string(dropped)}});
}

// Everything is idle: close the remaining handles so uv_run returns.
void App::finish_shutdown() {
  if (finished_) return;
  finished_ = true;
  batcher_->close();
  pool_->close();
  close_handle(grace_timer_);
  close_handle(housekeeping_);
  close_handle(sigterm_);
  close_handle(sigint_);
  grace_timer_ = nullptr;
  housekeeping_ = nullptr;
  sigterm_ = sigint_ = nullptr;
  log_event(LogLevel::kInfo, "shutdown_complete");
}

}  // namespace chsidecar
