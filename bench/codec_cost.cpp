// CPU per MB and ratio of the upstream codings (body_encoder.h) and of
// their decoding on a typical batch: JSONEachRow and CSV rows such as the
// tests and benchmarks send. Usage: codec_cost [MB] (default 64).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "body_decoder.h"
#include "body_encoder.h"

using namespace chsidecar;

namespace {

std::string rows(bool csv, size_t bytes) {
  std::string s;
  uint64_t x = 88172645463325252ULL;
  for (size_t i = 0; s.size() < bytes; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::string ts = "2024-05-" + std::to_string(10 + x % 20) + " 12:" + std::to_string(10 + x % 50) + ":00";
    if (csv)
      s += std::to_string(i) + ",\"user_" + std::to_string(x % 5000) + "\"," + std::to_string(x % 100000) + "," + ts + "\n";
    else
      s += "{\"id\":" + std::to_string(i) + ",\"user\":\"user_" + std::to_string(x % 5000) + "\",\"value\":" +
           std::to_string(x % 100000) + ",\"ts\":\"" + ts + "\"}\n";
  }
  return s;
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

}  // namespace

int main(int argc, char** argv) {
  size_t mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  constexpr size_t kBatch = 1 << 20;  // one 1 MiB batch at a time, as flushes are
  for (bool csv : {false, true}) {
    std::string batch = rows(csv, kBatch);
    for (UpstreamCoding c : {UpstreamCoding::kGzip, UpstreamCoding::kLz4, UpstreamCoding::kZstd}) {
      std::string out, back;
      double t0 = cpu_seconds();
      for (size_t i = 0; i < mb; ++i) encode_body(c, batch, out);
      double enc = cpu_seconds() - t0;
      auto coding = c == UpstreamCoding::kGzip ? BodyCoding::kGzip : c == UpstreamCoding::kLz4 ? BodyCoding::kLz4 : BodyCoding::kZstd;
      t0 = cpu_seconds();
      for (size_t i = 0; i < mb; ++i) decode_body(coding, out, 1ULL << 30, 1000, back);
      double dec = cpu_seconds() - t0;
      std::printf("%-11s %-4s ratio %5.2f  encode %6.2f ms/MB  decode %5.2f ms/MB  %s\n",
                  csv ? "CSV" : "JSONEachRow", std::string(coding_name(c)).c_str(),
                  static_cast<double>(batch.size()) / out.size(), enc * 1000 / mb, dec * 1000 / mb,
                  back == batch ? "" : "ROUND TRIP FAILED");
    }
  }
}
