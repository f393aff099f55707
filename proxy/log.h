// One line per event on stderr, as text or JSON.
//
// Callers pass the event name and key/value fields; values are written as
// given, so a caller must never pass a password, an Authorization or
// X-ClickHouse-Key header, or a URL with credentials (redact_url() strips
// them). Loop thread only; the level and format are set once at start-up.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "config.h"

namespace chsidecar {

using LogField = std::pair<std::string_view, std::string>;

void log_setup(LogLevel level, LogFormat format);
bool log_enabled(LogLevel level);
void log_event(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

// Returns `url` with any user:password@ part removed.
std::string redact_url(std::string_view url);

}  // namespace chsidecar
