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

// The segment the records of these tests are written for and read from.
constexpr uint64_t kSegment = 7;

// The checksum the format defines: CRC-32C over the segment's number
// (8 bytes, little-endian), then the payload.
uint32_t format_crc(std::string_view payload, uint64_t segment = kSegment) {
  std::string covered;
  put_u64(covered, segment);
  covered.append(payload);
  return crc32c(covered);
}

// Frames a payload the way the spool does, with a correct checksum.
std::string framed(std::string_view payload, uint64_t segment = kSegment) {
  std::string out = "CHSR";
  put_u32(out, static_cast<uint32_t>(payload.size()));
  put_u32(out, format_crc(payload, segment));
  out.append(payload);
  return out;
}

// Encodes and seals a record for `segment`, as a group write does.
void add_data(const SpoolData& d, std::string& out, uint64_t segment = kSegment) {
  size_t at = out.size();
  encode_data_record(d, out);
  seal_records(out, at, segment);
}
void add_commit(const std::vector<uint64_t>& ids, std::string& out, uint64_t segment = kSegment) {
  size_t at = out.size();
  encode_commit_record(ids, out);
  seal_records(out, at, segment);
}

SpoolScan read_back(std::string_view contents) { return scan_segment(contents, kSegment); }

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
  add_data(d, file);
  CHECK(file.substr(0, 4) == "CHSR");
  SpoolScan scan = read_back(file);
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
    add_data(e, one);
    SpoolScan s = read_back(one);
    REQUIRE(s.data.size() == 1);
    check_same(s.data[0], e);
    CHECK_FALSE(s.damaged);
  }
}

TEST_CASE("data and commit records read back in file order") {
  std::string file;
  add_data(sample(1), file);
  add_commit({7, 8}, file);
  add_data(sample(2, std::string(100000, 'x')), file);
  add_commit({}, file);
  add_commit({UINT64_MAX, 1}, file);
  SpoolScan scan = read_back(file);
  REQUIRE(scan.data.size() == 2);
  check_same(scan.data[0], sample(1));
  check_same(scan.data[1], sample(2, std::string(100000, 'x')));
  CHECK(scan.committed == std::vector<uint64_t>{7, 8, UINT64_MAX, 1});
  CHECK(scan.valid_bytes == file.size());
  CHECK_FALSE(scan.damaged);

  SpoolScan empty = read_back("");
  CHECK(empty.data.empty());
  CHECK(empty.committed.empty());
  CHECK(empty.valid_bytes == 0);
  CHECK_FALSE(empty.damaged);
}

TEST_CASE("a torn tail leaves the valid prefix") {
  std::string prefix;
  add_data(sample(1), prefix);
  add_commit({1}, prefix);
  for (int last_kind = 0; last_kind < 2; ++last_kind) {
    std::string file = prefix;
    if (last_kind == 0) add_data(sample(2), file);
    else add_commit({2, 3}, file);
    for (size_t cut = prefix.size(); cut < file.size(); ++cut) {
      CAPTURE(last_kind);
      CAPTURE(cut);
      SpoolScan scan = read_back(std::string_view(file).substr(0, cut));
      REQUIRE(scan.data.size() == 1);
      CHECK(scan.data[0].id == 1);
      CHECK(scan.committed == std::vector<uint64_t>{1});
      CHECK(scan.valid_bytes == prefix.size());
      CHECK(scan.damaged == (cut > prefix.size()));
    }
    SpoolScan whole = read_back(file);
    CHECK(whole.valid_bytes == file.size());
    CHECK_FALSE(whole.damaged);
  }
}

TEST_CASE("the end mark (zeros) ends the scan without damage, whatever follows it") {
  std::string records;
  add_data(sample(1), records);
  add_commit({1}, records);
  const std::string end_mark(kSpoolFrameBytes, '\0');

  SpoolScan scan = read_back(records + end_mark + "old bytes of a reused file");
  CHECK(scan.data.size() == 1);
  CHECK(scan.committed == std::vector<uint64_t>{1});
  CHECK(scan.valid_bytes == records.size());
  CHECK_FALSE(scan.damaged);

  scan = read_back(end_mark + records);  // a reused file before its first write
  CHECK(scan.data.empty());
  CHECK(scan.valid_bytes == 0);
  CHECK_FALSE(scan.damaged);

  // Fewer zeros than a frame at the very end of the file are a clean end too.
  scan = read_back(records + std::string(5, '\0'));
  CHECK(scan.valid_bytes == records.size());
  CHECK_FALSE(scan.damaged);

  // A record torn inside the zeros is damage.
  std::string torn;
  add_data(sample(2), torn);
  for (size_t keep : {size_t{1}, size_t{12}, torn.size() / 2, torn.size() - 1}) {
    CAPTURE(keep);
    scan = read_back(records + torn.substr(0, keep) + std::string(4096, '\0'));
    CHECK(scan.data.size() == 1);
    CHECK(scan.valid_bytes == records.size());
    CHECK(scan.damaged);
  }
}

TEST_CASE("records sealed for another segment do not read") {
  // A reused segment file: its old records (segment 3) are still there past
  // what was written for its new number.
  std::string old_life;
  for (uint64_t id = 1; id <= 3; ++id) add_data(sample(id), old_life, 3);
  SpoolScan scan = scan_segment(old_life, 3);
  CHECK(scan.data.size() == 3);
  scan = scan_segment(old_life, 4);
  CHECK(scan.data.empty());
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);  // no end mark: the file was not written for segment 4

  // The new life wrote one record over the start, then its end mark; a
  // torn later write left the old record boundary exactly in place.
  std::string first;
  add_data(sample(9), first, 4);
  std::string file = first + old_life.substr(first.size());
  scan = scan_segment(file, 4);
  REQUIRE(scan.data.size() == 1);
  CHECK(scan.data[0].id == 9);

  std::string records;
  add_data(sample(1), records, 4);
  std::string unsealed;
  encode_data_record(sample(2), unsealed);
  scan = scan_segment(records + unsealed, 4);  // checksum never set
  CHECK(scan.data.size() == 1);
  CHECK(scan.damaged);
}

TEST_CASE("a flipped bit in a record's checksum or payload loses that record only") {
  std::string first, second, third, fourth;
  add_data(sample(1), first);
  add_data(sample(2), second);
  add_data(sample(3), third);
  add_commit({1, 2}, fourth);
  std::string file = first + second + third + fourth;
  for (size_t at = first.size(); at < first.size() + second.size(); ++at) {
    for (int bit : {0, 7}) {
      CAPTURE(at);
      CAPTURE(bit);
      std::string bad = file;
      bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
      SpoolScan scan = read_back(bad);
      CHECK(scan.damaged);
      REQUIRE(!scan.data.empty());
      CHECK(scan.data[0].id == 1);
      if (at < first.size() + 8) {  // magic or length: where the next record starts is unknown
        CHECK(scan.data.size() == 1);
        CHECK(scan.valid_bytes == first.size());
        continue;
      }
      REQUIRE(scan.data.size() == 2);
      CHECK(scan.data[1].id == 3);  // the records after it are read on
      CHECK(scan.committed == std::vector<uint64_t>{1, 2});
      CHECK(scan.valid_bytes == file.size());
      CHECK(scan.skipped_bytes == second.size());
    }
  }
}

TEST_CASE("bytes that are no frame end the scan: no record is looked for inside them") {
  std::string first, second, inner;
  add_data(sample(1), first);
  add_data(sample(2), inner);
  // A whole valid record inside garbage (as client row data could carry one).
  std::string file = first + std::string(40, 'x') + inner;
  SpoolScan scan = read_back(file);
  REQUIRE(scan.data.size() == 1);
  CHECK(scan.valid_bytes == first.size());
  CHECK(scan.skipped_bytes == 0);
  CHECK(scan.damaged);
  // Nor inside a damaged record's payload.
  SpoolData carrier = sample(3);
  carrier.rows = "prefix " + inner;
  std::string wrapped;
  add_data(carrier, wrapped);
  add_data(sample(4), second);
  std::string bad = first + wrapped + second;
  bad[first.size() + 10] ^= 1;  // the carrier's checksum
  scan = read_back(bad);
  REQUIRE(scan.data.size() == 2);
  CHECK(scan.data[1].id == 4);  // skipped the carrier whole; id 2 inside it is not read
}

TEST_CASE("commit records whose count exceeds the payload are corrupt") {
  std::string good;
  add_commit({5}, good);
  for (uint32_t count : {2u, 1000u, 0x20000000u, 0xFFFFFFFFu}) {
    CAPTURE(count);
    std::string payload(1, '\x02');
    put_u32(payload, count);
    put_u64(payload, 9);
    std::string file = good + framed(payload);
    SpoolScan scan = read_back(file);
    CHECK(scan.committed == std::vector<uint64_t>{5});
    CHECK(scan.valid_bytes == good.size());
    CHECK(scan.damaged);
  }
  // Fewer ids than the payload holds: trailing bytes are corrupt too.
  std::string payload(1, '\x02');
  put_u32(payload, 1);
  put_u64(payload, 9);
  put_u64(payload, 10);
  SpoolScan scan = read_back(framed(payload));
  CHECK(scan.committed.empty());
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);
  // A commit record cut inside its count.
  scan = read_back(framed(std::string("\x02\x01\x00", 3)));
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);
}

TEST_CASE("zero length and bad frames are corrupt; unknown types are a newer version's") {
  std::string good;
  add_data(sample(1), good);

  SpoolScan scan = read_back(good + framed(""));  // zero length
  CHECK(scan.data.size() == 1);
  CHECK(scan.valid_bytes == good.size());
  CHECK(scan.damaged);

  for (char type : {'\0', '\x04', '\x7F', '\xFF'}) {
    CAPTURE(static_cast<int>(type));
    std::string payload(1, type);
    put_u32(payload, 0);
    std::string more;
    add_data(sample(2), more);
    scan = read_back(good + framed(payload) + more);
    CHECK(scan.data.size() == 1);  // nothing after it is read
    CHECK(scan.valid_bytes == good.size());
    CHECK_FALSE(scan.damaged);
    CHECK(scan.unknown_type == static_cast<uint8_t>(type));
    // With a wrong checksum it is damage, skipped like any other.
    std::string bad = framed(payload);
    bad[8] ^= 1;
    scan = read_back(good + bad + more);
    CHECK(scan.data.size() == 2);
    CHECK(scan.damaged);
    CHECK(scan.unknown_type == -1);
  }

  // A data record naming a format that does not exist.
  std::string record;
  add_data(sample(2), record);
  std::string payload = record.substr(kSpoolFrameBytes);
  payload[1 + 8 + 4 + 1] = static_cast<char>(static_cast<int>(kLastRowFormat) + 1);
  scan = read_back(framed(payload));
  CHECK(scan.data.empty());
  CHECK(scan.damaged);
  // The same payload with its real format reads.
  payload[1 + 8 + 4 + 1] = static_cast<char>(RowFormat::kCSVWithNames);
  scan = read_back(framed(payload));
  REQUIRE(scan.data.size() == 1);
  check_same(scan.data[0], sample(2));

  // A data record with a byte after its rows.
  scan = read_back(framed(payload + "x"));
  CHECK(scan.data.empty());
  CHECK(scan.damaged);
  // A string length running past the payload.
  std::string cut = payload.substr(0, payload.size() - 1);
  scan = read_back(framed(cut));
  CHECK(scan.data.empty());
  CHECK(scan.damaged);

  // Bad magic, a length beyond the limit, garbage shorter than a frame.
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  scan = read_back(bad_magic);
  CHECK(scan.data.empty());
  CHECK(scan.valid_bytes == 0);
  CHECK(scan.damaged);

  std::string huge = "CHSR";
  put_u32(huge, kSpoolMaxRecordBytes + 1);
  put_u32(huge, 0);
  scan = read_back(good + huge + std::string(64, '\0'));
  CHECK(scan.data.size() == 1);
  CHECK(scan.valid_bytes == good.size());
  CHECK(scan.damaged);

  scan = read_back(good + "CHS");
  CHECK(scan.data.size() == 1);
  CHECK(scan.valid_bytes == good.size());
  CHECK(scan.damaged);
}

TEST_CASE("a batch record round-trips beside data and commit records") {
  std::string file;
  add_data(sample(1), file);
  add_data(sample(2), file);
  size_t at = file.size();
  encode_batch_record({"/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow", {2, 1}}, file);
  seal_records(file, at, kSegment);
  add_commit({1}, file);
  SpoolScan scan = read_back(file);
  CHECK(scan.data.size() == 2);
  REQUIRE(scan.batches.size() == 1);
  CHECK(scan.batches[0].ids == std::vector<uint64_t>{2, 1});  // the order it was sent in
  CHECK(scan.batches[0].request_target == "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow");
  CHECK(scan.committed == std::vector<uint64_t>{1});
  CHECK(scan.valid_bytes == file.size());
}

namespace {

std::vector<uint64_t> ids_of(const std::vector<SpoolData>& records) {
  std::vector<uint64_t> ids;
  for (const SpoolData& d : records) ids.push_back(d.id);
  return ids;
}

// Batch records for these id lists; the i-th one's target ends in &b=<i>.
std::vector<SpoolBatch> sent(std::initializer_list<std::vector<uint64_t>> batches) {
  std::vector<SpoolBatch> out;
  for (const std::vector<uint64_t>& ids : batches)
    out.push_back({"/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow&b=" + std::to_string(out.size()), ids});
  return out;
}

std::vector<SpoolData> live_records(std::initializer_list<uint64_t> ids) {
  std::vector<SpoolData> out;
  for (uint64_t id : ids) {
    out.push_back(sample(id, "{\"id\":" + std::to_string(id) + "}"));
    out.back().target.key = "key";
  }
  return out;
}

}  // namespace

TEST_CASE("replay rebuilds the batches that were sent, and groups the rest anew") {
  // Batches {1,2,3} and {4,5} were sent; 6 and 7 never were.
  SpoolReplay replay =
      group_for_replay(sent({{1, 2, 3}, {4, 5}}), live_records({1, 2, 3, 4, 5, 6, 7}), {});
  REQUIRE(replay.batches.size() == 2);
  CHECK(ids_of(replay.batches[0].records) == std::vector<uint64_t>{1, 2, 3});
  CHECK(ids_of(replay.batches[1].records) == std::vector<uint64_t>{4, 5});
  CHECK(replay.batches[0].records[1].rows == "{\"id\":2}");  // the records themselves
  CHECK(replay.batches[1].request_target == "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow&b=1");
  CHECK(ids_of(replay.unsent) == std::vector<uint64_t>{6, 7});
}

TEST_CASE("replay follows a bisection: the halves, not the whole") {
  // {1..4} was split into {1,2} (committed: not live) and {3,4}, then {3,4} into {3} and {4}.
  SpoolReplay replay =
      group_for_replay(sent({{1, 2, 3, 4}, {1, 2}, {3, 4}, {3}, {4}}), live_records({3, 4}), {1, 2});
  REQUIRE(replay.batches.size() == 2);
  CHECK(ids_of(replay.batches[0].records) == std::vector<uint64_t>{3});
  CHECK(ids_of(replay.batches[1].records) == std::vector<uint64_t>{4});
  CHECK(replay.unsent.empty());
  CHECK(replay.unsent_of_partly_gone_batches == 0);
}

TEST_CASE("a batch that is no longer whole is not rebuilt") {
  // 2 was dead-lettered (committed) and 5's record was lost to damage.
  SpoolReplay replay =
      group_for_replay(sent({{1, 2, 3}, {4, 5}, {}}), live_records({1, 3, 4, 6}), {2});
  CHECK(replay.batches.empty());
  CHECK(ids_of(replay.unsent) == std::vector<uint64_t>{1, 3, 4, 6});
  // 4's batch may have been inserted: 5 is gone, not known committed.
  CHECK(replay.unsent_of_partly_gone_batches == 1);
  // An id named twice in one record is taken once.
  replay = group_for_replay(sent({{8, 8}}), live_records({8}), {});
  REQUIRE(replay.batches.size() == 1);
  CHECK(ids_of(replay.batches[0].records) == std::vector<uint64_t>{8});
}

TEST_CASE("a batch record naming records of two keys is not rebuilt") {
  std::vector<SpoolData> live = live_records({1, 2});
  live[1].target.key += "other";
  SpoolReplay replay = group_for_replay(sent({{1, 2}}), std::move(live), {});
  CHECK(replay.batches.empty());
  CHECK(ids_of(replay.unsent) == std::vector<uint64_t>{1, 2});
}
