// One line per event on stderr, as text or JSON.
//
// Callers pass the event name and key/value fields; values are written as
// given, so a caller must never pass a password, an Authorization or
// X-ClickHouse-Key header, or a URL with credentials (redact_url() strips
// them). Loop thread only; the level and format are set once at start-up.
//
// Storms are rate-limited: at most kLogBurst lines of one warn or error
// event name per second are written; the rest are counted, and a line
// "log_suppressed event=<name> count=<n>" follows when the second is over
// (written by the next line of that event, or by log_flush_suppressed(),
// which App calls from its housekeeping timer). Debug and info lines are
// not limited. The limiter's state is process-wide, like the level.
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "config.h"

namespace chsidecar {

using LogField = std::pair<std::string_view, std::string>;

void log_setup(LogLevel level, LogFormat format);
bool log_enabled(LogLevel level);
void log_event(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});
void log_event(LogLevel level, std::string_view event, std::span<const LogField> fields);

inline constexpr int kLogBurst = 10;

// Writes the summary lines of events whose rate-limit window has passed.
void log_flush_suppressed();
// Warn/error lines dropped by the rate limit since start-up.
uint64_t log_suppressed_total();

// Returns `url` with any user:password@ part removed.
std::string redact_url(std::string_view url);

}  // namespace chsidecar
