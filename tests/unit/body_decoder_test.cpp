// Unit tests for body_decoder.h: bounded decoding of gzip, deflate, lz4,
// zstd and ClickHouse's checksummed blocks; and body_encoder.h's round trip.
#include <doctest/doctest.h>

#include <zlib.h>

#include <set>
#include <string>

#include <lz4.h>
#include <lz4frame.h>
#include <zstd.h>

#include "body_decoder.h"
#include "body_encoder.h"
#include "city_hash.h"

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

TEST_CASE("content_coding names the encodings decode_body handles, in any case") {
  CHECK(content_coding("gzip") == BodyCoding::kGzip);
  CHECK(content_coding("GZIP") == BodyCoding::kGzip);
  CHECK(content_coding("deflate") == BodyCoding::kDeflate);
  CHECK(content_coding("Deflate") == BodyCoding::kDeflate);
  CHECK(content_coding("lz4") == BodyCoding::kLz4);
  CHECK(content_coding("ZSTD") == BodyCoding::kZstd);
  for (const char* other : {"", "identity", "br", "xz", "gzip, identity", "gzip, br", "x-gzip "})
    CHECK_FALSE(content_coding(other).has_value());
}

TEST_CASE("gzip and deflate bodies round-trip") {
  for (std::string data : {std::string("1,a\n"), sample_rows(20000), std::string(1, '\0'), std::string()}) {
    CAPTURE(data.size());
    std::string out = "stale";
    CHECK(decode_body(BodyCoding::kGzip, gzip(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
    out = "stale";
    CHECK(decode_body(BodyCoding::kDeflate, zlib(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
    out.clear();
    CHECK(decode_body(*content_coding("GZip"), gzip(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
  }
  // The decoded size may reach max_out exactly.
  std::string data = sample_rows(1000);
  std::string out;
  CHECK(decode_body(BodyCoding::kGzip, gzip(data), data.size(), 1000, out) == DecodeResult::kOk);
  CHECK(out == data);
}

TEST_CASE("identity bodies are copied") {
  std::string out = "stale";
  CHECK(decode_body(BodyCoding::kIdentity, "abc", kBig, 1, out) == DecodeResult::kOk);
  CHECK(out == "abc");
  CHECK(decode_body(BodyCoding::kIdentity, "x\0y", kBig, 1, out) == DecodeResult::kOk);
  CHECK(out == "x");
  CHECK(decode_body(BodyCoding::kIdentity, "", kBig, 1, out) == DecodeResult::kOk);
  CHECK(out.empty());
}

TEST_CASE("truncated, garbage and trailing bytes are corrupt") {
  std::string data = sample_rows(5000);
  std::string gz = gzip(data);
  std::string out;
  for (size_t cut : {size_t{0}, size_t{1}, size_t{10}, gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
    CAPTURE(cut);
    out = "stale";
    CHECK(decode_body(BodyCoding::kGzip, std::string_view(gz).substr(0, cut), kBig, 1000000, out) ==
          DecodeResult::kCorrupt);
    CHECK(out.empty());
  }
  std::string z = zlib(data);
  CHECK(decode_body(BodyCoding::kDeflate, std::string_view(z).substr(0, z.size() - 1), kBig, 1000000, out) ==
        DecodeResult::kCorrupt);

  CHECK(decode_body(BodyCoding::kGzip, gz + "xyz", kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(out.empty());
  CHECK(decode_body(BodyCoding::kDeflate, z + std::string(1, '\0'), kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(decode_body(BodyCoding::kGzip, "not gzip at all", kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(decode_body(BodyCoding::kDeflate, "1,a\n", kBig, 1000000, out) == DecodeResult::kCorrupt);

  // A flipped byte in the compressed data or in the gzip trailer's CRC.
  std::string bad = gz;
  bad[bad.size() - 6] = static_cast<char>(bad[bad.size() - 6] ^ 0x55);
  CHECK(decode_body(BodyCoding::kGzip, bad, kBig, 1000000, out) == DecodeResult::kCorrupt);
}

TEST_CASE("decoded size and ratio are bounded") {
  std::string data = sample_rows(20000);
  std::string gz = gzip(data);
  std::string out;
  CHECK(decode_body(BodyCoding::kGzip, gz, data.size() - 1, 1000000, out) == DecodeResult::kTooLarge);
  CHECK(out.empty());
  CHECK(decode_body(BodyCoding::kDeflate, zlib(data), 1000, 1000000, out) == DecodeResult::kTooLarge);
  CHECK(out.empty());

  // A small bomb: 16 MiB of zeros in a few KiB.
  std::string zeros(16u << 20, '\0');
  std::string bomb = gzip(zeros);
  REQUIRE(bomb.size() < zeros.size() / 500);
  CHECK(decode_body(BodyCoding::kGzip, bomb, kBig, 100, out) == DecodeResult::kRatio);
  CHECK(out.empty());
  CHECK(decode_body(BodyCoding::kGzip, bomb, kBig, 100000, out) == DecodeResult::kOk);
  CHECK(out.size() == zeros.size());
  // The size bound applies too when it is the tighter one.
  CHECK(decode_body(BodyCoding::kGzip, bomb, 1u << 20, 100000, out) == DecodeResult::kTooLarge);
}

namespace {

std::string lz4_frame(std::string_view in) {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  std::string out(LZ4F_compressFrameBound(in.size(), &prefs), '\0');
  size_t n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), &prefs);
  REQUIRE_FALSE(LZ4F_isError(n));
  out.resize(n);
  return out;
}

std::string zstd_frame(std::string_view in, int level = 3) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }

// One of ClickHouse's compressed blocks around `in`, as its CompressedWriteBuffer writes it.
std::string ch_block(std::string_view in, uint8_t method) {
  std::string data;
  if (method == kBlockLz4) {
    data.resize(LZ4_compressBound(static_cast<int>(in.size())));
    data.resize(LZ4_compress_default(in.data(), data.data(), static_cast<int>(in.size()), static_cast<int>(data.size())));
  } else if (method == kBlockZstd) {
    data = zstd_frame(in, 1);
  } else {
    data.assign(in);
  }
  std::string block(1, static_cast<char>(method));
  put_u32(block, static_cast<uint32_t>(9 + data.size()));
  put_u32(block, static_cast<uint32_t>(in.size()));
  block += data;
  Hash128 h = city_hash128(block);
  std::string out;
  put_u64(out, h.low);
  put_u64(out, h.high);
  return out + block;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

}  // namespace

TEST_CASE("city_hash128 is ClickHouse's CityHash v1.0.2") {
  // ClickHouse 26.7's answer to `SELECT 1` with compress=1: checksum, then the block.
  std::string answer = from_hex("de79cf087fb635049db816df195b016b820c0000000200000020310a");
  Hash128 h = city_hash128(std::string_view(answer).substr(16));
  std::string sum;
  put_u64(sum, h.low);
  put_u64(sum, h.high);
  CHECK(sum == answer.substr(0, 16));
  std::string out;
  CHECK(decode_body(BodyCoding::kClickHouseBlocks, answer, kBig, 1000, out) == DecodeResult::kOk);
  CHECK(out == "1\n");
  // Every length path: <8, 8..15, 16..143 (murmur), >=144 with and without a tail.
  std::set<std::pair<uint64_t, uint64_t>> seen;
  std::string data = sample_rows(100);
  for (size_t len : {0, 1, 7, 8, 15, 16, 17, 100, 143, 144, 145, 271, 272, 1000})
    seen.insert({city_hash128(std::string_view(data).substr(0, len)).low, city_hash128(std::string_view(data).substr(0, len)).high});
  CHECK(seen.size() == 14);
}

TEST_CASE("lz4 and zstd bodies round-trip") {
  for (std::string data : {std::string("1,a\n"), sample_rows(20000), std::string(1, '\0'), std::string()}) {
    CAPTURE(data.size());
    std::string out = "stale";
    CHECK(decode_body(BodyCoding::kLz4, lz4_frame(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
    out = "stale";
    CHECK(decode_body(BodyCoding::kZstd, zstd_frame(data), kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out == data);
  }
  // Two zstd frames one after another are one body.
  std::string out;
  CHECK(decode_body(BodyCoding::kZstd, zstd_frame("a\n") + zstd_frame("b\n"), kBig, 1000, out) == DecodeResult::kOk);
  CHECK(out == "a\nb\n");
}

TEST_CASE("ClickHouse's blocks: several, of each method") {
  std::string a = sample_rows(3000), b = "INSERT INTO t FORMAT CSV\n1,a\n", c = sample_rows(10);
  std::string body = ch_block(a, kBlockLz4) + ch_block(b, kBlockZstd) + ch_block(c, kBlockNone);
  std::string out;
  CHECK(decode_body(BodyCoding::kClickHouseBlocks, body, kBig, 1000, out) == DecodeResult::kOk);
  CHECK(out == a + b + c);
  CHECK(decode_body(BodyCoding::kClickHouseBlocks, "", kBig, 1000, out) == DecodeResult::kOk);
  CHECK(out.empty());
}

TEST_CASE("lz4, zstd and blocks: truncated and corrupt") {
  std::string data = sample_rows(5000);
  std::string out;
  std::string lz = lz4_frame(data), zs = zstd_frame(data);
  std::string bl = ch_block(data, kBlockLz4) + ch_block(data, kBlockZstd);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{10}, size_t{30}}) {
    CAPTURE(cut);
    CHECK(decode_body(BodyCoding::kLz4, std::string_view(lz).substr(0, cut), kBig, 1000000, out) == DecodeResult::kCorrupt);
    CHECK(decode_body(BodyCoding::kZstd, std::string_view(zs).substr(0, cut), kBig, 1000000, out) == DecodeResult::kCorrupt);
    if (cut != 0)
      CHECK(decode_body(BodyCoding::kClickHouseBlocks, std::string_view(bl).substr(0, cut), kBig, 1000000, out) == DecodeResult::kCorrupt);
  }
  for (std::string_view enc : {"lz4", "zstd"}) {
    CAPTURE(enc);
    const std::string& full = enc == "lz4" ? lz : zs;
    for (size_t cut : {full.size() / 2, full.size() - 1}) {
      out = "stale";
      CHECK(decode_body(*content_coding(enc), std::string_view(full).substr(0, cut), kBig, 1000000, out) == DecodeResult::kCorrupt);
      CHECK(out.empty());
    }
    CHECK(decode_body(*content_coding(enc), full + "xyz", kBig, 1000000, out) == DecodeResult::kCorrupt);
    CHECK(decode_body(*content_coding(enc), "not compressed at all", kBig, 1000000, out) == DecodeResult::kCorrupt);
  }
  // A flipped byte in a frame with a content checksum.
  std::string bad = lz;
  bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x55);
  CHECK(decode_body(BodyCoding::kLz4, bad, kBig, 1000000, out) == DecodeResult::kCorrupt);
  // Blocks: a wrong checksum, a wrong size, an unknown method, trailing bytes.
  for (size_t at : {size_t{3}, size_t{16}, size_t{18}, size_t{22}, size_t{40}, bl.size() - 1}) {
    CAPTURE(at);
    bad = bl;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    CHECK(decode_body(BodyCoding::kClickHouseBlocks, bad, kBig, 1000000, out) == DecodeResult::kCorrupt);
  }
  CHECK(decode_body(BodyCoding::kClickHouseBlocks, bl + "x", kBig, 1000000, out) == DecodeResult::kCorrupt);
  CHECK(decode_body(BodyCoding::kClickHouseBlocks, ch_block("abc", 0x91), kBig, 1000000, out) == DecodeResult::kUnsupported);
}

TEST_CASE("lz4, zstd and blocks: bombs stop at the ratio or the size") {
  std::string zeros(8 << 20, '\0');
  std::string out;
  for (BodyCoding coding : {BodyCoding::kLz4, BodyCoding::kZstd, BodyCoding::kClickHouseBlocks, BodyCoding::kGzip}) {
    CAPTURE(static_cast<int>(coding));
    std::string bomb = coding == BodyCoding::kLz4    ? lz4_frame(zeros)
                       : coding == BodyCoding::kZstd ? zstd_frame(zeros)
                       : coding == BodyCoding::kGzip ? gzip(zeros)
                                                     : ch_block(zeros, kBlockZstd);
    CHECK(decode_body(coding, bomb, kBig, 100, out) == DecodeResult::kRatio);
    CHECK(out.empty());
    CHECK(decode_body(coding, bomb, 1 << 20, 1000000, out) == DecodeResult::kTooLarge);
    CHECK(decode_body(coding, bomb, kBig, 1000000, out) == DecodeResult::kOk);
    CHECK(out.size() == zeros.size());
  }
  // A block that claims 4 GiB is refused before anything is allocated.
  std::string block(1, static_cast<char>(kBlockNone));
  put_u32(block, 9 + 3);
  put_u32(block, 0xffffffffu);
  block += "abc";
  Hash128 h = city_hash128(block);
  std::string liar;
  put_u64(liar, h.low);
  put_u64(liar, h.high);
  CHECK(decode_body(BodyCoding::kClickHouseBlocks, liar + block, 1 << 20, 1u << 31, out) == DecodeResult::kTooLarge);
}

TEST_CASE("body_encoder: each coding decodes back") {
  std::string data = sample_rows(20000);
  for (UpstreamCoding c : {UpstreamCoding::kGzip, UpstreamCoding::kLz4, UpstreamCoding::kZstd}) {
    std::string enc, dec;
    REQUIRE(encode_body(c, data, enc));
    CHECK(enc.size() < data.size() / 2);
    CHECK(decode_body(*content_coding(coding_name(c)), enc, kBig, 1000, dec) == DecodeResult::kOk);
    CHECK(dec == data);
    std::string again;
    REQUIRE(encode_body(c, data, again));
    CHECK(again == enc);  // a replayed batch goes out as the same bytes
  }
  CHECK(choose_upstream_coding(UpstreamCompression::kAuto, true, false) == UpstreamCoding::kZstd);
  CHECK(choose_upstream_coding(UpstreamCompression::kAuto, true, true) == UpstreamCoding::kNone);
  CHECK(choose_upstream_coding(UpstreamCompression::kAuto, false, false) == UpstreamCoding::kNone);
  CHECK(choose_upstream_coding(UpstreamCompression::kLz4, false, false) == UpstreamCoding::kNone);
  CHECK(choose_upstream_coding(UpstreamCompression::kGzip, false, true) == UpstreamCoding::kGzip);
  CHECK(all_on_loopback({"http://127.0.0.1:8123", "http://localhost:1", "http://[::1]:8123/"}));
  CHECK_FALSE(all_on_loopback({"http://127.0.0.1:8123", "http://ch1:8123"}));
}
