// Writing JSON strings: quotes, backslashes and control characters escaped.
// Pure; used by the JSON log format, /status and the dead-letter file.
#pragma once

#include <string>
#include <string_view>

namespace chsidecar {

// Appends `s` to `out` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view s);

// Appends `s` to `out` as a quoted JSON string of its base64 (RFC 4648,
// padded): bytes that are not text, such as Native rows, kept exactly.
void append_json_base64(std::string& out, std::string_view s);

}  // namespace chsidecar
