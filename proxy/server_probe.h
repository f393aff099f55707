// Learns what the upstream server supports before the sidecar relies on it.
//
// Asks one replica `SELECT version()` and whether the settings
// insert_deduplication_token and async_insert exist, then GET /ping (its
// answer's headers), and calls back once with the answers; while no answer
// comes it asks again every few seconds. App runs one per replica, again
// whenever a replica comes back (it may run another version by then).
// Loop thread only; the probe must outlive its query (App owns it).
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "upstream_pool.h"

namespace chsidecar {

struct ServerFacts {
  std::string version;     // e.g. 18.16.1
  bool dedup_token = false;  // insert_deduplication_token is known
  bool async_insert = false;  // async_insert is known (21.11 and later)
  std::string keep_alive;     // its Keep-Alive header's value, e.g. "timeout=3"
  // Its HTTP interface decodes request bodies in lz4 and zstd too, and reads
  // Content-Encoding in any letter case (22 and later; measured on 26.7).
  // Before that (18.16): only exactly "gzip" and "deflate", code 89 else.
  bool modern_encodings = false;
  bool row_binary_with_defaults = false;  // it reads RowBinaryWithDefaults (23.7 and later)
  // The headers of its own answer to GET /ping, in order (empty when that
  // request failed): the sidecar's /ping answer is rebuilt from them.
  std::vector<Header> ping_headers;
};

// Whether a server of `version` ("26.7.2.1") has modern_encodings.
bool version_has_modern_encodings(std::string_view version);
// Whether a server of `version` is `major`.`minor` or later.
bool version_at_least(std::string_view version, uint64_t major, uint64_t minor);

class ServerProbe final : public UpstreamClient {
 public:
  using Done = std::function<void(const ServerFacts&)>;

  // `pool` (one replica's) must outlive the probe.
  ServerProbe(uv_loop_t* loop, UpstreamPool& pool, Done done);
  ~ServerProbe();
  ServerProbe(const ServerProbe&) = delete;
  ServerProbe& operator=(const ServerProbe&) = delete;

  // Asks (again); a probe already running goes on.
  void start();
  void close();

 private:
  size_t upstream_read_body(char*, size_t) override { return 0; }
  bool upstream_rewind_body() override { return true; }
  void upstream_response_head(int status, std::string, std::vector<Header> headers) override;
  size_t upstream_response_data(const char* data, size_t size) override;
  void upstream_done(const UpstreamOutcome& outcome) override;
  static void on_timer(uv_timer_t* timer) noexcept;

  UpstreamPool* pool_ = nullptr;  // the replica asked
  Done done_;
  uv_timer_t* timer_;
  int status_ = 0;
  std::string body_;
  std::string keep_alive_;
  std::vector<Header> headers_;  // of the answer being read
  bool asking_ping_ = false;     // the second step: GET /ping
  ServerFacts facts_;
  bool running_ = false;
};

}  // namespace chsidecar
