// The dead-letter files: rows ClickHouse refused after their early answer.
//
// Each refused request becomes one JSON line (spool id, table, rows, error,
// data; never credentials) appended to dead-letter.jsonl in --spool-dir and
// fdatasync'ed on libuv's thread pool, one write at a time. Only once a line
// is on disk is its spool record told committed (the callback given to the
// constructor), so a line that cannot be written leaves its rows in the
// spool: the write is tried again every 5 s, and the spool replays the rows
// at the next start.
//
// Bounded by --dead-letter-max-bytes, the total of every dead-letter file.
// Before each write (and each retry) the files are measured anew, on the
// thread pool, so room an operator made by moving files away counts at once.
// When dead-letter.jsonl has reached a quarter of the cap it is renamed
// dead-letter-<n>.jsonl (n one above the highest there) and kept: the
// sidecar never deletes a dead letter. Lines that would pass the cap are not
// written (whole lines only, in order); they wait in the spool and full()
// holds until a retry finds room, so the spool refuses new early answers
// meanwhile (rows are never dropped silently, and the disk is never filled).
//
// Owned by the spool, which closes it first. Loop thread only; the pool
// thread touches writing_ and the result fields only while busy_.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "spool_record.h"

namespace chsidecar {

class DeadLetters {
 public:
  // Told the spool ids whose lines are on disk. `config` must outlive this.
  using Written = std::function<void(const std::vector<uint64_t>& ids)>;
  DeadLetters(uv_loop_t* loop, const Config& config, Written written);
  ~DeadLetters() { close(); }
  DeadLetters(const DeadLetters&) = delete;
  DeadLetters& operator=(const DeadLetters&) = delete;

  // Measures the files already there. Blocking; call before the loop runs.
  void open();

  // Queues the line for `data` with ClickHouse's `error`, and writes it.
  void add(const SpoolData& data, std::string_view error);

  // True while nothing is being written and nothing waits but for a retry.
  bool idle() const { return !busy_ && (pending_.empty() || waiting_for_retry()); }
  // The cap was reached: lines wait in the spool for room.
  bool full() const { return full_; }
  // Bytes in the dead-letter files, as last measured.
  uint64_t bytes() const { return bytes_; }
  uint64_t rows() const { return rows_; }

  // Called after each write (or failed try) once idle() may have changed.
  void set_idle_callback(std::function<void()> callback) { on_idle_ = std::move(callback); }

  void close();

 private:
  void write();
  bool waiting_for_retry() const {
    return retry_timer_ != nullptr &&
           uv_is_active(reinterpret_cast<const uv_handle_t*>(retry_timer_));
  }
  static void append_lines(uv_work_t* work) noexcept;  // on a pool thread
  static void on_appended(uv_work_t* work, int status) noexcept;

  uv_loop_t* loop_;
  const Config& config_;
  Written written_;
  std::function<void()> on_idle_;
  // Lines waiting (one per id, in order), and the ones being written.
  std::string pending_;
  std::vector<uint64_t> pending_ids_;
  std::string writing_;
  std::vector<uint64_t> writing_ids_;
  bool busy_ = false;
  bool full_ = false;
  bool closed_ = false;
  uint64_t bytes_ = 0;
  uint64_t rows_ = 0;
  // Results of the pool thread, read in on_appended.
  int error_ = 0;             // errno
  size_t lines_written_ = 0;  // a prefix of writing_'s lines
  bool cap_reached_ = false;  // lines of writing_ were left for the cap
  uint64_t measured_ = 0;     // total after the write
  uv_work_t work_{};
  uv_timer_t* retry_timer_ = nullptr;
};

// Pure: how many whole lines ('\n'-terminated) at the start of `lines` fit
// in `room` bytes, and their bytes.
size_t dead_letter_lines_that_fit(std::string_view lines, uint64_t room, uint64_t& bytes);

// Pure: n of "dead-letter-<n>.jsonl", or 0 for any other name.
uint64_t dead_letter_file_number(const char* name);

}  // namespace chsidecar
