#include "dead_letters.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "json_text.h"
#include "file_io.h"
#include "log.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {

constexpr char kActiveName[] = "dead-letter.jsonl";
// A dead letter that could not be written (an error, or the cap) is tried
// again after this.
constexpr uint64_t kRetryMs = 5'000;

struct Measure {
  uint64_t total = 0;   // every dead-letter file
  uint64_t active = 0;  // dead-letter.jsonl
  uint64_t highest = 0; // the highest n of dead-letter-<n>.jsonl
};

Measure measure(const std::string& dir) {
  Measure m;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return m;
  while (dirent* e = ::readdir(d)) {
    uint64_t n = dead_letter_file_number(e->d_name);
    bool active = std::strcmp(e->d_name, kActiveName) == 0;
    if (n == 0 && !active) continue;
    struct stat st;
    if (::stat((dir + "/" + e->d_name).c_str(), &st) != 0) continue;
    uint64_t size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
    m.total += size;
    if (active) m.active = size;
    if (n > m.highest) m.highest = n;
  }
  ::closedir(d);
  return m;
}

}  // namespace

size_t dead_letter_lines_that_fit(std::string_view lines, uint64_t room, uint64_t& bytes) {
  size_t count = 0;
  bytes = 0;
  for (size_t end; (end = lines.find('\n', bytes)) != std::string_view::npos; ++count) {
    if (end + 1 > room) break;
    bytes = end + 1;
  }
  return count;
}

uint64_t dead_letter_file_number(const char* name) {
  unsigned long long n = 0;
  int used = 0;
  if (std::sscanf(name, "dead-letter-%20llu.jsonl%n", &n, &used) != 1 || name[used] != '\0' ||
      std::strncmp(name, "dead-letter-", 12) != 0 || name[12] < '0' || name[12] > '9')
    return 0;
  return n;
}

DeadLetters::DeadLetters(uv_loop_t* loop, const Config& config, Written written)
    : loop_(loop), config_(config), written_(std::move(written)) {}

void DeadLetters::open() { bytes_ = measure(config_.spool_dir).total; }

void DeadLetters::add(const SpoolData& data, std::string_view error) {
  rows_ += data.row_count;
  std::string& line = pending_;
  line += "{\"spool_id\":" + std::to_string(data.id) + ",\"table\":";
  append_json_string(line, data.target.table);
  line += ",\"rows\":" + std::to_string(data.row_count) + ",\"error\":";
  append_json_string(line, error);
  if (binary_format(data.target.format)) {
    // Bytes, not text: the whole body (header and rows) as base64.
    line += ",\"format\":";
    append_json_string(line, row_format_name(data.target.format));
    line += ",\"data_base64\":";
    append_json_base64(line, data.target.header_lines + data.rows);
  } else {
    line += ",\"data\":";
    append_json_string(line, data.rows);
  }
  line += "}\n";
  pending_ids_.push_back(data.id);
  log_event(LogLevel::kWarn, "rows_dead_lettered",
            {{"table", data.target.table}, {"rows", std::to_string(data.row_count)}});
  write();
}

void DeadLetters::write() {
  if (busy_ || pending_.empty() || closed_ || waiting_for_retry()) return;
  busy_ = true;
  writing_.swap(pending_);
  writing_ids_.swap(pending_ids_);
  error_ = 0;
  lines_written_ = 0;
  cap_reached_ = false;
  work_.data = this;
  uv_queue_work(loop_, &work_, &DeadLetters::append_lines, &DeadLetters::on_appended);
}

void DeadLetters::append_lines(uv_work_t* work) noexcept {
  auto* self = static_cast<DeadLetters*>(work->data);
  const std::string& dir = self->config_.spool_dir;
  const uint64_t cap = self->config_.dead_letter_max_bytes;
  std::string path = dir + "/" + kActiveName;
  Measure m = measure(dir);
  self->measured_ = m.total;
  if (m.active >= cap / 4) {
    // Rotated, never deleted; the next number is above any an operator left.
    char name[64];
    std::snprintf(name, sizeof name, "dead-letter-%llu.jsonl",
                  static_cast<unsigned long long>(m.highest + 1));
    if (::rename(path.c_str(), (dir + "/" + name).c_str()) == 0) {
      sync_directory(dir);  // best effort: the lines in it are durable either way
      m.active = 0;
    }
  }
  uint64_t room = m.total < cap ? cap - m.total : 0;
  uint64_t bytes = 0;
  size_t lines = dead_letter_lines_that_fit(self->writing_, room, bytes);
  self->cap_reached_ = bytes < self->writing_.size();
  if (lines == 0) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    self->error_ = errno;
    if (fd >= 0) ::close(fd);
    return;
  }
  int err = write_fully(fd, std::string_view(self->writing_).substr(0, bytes), st.st_size);
  if (err == 0 && ::fdatasync(fd) != 0) err = errno;
  if (err == 0 && st.st_size == 0) err = sync_directory(dir);  // a new file
  if (err != 0 && ::ftruncate(fd, st.st_size) == 0) ::fdatasync(fd);  // no torn line stays
  ::close(fd);
  self->error_ = err;
  if (err == 0) {
    self->lines_written_ = lines;
    self->measured_ = m.total + bytes;
  }
}

void DeadLetters::on_appended(uv_work_t* work, int status) noexcept {
  auto* self = static_cast<DeadLetters*>(work->data);
  self->busy_ = false;
  int error = status != 0 ? -status : self->error_;
  self->bytes_ = self->measured_;
  size_t done = error == 0 ? self->lines_written_ : 0;
  std::vector<uint64_t> ids(self->writing_ids_.begin(), self->writing_ids_.begin() + done);
  if (done < self->writing_ids_.size()) {
    // The rest goes back in front of lines queued meanwhile, in order.
    size_t skip = 0;
    for (size_t i = 0; i < done; ++i) skip = self->writing_.find('\n', skip) + 1;
    self->pending_.insert(0, self->writing_, skip);
    self->pending_ids_.insert(self->pending_ids_.begin(), self->writing_ids_.begin() + done,
                              self->writing_ids_.end());
  }
  self->writing_.clear();
  self->writing_ids_.clear();
  bool retry = error != 0 || self->cap_reached_;
  bool was_full = self->full_;
  if (error == 0) self->full_ = self->cap_reached_;  // after an error: unknown, as before
  if (error != 0) {
    log_event(LogLevel::kError, "dead_letter_write_failed",
              {{"error", std::strerror(error)},
               {"rows_kept_in_spool", std::to_string(self->pending_ids_.size())},
               {"retry_in_ms", std::to_string(kRetryMs)}});
  } else if (self->full_ && !was_full) {
    log_event(LogLevel::kError, "dead_letter_cap_reached",
              {{"dead_letter_bytes", std::to_string(self->bytes_)},
               {"dead_letter_max_bytes", std::to_string(self->config_.dead_letter_max_bytes)},
               {"records_kept_in_spool", std::to_string(self->pending_ids_.size())},
               {"effect", "early answers get 503 until dead-letter files are moved out of "
                          "--spool-dir or --dead-letter-max-bytes is raised"}});
  } else if (!self->full_ && was_full) {
    log_event(LogLevel::kInfo, "dead_letter_room_again",
              {{"dead_letter_bytes", std::to_string(self->bytes_)}});
  }
  if (retry && !self->closed_) {
    if (self->retry_timer_ == nullptr) {
      self->retry_timer_ = make_handle<uv_timer_t>();
      uv_timer_init(self->loop_, self->retry_timer_);
      self->retry_timer_->data = self;
    }
    uv_timer_start(self->retry_timer_, [](uv_timer_t* t) noexcept {
      if (auto* letters = static_cast<DeadLetters*>(t->data)) letters->write();
    }, kRetryMs, 0);
  }
  if (!ids.empty()) self->written_(ids);
  self->write();  // lines queued meanwhile
  if (self->idle() && self->on_idle_) self->on_idle_();
}

void DeadLetters::close() {
  if (closed_) return;
  closed_ = true;
  close_handle(retry_timer_);
  retry_timer_ = nullptr;
}

}  // namespace chsidecar
