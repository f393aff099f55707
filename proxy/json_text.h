// Writing JSON strings: quotes, backslashes and control characters escaped.
// Pure; used by the JSON log format, /status and the dead-letter file.
#pragma once

#include <string>
#include <string_view>

namespace chsidecar {

// Appends `s` to `out` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view s);

}  // namespace chsidecar
