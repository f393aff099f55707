// Unit tests for body_decoder.h: bounded gzip/deflate decoding.
#include <doctest/doctest.h>

#include <zlib.h>

#include <string>

#include "body_decoder.h"

using namespace chsidecar;

namespace {

// windowBits 15: zlib (HTTP "deflate"); 15 + 16: gzip.
std::string compress_with(std::string_view in, int window_bits) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}
std::string gzip(std::string_view in) { return compress_with(in, 15 + 16); }
std::string zlib(std::string_view in) { return compress_with(in, 15); }

// Text that does not compress to nothing, over several output buffers.
std::string sample_rows(size_t n) {
  std::string s;
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s += "{\"id\":" + std::to_string(i) + ",\"v\":" + std::to_string(x % 100000) + "}\n";
  }
  return s;
}

constexpr uint64_t kBig = uint64_t{1} << 40;

}  // namespace

TEST_CASE("decodable_encoding names what decode_body handles") {
  CHECK(decodable_encoding(""));
  CHECK(decodable_encoding("identity"));
  CHECK(decodable_encoding("gzip"));
  CHECK(decodable_encoding("GZIP"));
  CHECK(decodable_encoding("deflate"));
  CHECK(decodable_encoding("Deflate"));
  CHECK_FALSE(decodable_encoding("br"));
  CHECK_FALSE(decodable_encoding("zstd"));
  CHECK_FALSE(decodable_encoding("x-gzip "));
}

TEST_CASE("gzip and deflate bodies round-trip") {
  for (std::string data : {std::string("1,a\n"), sample_rows(20000), std::string(1, '\0'), std::string()}) {
    CAPTURE(data.size());
    std::string out = "stale";
    CHECK(decode_body("gzip", gzip(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
    out = "stale";
    CHECK(decode_body("deflate", zlib(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
    out.clear();
    CHECK(decode_body("GZip", gzip(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
  }
  // The decoded size may reach max_out exactly.
  std::string data = sample_rows(1000);
  std::string out;
  CHECK(decode_body("gzip", gzip(data), data.size(), 1000, out) == DecodeResult::kOk);
  CHECK(out == data);
}

TEST_CASE("identity bodies are copied") {
  std::string out = "stale";
  CHECK(decode_body("", "abc", kBig, 1, out) == DecodeResult::kOk);
  CHECK(out == "abc");
  CHECK(decode_body("identity", "x\0y", kBig, 1, out) == DecodeResult::kOk);
  CHECK(out == "x");
  CHECK(decode_body("Identity", "", kBig, 1, out) == DecodeResult::kOk);
  CHECK(out.empty());
}

TEST_CASE("unsupported encodings are refused") {
  std::string out = "stale";
  CHECK(decode_body("br", "abc", kBig, 100, out) == DecodeResult::kUnsupported);
  CHECK(decode_body("zstd", gzip("abc"), kBig, 100, out) == DecodeResult::kUnsupported);
  CHECK(decode_body("gzip, br", gzip("abc"), kBig, 100, out) == DecodeResult::kUnsupported);
}

TEST_CASE("truncated, garbage and trailing bytes are corrupt") {
  std::string data = sample_rows(5000);
  std::string gz = gzip(data);
  std::string out;
  for (size_t cut : {size_t{0}, size_t{1}, size_t{10}, gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
    CAPTURE(cut);
    out = "stale";
    CHECK(decode_body("gzip", std::string_view(gz).substr(0, cut), kBig, 1000000, out) ==
          DecodeResult::kCorrupt);
    CHECK(out.empty());
  }
  std::string z = zlib(data);
  CHECK(decode_body("deflate", std::string_view(z).substr(0, z.size() - 1), kBig, 1000000, out) ==
        DecodeResult::kCorrupt);

  CHECK(decode_body("gzip", gz + "xyz", kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(out.empty());
  CHECK(decode_body("deflate", z + std::string(1, '\0'), kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(decode_body("gzip", "not gzip at all", kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(decode_body("deflate", "1,a\n", kBig, 1000000, out) == DecodeResult::kCorrupt);

  // A flipped byte in the compressed data or in the gzip trailer's CRC.
  std::string bad = gz;
  bad[bad.size() - 6] = static_cast<char>(bad[bad.size() - 6] ^ 0x55);
  CHECK(decode_body("gzip", bad, kBig, 1000000, out) == DecodeResult::kCorrupt);
}

TEST_CASE("decoded size and ratio are bounded") {
  std::string data = sample_rows(20000);
  std::string gz = gzip(data);
  std::string out;
  CHECK(decode_body("gzip", gz, data.size() - 1, 1000000, out) == DecodeResult::kTooLarge);
  CHECK(out.empty());
  CHECK(decode_body("deflate", zlib(data), 1000, 1000000, out) == DecodeResult::kTooLarge);
  CHECK(out.empty());

  // A small bomb: 16 MiB of zeros in a few KiB.
  std::string zeros(16u << 20, '\0');
  std::string bomb = gzip(zeros);
  REQUIRE(bomb.size() < zeros.size() / 500);
  CHECK(decode_body("gzip", bomb, kBig, 100, out) == DecodeResult::kRatio);
  CHECK(out.empty());
  CHECK(decode_body("gzip", bomb, kBig, 100000, out) == DecodeResult::kOk);
  CHECK(out.size() == zeros.size());
  // The size bound applies too when it is the tighter one.
  CHECK(decode_body("gzip", bomb, 1u << 20, 100000, out) == DecodeResult::kTooLarge);
}
