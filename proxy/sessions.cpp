#include "sessions.h"

#include <algorithm>

namespace chsidecar {

std::string SessionTable::key(const std::string& user, const std::string& session_id) {
  return user + '\n' + session_id;
}

SessionTable::Admit SessionTable::admit(const std::string& key, SessionWaiter* waiter,
                                        uint64_t timeout_ms) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) {
    if (sessions_.size() >= config_.max_sessions) return Admit::kTableFull;
    it = sessions_.emplace(key, Session{}).first;
  }
  Session& s = it->second;
  if (s.running == nullptr && s.waiting.empty()) {
    s.timeout_ms = timeout_ms;
    s.running = waiter;
    return Admit::kRun;
  }
  if (s.waiting.size() >= config_.session_queue_max) return Admit::kQueueFull;
  s.timeout_ms = timeout_ms;  // not before: a refused request must leave nothing behind
  s.waiting.push_back(waiter);
  ++queued_;
  return Admit::kQueued;
}

void SessionTable::next_turn(Session& session, uint64_t now_ms) {
  session.running = nullptr;
  session.idle_since_ms = now_ms;
  if (session.waiting.empty()) return;
  session.running = session.waiting.front();
  session.waiting.pop_front();
  --queued_;
  session.running->session_turn();
}

void SessionTable::finished(const std::string& key, SessionWaiter* waiter, uint64_t now_ms,
                            bool refused) {
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second.running != waiter) return;
  Session& s = it->second;
  s.confirmed |= !refused;
  if (refused && !s.confirmed && s.waiting.empty()) {
    sessions_.erase(it);
    return;
  }
  next_turn(s, now_ms);
}

void SessionTable::cancel(const std::string& key, SessionWaiter* waiter, uint64_t now_ms) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  if (s.running == waiter) {
    next_turn(s, now_ms);
    return;
  }
  auto pos = std::find(s.waiting.begin(), s.waiting.end(), waiter);
  if (pos != s.waiting.end()) {
    s.waiting.erase(pos);
    --queued_;
  }
}

size_t SessionTable::replica(const std::string& key) const {
  auto it = sessions_.find(key);
  return it == sessions_.end() ? SIZE_MAX : it->second.replica;
}

void SessionTable::set_replica(const std::string& key, size_t replica) {
  auto it = sessions_.find(key);
  if (it != sessions_.end()) it->second.replica = replica;
}

size_t SessionTable::expire(uint64_t now_ms) {
  size_t dropped = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& s = it->second;
    bool idle = s.running == nullptr && s.waiting.empty();
    if (idle && now_ms >= s.idle_since_ms + s.timeout_ms + kExpiryMarginMs) {
      it = sessions_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

}  // namespace chsidecar
