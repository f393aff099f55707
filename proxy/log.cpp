#include "log.h"

#include "json_text.h"
#include "url_parts.h"

#include <cstdio>
#include <ctime>
#include <map>
#include <sys/time.h>

namespace chsidecar {

namespace {
LogLevel g_level = LogLevel::kInfo;
LogFormat g_format = LogFormat::kText;

// Rate limit per warn/error event name: the window's start and counts.
struct Burst {
  uint64_t window_start_ms = 0;
  int written = 0;
  uint64_t suppressed = 0;
};
std::map<std::string, Burst, std::less<>> g_bursts;  // bounded: event names are literals
uint64_t g_suppressed_total = 0;
constexpr uint64_t kWindowMs = 1'000;

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

void write_line(LogLevel level, std::string_view event, std::span<const LogField> fields);

// Writes the "suppressed" summary of a finished window and starts a new one.
void roll_window(std::string_view event, Burst& b, uint64_t now) {
  if (b.suppressed > 0) {
    uint64_t n = b.suppressed;
    b.suppressed = 0;
    const LogField fields[] = {{"event", std::string(event)},
                               {"count", std::to_string(n)},
                               {"message", "suppressed " + std::to_string(n) + " repeats"}};
    write_line(LogLevel::kWarn, "log_suppressed", fields);
  }
  b.window_start_ms = now;
  b.written = 0;
}

// False when this line of a warn/error storm is to be dropped.
bool admit(LogLevel level, std::string_view event) {
  if (level < LogLevel::kWarn) return true;
  uint64_t now = monotonic_ms();
  auto it = g_bursts.find(event);
  if (it == g_bursts.end()) it = g_bursts.emplace(std::string(event), Burst{}).first;
  Burst& b = it->second;
  if (now - b.window_start_ms >= kWindowMs) roll_window(event, b, now);
  if (b.written < kLogBurst) {
    ++b.written;
    return true;
  }
  ++b.suppressed;
  ++g_suppressed_total;
  return false;
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

}  // namespace

void log_setup(LogLevel level, LogFormat format) {
  g_level = level;
  g_format = format;
}

bool log_enabled(LogLevel level) { return level >= g_level; }

void log_event(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  log_event(level, event, std::span<const LogField>(fields.begin(), fields.size()));
}

void log_event(LogLevel level, std::string_view event, std::span<const LogField> fields) {
  if (!log_enabled(level) || !admit(level, event)) return;
  write_line(level, event, fields);
}

void log_flush_suppressed() {
  uint64_t now = monotonic_ms();
  for (auto& [event, b] : g_bursts)
    if (b.suppressed > 0 && now - b.window_start_ms >= kWindowMs) roll_window(event, b, now);
}

uint64_t log_suppressed_total() { return g_suppressed_total; }

namespace {
void write_line(LogLevel level, std::string_view event, std::span<const LogField> fields) {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm utc;
  gmtime_r(&tv.tv_sec, &utc);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<long>(tv.tv_usec / 1000));
  std::string line;
  if (g_format == LogFormat::kJson) {
    line = "{\"ts\":\"" + std::string(stamp) + "\",\"level\":\"" + level_name(level) +
           "\",\"event\":";
    append_json_string(line, event);
    for (const auto& [key, value] : fields) {
      line += ',';
      append_json_string(line, key);
      line += ':';
      append_json_string(line, value);
    }
    line += "}\n";
  } else {
    line = std::string(stamp) + " " + level_name(level) + " " + std::string(event);
    for (const auto& [key, value] : fields) {
      line += ' ';
      line += key;
      line += '=';
      bool quote = value.empty() || value.find_first_of(" \"=") != std::string::npos;
      if (quote) append_json_string(line, value);
      else line += value;
    }
    line += '\n';
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}
}  // namespace

std::string redact_url(std::string_view url) {
  UrlParts parts = split_url(url);
  if (!parts.userinfo) return std::string(url);
  std::string out = parts.scheme ? std::string(*parts.scheme) + "://" : "";
  return out + std::string(parts.host_port) + std::string(parts.rest);
}

}  // namespace chsidecar
