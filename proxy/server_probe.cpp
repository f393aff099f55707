#include "server_probe.h"

#include "config.h"
#include "request.h"
#include "uv_handle.h"

namespace chsidecar {

namespace {
constexpr uint64_t kRetryMs = 5'000;
constexpr size_t kMaxAnswer = 4096;
}  // namespace

bool version_has_modern_encodings(std::string_view version) {
  // lz4 and zstd request bodies came in 21.x; 22 is a version known to have
  // both and case-insensitive names, with a margin (an older server only
  // loses the upstream compression and the odd spellings).
  constexpr uint64_t kFirstMajor = 22;
  uint64_t major = 0;
  return parse_u64(version.substr(0, version.find('.')), major) && major >= kFirstMajor;
}

bool version_at_least(std::string_view version, uint64_t major, uint64_t minor) {
  size_t dot = version.find('.');
  size_t end = dot == std::string_view::npos ? dot : version.find('.', dot + 1);
  uint64_t got_major = 0, got_minor = 0;
  if (dot == std::string_view::npos || !parse_u64(version.substr(0, dot), got_major) ||
      !parse_u64(version.substr(dot + 1, end == std::string_view::npos ? end : end - dot - 1), got_minor))
    return false;
  return got_major > major || (got_major == major && got_minor >= minor);
}

ServerProbe::ServerProbe(uv_loop_t* loop, UpstreamPool& pool, Done done)
    : pool_(&pool), done_(std::move(done)) {
  timer_ = make_handle<uv_timer_t>();
  uv_timer_init(loop, timer_);
  timer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

ServerProbe::~ServerProbe() { close(); }

void ServerProbe::close() {
  if (running_) pool_->cancel(this);
  running_ = false;
  close_handle(timer_);
  timer_ = nullptr;
}

void ServerProbe::start() {
  if (timer_ == nullptr || running_) return;
  uv_timer_stop(timer_);
  asking_ping_ = false;
  status_ = 0;
  body_.clear();
  UpstreamRequest request;
  request.method = "GET";
  request.target = "/?query=" + url_encode(
      "SELECT version(), "
      "(SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'), "
      "(SELECT count() FROM system.settings WHERE name = 'async_insert') FORMAT TSV");
  running_ = true;
  if (pool_->submit(this, std::move(request)) == UpstreamPool::Submit::kQueueFull) {
    running_ = false;
    uv_timer_start(timer_, &ServerProbe::on_timer, kRetryMs, 0);
  }
}

void ServerProbe::upstream_response_head(int status, std::string, std::vector<Header> headers) {
  status_ = status;
  const Header* keep_alive = find_header(headers, "Keep-Alive");
  keep_alive_ = keep_alive != nullptr ? keep_alive->value : std::string();
  headers_ = std::move(headers);
}

size_t ServerProbe::upstream_response_data(const char* data, size_t size) {
  if (body_.size() < kMaxAnswer) body_.append(data, std::min(size, kMaxAnswer - body_.size()));
  return size;
}

void ServerProbe::upstream_done(const UpstreamOutcome& outcome) {
  running_ = false;
  bool ok = outcome.code == CURLE_OK && status_ == 200;
  if (asking_ping_) {
    asking_ping_ = false;
    if (ok) facts_.ping_headers = std::move(headers_);
    done_(facts_);
    return;
  }
  if (!ok) {
    if (timer_ != nullptr) uv_timer_start(timer_, &ServerProbe::on_timer, kRetryMs, 0);
    return;
  }
  ServerFacts& facts = facts_;
  // version \t dedup \t async
  size_t tab1 = body_.find('\t');
  size_t tab2 = tab1 == std::string::npos ? tab1 : body_.find('\t', tab1 + 1);
  facts.version = body_.substr(0, tab1);
  facts.keep_alive = keep_alive_;
  facts.dedup_token = tab1 != std::string::npos && body_.compare(tab1 + 1, 1, "1") == 0;
  facts.async_insert = tab2 != std::string::npos && body_.compare(tab2 + 1, 1, "1") == 0;
  facts.modern_encodings = version_has_modern_encodings(facts.version);
  facts.row_binary_with_defaults = version_at_least(facts.version, 23, 7);
  // The same replica's own /ping answer, for the local one.
  UpstreamRequest ping;
  ping.method = "GET";
  ping.target = "/ping";
  asking_ping_ = true;
  running_ = true;
  status_ = 0;
  if (pool_->submit(this, std::move(ping)) == UpstreamPool::Submit::kQueueFull) {
    running_ = false;
    asking_ping_ = false;
    done_(facts_);
  }
}

void ServerProbe::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ServerProbe*>(timer->data);
  if (self != nullptr) self->start();
}

}  // namespace chsidecar
