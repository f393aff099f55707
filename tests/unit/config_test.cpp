// Unit tests for config.h: value parsers, flags, environment, --help.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "config.h"

using namespace chsidecar;

namespace {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  mutable std::vector<std::string> asked;
  EnvLookup lookup() const {
    return [this](const char* name) -> const char* {
      asked.emplace_back(name);
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

const EnvLookup kNoEnv = [](const char*) -> const char* { return nullptr; };

ConfigResult parse(const std::vector<std::string>& args, Config& config,
                   const EnvLookup& env = kNoEnv) {
  return parse_config(args, env, config);
}

// Every field but the upstreams.
bool same_settings(const Config& a, const Config& b) {
  return a.listen.host == b.listen.host && a.listen.port == b.listen.port &&
         a.max_connections == b.max_connections && a.max_header_bytes == b.max_header_bytes &&
         a.max_headers == b.max_headers && a.max_url_bytes == b.max_url_bytes &&
         a.header_timeout_ms == b.header_timeout_ms && a.idle_timeout_ms == b.idle_timeout_ms &&
         a.body_buffer_bytes == b.body_buffer_bytes &&
         a.response_buffer_bytes == b.response_buffer_bytes && a.pool_size == b.pool_size &&
         a.queue_max == b.queue_max && a.connect_timeout_ms == b.connect_timeout_ms &&
         a.upstream_timeout_ms == b.upstream_timeout_ms && a.session_mode == b.session_mode &&
         a.max_sessions == b.max_sessions && a.session_queue_max == b.session_queue_max &&
         a.shutdown_grace_ms == b.shutdown_grace_ms && a.log_level == b.log_level &&
         a.log_format == b.log_format;
}

}  // namespace

TEST_CASE("parse_size takes bytes and binary units") {
  uint64_t n = 7;
  CHECK(parse_size("0", n));
  CHECK(n == 0);
  CHECK(parse_size("1024", n));
  CHECK(n == 1024);
  CHECK(parse_size("17B", n));
  CHECK(n == 17);
  CHECK(parse_size("64KiB", n));
  CHECK(n == 64 * 1024);
  CHECK(parse_size("64K", n));
  CHECK(n == 64 * 1024);
  CHECK(parse_size("64KB", n));
  CHECK(n == 64 * 1024);
  CHECK(parse_size("16MiB", n));
  CHECK(n == 16ull << 20);
  CHECK(parse_size("2GiB", n));
  CHECK(n == 2ull << 30);
  CHECK(parse_size("18446744073709551615", n));
  CHECK(n == UINT64_MAX);

  n = 42;
  for (const char* bad : {"", "KiB", "-1", "+1", " 1", "1 ", "1.5MiB", "1kib", "1TiB", "1 KiB",
                          "1KiBs", "0x10", "18446744073709551616", "17179869184GiB"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_size(bad, n));
  }
  CHECK(n == 42);  // untouched on failure
}

TEST_CASE("parse_duration_ms takes ms, s, m, h; a bare number is seconds") {
  uint64_t ms = 7;
  CHECK(parse_duration_ms("200ms", ms));
  CHECK(ms == 200);
  CHECK(parse_duration_ms("5s", ms));
  CHECK(ms == 5000);
  CHECK(parse_duration_ms("5", ms));
  CHECK(ms == 5000);
  CHECK(parse_duration_ms("2m", ms));
  CHECK(ms == 120'000);
  CHECK(parse_duration_ms("1h", ms));
  CHECK(ms == 3'600'000);
  CHECK(parse_duration_ms("0", ms));
  CHECK(ms == 0);

  ms = 42;
  for (const char* bad : {"", "s", "ms", "-1s", "1.5s", "5 s", "5S", "5sec", "1d", "5us",
                          "18446744073709551615s", "99999999999999999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration_ms(bad, ms));
  }
  CHECK(ms == 42);
}

TEST_CASE("parse_host_port takes host:port and [v6]:port") {
  HostPort hp;
  CHECK(parse_host_port("127.0.0.1:8124", hp));
  CHECK(hp.host == "127.0.0.1");
  CHECK(hp.port == 8124);
  CHECK(parse_host_port("localhost:1", hp));
  CHECK(hp.host == "localhost");
  CHECK(hp.port == 1);
  CHECK(parse_host_port("0.0.0.0:65535", hp));
  CHECK(hp.port == 65535);
  CHECK(parse_host_port("[::1]:8124", hp));
  CHECK(hp.host == "::1");
  CHECK(hp.port == 8124);
  CHECK(parse_host_port("[fe80::1:2]:80", hp));
  CHECK(hp.host == "fe80::1:2");
  CHECK(hp.port == 80);

  hp = {"unchanged", 9};
  for (const char* bad : {"", "8124", ":8124", "host:", "host:-1", "host:65536", "host:99999999999",
                          "host:80x", "host: 80", "[::1]", "[::1]8124", "[]:80", "[::1:80",
                          "host:+80"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_host_port(bad, hp));
  }
  CHECK(hp.host == "unchanged");
  CHECK(hp.port == 9);
}

TEST_CASE("parse_config with only --upstream keeps every default") {
  Config c;
  ConfigResult r = parse({"--upstream", "http://127.0.0.1:8123"}, c);
  CHECK(r.action == ConfigAction::kRun);
  CHECK(r.error.empty());
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0] == "http://127.0.0.1:8123");
  CHECK(same_settings(c, Config{}));
  CHECK(c.listen.host == "127.0.0.1");
  CHECK(c.listen.port == 8124);
  CHECK(c.max_connections == 4096);
  CHECK(c.max_header_bytes == 64 * 1024);
  CHECK(c.idle_timeout_ms == 60'000);
  CHECK(c.pool_size == 8);
  CHECK(c.queue_max == 1024);
  CHECK(c.health_interval_ms == 2'000);
  CHECK(c.health_timeout_ms == 5'000);
  CHECK(c.spool_group_wait_ms == 2);
  CHECK(c.dead_letter_max_bytes == 256ull * 1024 * 1024);
  CHECK(c.max_memory_bytes == 512ull * 1024 * 1024);
  CHECK(c.memory_wait_ms == 1'000);
  CHECK(c.session_mode == SessionMode::kAuto);
  CHECK(c.max_sessions == 10'000);
  CHECK(c.session_queue_max == 256);
  CHECK(c.log_level == LogLevel::kInfo);
  CHECK(c.log_format == LogFormat::kText);
}

TEST_CASE("parse_config accepts --flag=value and --flag value") {
  Config c;
  ConfigResult r = parse({"--upstream=https://ch.example:8443/", "--pool-size", "16",
                          "--listen=[::1]:9000", "--max-header-bytes", "128KiB",
                          "--idle-timeout=3s", "--connect-timeout", "250ms", "--session-mode=pin",
                          "--log-level", "debug", "--log-format=json", "--queue-max=0",
                          "--shutdown-grace=0", "--spool-group-wait=0",
                          "--dead-letter-max-bytes", "1MiB"},
                         c);
  CHECK(r.action == ConfigAction::kRun);
  CHECK(r.error == "");
  CHECK(c.spool_group_wait_ms == 0);
  CHECK(c.dead_letter_max_bytes == 1024 * 1024);
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0] == "https://ch.example:8443");  // trailing '/' dropped
  CHECK(c.pool_size == 16);
  CHECK(c.listen.host == "::1");
  CHECK(c.listen.port == 9000);
  CHECK(c.max_header_bytes == 128 * 1024);
  CHECK(c.idle_timeout_ms == 3000);
  CHECK(c.connect_timeout_ms == 250);
  CHECK(c.session_mode == SessionMode::kPin);
  CHECK(c.log_level == LogLevel::kDebug);
  CHECK(c.log_format == LogFormat::kJson);
  CHECK(c.queue_max == 0);
  CHECK(c.shutdown_grace_ms == 0);

  // A value after '=' may itself contain '='.
  Config c2;
  r = parse({"--upstream=http://h:8123/a=b"}, c2);
  CHECK(r.action == ConfigAction::kRun);
  CHECK(c2.upstreams[0] == "http://h:8123/a=b");
  // The last occurrence of a flag wins.
  r = parse({"--pool-size=2", "--pool-size=3"}, c2);
  CHECK(c2.pool_size == 3);
}

TEST_CASE("--max-memory and --memory-wait, from flags and the environment") {
  Config c;
  FakeEnv env;
  env.vars["CHSIDECAR_MAX_MEMORY"] = "64MiB";
  env.vars["CHSIDECAR_MEMORY_WAIT"] = "250ms";
  REQUIRE(parse({"--upstream", "http://127.0.0.1:8123"}, c, env.lookup()).action == ConfigAction::kRun);
  CHECK(c.max_memory_bytes == 64ull * 1024 * 1024);
  CHECK(c.memory_wait_ms == 250);
  Config d;
  REQUIRE(parse({"--upstream", "http://127.0.0.1:8123", "--max-memory=2MiB", "--memory-wait=0"}, d,
                env.lookup()).action == ConfigAction::kRun);
  CHECK(d.max_memory_bytes == 2ull * 1024 * 1024);
  CHECK(d.memory_wait_ms == 0);
}

TEST_CASE("environment variables fill in, flags win over them") {
  FakeEnv env;
  env.vars = {{"CHSIDECAR_UPSTREAM", "http://10.0.0.1:8123"},
              {"CHSIDECAR_POOL_SIZE", "32"},
              {"CHSIDECAR_IDLE_TIMEOUT", "90s"},
              {"CHSIDECAR_MAX_HEADER_BYTES", "1MiB"},
              {"CHSIDECAR_LOG_FORMAT", "json"}};
  Config c;
  ConfigResult r = parse({}, c, env.lookup());
  CHECK(r.action == ConfigAction::kRun);
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0] == "http://10.0.0.1:8123");
  CHECK(c.pool_size == 32);
  CHECK(c.idle_timeout_ms == 90'000);
  CHECK(c.max_header_bytes == 1024 * 1024);
  CHECK(c.log_format == LogFormat::kJson);
  // dashes become underscores, letters upper case
  CHECK(std::find(env.asked.begin(), env.asked.end(), "CHSIDECAR_SESSION_QUEUE_MAX") !=
        env.asked.end());
  CHECK(std::find(env.asked.begin(), env.asked.end(), "CHSIDECAR_MAX_URL_BYTES") !=
        env.asked.end());

  Config c2;
  r = parse({"--pool-size", "4", "--upstream=http://flag:8123"}, c2, env.lookup());
  CHECK(r.action == ConfigAction::kRun);
  CHECK(c2.pool_size == 4);
  CHECK(c2.upstreams == std::vector<std::string>{"http://flag:8123"});
  CHECK(c2.idle_timeout_ms == 90'000);  // not on the command line: env

  // A null lookup is allowed and means no environment.
  Config c3;
  r = parse_config({"--upstream", "http://h:1"}, EnvLookup{}, c3);
  CHECK(r.action == ConfigAction::kRun);
}

TEST_CASE("a bad environment value is an error naming the variable and flag") {
  FakeEnv env;
  env.vars = {{"CHSIDECAR_UPSTREAM", "http://h:8123"}, {"CHSIDECAR_POOL_SIZE", "many"}};
  Config c;
  ConfigResult r = parse({}, c, env.lookup());
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error.find("CHSIDECAR_POOL_SIZE") != std::string::npos);
  CHECK(r.error.find("--pool-size") != std::string::npos);
}

TEST_CASE("bad values are errors that name the flag") {
  struct Case {
    std::vector<std::string> args;
    const char* flag;
  };
  const Case cases[] = {
      {{"--pool-size=0"}, "--pool-size"},
      {{"--pool-size=4097"}, "--pool-size"},
      {{"--pool-size=abc"}, "--pool-size"},
      {{"--pool-size="}, "--pool-size"},
      {{"--max-connections", "-1"}, "--max-connections"},
      {{"--max-header-bytes=1000"}, "--max-header-bytes"},  // below 1KiB
      {{"--max-header-bytes=64kb"}, "--max-header-bytes"},
      {{"--header-timeout=99ms"}, "--header-timeout"},
      {{"--health-timeout=99ms"}, "--health-timeout"},
      {{"--spool-group-wait=1us"}, "--spool-group-wait"},
      {{"--spool-group-wait=-1ms"}, "--spool-group-wait"},
      {{"--dead-letter-max-bytes=1000"}, "--dead-letter-max-bytes"},  // below 64KiB
      {{"--max-memory=512KiB"}, "--max-memory"},                      // below 1MiB
      {{"--max-memory=1MiB"}, "--max-memory"},  // below twice --body-buffer (1MiB)
      {{"--max-memory=8MiB", "--body-buffer=5MiB"}, "--max-memory"},
      {{"--memory-wait=-1s"}, "--memory-wait"},
      {{"--dead-letter-max-bytes=lots"}, "--dead-letter-max-bytes"},
      {{"--idle-timeout=2s"}, "--idle-timeout"},  // below ClickHouse's 3 s
      {{"--idle-timeout=2999ms"}, "--idle-timeout"},
      {{"--listen=8124"}, "--listen"},
      {{"--listen=host:70000"}, "--listen"},
      {{"--upstream=127.0.0.1:8123"}, "--upstream"},
      {{"--upstream=ftp://h"}, "--upstream"},
      {{"--session-mode=sticky"}, "--session-mode"},
      {{"--log-level=trace"}, "--log-level"},
      {{"--log-format=xml"}, "--log-format"},
      {{"--session-queue-max=0"}, "--session-queue-max"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> args = {"--upstream", "http://h:8123"};
    args.insert(args.end(), k.args.begin(), k.args.end());
    CAPTURE(k.args[0]);
    Config c;
    ConfigResult r = parse(args, c);
    CHECK(r.action == ConfigAction::kError);
    CHECK(r.error.rfind(std::string(k.flag) + ":", 0) == 0);  // starts with the flag
    CHECK(r.error.find('\n') == std::string::npos);            // one line
  }

  // The message says what is expected.
  Config c;
  ConfigResult r = parse({"--upstream=http://h:1", "--pool-size=0"}, c);
  CHECK(r.error == "--pool-size: expects a whole number from 1 to 4096");
  r = parse({"--upstream=http://h:1", "--log-format=xml"}, c);
  CHECK(r.error == "--log-format: expects one of text|json");
  r = parse({"--upstream=http://h:1", "--idle-timeout=1s"}, c);
  CHECK(r.error.find("3s") != std::string::npos);
}

TEST_CASE("an upstream URL curl would read otherwise is refused, without quoting it") {
  // With '/', '?', '#' or ',' unencoded in the password, the host curl would
  // connect to is not the one meant, and a log line would show the rest of
  // the password after it.
  for (const char* url : {"http://alice:pa/ss@127.0.0.1:8123", "http://alice:pa?ss@127.0.0.1:8123",
                          "http://alice:pa#ss@127.0.0.1:8123", "http://alice:1/ss@127.0.0.1:8123",
                          "http://alice:pa,ss@127.0.0.1:8123", "http://h:8123/?a=b",
                          "http://h:8123#f", "http://h:0", "http://h:65536", "http://h:",
                          "http://alice:pass@", "http://alice:p@ss@h:8123", "http://h:8123:1",
                          "http://alice:pa ss@h:8123", "http://alice:pa\tss@h:8123"}) {
    CAPTURE(std::string(url));
    Config c;
    ConfigResult r = parse({std::string("--upstream=") + url}, c);
    CHECK(r.action == ConfigAction::kError);
    CHECK(r.error.rfind("--upstream:", 0) == 0);
    CHECK(r.error.find("ss@") == std::string::npos);
    CHECK(r.error.find("percent-encoded") != std::string::npos);
  }
  for (const char* url : {"http://alice:p%2Fss@127.0.0.1:8123", "http://alice:p%40ss@h:8123",
                          "http://[::1]:8123", "http://[::1]", "https://ch.example/prefix",
                          "http://h:65535/a/b"}) {
    CAPTURE(std::string(url));
    Config c;
    CHECK(parse({std::string("--upstream=") + url}, c).action == ConfigAction::kRun);
  }
}

TEST_CASE("unknown flags, stray arguments, missing values, missing --upstream") {
  Config c;
  ConfigResult r = parse({"--upstream=http://h:1", "--pool=3"}, c);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error.rfind("--pool:", 0) == 0);
  CHECK(r.error.find("unknown") != std::string::npos);

  r = parse({"--upstream=http://h:1", "pool-size=3"}, c);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error.rfind("pool-size=3:", 0) == 0);
  // A second URL without its flag: not echoed, it may hold a password.
  r = parse({"--upstream", "http://a:1", "http://u:SECRET@b:1"}, c);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error.find("SECRET") == std::string::npos);
  CHECK(r.error.find("unexpected argument") != std::string::npos);

  r = parse({"--upstream=http://h:1", "-p", "3"}, c);
  CHECK(r.action == ConfigAction::kError);

  r = parse({"--upstream=http://h:1", "--pool-size"}, c);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error == "--pool-size: needs a value");

  r = parse({"--upstream"}, c);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error == "--upstream: needs a value");

  Config fresh;
  r = parse({}, fresh);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error.rfind("--upstream:", 0) == 0);
  CHECK(r.error.find("CHSIDECAR_UPSTREAM") != std::string::npos);

  r = parse({"--pool-size=4"}, fresh);
  CHECK(r.action == ConfigAction::kError);
  CHECK(r.error.rfind("--upstream:", 0) == 0);
}

TEST_CASE("--help and --version are actions, even without --upstream") {
  Config c;
  CHECK(parse({"--help"}, c).action == ConfigAction::kHelp);
  CHECK(parse({"-h"}, c).action == ConfigAction::kHelp);
  CHECK(parse({"--version"}, c).action == ConfigAction::kVersion);
  CHECK(parse({"--pool-size=2", "--help"}, c).action == ConfigAction::kHelp);
  CHECK(parse({"--upstream=http://h:1", "--version", "--help"}, c).action ==
        ConfigAction::kVersion);
}

TEST_CASE("config_help lists every flag with its variable and default") {
  const std::string help = config_help();
  struct Entry {
    const char* flag;
    const char* env;
    const char* def;
  };
  const Entry entries[] = {
      {"listen", "CHSIDECAR_LISTEN", "127.0.0.1:8124"},
      {"max-connections", "CHSIDECAR_MAX_CONNECTIONS", "4096"},
      {"max-header-bytes", "CHSIDECAR_MAX_HEADER_BYTES", "64KiB"},
      {"max-headers", "CHSIDECAR_MAX_HEADERS", "100"},
      {"max-url-bytes", "CHSIDECAR_MAX_URL_BYTES", "16KiB"},
      {"header-timeout", "CHSIDECAR_HEADER_TIMEOUT", "300s"},
      {"body-timeout", "CHSIDECAR_BODY_TIMEOUT", "300s"},
      {"write-timeout", "CHSIDECAR_WRITE_TIMEOUT", "300s"},
      {"idle-timeout", "CHSIDECAR_IDLE_TIMEOUT", "60s"},
      {"body-buffer", "CHSIDECAR_BODY_BUFFER", "1MiB"},
      {"response-buffer", "CHSIDECAR_RESPONSE_BUFFER", "1MiB"},
      {"upstream", "CHSIDECAR_UPSTREAM", "none, required"},
      {"pool-size", "CHSIDECAR_POOL_SIZE", "8"},
      {"queue-max", "CHSIDECAR_QUEUE_MAX", "1024"},
      {"connect-timeout", "CHSIDECAR_CONNECT_TIMEOUT", "5s"},
      {"upstream-timeout", "CHSIDECAR_UPSTREAM_TIMEOUT", "600s"},
      {"session-mode", "CHSIDECAR_SESSION_MODE", "auto"},
      {"max-sessions", "CHSIDECAR_MAX_SESSIONS", "10000"},
      {"session-queue-max", "CHSIDECAR_SESSION_QUEUE_MAX", "256"},
      {"shutdown-grace", "CHSIDECAR_SHUTDOWN_GRACE", "25s"},
      {"log-level", "CHSIDECAR_LOG_LEVEL", "info"},
      {"log-format", "CHSIDECAR_LOG_FORMAT", "text"},
  };
  for (const Entry& e : entries) {
    CAPTURE(e.flag);
    size_t at = help.find(std::string("  --") + e.flag + " ");
    if (at == std::string::npos) at = help.find(std::string("  --") + e.flag + "\n");
    REQUIRE(at != std::string::npos);
    // The default and variable are on the flag's own entry, before the next flag.
    size_t next = help.find("  --", at + 4);
    std::string entry = help.substr(at, next - at);
    CHECK(entry.find(std::string("default ") + e.def + ",") != std::string::npos);
    CHECK(entry.find(std::string("env ") + e.env + "\n") != std::string::npos);
  }
  // Every flag in the help text (including ones added after this test) is
  // one the parser knows, shows a default, and names its variable, which the
  // parser really reads.
  size_t flags_in_help = 0;
  for (size_t at = help.find("  --"); at != std::string::npos; at = help.find("  --", at + 4)) {
    size_t end = help.find_first_of(" \n", at + 4);
    std::string name = help.substr(at + 4, end - at - 4);
    if (name == "help" || name == "version" || name == "check-config") continue;
    ++flags_in_help;
    CAPTURE(name);
    std::string entry = help.substr(at, help.find("  --", at + 4) - at);
    Config c;
    ConfigResult r = parse({"--" + name}, c);
    if (entry.find("[=on|off]") != std::string::npos)  // a boolean: bare means on
      CHECK(r.error == "--upstream: required (or set CHSIDECAR_UPSTREAM)");
    else
      CHECK(r.error == "--" + name + ": needs a value");

    std::string var = "CHSIDECAR_";
    for (char ch : name) var += ch == '-' ? '_' : static_cast<char>(std::toupper(ch));
    CHECK(entry.find("default ") != std::string::npos);
    CHECK(entry.find("env " + var + "\n") != std::string::npos);
    FakeEnv env;
    Config c2;
    parse({"--upstream=http://h:1"}, c2, env.lookup());
    CHECK(std::find(env.asked.begin(), env.asked.end(), var) != env.asked.end());
  }
  CHECK(flags_in_help >= std::size(entries));
  CHECK(help.find("--help") != std::string::npos);
  CHECK(help.find("--version") != std::string::npos);

  // The defaults shown are the real defaults: giving them as flags changes
  // nothing.
  const Config defaults;
  for (const Entry& e : entries) {
    if (std::string(e.flag) == "upstream") continue;
    CAPTURE(e.flag);
    Config c;
    ConfigResult r = parse({"--upstream=http://h:1", std::string("--") + e.flag + "=" + e.def}, c);
    CHECK(r.action == ConfigAction::kRun);
    CHECK(same_settings(c, defaults));
  }
}

TEST_CASE("admin-listen, access-log and check-config") {
  Config c;
  CHECK(c.admin_enabled);
  CHECK(c.admin_listen.host == "127.0.0.1");
  CHECK(c.admin_listen.port == 9124);
  CHECK_FALSE(c.access_log);
  CHECK(parse({"--upstream=http://h:1", "--admin-listen", "[::1]:0", "--access-log"}, c).action ==
        ConfigAction::kRun);
  CHECK(c.admin_listen.host == "::1");
  CHECK(c.admin_listen.port == 0);
  CHECK(c.access_log);
  Config off;
  CHECK(parse({"--upstream=http://h:1", "--admin-listen=off", "--access-log=off"}, off).action ==
        ConfigAction::kRun);
  CHECK_FALSE(off.admin_enabled);
  CHECK_FALSE(off.access_log);
  Config chk;
  CHECK(parse({"--check-config", "--upstream=http://h:1"}, chk).action == ConfigAction::kCheck);
  ConfigResult bad = parse({"--check-config", "--upstream=http://h:1", "--pool-size=0"}, chk);
  CHECK(bad.action == ConfigAction::kError);
  CHECK(bad.error.rfind("--pool-size: ", 0) == 0);
  Config c3;
  CHECK(parse({"--upstream=http://h:1", "--admin-listen=localhost:9124"}, c3).error ==
        "--admin-listen: expects a numeric IP address such as 127.0.0.1 or [::1]");
  Config c4;
  CHECK(parse({"--upstream=http://h:1", "--listen=127.0.0.1:7000", "--admin-listen=127.0.0.1:7000"},
              c4).error == "--admin-listen: must differ from --listen");
  Config c5;
  CHECK(parse({"--upstream=http://h:1", "--access-log=maybe"}, c5).error ==
        "--access-log: expects on or off");
}
