// Decoding gzip/deflate request bodies before their rows are validated.
//
// Bounded twice: by the decoded size (max_out) and by the ratio of decoded
// to encoded bytes, so a small "zip bomb" cannot make the sidecar allocate
// without limit. Pure; zlib.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chsidecar {

enum class DecodeResult {
  kOk,
  kUnsupported,  // not gzip, deflate or identity
  kTooLarge,     // decoded size above max_out
  kRatio,        // decoded/encoded above max_ratio
  kCorrupt,      // not a valid stream
};

// True for the Content-Encoding values decode_body() handles.
bool decodable_encoding(std::string_view encoding);

// Decodes `in` (Content-Encoding `encoding`) into `out`.
DecodeResult decode_body(std::string_view encoding, std::string_view in, uint64_t max_out,
                         uint64_t max_ratio, std::string& out);

}  // namespace chsidecar
