#include "body_encoder.h"

#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include "url_parts.h"

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

UpstreamCoding choose_upstream_coding(UpstreamCompression setting, bool server_has_lz4_zstd,
                                      bool upstreams_on_loopback) {
  switch (setting) {
    case UpstreamCompression::kAuto:
      return server_has_lz4_zstd && !upstreams_on_loopback ? UpstreamCoding::kZstd : UpstreamCoding::kNone;
    case UpstreamCompression::kNone: return UpstreamCoding::kNone;
    case UpstreamCompression::kGzip: return UpstreamCoding::kGzip;
    case UpstreamCompression::kLz4: return server_has_lz4_zstd ? UpstreamCoding::kLz4 : UpstreamCoding::kNone;
    case UpstreamCompression::kZstd: return server_has_lz4_zstd ? UpstreamCoding::kZstd : UpstreamCoding::kNone;
  }
  return UpstreamCoding::kNone;
}

bool choose_upstream_coding_needs_server(UpstreamCompression setting, bool upstreams_on_loopback) {
  return setting == UpstreamCompression::kLz4 || setting == UpstreamCompression::kZstd ||
         (setting == UpstreamCompression::kAuto && !upstreams_on_loopback);
}

bool all_on_loopback(const std::vector<std::string>& urls) {
  for (const std::string& url : urls) {
    std::string_view host = split_url(url).host_port;
    if (host.starts_with("[::1]") || host.starts_with("localhost")) continue;
    if (host.starts_with("127.")) continue;
    return false;
  }
  return true;
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
