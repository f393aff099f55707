#include "replicas.h"

#include "log.h"
#include "uv_handle.h"

namespace chsidecar {

// A GET /ping to one replica.
class Replicas::Ping final : public UpstreamClient {
 public:
  Ping(Replicas& owner, Replica& replica) : owner_(owner), replica_(replica) {}
  bool running = false;

  size_t upstream_read_body(char*, size_t) override { return 0; }
  bool upstream_rewind_body() override { return true; }
  void upstream_response_head(int status, std::string, std::vector<Header>) override { status_ = status; }
  size_t upstream_response_data(const char*, size_t size) override { return size; }
  void upstream_done(const UpstreamOutcome& outcome) override;
  void reset() { status_ = 0; }

 private:
  Replicas& owner_;
  Replica& replica_;
  int status_ = 0;
};

struct Replicas::Replica {
  std::unique_ptr<UpstreamPool> pool;
  std::unique_ptr<Ping> ping;
  bool healthy = true;
  uint64_t failures = 0;
};

void Replicas::Ping::upstream_done(const UpstreamOutcome& outcome) {
  running = false;
  owner_.observe(replica_, outcome.code == CURLE_OK && status_ == 200, "ping");
}

Replicas::Replicas(uv_loop_t* loop, const Config& config) : loop_(loop), config_(config) {
  for (const std::string& url : config.upstreams) {
    auto replica = std::make_unique<Replica>();
    replica->pool = std::make_unique<UpstreamPool>(loop, config, url);
    replica->ping = std::make_unique<Ping>(*this, *replica);
    Replica* r = replica.get();
    replica->pool->set_health_observer([this, r](bool ok) { observe(*r, ok, "request"); });
    replicas_.push_back(std::move(replica));
  }
}

Replicas::~Replicas() { close(); }

void Replicas::start() {
  timer_ = make_handle<uv_timer_t>();
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_start(timer_, &Replicas::on_health_timer, config_.health_interval_ms,
                 config_.health_interval_ms);
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

void Replicas::close() {
  close_handle(timer_);
  timer_ = nullptr;
  for (auto& r : replicas_) {
    if (r->ping->running) r->pool->cancel(r->ping.get());
    r->ping->running = false;
    r->pool->close();
  }
}

void Replicas::observe(Replica& replica, bool ok, const char* source) {
  if (ok) {
    replica.failures = 0;
    if (!replica.healthy) {
      replica.healthy = true;
      log_event(LogLevel::kInfo, "replica_healthy", {{"upstream", replica.pool->display_name()}});
      if (on_recovered_) on_recovered_(index_of(replica.pool.get()));
    }
    return;
  }
  ++replica.failures;
  if (replica.healthy && replica.failures >= config_.eject_after) {
    replica.healthy = false;
    log_event(LogLevel::kWarn, "replica_ejected",
              {{"upstream", replica.pool->display_name()},
               {"failures", std::to_string(replica.failures)},
               {"source", source}});
  }
}

size_t Replicas::choose_index(size_t avoid) {
  size_t best = 0;
  size_t best_load = SIZE_MAX;
  bool best_healthy = false;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    const Replica& r = *replicas_[i];
    size_t load = r.pool->busy_slots() + r.pool->queued();
    bool healthy = r.healthy && i != avoid;
    if ((healthy && !best_healthy) || (healthy == best_healthy && load < best_load)) {
      best = i;
      best_load = load;
      best_healthy = healthy;
    }
  }
  return best;
}

UpstreamPool& Replicas::choose() { return at(choose_index()); }

UpstreamPool::Submit Replicas::submit(UpstreamClient* client, UpstreamRequest request) {
  return choose().submit(client, std::move(request));
}

void Replicas::cancel(UpstreamClient* client) {
  if (UpstreamPool* pool = client->upstream_pool()) pool->cancel(client);
}

std::string Replicas::display_name() { return choose().display_name(); }
UpstreamPool& Replicas::at(size_t index) { return *replicas_[index]->pool; }
bool Replicas::healthy(size_t index) const { return replicas_[index]->healthy; }

size_t Replicas::index_of(const UpstreamPool* pool) const {
  for (size_t i = 0; i < replicas_.size(); ++i)
    if (replicas_[i]->pool.get() == pool) return i;
  return 0;
}

void Replicas::on_health_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Replicas*>(timer->data);
  if (self == nullptr) return;
  for (auto& r : self->replicas_) {
    if (r->ping->running) continue;
    r->ping->reset();
    UpstreamRequest request;
    request.method = "GET";
    request.target = "/ping";
    request.tells_health = false;  // counted once, by Ping::upstream_done
    // /ping answers at once: one that hangs (an upstream that swallows
    // requests) fails after --health-timeout, not --upstream-timeout, which
    // suits long queries, not pings.
    request.no_byte_timeout_ms = self->config_.health_timeout_ms;
    r->ping->running = true;
    if (r->pool->submit(r->ping.get(), std::move(request)) == UpstreamPool::Submit::kQueueFull)
      r->ping->running = false;
  }
}

}  // namespace chsidecar
