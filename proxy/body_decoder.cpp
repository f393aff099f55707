#include "body_decoder.h"

#include <lz4.h>
#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "city_hash.h"
#include "request.h"

namespace chsidecar {

namespace {

constexpr size_t kPiece = 64 * 1024;
constexpr size_t kChecksumBytes = 16;
constexpr size_t kBlockHeaderBytes = 9;  // method, compressed size, decompressed size

// The limits, checked after each piece of output (and before a block is allocated).
struct Budget {
  uint64_t max_out;
  uint64_t ratio_limit;
  DecodeResult check(uint64_t size) const {
    if (size > max_out) return DecodeResult::kTooLarge;
    if (size > ratio_limit) return DecodeResult::kRatio;
    return DecodeResult::kOk;
  }
};

DecodeResult inflate_body(std::string_view in, const Budget& budget, std::string& out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return DecodeResult::kCorrupt;  // gzip or zlib header
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  DecodeResult result = DecodeResult::kOk;
  char buf[kPiece];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if ((result = budget.check(out.size())) != DecodeResult::kOk) break;
    if (rc == Z_STREAM_END) {
      if (z.avail_in != 0) result = DecodeResult::kCorrupt;  // trailing garbage
      break;
    }
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || (rc == Z_BUF_ERROR && z.avail_in == 0)) {
      result = DecodeResult::kCorrupt;  // bad data, or truncated
      break;
    }
  }
  inflateEnd(&z);
  return result;
}

// One LZ4 frame (ClickHouse's Lz4InflatingReadBuffer reads one too).
// One context per thread, reset for each body: a driver sends a small frame
// per request, and a new context would allocate its block buffer (at most
// the frame's 4 MiB block size, so what it keeps is bounded) every time.
LZ4F_dctx* lz4_context() {
  struct Holder {
    LZ4F_dctx* ctx = nullptr;
    ~Holder() { LZ4F_freeDecompressionContext(ctx); }
  };
  thread_local Holder holder;
  if (holder.ctx == nullptr &&
      LZ4F_isError(LZ4F_createDecompressionContext(&holder.ctx, LZ4F_VERSION)))
    holder.ctx = nullptr;
  if (holder.ctx != nullptr) LZ4F_resetDecompressionContext(holder.ctx);
  return holder.ctx;
}

DecodeResult lz4_frame_body(std::string_view in, const Budget& budget, std::string& out) {
  LZ4F_dctx* ctx = lz4_context();
  if (ctx == nullptr) return DecodeResult::kCorrupt;
  DecodeResult result = DecodeResult::kCorrupt;
  char buf[kPiece];
  const char* src = in.data();
  size_t left = in.size();
  for (;;) {
    size_t out_size = sizeof buf;
    size_t in_size = left;
    size_t hint = LZ4F_decompress(ctx, buf, &out_size, src, &in_size, nullptr);
    if (LZ4F_isError(hint)) break;
    src += in_size;
    left -= in_size;
    out.append(buf, out_size);
    if (DecodeResult r = budget.check(out.size()); r != DecodeResult::kOk) {
      result = r;
      break;
    }
    if (hint == 0) {  // the frame is complete
      result = left == 0 ? DecodeResult::kOk : DecodeResult::kCorrupt;
      break;
    }
    if (left == 0 && out_size == 0) break;  // truncated
  }
  return result;
}

// Frames one after another, as zstd's own tools write and read them.
DecodeResult zstd_body(std::string_view in, const Budget& budget, std::string& out) {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  if (ctx == nullptr) return DecodeResult::kCorrupt;
  // A frame's window above 128 MiB is refused (zstd's default limit), so a
  // tiny body cannot make the decoder itself allocate a huge window.
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  DecodeResult result = DecodeResult::kCorrupt;
  char buf[kPiece];
  size_t hint = 1;
  for (;;) {
    ZSTD_outBuffer output{buf, sizeof buf, 0};
    size_t previous = hint;
    hint = ZSTD_decompressStream(ctx, &output, &input);
    if (ZSTD_isError(hint)) break;
    // A frame that ended exactly at the end of the last piece: this call,
    // with no input left, began to wait for another one.
    if (input.pos == input.size && output.pos == 0 && previous == 0) hint = 0;
    out.append(buf, output.pos);
    if (DecodeResult r = budget.check(out.size()); r != DecodeResult::kOk) {
      result = r;
      break;
    }
    if (input.pos == input.size && output.pos < output.size) {
      result = hint == 0 ? DecodeResult::kOk : DecodeResult::kCorrupt;  // else truncated
      break;
    }
  }
  ZSTD_freeDCtx(ctx);
  return result;
}

uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // little-endian, as ClickHouse writes it
}

// ClickHouse's CompressedReadBuffer: every block's checksum is verified
// before its data is read.
DecodeResult clickhouse_blocks(std::string_view in, const Budget& budget, std::string& out) {
  while (!in.empty()) {
    if (in.size() < kChecksumBytes + kBlockHeaderBytes) return DecodeResult::kCorrupt;
    uint8_t method = static_cast<uint8_t>(in[kChecksumBytes]);
    uint64_t compressed = load_u32(in.data() + kChecksumBytes + 1);
    uint64_t decompressed = load_u32(in.data() + kChecksumBytes + 5);
    if (compressed < kBlockHeaderBytes || compressed > in.size() - kChecksumBytes)
      return DecodeResult::kCorrupt;
    std::string_view block = in.substr(kChecksumBytes, compressed);
    Hash128 sum{load_u32(in.data()) | uint64_t{load_u32(in.data() + 4)} << 32,
                load_u32(in.data() + 8) | uint64_t{load_u32(in.data() + 12)} << 32};
    if (city_hash128(block) != sum) return DecodeResult::kCorrupt;
    if (DecodeResult r = budget.check(out.size() + decompressed); r != DecodeResult::kOk) return r;
    std::string_view data = block.substr(kBlockHeaderBytes);
    size_t at = out.size();
    switch (method) {
      case kBlockNone:
        if (data.size() != decompressed) return DecodeResult::kCorrupt;
        out.append(data);
        break;
      case kBlockLz4: {
        if (decompressed > INT32_MAX || data.size() > INT32_MAX) return DecodeResult::kCorrupt;
        out.resize(at + decompressed);
        int n = LZ4_decompress_safe(data.data(), out.data() + at, static_cast<int>(data.size()),
                                    static_cast<int>(decompressed));
        if (n < 0 || static_cast<uint64_t>(n) != decompressed) return DecodeResult::kCorrupt;
        break;
      }
      case kBlockZstd: {
        out.resize(at + decompressed);
        size_t n = ZSTD_decompress(out.data() + at, decompressed, data.data(), data.size());
        if (ZSTD_isError(n) || n != decompressed) return DecodeResult::kCorrupt;
        break;
      }
      default:
        return DecodeResult::kUnsupported;  // a codec chain (Delta, T64, ...) or unknown
    }
    in.remove_prefix(kChecksumBytes + compressed);
  }
  return DecodeResult::kOk;
}

}  // namespace

std::optional<BodyCoding> content_coding(std::string_view encoding) {
  if (iequals(encoding, "gzip")) return BodyCoding::kGzip;
  if (iequals(encoding, "deflate")) return BodyCoding::kDeflate;
  if (iequals(encoding, "lz4")) return BodyCoding::kLz4;
  if (iequals(encoding, "zstd")) return BodyCoding::kZstd;
  return std::nullopt;
}

DecodeResult decode_body(BodyCoding coding, std::string_view in, uint64_t max_out,
                         uint64_t max_ratio, std::string& out) {
  out.clear();
  Budget budget{max_out, max_ratio * std::max<uint64_t>(in.size(), 1)};
  DecodeResult result = DecodeResult::kUnsupported;
  switch (coding) {
    case BodyCoding::kIdentity:
      out.assign(in);
      return DecodeResult::kOk;
    case BodyCoding::kGzip:
    case BodyCoding::kDeflate:
      result = inflate_body(in, budget, out);
      break;
    case BodyCoding::kLz4:
      result = lz4_frame_body(in, budget, out);
      break;
    case BodyCoding::kZstd:
      result = zstd_body(in, budget, out);
      break;
    case BodyCoding::kClickHouseBlocks:
      result = clickhouse_blocks(in, budget, out);
      break;
  }
  if (result != DecodeResult::kOk) out.clear();
  return result;
}

}  // namespace chsidecar
