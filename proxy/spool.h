// The disk spool: rows acknowledged before ClickHouse committed them.
//
// A request that asks for an early answer (wait_for_async_insert=0, or
// --ack=spool) is answered only after its validated rows were appended to
// the spool and the spool was fdatasync'ed. Appends are group-committed:
// while one write+fdatasync runs, the next group forms, so one fsync serves
// many requests. Disk I/O runs on libuv's thread pool (uv_queue_work for
// pwrite+fdatasync of a group and for opening the next segment, uv_fs_* for
// the rest), so the loop never waits on the disk; the only blocking I/O is
// the scan at start-up, before the loop runs. One group is in flight at a
// time (the next segment may be opening beside it, another file), which
// keeps the order of writes and syncs obvious; the hand-off is the group_
// buffer, which the loop does not touch until the work's completion callback.
//
// Group size: when a group is durable, the requests in the spool at that
// moment (its own and those queued behind it) are the writers likely to
// come back soon. The next group is written once it holds half as many, or
// after --spool-group-wait, whichever comes first (like MySQL's
// binlog_group_commit_sync_delay and _no_delay_count, with the count
// learnt). So steady writers form two groups that take turns: one fills
// while the other is on disk, and the loop never waits for the disk with
// nothing to do. Waiting for all of them made one group, and the loop idle
// during every fdatasync; writing at once makes groups as small as one
// fdatasync's worth of arrivals, and on a VM each flush takes CPU from the
// guest (docs/benchmarks.md has both measured). A lone writer never waits:
// it is the whole count; nor does a batch record (a batch about to be sent
// waits for it), nor the group after a failed one. libuv's timers count
// whole milliseconds: a wait of N ms ends after N-1 to N ms.
//
// Files: --spool-dir (created 0700) holds segment-<seq>.log files (0600) of
// framed records (spool_record.h). The newest segment takes appends; once
// it reaches --spool-segment-bytes the next one takes over. The next one is
// opened on the thread pool ahead of need, when the active one is half full
// (7/8 full if no done segment is ready for reuse yet, which it may be by
// then), so appends never wait for a file to open (should that open still be
// running at the limit, appends go on a little past it). When a batch commits,
// a commit record naming its spooled ids is appended; a segment is done
// once every data record in it and in all older segments is committed and
// the commit records saying so are on disk, so segments end oldest first,
// commit records never outlive their need, and a batch record never
// outlives some of its rows while others are replayed as unsent (a batch
// spans segments; sent again as new rows, the rest would be inserted twice).
// One done segment is kept for reuse: renamed spare.log at once (start-up
// never reads it, so its committed records cannot come back), and later
// renamed to the next segment's name, its first frame zeroed and the
// directory synced, on the thread pool. Appends then
// overwrite blocks the file already has, so a group's fdatasync writes the
// data but not the file's size (0.17 instead of 0.27 ms here), and no disk
// writes are spent on filling files ahead. Records carry their segment's
// number in their checksum, so the old contents of a reused file never read
// as records; each write ends with zeros that mark the end. Other done
// segments are deleted.
//
// Before a batch holding spooled rows is first sent, a batch record naming
// its records in order is appended and synced (bisected halves get theirs),
// so that a replay sends the very same bytes, and so the same dedup token: a
// batch in flight at a crash is not inserted twice where the server
// deduplicates.
//
// Start-up reads every segment, skips a record changed in place (reading on
// where its length says the next one starts), truncates a torn or corrupt
// tail at the last valid record (counted and logged) and hands back the
// records not known committed, for replay: grouped as the batch that last
// sent them, and the others (never sent) apart. Rows ClickHouse refuses after
// their early answer go to the dead-letter files (dead_letters.h); their
// records count as committed only once that write succeeded. Note: records
// carry the request's credential headers (needed to replay them); the
// directory is 0700 and the files 0600.
//
// A write that fails (a full disk: ENOSPC) makes the spool unwritable:
// append() answers kNoSpace and record_batch() false, commit records wait in
// memory, and every second a probe writes what waits (at least the end
// mark, with its fdatasync) until one succeeds. Meanwhile the active segment
// is retired (a fresh, empty file takes over, and no done segment is kept as
// spare.log), and segments end as soon as their records commit, without
// waiting for commit records that cannot be written, so the space of its
// records returns once they commit: a spool that filled its disk recovers
// when the backlog drains, not only when space is freed elsewhere. (The
// price: a kill in such an episode may replay rows of a batch that spanned
// an ended segment as new ones; start-up logs spool_batch_partly_gone.)
// Start-up on a full disk (the write probe or the new
// segment fails with ENOSPC or EDQUOT) opens the spool the same way: its
// records are replayed, early answers wait for room, and the segment file is
// created by the probe if it could not be.
//
// Bounded by --spool-max-bytes: append() refuses beyond it (records' bytes;
// the segment kept for reuse adds at most one segment), and while the
// dead-letter files are at --dead-letter-max-bytes. Loop thread only.
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "dead_letters.h"
#include "spool_record.h"

namespace chsidecar {

// Told once whether its record became durable (ok) or could not be written.
class SpoolWaiter {
 public:
  virtual void spool_durable(bool ok) = 0;

 protected:
  ~SpoolWaiter() = default;
};

class Spool {
 public:
    // kFull: --spool-max-bytes; kNoSpace: the disk takes no writes now
  // (write_error() says why); kDeadLettersFull: --dead-letter-max-bytes.
  enum class Append { kQueued, kFull, kUnavailable, kNoSpace, kDeadLettersFull };

  // `config` must outlive the spool.
  Spool(uv_loop_t* loop, const Config& config);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Creates the directory, scans the segments, opens a new segment. Blocking;
  // call before the loop runs. On failure returns false with `error` set.
  bool open(std::string& error, SpoolReplay& replay);

  // Appends `data` under a new id, returned in `id`.
  Append append(const SpoolRows& data, uint64_t& id, std::shared_ptr<SpoolWaiter> waiter);

  // Appends a batch record: a batch about to be sent for the first time.
  // Never refused for the cap. False when the spool is not writable at all
  // (the waiter is not called then).
  bool record_batch(const SpoolBatch& batch, std::shared_ptr<SpoolWaiter> waiter);

  // Records ClickHouse committed (or that went to the dead-letter file).
  void committed(const std::vector<uint64_t>& ids);

  // Writes rows that ClickHouse refused on their own, with the error, to
  // the dead-letter files (without credentials), and then marks the record
  // committed: only once the line is synced.
  void dead_letter(const SpoolData& data, std::string_view error) { dead_letters_.add(data, error); }

  // True while nothing is waiting to be written or synced. Records held by
  // the group wait are waiting; what waits for the disk to take writes
  // again, and dead letters waiting to be tried again, are not (their
  // records stay in the spool).
  bool idle() const {
    return state_ == State::kIdle &&
           ((pending_.empty() && pending_commits_.empty()) || write_error_ != 0) &&
           dead_letters_.idle();
  }
  uint64_t bytes() const { return disk_bytes_ + pending_.size(); }
  // The errno that made the spool unwritable, 0 while it takes writes.
  int write_error() const { return write_error_; }
  uint64_t dead_letter_bytes() const { return dead_letters_.bytes(); }
  uint64_t fsyncs() const { return fsyncs_; }
  // Segments started since start-up: as new files, and by reusing a done one.
  uint64_t segments_created() const { return segments_created_; }
  uint64_t segments_reused() const { return segments_reused_; }
  uint64_t dead_lettered_rows() const { return dead_letters_.rows(); }
  bool enabled() const { return opened_ && !closed_; }

  // Told the duration of each write+fdatasync, in seconds.
  void set_fsync_observer(std::function<void(double)> observer) { on_fsync_ = std::move(observer); }

  // Called whenever the spool has just become idle.
  void set_idle_callback(std::function<void()> callback) { on_idle_ = std::move(callback); }

  void close();

 private:
  enum class State { kIdle, kWriting };
  struct Segment {
    uint64_t seq;
    uint64_t bytes = 0;
    size_t live = 0;         // data records not yet committed
    size_t unrecorded = 0;   // committed, but no commit record on disk says so yet
    // Ids only grow, so a segment's records have ids in [first_id, last_id]
    // and no other segment's do.
    uint64_t first_id = UINT64_MAX;
    uint64_t last_id = 0;
    void add_live(uint64_t id) {
      first_id = std::min(first_id, id);
      last_id = std::max(last_id, id);
      ++live;
    }
  };
  // The segment being opened on the thread pool: a reused one or a new file.
  struct Opening {
    uint64_t seq = 0;
    std::string path;
    std::string reuse_path;  // empty: create a new file
    int fd = -1;
    bool reused = false;
    bool active = false;     // the active segment, not created at start (a full disk)
    int error = 0;           // errno from the pool thread
  };

  // The steps of open().
  struct Scanned;
  bool scan_segments(const std::vector<uint64_t>& seqs, Scanned& scanned, std::string& error);
  uint64_t adopt_segments(Scanned& scanned, SpoolReplay& replay, size_t& replayed_rows,
                          size_t& live_records);
  bool open_first_segment(uint64_t seq, int probe_error, std::string& error);

  // The segment holding data record `id`, if it has not ended.
  Segment* segment_of(uint64_t id);
  void kick();
  // After a group is durable with `in_spool` requests in the spool (its own
  // and those queued behind it): the next group waits for half as many.
  void wait_for_next_group(size_t in_spool);
  static void on_group_wait_over(uv_timer_t* timer) noexcept;
  void write_group();
  void group_done(bool ok);
  uint64_t segment_limit() const;
  void rotate();
  // REQUIRES: fd_ >= 0 unless `active`, which creates the active segment's file.
  void prepare_next(bool active = false);
  // A write failed with `error`: refuse early answers, probe every second.
  void enter_unwritable(int error);
  void retire_active();
  static void on_probe(uv_timer_t* timer) noexcept;
  void recycle();
  std::string segment_path(uint64_t seq) const;
  static void write_and_sync(uv_work_t* work) noexcept;  // on a pool thread
  static void on_written(uv_work_t* work, int status) noexcept;
  std::string spare_path() const;
  static void on_spare_renamed(uv_fs_t* req) noexcept;
  static void open_segment(uv_work_t* work) noexcept;  // on a pool thread
  static void on_opened(uv_work_t* work, int status) noexcept;

  uv_loop_t* loop_;
  const Config& config_;
  int fd_ = -1;
  uint64_t next_id_ = 1;
  std::deque<Segment> segments_;          // oldest first; back() takes appends
  std::string pending_;                   // encoded records of the next group
  // With their data record's id (0: a batch record).
  using Waiters = std::vector<std::pair<std::shared_ptr<SpoolWaiter>, uint64_t>>;
  Waiters pending_waiters_;
  std::string group_;                     // the group being written
  Waiters group_waiters_;
  State state_ = State::kIdle;
  uv_work_t work_{};  // the group being written and synced
  size_t pending_requests_ = 0;  // data records in pending_waiters_
  bool batch_record_pending_ = false;
  // Requests the next group waits for (0: none), until group_wait_timer_ fires.
  size_t group_target_ = 0;
  uv_timer_t* group_wait_timer_ = nullptr;
  enum class Next { kNone, kOpening, kReady };
  Next next_ = Next::kNone;  // the segment that takes over at the limit
  uv_work_t open_work_{};
  Opening opening_;
  // kInUse: the next segment is being opened from spare.log; no other file
  // may take that name until it is renamed away.
  enum class Spare { kNone, kRenaming, kReady, kInUse };
  Spare spare_ = Spare::kNone;     // a done segment kept for reuse, as spare.log
  uv_fs_t* spare_rename_ = nullptr;  // while a done segment is being renamed spare.log
  uint64_t rotate_retry_ms_ = 0;   // after a failed rotation, not before this (uv_now)
  uint64_t group_offset_ = 0;
  int group_error_ = 0;  // errno from the pool thread
  uint64_t disk_bytes_ = 0;
  uint64_t fsyncs_ = 0;
  uint64_t segments_created_ = 0;
  uint64_t segments_reused_ = 0;
  DeadLetters dead_letters_;
  // Commit records to write with the next group, and those of the group.
  std::vector<uint64_t> pending_commits_;
  std::vector<uint64_t> group_commits_;
  int write_error_ = 0;         // errno of the failed write, until a probe succeeds
  uint64_t unwritable_since_ms_ = 0;
  bool retire_active_ = false;  // a fresh segment should take over once open
  uv_timer_t* probe_timer_ = nullptr;
  bool opened_ = false;
  bool closed_ = false;
  std::function<void()> on_idle_;
  std::function<void(double)> on_fsync_;
  uint64_t group_started_ns_ = 0;
};

}  // namespace chsidecar
