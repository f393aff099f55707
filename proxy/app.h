// The loop context: owns the loop, the configuration and every subsystem.
//
// App is the one object reachable from every callback (through the pointers
// each object was constructed with; there are no globals). It accepts
// client connections, owns the upstream pool and the session table, and
// fixes the order of shutdown: stop accepting, let each connection finish
// its exchange, then close the pool and the remaining handles so that
// uv_run() returns. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_set>
#include <vector>

#include "batcher.h"
#include "config.h"
#include "http_response.h"
#include "listener.h"
#include "memory_budget.h"
#include "replicas.h"
#include "metrics.h"
#include "server_probe.h"
#include "sessions.h"
#include "spool.h"
#include "structure_cache.h"

namespace chsidecar {

class Admin;
class Connection;

class App {
 public:
  // `loop` and `config` must outlive the App.
  App(uv_loop_t* loop, const Config& config);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Binds the listener and installs signal handlers. Returns 0 or a
  // negative libuv error.
  int start();

  // Stops accepting and lets in-flight exchanges finish, for at most
  // shutdown_grace; then closes everything so uv_run returns.
  void begin_shutdown();

  uv_loop_t* loop() const { return loop_; }
  const Config& config() const { return config_; }
  Replicas& replicas() { return *replicas_; }
  SessionTable& sessions() { return sessions_; }
  Batcher& batcher() { return *batcher_; }
  StructureCache& structures() { return *structures_; }
  Spool& spool() { return *spool_; }
  // The --max-memory budget every request, answer and batch draws from.
  MemoryBudget& memory() { return memory_; }
  // Queues `waiter` for `bytes` of the budget for --memory-wait; App grants
  // it when memory is given back (once per loop iteration) or refuses it at
  // the deadline. The waiter calls memory().cancel() if it goes away first.
  void wait_for_memory(MemoryWaiter* waiter, uint64_t bytes);
  // What the upstream supports (known once the probe answered; all false before).
  const ServerFacts& server_facts() const { return server_facts_; }

  // What answers advertise in Keep-Alive (http_response.h): --idle-timeout,
  // and the probe's value, which the policy views (valid until the next probe).
  KeepAlivePolicy keep_alive_policy() const {
    return {config_.idle_timeout_given, config_.idle_timeout_ms, server_facts_.keep_alive};
  }


  // Opens the spool and reads its unacknowledged records; start() replays
  // them. Blocking; call before start(). On failure returns false with `error`.
  bool open_spool(std::string& error);
  bool draining() const { return draining_; }

  // The metrics registry and the families registered for each subsystem.
  Metrics& metrics() { return metrics_; }
  ProxyMetrics& proxy_metrics() { return proxy_metrics_; }
  BatchMetrics& batch_metrics() { return batch_metrics_; }

  // Adds a readiness condition for /ready: `check` returns nullptr when
  // fine, else a short static reason ("spool full"). Checked at each probe.
  void add_readiness_check(std::function<const char*()> check);
  // nullptr when ready; else why not ("draining", or a check's reason).
  const char* not_ready_reason() const;
  // nullptr when the admin listener is off.
  Admin* admin() { return admin_.get(); }
  uint64_t start_ms() const { return start_ms_; }
  uint64_t now_ms() const { return uv_now(loop_); }

  // The shared read buffer: every read callback consumes its bytes before
  // returning, so one buffer serves all connections. `max` bounds the
  // bytes one read takes (kHeadReadBytes for a request not admitted yet).
  static constexpr size_t kReadBufferBytes = 64 * 1024;
  static constexpr size_t kHeadReadBytes = 8 * 1024;
  uv_buf_t read_buffer(size_t max = kReadBufferBytes);

  // Coalesced writes: `connection` has queued output; App calls its
  // flush_output() once, at the end of this loop iteration.
  void schedule_flush(Connection* connection);
  void cancel_flush(Connection* connection);

  // Called by a Connection from its close callback, just before it is freed.
  void connection_closed(Connection* connection);
  size_t connections() const { return connections_.size(); }

 private:
  // A replica's probe answered: what every replica is known to have.
  void replica_probed(size_t replica, const ServerFacts& facts);
  static void on_connection(uv_stream_t* server, int status) noexcept;
  static void on_flush(uv_check_t* check) noexcept;
  static void on_signal(uv_signal_t* handle, int signum) noexcept;
  static void on_housekeeping(uv_timer_t* timer) noexcept;
  static void on_grace_expired(uv_timer_t* timer) noexcept;
  static void on_memory_timer(uv_timer_t* timer) noexcept;
  void serve_memory_waiters();
  void finish_shutdown();
  void replay_spool();
  void maybe_finish_shutdown();
  void register_metrics();

  uv_loop_t* loop_;
  const Config& config_;
  Metrics metrics_;  // before every subsystem: they keep references into it
  ProxyMetrics proxy_metrics_;
  BatchMetrics batch_metrics_;
  std::vector<std::function<const char*()>> readiness_checks_;
  uint64_t start_ms_ = 0;
  MemoryBudget memory_;  // before the subsystems whose objects give bytes back as they go
  std::unique_ptr<Replicas> replicas_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<StructureCache> structures_;  // its questions run on replicas_' pools
  std::unique_ptr<Spool> spool_;
  SpoolReplay replay_;  // read by open_spool(), sent once start() succeeded
  std::vector<std::unique_ptr<ServerProbe>> probes_;  // one per replica
  std::vector<std::optional<ServerFacts>> replica_facts_;
  ServerFacts server_facts_;
  SessionTable sessions_;
  uv_timer_t* memory_timer_ = nullptr;  // runs while requests wait for memory
  std::unique_ptr<Admin> admin_;
  Listener listener_;
  uv_signal_t* sigterm_ = nullptr;
  uv_signal_t* sigint_ = nullptr;
  uv_timer_t* housekeeping_ = nullptr;
  uv_timer_t* grace_timer_ = nullptr;
  uv_check_t* flush_check_ = nullptr;  // flushes queued output after each poll
  uv_idle_t* flush_idle_ = nullptr;    // active while output is queued: poll must not block
  std::vector<Connection*> flush_list_;
  std::unordered_set<Connection*> connections_;
  std::unique_ptr<char[]> read_buffer_;
  bool draining_ = false;
  bool finished_ = false;
};

}  // namespace chsidecar
