// Fuzz target: the spool record reader (spool_record.h).
//
// The first input byte picks the mode: even, the rest is a segment file as
// found on disk (mostly rejected at the checksum); odd, the rest is a list
// of payloads separated by "\xff\xfeREC" that the target frames with a
// correct length and checksum, so the fuzzer reaches the payload decoder.
// Checks that scan_segment neither crashes nor over-reads, that the valid
// prefix is a prefix, and that re-encoding the decoded records and scanning
// them again gives the same records.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "spool_record.h"

using namespace chsidecar;

namespace {

constexpr std::string_view kSeparator = "\xff\xfeREC";
constexpr uint64_t kSegment = 1;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::string frame_payloads(std::string_view rest) {
  std::string out;
  for (;;) {
    size_t cut = rest.find(kSeparator);
    std::string_view payload = rest.substr(0, cut);
    out.append("CHSR", 4);
    put_u32(out, static_cast<uint32_t>(payload.size()));
    put_u32(out, 0);
    out.append(payload);
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + kSeparator.size());
  }
  seal_records(out, 0, kSegment);
  return out;
}

bool same_data(const SpoolData& a, const SpoolData& b) {
  if (a.id != b.id || a.rows != b.rows || a.row_count != b.row_count ||
      a.needs_newline != b.needs_newline || a.target.key != b.target.key ||
      a.target.table != b.target.table || a.target.upstream_target != b.target.upstream_target ||
      a.target.format != b.target.format || a.target.header_lines != b.target.header_lines ||
      a.target.headers.size() != b.target.headers.size())
    return false;
  for (size_t i = 0; i < a.target.headers.size(); ++i)
    if (a.target.headers[i].name != b.target.headers[i].name ||
        a.target.headers[i].value != b.target.headers[i].value)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string segment = (data[0] & 1) ? frame_payloads(rest) : std::string(rest);
  // Exactly sized, so a read past the end is caught by ASan.
  std::vector<char> exact(segment.begin(), segment.end());
  std::string_view contents(exact.data(), exact.size());

  SpoolScan scan = scan_segment(contents, kSegment);
  FUZZ_CHECK(scan.valid_bytes <= contents.size());
  FUZZ_CHECK(scan.skipped_bytes <= scan.valid_bytes);
  if (scan.skipped_bytes > 0) FUZZ_CHECK(scan.damaged);
  if (scan.valid_bytes == contents.size()) FUZZ_CHECK(scan.damaged == (scan.skipped_bytes > 0));

  // Up to the end of the last valid record, the same records, and damage
  // only where bytes were skipped between them.
  SpoolScan prefix = scan_segment(contents.substr(0, scan.valid_bytes), kSegment);
  FUZZ_CHECK(prefix.damaged == (scan.skipped_bytes > 0));
  FUZZ_CHECK(prefix.skipped_bytes == scan.skipped_bytes);
  FUZZ_CHECK(prefix.valid_bytes == scan.valid_bytes);
  FUZZ_CHECK(prefix.data.size() == scan.data.size());
  FUZZ_CHECK(prefix.committed == scan.committed);
  FUZZ_CHECK(prefix.batches == scan.batches);

  // Re-encode what was read; scanning that gives the same records.
  std::string encoded;
  for (const SpoolData& d : scan.data) encode_data_record(d, encoded);
  if (!scan.committed.empty()) encode_commit_record(scan.committed, encoded);
  for (const SpoolBatch& batch : scan.batches) encode_batch_record(batch, encoded);
  seal_records(encoded, 0, kSegment);
  SpoolScan again = scan_segment(encoded, kSegment);
  FUZZ_CHECK(!again.damaged);
  FUZZ_CHECK(again.valid_bytes == encoded.size());
  FUZZ_CHECK(again.data.size() == scan.data.size());
  for (size_t i = 0; i < scan.data.size(); ++i) FUZZ_CHECK(same_data(again.data[i], scan.data[i]));
  FUZZ_CHECK(again.committed == scan.committed);
  FUZZ_CHECK(again.batches == scan.batches);

  // A record cut anywhere is torn: everything before the cut survives.
  if (!encoded.empty()) {
    size_t cut = encoded.size() - 1 - (size % encoded.size());
    std::vector<char> torn(encoded.begin(), encoded.begin() + cut);
    SpoolScan t = scan_segment(std::string_view(torn.data(), torn.size()), kSegment);
    FUZZ_CHECK(t.valid_bytes <= cut);
    FUZZ_CHECK(t.damaged == (t.valid_bytes < cut));
    FUZZ_CHECK(t.data.size() <= scan.data.size());
  }
  return 0;
}
