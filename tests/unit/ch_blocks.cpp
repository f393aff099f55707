// ch_blocks METHOD [BLOCK_BYTES] < body > blocks: wraps stdin in ClickHouse's
// checksummed compressed blocks (as clickhouse-go and the Java client send
// with decompress=1), METHOD lz4, zstd or none. For integration tests.
#include <lz4.h>
#include <zstd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include "body_decoder.h"
#include "city_hash.h"

using namespace chsidecar;

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string method = argv[1];
  size_t block_bytes = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1 << 20;
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string out;
  for (size_t at = 0; at < in.size(); at += block_bytes) {
    std::string_view piece = std::string_view(in).substr(at, block_bytes);
    std::string data;
    uint8_t code = kBlockNone;
    if (method == "lz4") {
      code = kBlockLz4;
      data.resize(LZ4_compressBound(static_cast<int>(piece.size())));
      data.resize(LZ4_compress_default(piece.data(), data.data(), static_cast<int>(piece.size()),
                                       static_cast<int>(data.size())));
    } else if (method == "zstd") {
      code = kBlockZstd;
      data.resize(ZSTD_compressBound(piece.size()));
      data.resize(ZSTD_compress(data.data(), data.size(), piece.data(), piece.size(), 1));
    } else {
      data.assign(piece);
    }
    std::string block(1, static_cast<char>(code));
    uint32_t sizes[2] = {static_cast<uint32_t>(9 + data.size()), static_cast<uint32_t>(piece.size())};
    block.append(reinterpret_cast<const char*>(sizes), 8);
    block += data;
    Hash128 h = city_hash128(block);
    out.append(reinterpret_cast<const char*>(&h.low), 8);
    out.append(reinterpret_cast<const char*>(&h.high), 8);
    out += block;
  }
  std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
  return 0;
}
