// Fuzz target: flag and environment parsing (config.h).
//
// The input is split at newlines. A line "CHSIDECAR_NAME=value" goes into a
// fake environment (the EnvLookup); every other line is one argument. Checks
// that parse_config neither crashes nor accepts a configuration that breaks
// its own checks, and that the value parsers (sizes, durations, host:port)
// agree with a simple model of their grammar.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "fuzz_check.h"

using namespace chsidecar;

namespace {

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

void check_value_parsers(std::string_view text) {
  uint64_t v = 0;
  if (parse_size(text, v)) {
    size_t d = 0;
    while (d < text.size() && text[d] >= '0' && text[d] <= '9') ++d;
    FUZZ_CHECK(d > 0);
    uint64_t n = 0;
    bool overflow = false;
    for (size_t i = 0; i < d; ++i) overflow |= __builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, uint64_t(text[i] - '0'), &n);
    FUZZ_CHECK(!overflow);
    FUZZ_CHECK(v >= n);  // the unit only multiplies
    FUZZ_CHECK(n == 0 || v % n == 0);
  }
  if (parse_duration_ms(text, v)) {
    size_t d = 0;
    while (d < text.size() && text[d] >= '0' && text[d] <= '9') ++d;
    FUZZ_CHECK(d > 0);
  }
  HostPort hp;
  if (parse_host_port(text, hp)) {
    FUZZ_CHECK(hp.port >= 0 && hp.port <= 65535);
    FUZZ_CHECK(!hp.host.empty());
    size_t colon = text.rfind(':');
    FUZZ_CHECK(colon != std::string_view::npos && all_digits(text.substr(colon + 1)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  while (!input.empty()) {
    size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    size_t eq = line.find('=');
    if (line.substr(0, 10) == "CHSIDECAR_" && eq != std::string_view::npos)
      env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    else
      args.emplace_back(line);
    check_value_parsers(line);
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  EnvLookup lookup = [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };

  Config config;
  ConfigResult result = parse_config(args, lookup, config);
  if (result.action == ConfigAction::kError) {
    FUZZ_CHECK(!result.error.empty());
    return 0;
  }
  if (result.action == ConfigAction::kRun || result.action == ConfigAction::kCheck) {
    FUZZ_CHECK(!config.upstreams.empty());
    for (const std::string& u : config.upstreams)
      FUZZ_CHECK(u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0);
    FUZZ_CHECK(config.flush_delay_min_ms <= config.flush_delay_max_ms);
    FUZZ_CHECK(config.max_connections >= 1);
    FUZZ_CHECK(config.pool_size >= 1);
    FUZZ_CHECK(config.listen.port >= 0 && config.listen.port <= 65535);
    FUZZ_CHECK(config.idle_timeout_ms >= 3000);
  }
  // The same flags from a fresh Config give the same answer: parsing keeps
  // no state between calls.
  Config again;
  ConfigResult second = parse_config(args, lookup, again);
  FUZZ_CHECK(second.action == result.action);
  FUZZ_CHECK(again.upstreams == config.upstreams);
  static const std::string help = config_help();
  FUZZ_CHECK(!help.empty());
  return 0;
}
