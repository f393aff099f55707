// Fuzz target: request body decoding (body_decoder.h), bounded.
//
// The first input byte picks the Content-Encoding and the limits; the rest
// is the encoded body. When bit 7 is set the target first compresses the
// body itself (gzip or zlib), so the fuzzer also drives valid streams.
// Checks that decode_body (in the coding content_coding() reads from the
// header) never returns more than max_out bytes or more than
// max_ratio times the input, clears `out` on failure, and decodes what zlib
// encoded back to the original bytes. With bit 6 set (and bit 7 clear),
// bits 0-1 pick lz4, zstd or ClickHouse's blocks instead, decoded raw.
#include <zlib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "body_decoder.h"
#include "fuzz_check.h"

using namespace chsidecar;

namespace {

constexpr const char* kEncodings[] = {"gzip", "deflate", "identity", "", "GZIP", "x-gzip", "br", "Deflate"};

// Compresses with zlib; `gzip` picks the gzip wrapper, else the zlib one.
std::string compress(std::string_view in, bool gzip) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, gzip ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  FUZZ_CHECK(rc == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t control = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const char* encoding = kEncodings[control & 7];
  // Limits small enough that the bounds are reached: 64 KiB .. 1 MiB, ratio 2 .. 1000.
  uint64_t max_out = uint64_t(64) * 1024 << ((control >> 3) & 3);
  uint64_t max_ratio = (control & 0x20) ? 1000 : 2;

  if ((control & 0x40) && !(control & 0x80)) {
    constexpr BodyCoding kCodings[] = {BodyCoding::kLz4, BodyCoding::kZstd,
                                       BodyCoding::kClickHouseBlocks, BodyCoding::kClickHouseBlocks};
    std::string out = "stale";
    DecodeResult r = decode_body(kCodings[control & 3], rest, max_out, max_ratio, out);
    if (r != DecodeResult::kOk) {
      FUZZ_CHECK(out.empty());
      return 0;
    }
    FUZZ_CHECK(out.size() <= max_out);
    FUZZ_CHECK(out.size() <= max_ratio * std::max<size_t>(rest.size(), 1));
    return 0;
  }
  std::string plain(rest);
  std::string body = plain;
  bool self_compressed = (control & 0x80) && (control & 7) < 2;
  if (self_compressed) body = compress(plain, (control & 7) == 0);

  // The coding the sidecar reads from the header: "identity", "x-gzip",
  // "br" and the like are not decoded, the body goes on as sent.
  bool identity = encoding[0] == '\0' || std::string_view(encoding) == "identity";
  std::optional<BodyCoding> coding = identity ? BodyCoding::kIdentity : content_coding(encoding);
  if (!coding) {
    FUZZ_CHECK(std::string_view(encoding) == "x-gzip" || std::string_view(encoding) == "br");
    return 0;
  }
  std::string out = "stale";
  DecodeResult r = decode_body(*coding, body, max_out, max_ratio, out);
  if (r != DecodeResult::kOk) {
    FUZZ_CHECK(out.empty());
    return 0;
  }
  if (identity) {
    FUZZ_CHECK(out == body);
    return 0;
  }
  FUZZ_CHECK(out.size() <= max_out);
  FUZZ_CHECK(out.size() <= max_ratio * std::max<size_t>(body.size(), 1));
  if (self_compressed) FUZZ_CHECK(out == plain);
  return 0;
}
