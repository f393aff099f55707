#include "config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "log.h"
#include "url_parts.h"

namespace chsidecar {

namespace {

enum class Kind { kCount, kSize, kDuration, kText, kBool };

struct Flag {
  const char* group;
  const char* name;  // without the leading --
  Kind kind;
  const char* help;
  // Applies a value; returns false with `error` set when the value is wrong.
  std::function<bool(Config&, std::string_view, std::string& error)> apply;
  std::function<std::string(const Config&)> show;  // the value in effect
};

std::string env_name(const char* flag) {
  std::string out = "CHSIDECAR_";
  for (const char* p = flag; *p; ++p) out += *p == '-' ? '_' : static_cast<char>(std::toupper(*p));
  return out;
}

std::string show_size(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int unit = 0;
  while (unit < 3 && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + units[unit];
}

std::string show_duration(uint64_t ms) {
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// Why `url` (http:// or https://, no trailing '/') cannot be an upstream
// base URL, or "" if it can. The reasons never quote the URL: a password
// with an unencoded '/', '?' or '#' is exactly what makes one wrong.
std::string upstream_url_error(std::string_view url) {
  static constexpr const char* kEncode =
      " (a user name or password with '/', '?', '#', '@', ',' or a space must be percent-encoded)";
  if (std::any_of(url.begin(), url.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      }))
    return std::string("has a space or control character") + kEncode;
  UrlParts parts = split_url(url);
  if (parts.rest.find_first_of("?#") != std::string_view::npos)
    return std::string("takes no query string or fragment") + kEncode;
  if (parts.rest.find('@') != std::string_view::npos)
    return std::string("has '@' after the host") + kEncode;
  // A second '@' in the authority: curl ends the login at the first '@'.
  if (parts.userinfo && parts.userinfo->find('@') != std::string_view::npos)
    return std::string("has '@' in its user name or password") + kEncode;
  std::string_view host = parts.host_port;
  std::string_view port;
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    uint64_t n;
    if (!parse_u64(port, n) || n == 0 || n > 65535)
      return std::string("has a port that is not a number from 1 to 65535") + kEncode;
  }
  if (host.empty() || host == "[]") return std::string("has no host") + kEncode;
  if (host.front() != '[' && host.find(':') != std::string_view::npos)
    return std::string("has a host that is neither a name nor an address") + kEncode;
  return "";
}

Flag count_flag(const char* group, const char* name, const char* help, uint64_t Config::*field,
                uint64_t min, uint64_t max) {
  return Flag{group, name, Kind::kCount, help,
              [field, min, max](Config& c, std::string_view v, std::string& err) {
                uint64_t n;
                if (!parse_u64(v, n) || n < min || n > max) {
                  err = "expects a whole number from " + std::to_string(min) + " to " +
                        std::to_string(max);
                  return false;
                }
                c.*field = n;
                return true;
              },
              [field](const Config& c) { return std::to_string(c.*field); }};
}

Flag size_flag(const char* group, const char* name, const char* help, uint64_t Config::*field,
               uint64_t min) {
  return Flag{group, name, Kind::kSize, help,
              [field, min](Config& c, std::string_view v, std::string& err) {
                uint64_t n;
                if (!parse_size(v, n) || n < min) {
                  err = "expects a size of at least " + show_size(min) + " such as 64KiB or 16MiB";
                  return false;
                }
                c.*field = n;
                return true;
              },
              [field](const Config& c) { return show_size(c.*field); }};
}

// `flag`, also noting in `field` that it was given.
Flag given(Flag flag, bool Config::*field) {
  flag.apply = [apply = std::move(flag.apply), field](Config& c, std::string_view v, std::string& err) {
    if (!apply(c, v, err)) return false;
    c.*field = true;
    return true;
  };
  return flag;
}

Flag duration_flag(const char* group, const char* name, const char* help,
                   uint64_t Config::*field, uint64_t min_ms) {
  return Flag{group, name, Kind::kDuration, help,
              [field, min_ms](Config& c, std::string_view v, std::string& err) {
                uint64_t ms;
                if (!parse_duration_ms(v, ms) || ms < min_ms) {
                  err = "expects a duration of at least " + show_duration(min_ms) +
                        " such as 200ms, 5s or 2m";
                  return false;
                }
                c.*field = ms;
                return true;
              },
              [field](const Config& c) { return show_duration(c.*field); }};
}

template <typename E>
Flag choice_flag(const char* group, const char* name, const char* help, E Config::*field,
                 std::vector<std::pair<const char*, E>> choices) {
  return Flag{group, name, Kind::kText, help,
              [field, choices](Config& c, std::string_view v, std::string& err) {
                std::string names;
                for (auto& [text, value] : choices) {
                  if (v == text) {
                    c.*field = value;
                    return true;
                  }
                  names += names.empty() ? text : std::string("|") + text;
                }
                err = "expects one of " + names;
                return false;
              },
              [field, choices](const Config& c) {
                for (auto& [text, value] : choices)
                  if (c.*field == value) return std::string(text);
                return std::string();
              }};
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"Client side", "listen", Kind::kText, "address to accept clients on (host:port)",
       [](Config& c, std::string_view v, std::string& err) {
         if (parse_host_port(v, c.listen)) return true;
         err = "expects host:port such as 127.0.0.1:8124";
         return false;
       },
       [](const Config& c) { return c.listen.host + ":" + std::to_string(c.listen.port); }},
      count_flag("Client side", "max-connections",
                 "client connections held at once; beyond it 503 and close",
                 &Config::max_connections, 1, 1'000'000),
      size_flag("Client side", "max-header-bytes",
                "request line and headers of one request; beyond it 431",
                &Config::max_header_bytes, 1024),
      count_flag("Client side", "max-headers", "header fields of one request; beyond it 431",
                 &Config::max_headers, 1, 10'000),
      size_flag("Client side", "max-url-bytes", "request target length; beyond it 414",
                &Config::max_url_bytes, 256),
      duration_flag("Client side", "header-timeout",
                    "time to receive a request's headers; beyond it 408 and close",
                    &Config::header_timeout_ms, 100),
      given(duration_flag("Client side", "idle-timeout",
                          "idle keep-alive connection lifetime (at least ClickHouse's 3s); "
                          "answers advertise it in Keep-Alive when given, else the upstream's own",
                          &Config::idle_timeout_ms, 3000),
            &Config::idle_timeout_given),
      duration_flag("Client side", "body-timeout",
                    "time without a byte of a request body; beyond it 408 and close",
                    &Config::body_timeout_ms, 100),
      duration_flag("Client side", "write-timeout",
                    "time a client may leave an answer unread; beyond it the connection closes",
                    &Config::write_timeout_ms, 100),
      size_flag("Client side", "body-buffer",
                "request body bytes held per request; also what a retry can resend",
                &Config::body_buffer_bytes, 16 * 1024),
      size_flag("Client side", "response-buffer",
                "response bytes queued to a slow client before the upstream is paused",
                &Config::response_buffer_bytes, 16 * 1024),
      size_flag("Client side", "max-memory",
                "one budget for request bodies held, answers queued to slow clients, batch "
                "buffers and decoded bodies; a new request that finds it used up waits "
                "--memory-wait, then gets 503 with Retry-After (a request's body reserves up to "
                "--body-buffer when it begins)",
                &Config::max_memory_bytes, 1024 * 1024),
      duration_flag("Client side", "memory-wait",
                    "how long a new request waits for room in --max-memory before 503 "
                    "(0: answer at once)",
                    &Config::memory_wait_ms, 0),
      {"Upstream", "upstream", Kind::kText,
       "ClickHouse HTTP base URL, e.g. http://127.0.0.1:8123; repeat (or separate with commas) "
       "for replicas of one cluster",
       [](Config& c, std::string_view v, std::string& err) {
         // Each occurrence on the command line adds a replica; the variable
         // gives them all at once (comma-separated).
         std::vector<std::string> urls;
         while (!v.empty()) {
           size_t comma = v.find(',');
           std::string_view url = v.substr(0, comma);
           while (!url.empty() && url.back() == '/') url.remove_suffix(1);
           if (url.substr(0, 7) != "http://" && url.substr(0, 8) != "https://") {
             err = "expects an http:// or https:// URL";
             return false;
           }
           if (err = upstream_url_error(url); !err.empty()) return false;
           urls.emplace_back(url);
           if (comma == std::string_view::npos) break;
           v.remove_prefix(comma + 1);
         }
         if (urls.empty()) {
           err = "expects an http:// or https:// URL";
           return false;
         }
         if (c.upstreams_append) {
           c.upstreams.insert(c.upstreams.end(), urls.begin(), urls.end());
         } else {
           c.upstreams = std::move(urls);
         }
         return true;
       },
       [](const Config& c) {
         return c.upstreams.empty() ? std::string("none, required") : shown_upstreams(c);
       }},
      duration_flag("Upstream", "health-interval", "time between GET /ping health checks of each upstream",
                    &Config::health_interval_ms, 100),
      duration_flag("Upstream", "health-timeout",
                    "time a health check may go without a byte from the upstream; beyond it the check fails",
                    &Config::health_timeout_ms, 100),
      count_flag("Upstream", "eject-after",
                 "consecutive upstream failures that take a replica out until it answers /ping",
                 &Config::eject_after, 1, 1000),
      count_flag("Upstream", "pool-size", "keep-alive connections (slots) per upstream",
                 &Config::pool_size, 1, 4096),
      count_flag("Upstream", "queue-max",
                 "requests waiting for a free slot; beyond it 503 with Retry-After",
                 &Config::queue_max, 0, 1'000'000),
      duration_flag("Upstream", "connect-timeout", "time to connect to an upstream; beyond it 502",
                    &Config::connect_timeout_ms, 10),
      duration_flag("Upstream", "upstream-timeout",
                    "time without a byte from the upstream; beyond it 504",
                    &Config::upstream_timeout_ms, 1000),
      choice_flag<SessionMode>("Sessions", "session-mode",
                               "auto: a session runs in order once it holds state; pin: always",
                               &Config::session_mode,
                               {{"auto", SessionMode::kAuto}, {"pin", SessionMode::kPin}}),
      count_flag("Sessions", "max-sessions",
                 "stateful sessions tracked at once; beyond it 503 with Retry-After",
                 &Config::max_sessions, 1, 10'000'000),
      count_flag("Sessions", "session-queue-max",
                 "requests waiting in one session; beyond it 503 with Retry-After",
                 &Config::session_queue_max, 1, 1'000'000),
      duration_flag("Sessions", "session-lock-wait",
                    "time a session's request retries ClickHouse's 'session is locked' (373: "
                    "an earlier query of the session still runs); beyond it the 373 is passed on",
                    &Config::session_lock_wait_ms, 0),
      choice_flag<BatchMode>("Batching", "batch",
                             "auto: fold small INSERTs in text formats into batches; off: pass through",
                             &Config::batch_mode,
                             {{"auto", BatchMode::kAuto}, {"off", BatchMode::kOff}}),
      count_flag("Batching", "flush-rows", "rows that make a batch flush at once",
                 &Config::flush_rows, 1, 1'000'000),
      count_flag("Batching", "passthrough-rows",
                 "an INSERT of at least this many rows (lines) is a batch already: sent as it is",
                 &Config::passthrough_rows, 1, 1'000'000),
      size_flag("Batching", "flush-bytes", "bytes that make a batch flush at once",
                &Config::flush_bytes, 1024),
      duration_flag("Batching", "flush-delay-min",
                    "wait before flushing a quiet table's first rows", &Config::flush_delay_min_ms, 0),
      duration_flag("Batching", "flush-delay-max",
                    "longest wait before flushing a busy table's rows", &Config::flush_delay_max_ms, 0),
      count_flag("Batching", "max-parts-per-second",
                 "new parts per table per second the flush delay aims at",
                 &Config::max_parts_per_second, 1, 1000),
      count_flag("Batching", "max-inflight-flushes", "flushes of one table running at once",
                 &Config::max_inflight_flushes, 1, 64),
      size_flag("Batching", "buffer-max-bytes",
                "rows buffered or in flight in all batches; beyond it 503 with Retry-After",
                &Config::buffer_max_bytes, 64 * 1024),
      size_flag("Batching", "max-decompressed-bytes",
                "a compressed INSERT body larger than this when decoded passes through unbatched",
                &Config::max_decompressed_bytes, 64 * 1024),
      count_flag("Batching", "max-compression-ratio",
                 "decoded/encoded size beyond which the sidecar stops decoding a compressed INSERT; it then passes through unbatched",
                 &Config::max_compression_ratio, 2, 1'000'000),
      duration_flag("Batching", "table-structure-ttl",
                    "how long a table's columns learnt with DESCRIBE (for RowBinary INSERTs) are "
                    "used before they are asked again (meanwhile still used)",
                    &Config::table_structure_ttl_ms, 1000),
      duration_flag("Batching", "table-structure-timeout",
                    "how long a RowBinary INSERT whose table's columns are not known yet waits for "
                    "DESCRIBE; past it the INSERT goes to ClickHouse alone",
                    &Config::table_structure_timeout_ms, 1),
      count_flag("Batching", "max-table-structures",
                 "tables (per user and database) whose columns are kept for RowBinary INSERTs; "
                 "beyond it the one asked longest ago is forgotten (its INSERTs go alone until asked again)",
                 &Config::max_table_structures, 1, 10'000'000),
      choice_flag<UpstreamCompression>(
          "Batching", "upstream-compression",
          "how merged batches are compressed for ClickHouse: auto (zstd level 1 when the server "
          "takes it and an upstream is not on loopback, else none), none, gzip, lz4, zstd (lz4 and "
          "zstd only on servers that take them, else none)",
          &Config::upstream_compression,
          {{"auto", UpstreamCompression::kAuto}, {"none", UpstreamCompression::kNone},
           {"gzip", UpstreamCompression::kGzip}, {"lz4", UpstreamCompression::kLz4},
           {"zstd", UpstreamCompression::kZstd}}),
      choice_flag<AckMode>("Acknowledgement", "ack",
                           "commit: answer an INSERT once ClickHouse committed it; spool: once "
                           "its rows are fsynced to the spool (also per request with "
                           "wait_for_async_insert=0)",
                           &Config::ack_mode,
                           {{"commit", AckMode::kCommit}, {"spool", AckMode::kSpool}}),
      {"Acknowledgement", "spool-dir", Kind::kText,
       "directory of the spool (created 0700); empty disables spooled answers",
       [](Config& c, std::string_view v, std::string&) {
         c.spool_dir = std::string(v);
         return true;
       },
       [](const Config& c) { return c.spool_dir; }},
      size_flag("Acknowledgement", "spool-max-bytes",
                "spool size; beyond it spooled INSERTs get 503 with Retry-After",
                &Config::spool_max_bytes, 1024 * 1024),
      size_flag("Acknowledgement", "spool-segment-bytes",
                "size at which the next segment file takes over (one done segment is kept "
                "as spare.log and reused)",
                &Config::spool_segment_bytes, 64 * 1024),
      duration_flag("Acknowledgement", "spool-group-wait",
                    "after a group commit, how long the next group may wait to hold half as "
                    "many requests as were in the spool then, so that steady writers share "
                    "fdatasyncs in two groups that take turns (0: write it at once)",
                    &Config::spool_group_wait_ms, 0),
      size_flag("Acknowledgement", "dead-letter-max-bytes",
                "total of the dead-letter files in --spool-dir (rows ClickHouse refused after "
                "their early answer; dead-letter.jsonl is renamed dead-letter-<n>.jsonl at a "
                "quarter of it, never deleted); at the cap such rows wait in the spool and "
                "spooled INSERTs get 503 with Retry-After until files are moved away",
                &Config::dead_letter_max_bytes, 64 * 1024),
      duration_flag("Acknowledgement", "retry-backoff-min",
                    "first pause before a batch is sent again after a transient error",
                    &Config::retry_backoff_min_ms, 1),
      duration_flag("Acknowledgement", "retry-backoff-max", "longest pause between tries of a batch",
                    &Config::retry_backoff_max_ms, 1),
      count_flag("Acknowledgement", "retry-limit",
                 "tries of a batch that ClickHouse refuses with a memory or time limit (241, 159) "
                 "or a file error (74-77, 107) while other batches commit; then it is split and a "
                 "request failing alone gets the error (dead-lettered if answered early). Other "
                 "transient errors: no limit",
                 &Config::retry_limit, 1, 1'000'000),
      duration_flag("Acknowledgement", "early-ack-proof",
                    "how long a committed batch of an INSERT's key (credentials, table, "
                    "columns, format, settings) vouches for early answers to that key; an "
                    "INSERT of a key not vouched for is answered once its batch commits "
                    "(0: no proof, the clients are trusted: early answers also for a key "
                    "first seen while ClickHouse is unreachable)",
                    &Config::early_ack_proof_ms, 0),
      {"Observability", "admin-listen", Kind::kText,
       "address of /metrics /live /ready /status (host:port), or off",
       [](Config& c, std::string_view v, std::string& err) {
         if (v == "off") {
           c.admin_enabled = false;
           return true;
         }
         if (parse_host_port(v, c.admin_listen)) {
           c.admin_enabled = true;
           return true;
         }
         err = "expects host:port such as 127.0.0.1:9124, or off";
         return false;
       },
       [](const Config& c) {
         return c.admin_enabled ? c.admin_listen.host + ":" + std::to_string(c.admin_listen.port)
                                : std::string("off");
       }},
      {"Observability", "access-log", Kind::kBool,
       "one log line per request: method, path (no query string), status, duration, bytes, route",
       [](Config& c, std::string_view v, std::string& err) {
         if (v == "on" || v == "true" || v == "1") c.access_log = true;
         else if (v == "off" || v == "false" || v == "0") c.access_log = false;
         else {
           err = "expects on or off";
           return false;
         }
         return true;
       },
       [](const Config& c) { return std::string(c.access_log ? "on" : "off"); }},
      duration_flag("Process", "shutdown-grace",
                    "time to finish in-flight work after SIGTERM before exiting",
                    &Config::shutdown_grace_ms, 0),
      choice_flag<LogLevel>("Process", "log-level", "least severe event logged",
                            &Config::log_level,
                            {{"debug", LogLevel::kDebug},
                             {"info", LogLevel::kInfo},
                             {"warn", LogLevel::kWarn},
                             {"error", LogLevel::kError}}),
      choice_flag<LogFormat>("Process", "log-format", "log line format", &Config::log_format,
                             {{"text", LogFormat::kText}, {"json", LogFormat::kJson}}),
  };
  return table;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

const Flag* find_flag(std::string_view name) {
  for (const Flag& f : flags())
    if (name == f.name) return &f;
  return nullptr;
}

}  // namespace

bool parse_u64(std::string_view text, uint64_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parse_size(std::string_view text, uint64_t& bytes) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  uint64_t n;
  if (!parse_u64(text.substr(0, digits), n)) return false;
  std::string_view unit = text.substr(digits);
  uint64_t mult;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KiB" || unit == "K" || unit == "KB") mult = 1ull << 10;
  else if (unit == "MiB" || unit == "M" || unit == "MB") mult = 1ull << 20;
  else if (unit == "GiB" || unit == "G" || unit == "GB") mult = 1ull << 30;
  else return false;
  if (n > UINT64_MAX / mult) return false;
  bytes = n * mult;
  return true;
}

bool parse_duration_ms(std::string_view text, uint64_t& ms) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  uint64_t n;
  if (!parse_u64(text.substr(0, digits), n)) return false;
  std::string_view unit = text.substr(digits);
  uint64_t mult;
  if (unit == "ms") mult = 1;
  else if (unit.empty() || unit == "s") mult = 1000;
  else if (unit == "m") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  else return false;
  if (n > UINT64_MAX / mult) return false;
  ms = n * mult;
  return true;
}

bool parse_host_port(std::string_view text, HostPort& out) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
  }
  uint64_t port;
  if (!parse_u64(text.substr(colon + 1), port) || port > 65535) return false;
  out.host = std::string(host);
  out.port = static_cast<int>(port);
  return true;
}

ConfigResult parse_config(const std::vector<std::string>& args, const EnvLookup& env,
                          Config& config) {
  ConfigResult result;
  bool check = false;
  auto fail = [&](const std::string& where, const std::string& why) {
    result.action = ConfigAction::kError;
    result.error = where + ": " + why;
    return result;
  };
  for (const Flag& f : flags()) {
    std::string var = env_name(f.name);
    const char* value = env ? env(var.c_str()) : nullptr;
    if (value == nullptr) continue;
    std::string why;
    if (!f.apply(config, value, why)) return fail(var + " (--" + f.name + ")", why);
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      result.action = ConfigAction::kHelp;
      return result;
    }
    if (arg == "--version") {
      result.action = ConfigAction::kVersion;
      return result;
    }
    if (arg == "--check-config") {
      check = true;
      continue;
    }
    if (arg.substr(0, 2) != "--") {
      // A stray URL may hold a password: such an argument is not echoed.
      std::string shown = arg.find('@') == std::string_view::npos ? std::string(arg)
                                                                   : "an argument with '@'";
      return fail(shown, "unexpected argument (see --help)");
    }
    std::string_view name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string_view::npos) {
      value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* f = find_flag(name);
    if (f == nullptr) return fail("--" + std::string(name), "unknown flag (see --help)");
    if (!has_value && f->kind == Kind::kBool) {
      value = "on";  // a bare boolean flag
      has_value = true;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return fail("--" + std::string(name), "needs a value");
      value = args[++i];
    }
    std::string why;
    if (!f->apply(config, value, why)) return fail("--" + std::string(name), why);
    if (name == "upstream") config.upstreams_append = true;  // a second --upstream adds a replica
  }
  if (config.flush_delay_min_ms > config.flush_delay_max_ms)
    return fail("--flush-delay-min", "must not exceed --flush-delay-max");
  if (config.max_memory_bytes < 2 * config.body_buffer_bytes)
    return fail("--max-memory", "must be at least twice --body-buffer (" +
                                    show_size(config.body_buffer_bytes) +
                                    "): a request's body and its rows in a batch");
  if (config.upstreams.empty())
    return fail("--upstream", "required (or set CHSIDECAR_UPSTREAM)");
  if (!is_ip_literal(config.listen.host))
    return fail("--listen", "expects a numeric IP address such as 127.0.0.1 or [::1]");
  if (config.admin_enabled && !is_ip_literal(config.admin_listen.host))
    return fail("--admin-listen", "expects a numeric IP address such as 127.0.0.1 or [::1]");
  if (config.admin_enabled && config.admin_listen.port != 0 &&
      config.admin_listen.port == config.listen.port && config.admin_listen.host == config.listen.host)
    return fail("--admin-listen", "must differ from --listen");
  if (check) result.action = ConfigAction::kCheck;
  return result;
}

std::string config_help() {
  std::string out =
      "Usage: chsidecar --upstream URL [flags]\n"
      "A sidecar for ClickHouse's HTTP interface: pooled keep-alive connections,\n"
      "session-safe queueing. Each flag also reads the environment variable shown;\n"
      "a flag on the command line wins. Sizes take B, KiB, MiB, GiB; durations ms, s, m, h.\n";
  const char* group = "";
  for (const Flag& f : flags()) {
    if (std::strcmp(group, f.group) != 0) {
      group = f.group;
      out += std::string("\n") + group + ":\n";
    }
    static const Config defaults;
    std::string unit = f.kind == Kind::kSize       ? " (size)"
                       : f.kind == Kind::kDuration ? " (duration)"
                       : f.kind == Kind::kCount    ? " (count)"
                       : f.kind == Kind::kBool     ? " [=on|off]"
                                                   : "";
    out += std::string("  --") + f.name + unit + "\n      " + f.help + "\n      default " +
           f.show(defaults) + ", env " + env_name(f.name) + "\n";
  }
  out += "\n  --check-config  validate the flags and environment, print the result, exit 0 (2 if wrong)"
         "\n  --help          this text\n  --version       print the version and exit\n";
  return out;
}

std::string shown_upstreams(const Config& config) {
  std::string urls;
  for (const std::string& url : config.upstreams) {
    if (!urls.empty()) urls += ',';
    urls += redact_url(url);
  }
  return urls;
}

std::vector<std::pair<std::string, std::string>> config_summary(const Config& config) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Flag& f : flags()) {
    std::string name = f.name;
    std::replace(name.begin(), name.end(), '-', '_');
    out.emplace_back(std::move(name), f.show(config));
  }
  return out;
}

}  // namespace chsidecar
