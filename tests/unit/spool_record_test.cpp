// Unit tests for spool_record.h and crc32c.h: the on-disk framing of spool
// records and its checksum.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crc32c.h"
#include "spool_record.h"

using namespace chsidecar;

namespace {

SpoolData sample(uint64_t id, std::string rows = "{\"a\":1}\n{\"a\":2}") {
  SpoolData d;
  d.id = id;
  d.target.key = "key-" + std::to_string(id);
  d.target.table = "db.events";
  d.target.upstream_target = "/?query=INSERT%20INTO%20db.events%20FORMAT%20CSVWithNames";
  d.target.headers = {{"X-ClickHouse-User", "alice"}, {"X-ClickHouse-Key", "secret"}};
  d.target.format = RowFormat::kCSVWithNames;
  d.target.header_lines = "a,b\n";
  d.rows = std::move(rows);
  d.row_count = 2;
  d.needs_newline = true;
  return d;
}

void check_same(const SpoolData& a, const SpoolData& b) {
  CHECK(a.id == b.id);
  CHECK(a.target.key == b.target.key);
  CHECK(a.target.table == b.target.table);
  CHECK(a.target.upstream_target == b.target.upstream_target);
  REQUIRE(a.target.headers.size() == b.target.headers.size());
  for (size_t i = 0; i < a.target.headers.size(); ++i) {
    CHECK(a.target.headers[i].name == b.target.headers[i].name);
    CHECK(a.target.headers[i].value == b.target.headers[i].value);
  }
  CHECK(a.target.format == b.target.format);
  CHECK(a.target.header_lines == b.target.header_lines);
  CHECK(a.rows == b.rows);
  CHECK(a.row_count == b.row_count);
  CHECK(a.needs_newline == b.needs_newline);
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Frames a payload the way the spool does, with a correct checksum.
std::string framed(std::string_view payload) {
  std::string out = "CHSR";
  put_u32(out, static_cast<uint32_t>(payload.size()));
  put_u32(out, crc32c(payload));
  out.append(payload);
  return out;
}

}  // namespace

TEST_CASE("crc32c matches known vectors") {
  CHECK(crc32c("") == 0u);
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("a") == 0xC1D04330u);
  // RFC 3720 (iSCSI), appendix B.4.
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(crc32c(std::string(32, '\xFF')) == 0x62A8AB43u);
  std::string up, down;
  for (int i = 0; i < 32; ++i) {
    up.push_back(static_cast<char>(i));
    down.push_back(static_cast<char>(31 - i));
  }
  CHECK(crc32c(up) == 0x46DD794Eu);
  CHECK(crc32c(down) == 0x113FDB5Cu);
}

TEST_CASE("crc32c can be computed incrementally") {
  std::string_view text = "123456789";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    CAPTURE(cut);
    CHECK(crc32c(text.substr(cut), crc32c(text.substr(0, cut))) == 0xE3069283u);
  }
  uint32_t crc = 0;
  for (char c : text) crc = crc32c(std::string_view(&c, 1), crc);
  CHECK(crc == 0xE3069283u);
  CHECK(crc32c("", 0x12345678u) == 0x12345678u);
  CHECK(crc32c("123456780") != crc32c("123456789"));
}

TEST_CASE("a data record round-trips") {
  SpoolData d = sample(42);
  std::string file;
  encode_data_record(d, file);
  CHECK(file.substr(0, 4) == "CHSR");
  SpoolScan scan = scan_segment(file);
  REQUIRE(scan.data.size() == 1);
  check_same(scan.data[0], d);
  CHECK(scan.committed.empty());
  CHECK(scan.valid_bytes == file.size());
  CHECK_FALSE(scan.damaged);

  // Every format, empty strings, binary bytes and a large id.
  for (int f = 0; f <= static_cast<int>(RowFormat::kValues); ++f) {
    SpoolData e;
    e.id = UINT64_MAX - static_cast<uint64_t>(f);
    e.target.format = static_cast<RowFormat>(f);
    e.rows = std::string("\0\xFF\r\n", 4);
    e.row_count = 0xFFFFFFFFu;
    std::string one;
    encode_data_record(e, one);
    SpoolScan s = scan_segment(one);
    REQUIRE(s.data.size() == 1);
    check_same(s.data[0], e);
    CHECK_FALSE(s.damaged);
  }
}

TEST_CASE("data and commit records read back in file order") {
  std::string file;
  encode_data_record(sample(1), file);
  encode_commit_record({7, 8}, file);
  encode_data_record(sample(2, std::string(100000, 'x')), file);
  encode_commit_record({}, file);
  encode_commit_record({UINT64_MAX, 1}, file);
  SpoolScan scan = scan_segment(file);
  REQUIRE(scan.data.size() == 2);
  check_same(scan.data[0], sample(1));
  check_same(scan.data[1], sample(2, std::string(100000, 'x')));
  CHECK(scan.committed == std::vector<uint64_t>{7, 8, UINT64_MAX, 1});
  CHECK(scan.valid_bytes == file.size());
  CHECK_FALSE(scan.damaged);

  SpoolScan empty = scan_segment("");
  CHECK(empty.data.empty());
  CHECK(empty.committed.empty());
  CHECK(empty.valid_bytes == 0);
  CHECK_FALSE(empty.damaged);
}

TEST_CASE("a torn tail leaves the valid prefix") {
  std::string prefix;
  encode_data_record(sample(1), prefix);
  encode_commit_record({1}, prefix);
  for (int last_kind = 0; last_kind < 2; ++last_kind) {
    std::string file = prefix;
    if (last_kind == 0) encode_data_record(sample(2), file);
    else encode_commit_record({2, 3}, file);
    for (size_t cut = prefix.size(); cut < file.size(); ++cut) {
      CAPTURE(last_kind);
      CAPTURE(cut);
      SpoolScan scan = scan_segment(std::string_view(file).substr(0, cut));
      REQUIRE(scan.data.size() == 1);
      CHECK(scan.data[0].id == 1);
      CHECK(scan.committed == std::vector<uint64_t>{1});
      CHECK(scan.valid_bytes == prefix.size());
      CHECK(scan.damaged == (cut > prefix.size()));
    }
    SpoolScan whole = scan_segment(file);
    CHECK(whole.valid_bytes == file.size());
    CHECK_FALSE(whole.damaged);
  }
}

TEST_CASE("a flipped bit stops the scan at its record") {
  std::string first, second, third;
  encode_data_record(sample(1), first);
  encode_data_record(sample(2), second);
  encode_commit_record({1, 2}, third);
  std::string file = first + second + third;
  for (size_t at = first.size(); at < first.size() + second.size(); ++at) {
    for (int bit : {0, 7}) {
      CAPTURE(at);
      CAPTURE(bit);
      std::string bad = file;
      bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
      SpoolScan scan = scan_segment(bad);
      REQUIRE(scan.data.size() == 1);
      CHECK(scan.data[0].id == 1);
      CHECK(scan.committed.empty());  // the commit record after it is not read
      CHECK(scan.valid_bytes == first.size());
      CHECK(scan.damaged);
    }
  }
}

TEST_CASE("commit records whose count exceeds the payload are corrupt") {
  std::string good;
  encode_commit_record({5}, good);
  for (uint32_t count : {2u, 1000u, 0x20000000u, 0xFFFFFFFFu}) {
    CAPTURE(count);
    std::string payload(1, '\x02');
    put_u32(payload, count);
    put_u64(payload, 9);
    std::string file = good + framed(payload);
    SpoolScan scan = scan_segment(file);
    CHECK(scan.committed == std::vector<uint64_t>{5});
    CHECK(scan.valid_bytes == good.size());
    CHECK(scan.damaged);
  }
  // Fewer ids than the payload holds: trailing bytes are corrupt too.
  std::string payload(1, '\x02');
  put_u32(payload, 1);
  put_u64(payload, 9);
  put_u64(payload, 10);
  SpoolScan scan = scan_segment(framed(payload));
  CHECK(scan.committed.empty());
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);
  // A commit record cut inside its count.
  scan = scan_segment(framed(std::string("\x02\x01\x00", 3)));
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);
}

TEST_CASE("zero length, unknown types and bad frames are corrupt") {
  std::string good;
  encode_data_record(sample(1), good);

  SpoolScan scan = scan_segment(good + framed(""));  // zero length
  CHECK(scan.data.size() == 1);
  CHECK(scan.valid_bytes == good.size());
  CHECK(scan.damaged);

  for (char type : {'\0', '\x03', '\x7F', '\xFF'}) {
    CAPTURE(static_cast<int>(type));
    std::string payload(1, type);
    put_u32(payload, 0);
    scan = scan_segment(good + framed(payload));
    CHECK(scan.data.size() == 1);
    CHECK(scan.valid_bytes == good.size());
    CHECK(scan.damaged);
  }

  // A data record naming a format that does not exist.
  std::string record;
  encode_data_record(sample(2), record);
  std::string payload = record.substr(kSpoolFrameBytes);
  payload[1 + 8 + 4 + 1] = static_cast<char>(static_cast<int>(RowFormat::kValues) + 1);
  scan = scan_segment(framed(payload));
  CHECK(scan.data.empty());
  CHECK(scan.damaged);
  // The same payload with its real format reads.
  payload[1 + 8 + 4 + 1] = static_cast<char>(RowFormat::kCSVWithNames);
  scan = scan_segment(framed(payload));
  REQUIRE(scan.data.size() == 1);
  check_same(scan.data[0], sample(2));

  // A data record with a byte after its rows.
  scan = scan_segment(framed(payload + "x"));
  CHECK(scan.data.empty());
  CHECK(scan.damaged);
  // A string length running past the payload.
  std::string cut = payload.substr(0, payload.size() - 1);
  scan = scan_segment(framed(cut));
  CHECK(scan.data.empty());
  CHECK(scan.damaged);

  // Bad magic, a length beyond the limit, garbage shorter than a frame.
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  scan = scan_segment(bad_magic);
  CHECK(scan.data.empty());
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);

  std::string huge = "CHSR";
  put_u32(huge, kSpoolMaxRecordBytes + 1);
  put_u32(huge, 0);
  scan = scan_segment(good + huge + std::string(64, '\0'));
  CHECK(scan.data.size() == 1);
  CHECK(scan.valid_bytes == good.size());
  CHECK(scan.damaged);

  scan = scan_segment(good + "CHS");
  CHECK(scan.data.size() == 1);
  CHECK(scan.valid_bytes == good.size());
  CHECK(scan.damaged);
}
