// One budget (--max-memory) for the bytes that grow with load: request
// bodies held by exchanges, answers queued to clients, batch buffers, rows
// waiting for the spool, and decoded (gunzipped) bodies.
//
// Pure accounting: no I/O, no clock, no uv. Owned by App; loop thread only.
//
// Two ways in, so that a running request is never starved:
// - admit(): a new request takes its whole share up front (its body, up to
//   --body-buffer). It fails at the budget, and also while earlier requests
//   wait, so a large request is not overtaken forever by small ones. A
//   request admitted holds what its body needs and never waits for memory
//   again while it reads it.
// - try_take(): work already running (a batch's rows, a decoded body) takes
//   more if it fits, ignoring the waiters; on failure the caller has a way
//   out that needs no memory (503, or sending the body as it is).
// - take(): bytes that exist already or must be accepted (an answer queued
//   to a client, rows acknowledged from the spool) are counted even beyond
//   the limit; admit() then refuses until they are gone.
//
// Waiting: a request that is not admitted may wait(), in FIFO order, until
// grant() finds room for it or expire() passes its deadline. The caller
// calls grant() whenever memory may have been given back, and expire()
// now and then, and tells each returned waiter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace chsidecar {

// Something waiting for admission: an Exchange.
class MemoryWaiter {
 public:
  // The request's share was taken for it (grant()).
  virtual void memory_granted() = 0;
  // Its deadline passed without room (expire()): nothing was taken.
  virtual void memory_refused() = 0;

 protected:
  ~MemoryWaiter() = default;
};

class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t limit) : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Takes `bytes` for a new request if no one waits and they fit (a request
  // needing 0 bytes fits while the budget is not used up).
  [[nodiscard]] bool admit(uint64_t bytes);
  // Takes `bytes` if they fit, waiters or not.
  [[nodiscard]] bool try_take(uint64_t bytes);
  // Counts `bytes`, even beyond the limit.
  void take(uint64_t bytes);
  // Gives back bytes taken before. REQUIRES: bytes <= used().
  void give(uint64_t bytes);

  // Queues `waiter` for `bytes` until `deadline_ms` (any clock the caller
  // uses consistently). REQUIRES: not queued already; `waiter` stays live
  // until granted, refused or cancel()led.
  void wait(MemoryWaiter* waiter, uint64_t bytes, uint64_t deadline_ms);
  // Removes `waiter` from the queue, if there. Idempotent.
  void cancel(MemoryWaiter* waiter);
  // Takes the share of each waiter at the front that fits, in order, and
  // returns them (the caller calls memory_granted() on each).
  std::vector<MemoryWaiter*> grant();
  // Removes and returns the waiters whose deadline is <= now_ms (the caller
  // calls memory_refused() on each).
  std::vector<MemoryWaiter*> expire(uint64_t now_ms);
  bool has_waiters() const { return !waiters_.empty(); }
  size_t waiting() const { return waiters_.size(); }

  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_; }
  uint64_t peak() const { return peak_; }
  uint64_t available() const { return used_ >= limit_ ? 0 : limit_ - used_; }
  // True when `bytes` more fit (as try_take() would judge, taking nothing).
  bool fits_more(uint64_t bytes) const { return fits(bytes); }
  // True when `extra` more bytes would go past the limit.
  bool over(uint64_t extra = 0) const { return used_ + extra > limit_; }

 private:
  struct Waiting {
    MemoryWaiter* waiter;
    uint64_t bytes;
    uint64_t deadline_ms;
  };
  bool fits(uint64_t bytes) const { return bytes == 0 ? used_ < limit_ : used_ + bytes <= limit_; }

  uint64_t limit_;
  uint64_t used_ = 0;
  uint64_t peak_ = 0;
  std::deque<Waiting> waiters_;
};

// Bytes held against a budget, given back once: by release() or when the
// charge goes away. REQUIRES: the budget outlives the charge.
class MemoryCharge {
 public:
  explicit MemoryCharge(MemoryBudget& budget) : budget_(budget) {}
  ~MemoryCharge() { release(); }
  MemoryCharge(const MemoryCharge&) = delete;
  MemoryCharge& operator=(const MemoryCharge&) = delete;

  // Counts `bytes` more against the budget (MemoryBudget::take).
  void take(uint64_t bytes) {
    budget_.take(bytes);
    bytes_ += bytes;
  }
  // Holds `bytes` the caller took from the budget already.
  void adopt(uint64_t bytes) { bytes_ += bytes; }
  void release() {
    if (bytes_ == 0) return;
    budget_.give(bytes_);
    bytes_ = 0;
  }
  uint64_t bytes() const { return bytes_; }

 private:
  MemoryBudget& budget_;
  uint64_t bytes_ = 0;
};

}  // namespace chsidecar
