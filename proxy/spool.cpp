#include "spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "json_text.h"
#include "file_io.h"
#include "log.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {

constexpr char kSegmentPrefix[] = "segment-";
constexpr char kSegmentSuffix[] = ".log";

std::string errno_text(int err) { return std::strerror(err); }

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

// While the spool takes no writes, a probe tries again this often.
constexpr uint64_t kProbeMs = 1'000;

// Errors that mean "no room now", which freeing space or draining the
// backlog cures; others (a read-only filesystem) refuse the spool at start.
bool no_room(int err) { return err == ENOSPC || err == EDQUOT; }

// A fire-and-forget uv_fs request that owns its buffer.
struct OwnedFsRequest {
  uv_fs_t req;
  std::string data;
};

void on_owned_done(uv_fs_t* req) noexcept {
  uv_fs_req_cleanup(req);
  delete reinterpret_cast<OwnedFsRequest*>(req);
}

}  // namespace

Spool::Spool(uv_loop_t* loop, const Config& config)
    : loop_(loop),
      config_(config),
      dead_letters_(loop, config, [this](const std::vector<uint64_t>& ids) { committed(ids); }) {
  dead_letters_.set_idle_callback([this] {
    if (idle() && on_idle_) on_idle_();
  });
}

Spool::~Spool() {
  close();
  // A rename queued by open() outlives a process that failed to start.
  if (spare_rename_ != nullptr) spare_rename_->data = nullptr;
}

std::string Spool::segment_path(uint64_t seq) const {
  char name[64];
  std::snprintf(name, sizeof name, "%s%020llu%s", kSegmentPrefix,
                static_cast<unsigned long long>(seq), kSegmentSuffix);
  return config_.spool_dir + "/" + name;
}

namespace {

// Creates `dir` (0700) unless it exists, and checks it is a directory.
bool prepare_directory(const std::string& dir, std::string& error) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create --spool-dir " + dir + ": " + errno_text(errno);
    return false;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = "--spool-dir " + dir + " is not a directory";
    return false;
  }
  ::chmod(dir.c_str(), 0700);
  return true;
}

// Writes and fdatasyncs a probe file in `dir`: 0, or the errno that failed.
int probe_durable_write(const std::string& dir) {
  std::string probe = dir + "/.probe";
  int pfd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::string zeros(4096, '\0');
  int probe_error = 0;
  if (pfd < 0 || ::write(pfd, zeros.data(), zeros.size()) != static_cast<ssize_t>(zeros.size()) ||
      ::fdatasync(pfd) != 0)
    probe_error = errno != 0 ? errno : EIO;
  if (pfd >= 0) ::close(pfd);
  ::unlink(probe.c_str());
  return probe_error;
}

// The numbers of the segment files in `dir`, ascending.
std::vector<uint64_t> list_segments(const std::string& dir) {
  std::vector<uint64_t> seqs;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      unsigned long long seq;
      char tail[8];
      if (std::sscanf(e->d_name, "segment-%20llu%7s", &seq, tail) == 2 &&
          std::strcmp(tail, kSegmentSuffix) == 0)
        seqs.push_back(seq);
    }
    ::closedir(d);
  }
  std::sort(seqs.begin(), seqs.end());
  return seqs;
}

}  // namespace

// What the segments on disk hold, read at start-up.
struct Spool::Scanned {
  std::vector<std::pair<uint64_t, SpoolScan>> segments;  // by number
  std::unordered_set<uint64_t> committed;                // ids of every commit record
  size_t damaged = 0;                                    // segments whose tail was cut
};

bool Spool::open(std::string& error, SpoolReplay& replay) {
  const std::string& dir = config_.spool_dir;
  if (!prepare_directory(dir, error)) return false;
  // Prove the directory takes a durable write before promising durability.
  int probe_error = probe_durable_write(dir);
  if (probe_error != 0 && !no_room(probe_error)) {
    error = "--spool-dir " + dir + " is not writable: " + errno_text(probe_error);
    return false;
  }
  std::vector<uint64_t> seqs = list_segments(dir);
  Scanned scanned;
  if (!scan_segments(seqs, scanned, error)) return false;
  size_t replayed_rows = 0;
  size_t live_records = 0;
  uint64_t last_seq = adopt_segments(scanned, replay, replayed_rows, live_records);
  if (!open_first_segment(last_seq + 1, probe_error, error)) return false;
  log_event(LogLevel::kInfo, "spool_opened",
            {{"dir", dir},
             {"segments", std::to_string(seqs.size())},
             {"replay_records", std::to_string(live_records)},
             {"replay_batches", std::to_string(replay.batches.size())},
             {"replay_rows", std::to_string(replayed_rows)},
             {"damaged_segments", std::to_string(scanned.damaged)}});
  if (replay.unsent_of_partly_gone_batches > 0)
    log_event(LogLevel::kWarn, "spool_batch_partly_gone",
              {{"records", std::to_string(replay.unsent_of_partly_gone_batches)},
               {"effect", "sent again as new rows: their batch's other records ended on a full "
                          "disk before a commit record (or were damaged), so if that batch was "
                          "inserted before the restart, these rows are inserted twice"}});
  return true;
}

// Reads each segment; a damaged tail is cut off the file, a record of a
// newer version refuses the spool.
bool Spool::scan_segments(const std::vector<uint64_t>& seqs, Scanned& scanned,
                          std::string& error) {
  for (uint64_t seq : seqs) {
    std::string contents;
    std::string path = segment_path(seq);
    if (!read_file(path, contents)) {
      error = "cannot read spool segment " + path + ": " + errno_text(errno);
      return false;
    }
    SpoolScan scan = scan_segment(contents, seq);
    if (scan.unknown_type >= 0) {
      error = "spool segment " + path + " holds a record of type " +
              std::to_string(scan.unknown_type) +
              ", written by a newer chsidecar: start that version on this --spool-dir";
      return false;
    }
    if (scan.damaged) {
      ++scanned.damaged;
      log_event(LogLevel::kWarn, "spool_tail_truncated",
                {{"segment", path},
                 {"valid_bytes", std::to_string(scan.valid_bytes)},
                 {"skipped_bytes", std::to_string(scan.skipped_bytes)},
                 {"dropped_bytes", std::to_string(contents.size() - scan.valid_bytes)}});
      if (::truncate(path.c_str(), static_cast<off_t>(scan.valid_bytes)) != 0) {
        error = "cannot truncate damaged spool segment " + path + ": " + errno_text(errno);
        return false;
      }
    }
    scanned.committed.insert(scan.committed.begin(), scan.committed.end());
    scanned.segments.emplace_back(seq, std::move(scan));
  }
  return true;
}

// Takes the scanned segments over (their sizes and live records) and puts
// every record not committed in `replay`. Returns the last segment number.
uint64_t Spool::adopt_segments(Scanned& scanned, SpoolReplay& replay, size_t& replayed_rows,
                               size_t& live_records) {
  uint64_t last_seq = 0;
  std::vector<SpoolData> live;
  std::vector<SpoolBatch> batches;
  for (auto& [seq, scan] : scanned.segments) {
    // New ids must never be taken for committed ones, even if every data
    // record of an id were gone.
    for (uint64_t id : scan.committed) next_id_ = std::max(next_id_, id + 1);
    for (SpoolBatch& batch : scan.batches) {
      // Ids are never taken again while a record names them.
      for (uint64_t id : batch.ids) next_id_ = std::max(next_id_, id + 1);
      batches.push_back(std::move(batch));
    }
    Segment segment{seq, scan.valid_bytes};
    for (SpoolData& d : scan.data) {
      next_id_ = std::max(next_id_, d.id + 1);
      if (scanned.committed.count(d.id)) continue;
      segment.add_live(d.id);
      replayed_rows += d.row_count;
      live.push_back(std::move(d));
    }
    disk_bytes_ += segment.bytes;
    segments_.push_back(segment);
    last_seq = seq;
  }
  live_records = live.size();
  replay = group_for_replay(batches, std::move(live), scanned.committed);
  return last_seq;
}

// Creates segment `seq`, which takes the appends, keeps a spare of the
// right size, and starts the dead letters. On a full disk (`probe_error`,
// or the create failing for room) the spool opens unwritable: the probe
// creates the segment once there is room.
bool Spool::open_first_segment(uint64_t seq, int probe_error, std::string& error) {
  const std::string& dir = config_.spool_dir;
  std::string path = segment_path(seq);
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0 && !no_room(errno)) {
    error = "cannot create spool segment " + path + ": " + errno_text(errno);
    return false;
  }
  if (fd_ < 0) probe_error = errno;
  else ++segments_created_;
  sync_directory(dir);  // best effort: the probe proved the directory takes writes
  segments_.push_back(Segment{seq});
  struct stat spare;
  if (::stat(spare_path().c_str(), &spare) == 0) {
    // On a full disk the spare's blocks are better free.
    if (probe_error == 0 && static_cast<uint64_t>(spare.st_size) >= segment_limit())
      spare_ = Spare::kReady;
    else ::unlink(spare_path().c_str());
  }
  opened_ = true;
  dead_letters_.open();
  recycle();
  if (probe_error != 0) {
    log_event(LogLevel::kWarn, "spool_disk_full_at_start",
              {{"dir", dir}, {"error", errno_text(probe_error)},
               {"effect", "the spool is replayed; early answers get 503 until there is room"}});
    enter_unwritable(probe_error);
  }
  return true;
}

bool Spool::record_batch(const SpoolBatch& batch, std::shared_ptr<SpoolWaiter> waiter) {
  if (fd_ < 0 || closed_ || write_error_ != 0) return false;
  encode_batch_record(batch, pending_);
  pending_waiters_.emplace_back(std::move(waiter), 0);
  batch_record_pending_ = true;
  kick();
  return true;
}

Spool::Append Spool::append(const SpoolRows& data, uint64_t& id,
                            std::shared_ptr<SpoolWaiter> waiter) {
  if (!opened_ || closed_) return Append::kUnavailable;
  if (write_error_ != 0) return Append::kNoSpace;
  // Rows ClickHouse may refuse need room in the dead-letter files.
  if (dead_letters_.full()) return Append::kDeadLettersFull;
  size_t before = pending_.size();
  encode_data_record(data, next_id_, pending_);
  uint64_t in_flight = state_ == State::kWriting ? group_.size() : 0;  // the group being written
  if (disk_bytes_ + in_flight + pending_.size() > config_.spool_max_bytes) {
    pending_.resize(before);
    return Append::kFull;
  }
  id = next_id_++;
  pending_waiters_.emplace_back(std::move(waiter), id);
  ++pending_requests_;
  kick();
  return Append::kQueued;
}

Spool::Segment* Spool::segment_of(uint64_t id) {
  for (Segment& s : segments_) {
    if (id > s.last_id) continue;
    return id >= s.first_id ? &s : nullptr;
  }
  return nullptr;
}

void Spool::committed(const std::vector<uint64_t>& ids) {
  if (ids.empty() || closed_) return;
  // Only ids still live need a commit record, and each one recorded then
  // counts once against its segment's unrecorded (on_written).
  for (uint64_t id : ids) {
    Segment* s = segment_of(id);
    if (s == nullptr || s->live == 0) continue;
    --s->live;
    ++s->unrecorded;
    pending_commits_.push_back(id);
  }
  recycle();
  kick();
}

// Ends the oldest segments once nothing in them is live and their commit
// records are on disk (on a full disk, once nothing is live: its room is
// needed); never the active one. One full-sized segment is kept for reuse;
// the others are deleted.
void Spool::recycle() {
  while (segments_.size() > 1 && segments_.front().live == 0 &&
         (segments_.front().unrecorded == 0 || write_error_ != 0)) {
    const Segment& done = segments_.front();
    if (spare_ == Spare::kNone && done.bytes >= segment_limit() && write_error_ == 0) {
      spare_ = Spare::kRenaming;
      auto* req = new uv_fs_t{};
      req->data = this;
      spare_rename_ = req;
      uv_fs_rename(loop_, req, segment_path(done.seq).c_str(), spare_path().c_str(),
                   &Spool::on_spare_renamed);
    } else {
      auto* req = new OwnedFsRequest{};
      uv_fs_unlink(loop_, &req->req, segment_path(done.seq).c_str(), &on_owned_done);
    }
    disk_bytes_ -= done.bytes;
    segments_.pop_front();
  }
}

std::string Spool::spare_path() const { return config_.spool_dir + "/spare.log"; }

void Spool::on_spare_renamed(uv_fs_t* req) noexcept {
  auto* self = static_cast<Spool*>(req->data);
  if (req->result < 0) {
    auto* unlink = new OwnedFsRequest{};  // not reusable: delete it as before
    uv_fs_unlink(req->loop, &unlink->req, req->path, &on_owned_done);
  }
  if (self != nullptr) {
    self->spare_ = req->result < 0 ? Spare::kNone : Spare::kReady;
    self->spare_rename_ = nullptr;
  }
  uv_fs_req_cleanup(req);
  delete req;
}

void Spool::kick() {
  // While the disk takes no writes, only the probe writes.
  if (state_ != State::kIdle || (pending_.empty() && pending_commits_.empty()) || fd_ < 0 ||
      write_error_ != 0)
    return;
  // A batch record goes at once: its batch (and any client waiting for that
  // batch's commit) waits for it.
  if (pending_requests_ < group_target_ && !batch_record_pending_) return;
  write_group();
}

void Spool::wait_for_next_group(size_t in_spool) {
  size_t target = (in_spool + 1) / 2;
  if (config_.spool_group_wait_ms == 0 || pending_requests_ >= target) return;
  group_target_ = target;
  if (group_wait_timer_ == nullptr) {
    group_wait_timer_ = make_handle<uv_timer_t>();
    uv_timer_init(loop_, group_wait_timer_);
    group_wait_timer_->data = this;
  }
  uv_update_time(loop_);  // the wait counts from now, not from this iteration's start
  uv_timer_start(group_wait_timer_, &Spool::on_group_wait_over, config_.spool_group_wait_ms, 0);
}

void Spool::on_group_wait_over(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Spool*>(timer->data);
  if (self == nullptr) return;
  self->group_target_ = 0;
  self->kick();
}

void Spool::write_group() {
  state_ = State::kWriting;
  group_target_ = 0;
  if (group_wait_timer_ != nullptr) uv_timer_stop(group_wait_timer_);
  group_started_ns_ = uv_hrtime();
  if (!pending_commits_.empty()) encode_commit_record(pending_commits_, pending_);
  group_commits_.swap(pending_commits_);
  pending_commits_.clear();
  group_.swap(pending_);  // the buffers trade places and keep their capacity
  pending_.clear();
  group_waiters_.swap(pending_waiters_);
  pending_waiters_.clear();
  pending_requests_ = 0;
  batch_record_pending_ = false;
  group_offset_ = segments_.back().bytes;
  seal_records(group_, 0, segments_.back().seq);
  group_.append(kSpoolFrameBytes, '\0');  // the end mark; the next group writes over it
  group_error_ = 0;
  work_.data = this;
  // pwrite and fdatasync in one trip to the thread pool: one hand-off per
  // group instead of two. The loop does not touch group_ or fd_ meanwhile.
  uv_queue_work(loop_, &work_, &Spool::write_and_sync, &Spool::on_written);
}

void Spool::write_and_sync(uv_work_t* work) noexcept {
  auto* self = static_cast<Spool*>(work->data);
  self->group_error_ = write_fully(self->fd_, self->group_, static_cast<off_t>(self->group_offset_));
  if (self->group_error_ == 0 && ::fdatasync(self->fd_) != 0) self->group_error_ = errno;
  if (self->group_error_ != 0) {
    // Its requests are refused: whole records of the group that did reach
    // the file must not be replayed later. (Best effort: this is the error path.)
    if (::ftruncate(self->fd_, static_cast<off_t>(self->group_offset_)) == 0) ::fdatasync(self->fd_);
  }
}

void Spool::on_written(uv_work_t* work, int status) noexcept {
  auto* self = static_cast<Spool*>(work->data);
  int error = status != 0 ? -status : self->group_error_;
  if (error != 0) {
    if (self->write_error_ == 0)  // once per episode: the probe repeats it every second
      log_event(LogLevel::kError, "spool_write_failed",
                {{"error", errno_text(error)},
                 {"effect", "early answers get 503 until a write succeeds (tried every " +
                                std::to_string(kProbeMs) + " ms)"}});
    // Commit records are still true: written with a later group.
    self->pending_commits_.insert(self->pending_commits_.begin(), self->group_commits_.begin(),
                                  self->group_commits_.end());
    self->group_commits_.clear();
    self->enter_unwritable(error);
    self->group_done(false);
    return;
  }
  for (uint64_t id : self->group_commits_)
    if (Segment* s = self->segment_of(id); s != nullptr && s->unrecorded > 0) --s->unrecorded;
  self->group_commits_.clear();
  if (self->write_error_ != 0) {
    log_event(LogLevel::kInfo, "spool_writable_again",
              {{"unwritable_ms", std::to_string(uv_now(self->loop_) - self->unwritable_since_ms_)}});
    self->write_error_ = 0;
    if (self->probe_timer_ != nullptr) uv_timer_stop(self->probe_timer_);
  }
  self->recycle();
  ++self->fsyncs_;
  if (self->on_fsync_) self->on_fsync_(double(uv_hrtime() - self->group_started_ns_) / 1e9);
  uint64_t records = self->group_.size() - kSpoolFrameBytes;  // without the end mark
  self->segments_.back().bytes += records;
  self->disk_bytes_ += records;
  self->group_done(true);
}

void Spool::group_done(bool ok) {
  Segment& active = segments_.back();
  Waiters waiters = std::move(group_waiters_);
  group_waiters_.clear();
  group_.clear();
  size_t group_requests = 0;  // data records: a client waits for each
  for (auto& [waiter, id] : waiters) {
    if (id == 0) continue;
    ++group_requests;
    if (ok) active.add_live(id);
  }
  // The next group writes at the end of the valid data, over anything a
  // failed write left behind.
  state_ = State::kIdle;
  if ((ok && active.bytes >= segment_limit()) || retire_active_) rotate();
  else if (ok && active.bytes >= segment_limit() / 8 * (spare_ == Spare::kReady ? 4 : 7))
    prepare_next();  // early if the spare can be reused, else a little later: it may be by then
  // Before the answers: an answer may lead to an append at once. Not after a
  // failed group: its clients were refused and will not be back soon.
  if (ok && !closed_) wait_for_next_group(group_requests + pending_requests_);
  for (auto& [waiter, id] : waiters) waiter->spool_durable(ok);
  if (closed_) {
    if (fd_ >= 0) ::close(fd_);  // close() left it to the write in flight
    fd_ = -1;
    return;
  }
  waiters.clear();
  if (pending_waiters_.empty()) pending_waiters_.swap(waiters);  // keeps the capacity
  kick();
  if (idle() && on_idle_) on_idle_();
}

// Segments stay well below the cap, so that committed ones can be deleted
// before the cap is reached.
uint64_t Spool::segment_limit() const {
  return std::min(config_.spool_segment_bytes, config_.spool_max_bytes / 4);
}

// Appends move to the next segment if it is open; else it is opened now and
// appends go on in the active one meanwhile.
void Spool::rotate() {
  if (next_ != Next::kReady) {
    prepare_next();
    return;
  }
  next_ = Next::kNone;
  retire_active_ = false;
  ::close(fd_);
  fd_ = opening_.fd;
  opening_.fd = -1;
  ++(opening_.reused ? segments_reused_ : segments_created_);
  log_event(LogLevel::kDebug, "spool_segment_started",
            {{"segment", opening_.path}, {"reused", opening_.reused ? "true" : "false"}});
  segments_.push_back(Segment{opening_.seq});
  recycle();
}

// Opens the segment after the active one on the thread pool, reusing the
// spare if there is one.
void Spool::prepare_next(bool active) {
  if (closed_ || next_ != Next::kNone || uv_now(loop_) < rotate_retry_ms_) return;
  next_ = Next::kOpening;
  opening_ = Opening{};
  opening_.active = active;
  opening_.seq = segments_.back().seq + (active ? 0 : 1);
  opening_.path = segment_path(opening_.seq);
  if (spare_ == Spare::kReady && !active) {
    opening_.reuse_path = spare_path();
    spare_ = Spare::kInUse;
  }
  open_work_.data = this;
  uv_queue_work(loop_, &open_work_, &Spool::open_segment, &Spool::on_opened);
}

void Spool::open_segment(uv_work_t* work) noexcept {
  auto* self = static_cast<Spool*>(work->data);
  Opening& o = self->opening_;
  int fd = -1;
  if (!o.reuse_path.empty()) {
    // Zero the first frame before the rename: whatever happens next, the
    // file never holds records under its new name that were not written to it.
    static const char kZeros[kSpoolFrameBytes] = {};
    fd = ::open(o.reuse_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::pwrite(fd, kZeros, sizeof kZeros, 0) != static_cast<ssize_t>(sizeof kZeros) ||
        ::fdatasync(fd) != 0 || ::rename(o.reuse_path.c_str(), o.path.c_str()) != 0) {
      if (fd >= 0) ::close(fd);
      ::unlink(o.reuse_path.c_str());
      fd = -1;  // a new file then
    }
    o.reused = fd >= 0;
  }
  if (fd < 0) fd = ::open(o.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    o.error = errno;
    return;
  }
  // The name must be durable before any record in the file is acknowledged.
  o.error = sync_directory(self->config_.spool_dir);
  if (o.error != 0) {
    ::close(fd);
    ::unlink(o.path.c_str());  // else the next try finds the name taken (O_EXCL)
    return;
  }
  o.fd = fd;
}

void Spool::on_opened(uv_work_t* work, int status) noexcept {
  auto* self = static_cast<Spool*>(work->data);
  Opening& o = self->opening_;
  if (status != 0 && o.error == 0) o.error = -status;
  if (self->spare_ == Spare::kInUse) self->spare_ = Spare::kNone;  // renamed or deleted by now
  if (o.fd >= 0 && self->closed_) {
    ::close(o.fd);
    o.fd = -1;
  }
  if (o.fd < 0) {
    self->next_ = Next::kNone;
    if (self->closed_) return;
    // Appends go on in the active segment; another try after a pause.
    constexpr uint64_t kRetryMs = 1000;
    self->rotate_retry_ms_ = uv_now(self->loop_) + kRetryMs;
    // On a full disk this repeats with each probe; spool_write_failed said why.
    log_event(self->write_error_ != 0 ? LogLevel::kDebug : LogLevel::kError, "spool_rotate_failed",
              {{"segment", o.path}, {"error", errno_text(o.error)}});
    return;
  }
  if (o.active) {  // the segment start-up could not create on a full disk
    self->next_ = Next::kNone;
    self->fd_ = o.fd;
    o.fd = -1;
    ++self->segments_created_;
    if (self->state_ == State::kIdle && self->write_error_ != 0) self->write_group();  // probe now
    return;
  }
  self->next_ = Next::kReady;
  // Past the limit already (or retiring a segment that filled the disk) with
  // no write in flight: take over now.
  if (self->state_ == State::kIdle &&
      (self->segments_.back().bytes >= self->segment_limit() || self->retire_active_))
    self->rotate();
}

void Spool::enter_unwritable(int error) {
  if (write_error_ == 0) unwritable_since_ms_ = uv_now(loop_);
  write_error_ = error;
  if (spare_ == Spare::kReady) {  // its blocks are better free
    spare_ = Spare::kNone;
    auto* req = new OwnedFsRequest{};
    uv_fs_unlink(loop_, &req->req, spare_path().c_str(), &on_owned_done);
  }
  // Its records' space returns only once a fresh segment takes appends.
  if (fd_ >= 0 && segments_.back().bytes > 0) retire_active_ = true;
  recycle();  // what waited for its commit records only
  if (closed_) return;
  if (probe_timer_ == nullptr) {
    probe_timer_ = make_handle<uv_timer_t>();
    uv_timer_init(loop_, probe_timer_);
    probe_timer_->data = this;
  }
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(probe_timer_)))
    uv_timer_start(probe_timer_, &Spool::on_probe, kProbeMs, kProbeMs);
}

// Writes what waits (at least the end mark, and its fdatasync): the first
// success makes the spool writable again.
void Spool::on_probe(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Spool*>(timer->data);
  if (self == nullptr || self->write_error_ == 0 || self->state_ != State::kIdle) return;
  if (self->fd_ < 0) {
    self->prepare_next(true);
    return;
  }
  if (self->retire_active_) self->rotate();
  self->write_group();
}

void Spool::close() {
  if (closed_) return;
  closed_ = true;
  dead_letters_.close();
  close_handle(probe_timer_);
  probe_timer_ = nullptr;
  close_handle(group_wait_timer_);
  group_wait_timer_ = nullptr;
  group_target_ = 0;
  if (next_ == Next::kReady) {
    ::close(opening_.fd);
    opening_.fd = -1;
    next_ = Next::kNone;
  }
  if (fd_ >= 0 && state_ == State::kIdle) {
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace chsidecar
