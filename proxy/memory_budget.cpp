#include "memory_budget.h"

#include <algorithm>
#include <cassert>

namespace chsidecar {

bool MemoryBudget::admit(uint64_t bytes) {
  if (!waiters_.empty() || !fits(bytes)) return false;
  take(bytes);
  return true;
}

bool MemoryBudget::try_take(uint64_t bytes) {
  if (!fits(bytes)) return false;
  take(bytes);
  return true;
}

void MemoryBudget::take(uint64_t bytes) {
  used_ += bytes;
  peak_ = std::max(peak_, used_);
}

void MemoryBudget::give(uint64_t bytes) {
  assert(bytes <= used_);
  used_ -= std::min(bytes, used_);
}

void MemoryBudget::wait(MemoryWaiter* waiter, uint64_t bytes, uint64_t deadline_ms) {
  waiters_.push_back({waiter, bytes, deadline_ms});
}

void MemoryBudget::cancel(MemoryWaiter* waiter) {
  std::erase_if(waiters_, [waiter](const Waiting& w) { return w.waiter == waiter; });
}

std::vector<MemoryWaiter*> MemoryBudget::grant() {
  std::vector<MemoryWaiter*> granted;
  // Strict order: the front one waits for its room even if a later one fits.
  while (!waiters_.empty() && fits(waiters_.front().bytes)) {
    take(waiters_.front().bytes);
    granted.push_back(waiters_.front().waiter);
    waiters_.pop_front();
  }
  return granted;
}

std::vector<MemoryWaiter*> MemoryBudget::expire(uint64_t now_ms) {
  std::vector<MemoryWaiter*> expired;
  std::erase_if(waiters_, [&](const Waiting& w) {
    if (w.deadline_ms > now_ms) return false;
    expired.push_back(w.waiter);
    return true;
  });
  return expired;
}

}  // namespace chsidecar
