#include "body_decoder.h"

#include <zlib.h>

#include "request.h"

namespace chsidecar {

bool decodable_encoding(std::string_view encoding) {
  return encoding.empty() || iequals(encoding, "identity") || iequals(encoding, "gzip") ||
         iequals(encoding, "deflate");
}

DecodeResult decode_body(std::string_view encoding, std::string_view in, uint64_t max_out,
                         uint64_t max_ratio, std::string& out) {
  out.clear();
  if (encoding.empty() || iequals(encoding, "identity")) {
    out.assign(in);
    return DecodeResult::kOk;
  }
  if (!decodable_encoding(encoding)) return DecodeResult::kUnsupported;
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return DecodeResult::kCorrupt;  // gzip or zlib header
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  DecodeResult result = DecodeResult::kOk;
  char buf[64 * 1024];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > max_out) {
      result = DecodeResult::kTooLarge;
      break;
    }
    if (out.size() > max_ratio * std::max<size_t>(in.size(), 1)) {
      result = DecodeResult::kRatio;
      break;
    }
    if (rc == Z_STREAM_END) {
      if (z.avail_in != 0) result = DecodeResult::kCorrupt;  // trailing garbage
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      result = DecodeResult::kCorrupt;
      break;
    }
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      result = DecodeResult::kCorrupt;  // truncated
      break;
    }
  }
  inflateEnd(&z);
  if (result != DecodeResult::kOk) out.clear();
  return result;
}

}  // namespace chsidecar
