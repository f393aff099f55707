#include "app.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <ctime>

#include "admin.h"
#include "body_encoder.h"
#include "connection.h"
#include "log.h"
#include "spooled_rows.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {
constexpr uint64_t kHousekeepingMs = 1'000;
// How often waiting requests are checked against their deadline (memory
// given back is granted sooner, at the end of each loop iteration).
constexpr uint64_t kMemoryTickMs = 50;
}  // namespace

App::App(uv_loop_t* loop, const Config& config)
    : loop_(loop), config_(config), proxy_metrics_(metrics_), batch_metrics_(metrics_),
      start_ms_(uv_now(loop)), memory_(config.max_memory_bytes), sessions_(config),
      read_buffer_(new char[kReadBufferBytes]) {
  replicas_ = std::make_unique<Replicas>(loop, config);
  for (size_t i = 0; i < replicas_->size(); ++i) replicas_->at(i).set_metrics(&proxy_metrics_);
  batcher_ = std::make_unique<Batcher>(loop, config, *replicas_);
  batcher_->set_memory(&memory_);
  batcher_->set_idle_callback([this] { maybe_finish_shutdown(); });
  structures_ = std::make_unique<StructureCache>(loop, config, *replicas_);
  batcher_->set_error_callback([this](const BatchTarget& target, int code) {
    if (!target.structure_key.empty() && structure_error(code)) structures_->refresh(target.structure_key);
  });
  // A coding that does not depend on the server is set before the spool is
  // replayed, so a replayed batch goes out as the same bytes as before the
  // restart (one that does waits for the probe; until then batches go plain).
  if (!choose_upstream_coding_needs_server(config.upstream_compression, all_on_loopback(config.upstreams)))
    batcher_->set_upstream_coding(choose_upstream_coding(config.upstream_compression, false,
                                                         all_on_loopback(config.upstreams)));
  spool_ = std::make_unique<Spool>(loop, config);
  spool_->set_idle_callback([this] { maybe_finish_shutdown(); });
  replica_facts_.resize(replicas_->size());
  for (size_t i = 0; i < replicas_->size(); ++i)
    probes_.push_back(std::make_unique<ServerProbe>(
        loop, replicas_->at(i), [this, i](const ServerFacts& facts) { replica_probed(i, facts); }));
  // A replica that comes back may run another version now.
  replicas_->set_on_recovered([this](size_t i) { probes_[i]->start(); });
  register_metrics();
}

// A feature counts once every replica is known to have it: a setting is
// never sent to a server that lacks it (18.16 refuses one with code 115).
void App::replica_probed(size_t replica, const ServerFacts& facts) {
  replica_facts_[replica] = facts;
  bool all_known = true;
  std::optional<ServerFacts> combined;
  for (const std::optional<ServerFacts>& f : replica_facts_) {
    if (!f) {
      all_known = false;
    } else if (!combined) {
      combined = *f;
    } else {
      combined->dedup_token &= f->dedup_token;
      combined->async_insert &= f->async_insert;
      combined->modern_encodings &= f->modern_encodings;
      combined->row_binary_with_defaults &= f->row_binary_with_defaults;
    }
  }
  if (!all_known)
    combined->dedup_token = combined->async_insert = combined->modern_encodings =
        combined->row_binary_with_defaults = false;
  server_facts_ = *combined;
  batcher_->set_dedup_token(server_facts_.dedup_token);
  batcher_->set_async_insert_known(server_facts_.async_insert);
  UpstreamCoding coding = choose_upstream_coding(config_.upstream_compression,
                                                 server_facts_.modern_encodings,
                                                 all_on_loopback(config_.upstreams));
  batcher_->set_upstream_coding(coding);
  log_event(LogLevel::kInfo, "upstream_compression",
            {{"coding", coding == UpstreamCoding::kNone ? "none" : std::string(coding_name(coding))}});
  std::string upstream = replicas_->at(replica).display_name();
  if (facts.dedup_token) {
    log_event(LogLevel::kInfo, "upstream_version",
              {{"upstream", upstream}, {"version", facts.version}, {"insert_deduplication_token", "yes"}});
  } else {
    log_event(LogLevel::kWarn, "upstream_without_dedup_token",
              {{"upstream", upstream},
               {"version", facts.version},
               {"consequence",
                "a batch retried after an unknown outcome (connection lost after sending) may be "
                "inserted twice: at-least-once"}});
  }
}

bool App::open_spool(std::string& error) {
  if (config_.spool_dir.empty()) return true;  // spooled answers disabled
  if (!spool_->open(error, replay_)) return false;
  batcher_->set_spool(spool_.get());
  return true;
}

// Sends what the spool held at start-up; only once the process runs, since a
// batch of it may write to the spool on the thread pool (a batch record).
void App::replay_spool() {
  replay_spooled(*batcher_, std::move(replay_));
  replay_ = SpoolReplay{};
}

// Gauges read at scrape time, and series that should read 0 before their first event.
void App::register_metrics() {
  ProxyMetrics& pm = proxy_metrics_;
  pm.build_info.at({CHSIDECAR_VERSION}).set(1);
  pm.start_time.get().set(static_cast<double>(std::time(nullptr)));
  pm.requests_in_flight.get();
  pm.connections_accepted.get();
  pm.connections.at({"client"}).set_function([this] { return double(connections_.size()); });
  pm.connections.at({"admin"}).set_function(
      [this] { return admin_ ? double(admin_->connections()) : 0.0; });
  for (size_t i = 0; i < replicas_->size(); ++i) {
    UpstreamPool* pool = &replicas_->at(i);
    pm.pool_slots.at({pool->display_name(), "busy"}).set_function(
        [pool] { return double(pool->busy_slots()); });
    pm.pool_slots.at({pool->display_name(), "idle"}).set_function(
        [pool] { return double(pool->size() - pool->busy_slots()); });
    pm.upstream_healthy.at({pool->display_name()}).set_function(
        [this, i] { return replicas_->healthy(i) ? 1.0 : 0.0; });
  }
  pm.queued_requests.at({"pool"}).set_function([this] {
    double queued = 0;
    for (size_t i = 0; i < replicas_->size(); ++i) queued += double(replicas_->at(i).queued());
    return queued;
  });
  pm.queued_requests.at({"session"}).set_function([this] { return double(sessions_.queued()); });
  pm.sessions_stateful.get().set_function([this] { return double(sessions_.size()); });
  pm.session_requests.at({"stateless"});
  pm.session_requests.at({"stateful"});
  pm.log_suppressed.get().set_function([] { return double(log_suppressed_total()); });
  pm.memory_used.get().set_function([this] { return double(memory_.used()); });
  pm.memory_max.get().set(static_cast<double>(config_.max_memory_bytes));
  pm.memory_peak.get().set_function([this] { return double(memory_.peak()); });
  pm.memory_waiting.get().set_function([this] { return double(memory_.waiting()); });
  pm.memory_refused.get();

  BatchMetrics& bm = batch_metrics_;
  bm.buffered_bytes.get().set_function([this] { return double(batcher_->buffered_bytes()); });
  bm.buffer_max_bytes.get().set(static_cast<double>(config_.buffer_max_bytes));
  bm.batch_rows.get();
  bm.batch_bytes.get();
  bm.oldest_row_age.get().set_function([this] { return batcher_->oldest_row_age_seconds(); });
  batcher_->set_metrics(&batch_metrics_);
  spool_->set_fsync_observer([this](double seconds) { batch_metrics_.fsync_duration.get().observe(seconds); });
  bm.spool_bytes.get().set_function([this] { return double(spool_->bytes()); });
  bm.spool_max_bytes.get().set_function(
      [this] { return spool_->enabled() ? double(config_.spool_max_bytes) : 0.0; });
  bm.spool_writable.get().set_function(
      [this] { return spool_->enabled() && spool_->write_error() == 0 ? 1.0 : 0.0; });
  bm.dead_letter_bytes.get().set_function([this] { return double(spool_->dead_letter_bytes()); });
  bm.dead_letter_max_bytes.get().set_function(
      [this] { return spool_->enabled() ? double(config_.dead_letter_max_bytes) : 0.0; });
  bm.fsyncs.get().set_function([this] { return double(spool_->fsyncs()); });
  bm.segments.at({"new"}).set_function([this] { return double(spool_->segments_created()); });
  bm.segments.at({"reused"}).set_function([this] { return double(spool_->segments_reused()); });
  bm.fsync_duration.get();

  // Not ready once the batch buffers are nearly full: new INSERTs would get 503.
  add_readiness_check([this]() -> const char* {
    return batcher_->buffered_bytes() >= config_.buffer_max_bytes / 10 * 9 ? "batch buffers full"
                                                                          : nullptr;
  });
  add_readiness_check([this]() -> const char* {
    return memory_.used() >= config_.max_memory_bytes / 10 * 9 ? "memory budget full" : nullptr;
  });
  add_readiness_check([this]() -> const char* {
    return spool_->enabled() && spool_->bytes() >= config_.spool_max_bytes / 10 * 9 ? "spool full"
                                                                                    : nullptr;
  });
}

void App::add_readiness_check(std::function<const char*()> check) {
  readiness_checks_.push_back(std::move(check));
}

const char* App::not_ready_reason() const {
  if (draining_) return "draining";
  for (const auto& check : readiness_checks_)
    if (const char* reason = check()) return reason;
  return nullptr;
}

App::~App() = default;

uv_buf_t App::read_buffer(size_t max) {
  return uv_buf_init(read_buffer_.get(), static_cast<unsigned>(std::min(max, kReadBufferBytes)));
}

int App::start() {
  std::signal(SIGPIPE, SIG_IGN);
  int rc = listener_.start(loop_, config_.listen, 1024, &App::on_connection, this);
  if (rc == 0 && config_.admin_enabled) {
    admin_ = std::make_unique<Admin>(*this);
    rc = admin_->start();
    if (rc != 0)
      log_event(LogLevel::kError, "admin_listen_failed",
                {{"admin_listen", config_.admin_listen.host + ":" +
                                      std::to_string(config_.admin_listen.port)},
                 {"error", uv_strerror(rc)}});
  }
  if (rc != 0) {
    listener_.close();
    if (admin_) admin_->close();
    replicas_->close();
    return rc;
  }
  sigterm_ = make_handle<uv_signal_t>(loop_, uv_signal_init, this);
  sigint_ = make_handle<uv_signal_t>(loop_, uv_signal_init, this);
  uv_signal_start(sigterm_, &App::on_signal, SIGTERM);
  uv_signal_start(sigint_, &App::on_signal, SIGINT);
  housekeeping_ = make_handle<uv_timer_t>(loop_, uv_timer_init, this);
  uv_timer_start(housekeeping_, &App::on_housekeeping, kHousekeepingMs, kHousekeepingMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(housekeeping_));
  for (auto& probe : probes_) probe->start();
  replicas_->start();
  flush_check_ = make_handle<uv_check_t>(loop_, uv_check_init, this);
  uv_check_start(flush_check_, &App::on_flush);
  uv_unref(reinterpret_cast<uv_handle_t*>(flush_check_));
  flush_idle_ = make_handle<uv_idle_t>(loop_, uv_idle_init, this);
  memory_timer_ = make_handle<uv_timer_t>(loop_, uv_timer_init, this);
  replay_spool();
  return 0;
}

void App::on_connection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<App*>(server->data);
  if (self == nullptr || status < 0) return;
  auto* connection = new Connection(*self);
  Accepted accepted =
      accept_connection(server, connection, self->connections_, self->config_.max_connections);
  if (accepted == Accepted::kFailed) {
    connection->close("accept_failed");
    return;
  }
  self->proxy_metrics_.connections_accepted.get().inc();
  connection->start(accepted == Accepted::kOverCap);  // over the cap: 503
}

void App::schedule_flush(Connection* connection) {
  if (flush_list_.empty() && flush_idle_ != nullptr)
    uv_idle_start(flush_idle_, [](uv_idle_t*) noexcept {});
  flush_list_.push_back(connection);
}

void App::cancel_flush(Connection* connection) {
  std::replace(flush_list_.begin(), flush_list_.end(), connection, static_cast<Connection*>(nullptr));
}

void App::on_flush(uv_check_t* check) noexcept {
  auto* self = static_cast<App*>(check->data);
  if (self == nullptr) return;
  // flush_output() may queue more (a resumed transfer): loop until quiet.
  while (!self->flush_list_.empty()) {
    std::vector<Connection*> list = std::move(self->flush_list_);
    self->flush_list_.clear();
    for (Connection* c : list)
      if (c != nullptr) c->flush_output();
  }
  if (self->memory_.has_waiters()) self->serve_memory_waiters();
  if (self->flush_idle_ != nullptr) uv_idle_stop(self->flush_idle_);
}

void App::wait_for_memory(MemoryWaiter* waiter, uint64_t bytes) {
  memory_.wait(waiter, bytes, now_ms() + config_.memory_wait_ms);
  if (memory_timer_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(memory_timer_)))
    uv_timer_start(memory_timer_, &App::on_memory_timer, kMemoryTickMs, kMemoryTickMs);
}

void App::on_memory_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<App*>(timer->data);
  if (self == nullptr) return;
  self->serve_memory_waiters();
}

// Called from the loop (check handle or timer), never from inside a give():
// a granted request starts routing, which may write or free other objects.
void App::serve_memory_waiters() {
  for (MemoryWaiter* w : memory_.grant()) w->memory_granted();
  for (MemoryWaiter* w : memory_.expire(now_ms())) w->memory_refused();
  if (!memory_.has_waiters() && memory_timer_ != nullptr) uv_timer_stop(memory_timer_);
}

void App::connection_closed(Connection* connection) {
  connections_.erase(connection);
  delete connection;
  maybe_finish_shutdown();
}

// Shutdown completes when no client is connected and no batch is buffered or in flight.
void App::maybe_finish_shutdown() {
  if (draining_ && connections_.empty() && batcher_->idle() && spool_->idle()) finish_shutdown();
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
  listener_.close();
  grace_timer_ = make_handle<uv_timer_t>(loop_, uv_timer_init, this);
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
  log_flush_suppressed();
  size_t dropped = self->sessions_.expire(self->now_ms());
  if (dropped > 0)
    log_event(LogLevel::kDebug, "sessions_expired", {{"count", std::to_string(dropped)}});
}

// Everything is idle: close the remaining handles so uv_run returns.
void App::finish_shutdown() {
  if (finished_) return;
  finished_ = true;
  for (auto& probe : probes_) probe->close();
  batcher_->close();
  spool_->close();
  replicas_->close();
  if (admin_) admin_->close();
  close_handle(grace_timer_);
  close_handle(flush_check_);
  close_handle(flush_idle_);
  close_handle(memory_timer_);
  memory_timer_ = nullptr;
  flush_check_ = nullptr;
  flush_idle_ = nullptr;
  close_handle(housekeeping_);
  close_handle(sigterm_);
  close_handle(sigint_);
  grace_timer_ = nullptr;
  housekeeping_ = nullptr;
  sigterm_ = sigint_ = nullptr;
  log_event(LogLevel::kInfo, "shutdown_complete");
}

}  // namespace chsidecar
