// Decoding compressed request bodies before their SQL is read and their
// rows are validated.
//
// Two layers, as ClickHouse's HTTP handler has them: an HTTP
// Content-Encoding (gzip, deflate, lz4 frame, zstd), and, with the URL
// parameter `decompress=1`, ClickHouse's own framing of checksummed blocks
// (16-byte CityHash128 v1.0.2, method byte 0x82 LZ4 / 0x90 ZSTD / 0x02
// none, compressed size including the 9-byte header, decompressed size,
// data). A body uses one of them; both at once is not decoded here.
//
// Bounded twice: by the decoded size (max_out) and by the ratio of decoded
// to encoded bytes, so a small "zip bomb" cannot make the sidecar allocate
// without limit. Decoding runs in pieces of at most 64 KiB of output (a
// block's declared size is checked against both limits before it is
// allocated), and stops at the first piece past a limit. Pure; zlib, liblz4,
// libzstd.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chsidecar {

enum class DecodeResult {
  kOk,
  kUnsupported,  // a block method not decoded here (a codec chain such as Delta)
  kTooLarge,     // decoded size above max_out
  kRatio,        // decoded/encoded above max_ratio
  kCorrupt,      // not a valid stream: truncated, bad data, bad checksum, trailing bytes
};

// How a request body is encoded.
enum class BodyCoding {
  kIdentity,          // no Content-Encoding
  kGzip,              // gzip
  kDeflate,           // deflate (a zlib stream, as ClickHouse reads it)
  kLz4,               // an LZ4 frame (not ClickHouse's blocks)
  kZstd,              // a zstd frame, or several
  kClickHouseBlocks,  // decompress=1
};

// The coding a Content-Encoding value names, in any letter case; nullopt
// for anything else ("identity", "br", lists such as "gzip, identity").
// Which spellings a server accepts is the router's question (router.h).
std::optional<BodyCoding> content_coding(std::string_view encoding);

// Decodes `in` in `coding` into `out`; on any result but kOk, `out` is empty.
DecodeResult decode_body(BodyCoding coding, std::string_view in, uint64_t max_out,
                         uint64_t max_ratio, std::string& out);

// Method bytes of ClickHouse's compressed blocks.
inline constexpr uint8_t kBlockNone = 0x02;
inline constexpr uint8_t kBlockLz4 = 0x82;
inline constexpr uint8_t kBlockZstd = 0x90;

}  // namespace chsidecar
