#include "body_encoder.h"

#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

namespace chsidecar {

namespace {

// Fastest levels: a batch is compressed once per flush on the loop thread,
// so CPU per MB counts more than the last few percent of ratio.
constexpr int kGzipLevel = 1;
constexpr int kZstdLevel = 1;

bool gzip(std::string_view in, std::string& out) {
  z_stream z{};
  if (deflateInit2(&z, kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  out.resize(deflateBound(&z, in.size()));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  bool ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
  out.resize(ok ? z.total_out : 0);
  deflateEnd(&z);
  return ok;
}

bool lz4(std::string_view in, std::string& out) {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.contentSize = in.size();
  out.resize(LZ4F_compressFrameBound(in.size(), &prefs));
  size_t n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) return false;
  out.resize(n);
  return true;
}

bool zstd(std::string_view in, std::string& out) {
  out.resize(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), kZstdLevel);
  if (ZSTD_isError(n)) return false;
  out.resize(n);
  return true;
}

}  // namespace

std::string_view coding_name(UpstreamCoding coding) {
  switch (coding) {
    case UpstreamCoding::kNone: return "";
    case UpstreamCoding::kGzip: return "gzip";
    case UpstreamCoding::kLz4: return "lz4";
    case UpstreamCoding::kZstd: return "zstd";
  }
  return "";
}

bool encode_body(UpstreamCoding coding, std::string_view in, std::string& out) {
  bool ok = false;
  switch (coding) {
    case UpstreamCoding::kNone: out.assign(in); return true;
    case UpstreamCoding::kGzip: ok = gzip(in, out); break;
    case UpstreamCoding::kLz4: ok = lz4(in, out); break;
    case UpstreamCoding::kZstd: ok = zstd(in, out); break;
  }
  if (!ok) out.clear();
  return ok;
}

}  // namespace chsidecar
