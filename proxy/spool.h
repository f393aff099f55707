// The disk spool: rows acknowledged before ClickHouse committed them.
//
// A request that asks for an early answer (wait_for_async_insert=0, or
// --ack=spool) is answered only after its validated rows were appended to
// the spool and the spool was fdatasync'ed. Appends are group-committed:
// while one write+fdatasync runs, the next group forms, so one fsync serves
// many requests. Disk I/O runs on libuv's thread pool (uv_queue_work for
// pwrite+fdatasync of a group, uv_fs_* for the rest), so the loop never
// waits on the disk; the only blocking I/O is the scan at start-up, before
// the loop runs. One group is in flight at a time, which keeps the order of
// writes and syncs obvious; the hand-off is the group_ buffer, which the loop
// does not touch until the work's completion callback.
//
// Files: --spool-dir (created 0700) holds segment-<seq>.log files (0600) of
// framed records (spool_record.h). The newest segment takes appends; once
// it reaches --spool-segment-bytes a new one starts. When a batch commits,
// a commit record naming its spooled ids is appended; a segment is deleted
// once every data record in it and in all older segments is committed, so
// deletion goes oldest first and commit records never outlive their need.
//
// Start-up reads every segment, truncates a torn or corrupt tail at the
// last valid record (counted and logged) and hands back the records not
// known committed, for replay. Note: records carry the request's
// credential headers (needed to replay them); the directory is 0700 and
// the files 0600.
//
// Bounded by --spool-max-bytes: append() refuses beyond it. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <string>
#include <vector>

#include "config.h"
#include "spool_record.h"

namespace chsidecar {

class Spool {
 public:
  // Called once the record is durable (ok) or could not be written.
  using Durable = std::function<void(bool ok)>;
  enum class Append { kQueued, kFull, kUnavailable };

  // `config` must outlive the spool.
  Spool(uv_loop_t* loop, const Config& config);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Creates the directory, scans the segments, opens a new segment. Blocking;
  // call before the loop runs. On failure returns false with `error` set.
  bool open(std::string& error, std::vector<SpoolData>& replay);

  // Appends `data` (its id is assigned here and returned in `id`).
  Append append(SpoolData data, uint64_t& id, Durable durable);

  // Records ClickHouse committed (or that went to the dead-letter file).
  void committed(const std::vector<uint64_t>& ids);

  // Writes rows that ClickHouse refused on their own, with the error, to
  // dead-letter.jsonl in the spool directory (without credentials).
  void dead_letter(const SpoolData& data, std::string_view error);

  // True while nothing is waiting to be written or synced.
  bool idle() const { return state_ == State::kIdle && pending_.empty(); }
  uint64_t bytes() const { return disk_bytes_ + pending_.size(); }
  uint64_t fsyncs() const { return fsyncs_; }
  uint64_t dead_lettered_rows() const { return dead_lettered_rows_; }
  bool enabled() const { return fd_ >= 0; }

  // Told the duration of each write+fdatasync, in seconds.
  void set_fsync_observer(std::function<void(double)> observer) { on_fsync_ = std::move(observer); }

  // Called whenever the spool has just become idle.
  void set_idle_callback(std::function<void()> callback) { on_idle_ = std::move(callback); }

  void close();

 private:
  enum class State { kIdle, kWriting, kOpening };
  struct Segment {
    uint64_t seq;
    uint64_t bytes;
    size_t live;  // data records not yet committed
  };

  void kick();
  void write_group();
  void group_done(bool ok);
  void rotate();
  void recycle();
  std::string segment_path(uint64_t seq) const;
  static void write_and_sync(uv_work_t* work) noexcept;  // on a pool thread
  static void on_written(uv_work_t* work, int status) noexcept;
  static void on_open(uv_fs_t* req) noexcept;

  uv_loop_t* loop_;
  const Config& config_;
  int fd_ = -1;
  uint64_t next_id_ = 1;
  std::deque<Segment> segments_;          // oldest first; back() takes appends
  std::unordered_map<uint64_t, uint64_t> segment_of_;  // live record id -> segment seq
  std::string pending_;                   // encoded records of the next group
  std::vector<std::pair<Durable, uint64_t>> pending_waiters_;  // callback, segment seq
  std::string group_;                     // the group being written
  std::vector<std::pair<Durable, uint64_t>> group_waiters_;
  State state_ = State::kIdle;
  uv_fs_t req_{};        // segment rotation
  uv_work_t work_{};     // the group being written and synced
  uint64_t group_offset_ = 0;
  int group_error_ = 0;  // errno from the pool thread
  uint64_t disk_bytes_ = 0;
  uint64_t fsyncs_ = 0;
  uint64_t dead_lettered_rows_ = 0;
  bool closed_ = false;
  std::function<void()> on_idle_;
  std::function<void(double)> on_fsync_;
  uint64_t group_started_ns_ = 0;
};

}  // namespace chsidecar
