// Client sessions that hold state, and the order their requests run in.
//
// ClickHouse runs one query at a time per session (user, session_id) and
// answers a concurrent one with code 373. A session that has only run
// stateless statements is not tracked here at all: its requests are
// forwarded without the session parameters and run concurrently. From the
// first stateful statement on (or from the start in pin mode) the session is
// tracked: one request runs at a time, the rest wait in arrival order, and
// the next starts only when the previous one finished.
//
// Pure bookkeeping, no I/O: the caller passes the clock and is told, through
// SessionWaiter::session_turn(), when a queued request may start. Bounded by
// max_sessions and session_queue_max. Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "config.h"

namespace chsidecar {

// A request waiting for its session's turn.
class SessionWaiter {
 public:
  // The session is now this request's; it must call SessionTable::finished
  // (or cancel) when done. Called from inside finished()/cancel().
  virtual void session_turn() = 0;

 protected:
  ~SessionWaiter() = default;
};

class SessionTable {
 public:
  enum class Admit { kRun, kQueued, kQueueFull, kTableFull };

  explicit SessionTable(const Config& config) : config_(config) {}
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // The key ClickHouse uses for a session: user and session_id.
  static std::string key(const std::string& user, const std::string& session_id);

  bool is_stateful(const std::string& key) const { return sessions_.count(key) != 0; }

  // Makes the session stateful (if it was not) and asks to run `waiter` in
  // it. kRun: the waiter holds the session now. kQueued: session_turn()
  // comes later. The other answers leave nothing behind. `timeout_ms` is
  // the session's idle lifetime on the server (session_timeout).
  Admit admit(const std::string& key, SessionWaiter* waiter, uint64_t timeout_ms);

  // `waiter`, which held the session, is done; the next queued request gets
  // its turn. `now_ms` starts the idle clock. `refused`: ClickHouse opened
  // no session (372, 374, a failed login); a session it never confirmed is
  // then forgotten, so that it holds no slot.
  void finished(const std::string& key, SessionWaiter* waiter, uint64_t now_ms,
                bool refused = false);

  // Removes `waiter` whether it holds the session or waits in it.
  void cancel(const std::string& key, SessionWaiter* waiter, uint64_t now_ms);

  // Forgets idle sessions whose server-side state has expired (with a margin:
  // forgetting too early would send a stateful request unpinned). Returns how
  // many were dropped.
  size_t expire(uint64_t now_ms);

  // The replica a stateful session runs on (SIZE_MAX until its first
  // request is sent); its state lives there only.
  size_t replica(const std::string& key) const;
  void set_replica(const std::string& key, size_t replica);

  size_t size() const { return sessions_.size(); }
  size_t queued() const { return queued_; }

  // Extra time beyond session_timeout before a session is forgotten.
  static constexpr uint64_t kExpiryMarginMs = 5'000;

 private:
  struct Session {
    SessionWaiter* running = nullptr;
    std::deque<SessionWaiter*> waiting;
    uint64_t timeout_ms = 60'000;
    uint64_t idle_since_ms = 0;
    size_t replica = SIZE_MAX;
    bool confirmed = false;  // a request of it ran on the server
  };

  void next_turn(Session& session, uint64_t now_ms);

  const Config& config_;
  std::unordered_map<std::string, Session> sessions_;
  size_t queued_ = 0;
};

}  // namespace chsidecar
