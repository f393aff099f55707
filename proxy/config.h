// Every setting of the sidecar, from flags and CHSIDECAR_* variables.
//
// One table in config.cpp lists each flag with its environment variable,
// default, unit, help text and check. A flag given on the command line wins
// over its environment variable, which wins over the default. Parsing is
// pure (no I/O besides reading the given environment), so unit tests drive
// it directly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chsidecar {

enum class SessionMode { kAuto, kPin };
enum class BatchMode { kOff, kAuto };
enum class AckMode { kCommit, kSpool };
enum class UpstreamCompression { kAuto, kNone, kGzip, kLz4, kZstd };
enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

struct HostPort {
  std::string host;
  int port = 0;
};

struct Config {
  // Client side.
  HostPort listen{"127.0.0.1", 8124};
  uint64_t max_connections = 4096;
  uint64_t max_header_bytes = 64 * 1024;
  uint64_t max_headers = 100;
  uint64_t max_url_bytes = 16 * 1024;
  // A client is never timed out sooner than ClickHouse would (its
  // receive_timeout and send_timeout are 300 s).
  uint64_t header_timeout_ms = 300'000;
  uint64_t idle_timeout_ms = 60'000;  // never below ClickHouse's own 3 s
  bool idle_timeout_given = false;    // else answers advertise the upstream's Keep-Alive
  uint64_t body_timeout_ms = 300'000;
  uint64_t write_timeout_ms = 300'000;
  uint64_t body_buffer_bytes = 1024 * 1024;
  uint64_t response_buffer_bytes = 1024 * 1024;
  // One budget for bodies, queued answers, batch buffers and decoded bodies
  // (memory_budget.h); a request that finds it used up waits memory_wait_ms.
  uint64_t max_memory_bytes = 512ull * 1024 * 1024;
  uint64_t memory_wait_ms = 1'000;

  // Upstream side.
  std::vector<std::string> upstreams;  // base URLs, e.g. http://127.0.0.1:8123
  bool upstreams_append = false;       // parse state: the next --upstream adds a replica
  uint64_t pool_size = 8;
  uint64_t queue_max = 1024;
  uint64_t connect_timeout_ms = 5'000;
  uint64_t upstream_timeout_ms = 600'000;
  uint64_t health_interval_ms = 2'000;
  uint64_t health_timeout_ms = 5'000;
  uint64_t eject_after = 3;

  // Sessions.
  SessionMode session_mode = SessionMode::kAuto;
  uint64_t max_sessions = 10'000;
  uint64_t session_queue_max = 256;
  uint64_t session_lock_wait_ms = 60'000;  // ClickHouse's default session_timeout

  // Batching.
  BatchMode batch_mode = BatchMode::kAuto;
  uint64_t flush_rows = 100'000;  // below max_insert_block_size, so a batch is atomic
  uint64_t passthrough_rows = 1'000;
  uint64_t flush_bytes = 16 * 1024 * 1024;
  uint64_t flush_delay_min_ms = 10;
  uint64_t flush_delay_max_ms = 200;
  uint64_t max_parts_per_second = 5;
  uint64_t max_inflight_flushes = 2;
  uint64_t buffer_max_bytes = 256 * 1024 * 1024;
  uint64_t max_decompressed_bytes = 16 * 1024 * 1024;
  uint64_t max_compression_ratio = 1000;
  UpstreamCompression upstream_compression = UpstreamCompression::kAuto;
  uint64_t table_structure_ttl_ms = 60'000;  // RowBinary: DESCRIBE asked again after
  uint64_t max_table_structures = 10'000;
  uint64_t table_structure_timeout_ms = 1'000;

  // Acknowledgement and the spool.
  AckMode ack_mode = AckMode::kCommit;
  std::string spool_dir = "chsidecar-spool";
  uint64_t spool_max_bytes = 1024ull * 1024 * 1024;
  uint64_t spool_segment_bytes = 8 * 1024 * 1024;
  uint64_t spool_group_wait_ms = 2;
  uint64_t dead_letter_max_bytes = 256ull * 1024 * 1024;
  uint64_t retry_backoff_min_ms = 100;
  uint64_t retry_backoff_max_ms = 10'000;
  uint64_t retry_limit = 20;
  uint64_t early_ack_proof_ms = 60'000;

  // Observability.
  HostPort admin_listen{"127.0.0.1", 9124};
  bool admin_enabled = true;  // false with --admin-listen off
  bool access_log = false;

  // Process.
  uint64_t shutdown_grace_ms = 25'000;
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kText;
};

// kCheck: --check-config, the flags are valid; print so and exit 0.
enum class ConfigAction { kRun, kHelp, kVersion, kCheck, kError };

struct ConfigResult {
  ConfigAction action = ConfigAction::kRun;
  std::string error;  // one line naming the flag, set when action == kError
};

// Looks up an environment variable; returns nullptr when unset.
using EnvLookup = std::function<const char*(const char* name)>;

// Fills `config` from `args` (argv without the program name) and `env`.
ConfigResult parse_config(const std::vector<std::string>& args, const EnvLookup& env,
                          Config& config);

// The text of --help: every flag grouped by concern, with default, unit and
// environment variable.
std::string config_help();

// Every flag's effective value, as (name with '_' for '-', value) in the
// order of --help: what the start-up line shows. Upstream URLs appear
// without credentials.
std::vector<std::pair<std::string, std::string>> config_summary(const Config& config);

// The upstream URLs, comma-separated, without credentials.
std::string shown_upstreams(const Config& config);

// Value parsers, also used for settings in a request's URL. Each returns
// false on a malformed value.
bool parse_u64(std::string_view text, uint64_t& out);            // digits only: 0, 3600
bool parse_size(std::string_view text, uint64_t& bytes);         // 64KiB, 16MiB, 1024
bool parse_duration_ms(std::string_view text, uint64_t& ms);     // 200ms, 5s, 2m; bare = seconds
bool parse_host_port(std::string_view text, HostPort& out);      // 127.0.0.1:8124, [::1]:8124

}  // namespace chsidecar
