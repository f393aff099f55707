// The upstream replicas: one pool each, their health, and the choice of one.
//
// Several --upstream URLs name replicas of one cluster. Work without state
// goes to the healthy replica with the fewest outstanding requests (busy
// plus queued); a stateful session stays where it began (the caller keeps
// the index). Health is active, a GET /ping every --health-interval (one at
// a time per replica; it fails after --health-timeout without a byte), and
// passive: --eject-after consecutive upstream failures (no answer, or a
// 502/503/504) eject a replica at once. An ejected replica keeps being
// pinged and returns on the first good answer. With no healthy replica
// left, choose() still returns the least loaded one: its error then reaches
// the client (a 502) instead of a made-up one.
//
// The batching side sees it only as an UpstreamSink (upstream_sink.h).
//
// Loop thread only; owned by App.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "upstream_pool.h"
#include "upstream_sink.h"

namespace chsidecar {

class Replicas final : public UpstreamSink {
 public:
  // `config` must outlive the replicas.
  Replicas(uv_loop_t* loop, const Config& config);
  ~Replicas();
  Replicas(const Replicas&) = delete;
  Replicas& operator=(const Replicas&) = delete;

  // Starts the health checks.
  void start();
  void close();

  UpstreamPool& choose();
  // UpstreamSink: work without state, on choose(); cancel() on the pool
  // the client was submitted to.
  UpstreamPool::Submit submit(UpstreamClient* client, UpstreamRequest request) override;
  void cancel(UpstreamClient* client) override;
  std::string display_name() override;
  // The least loaded healthy replica; `avoid` (an index) only if nothing
  // else is left.
  size_t choose_index(size_t avoid = SIZE_MAX);
  UpstreamPool& at(size_t index);
  size_t size() const { return replicas_.size(); }
  bool healthy(size_t index) const;
  size_t index_of(const UpstreamPool* pool) const;

  // Called with a replica's index when it turns healthy after an ejection.
  void set_on_recovered(std::function<void(size_t)> callback) { on_recovered_ = std::move(callback); }

 private:
  struct Replica;
  class Ping;

  void observe(Replica& replica, bool ok, const char* source);
  static void on_health_timer(uv_timer_t* timer) noexcept;

  uv_loop_t* loop_;
  const Config& config_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  uv_timer_t* timer_ = nullptr;
  std::function<void(size_t)> on_recovered_;
};

}  // namespace chsidecar
