#include "spool_record.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "crc32c.h"

namespace chsidecar {

namespace {

constexpr char kMagic[4] = {'C', 'H', 'S', 'R'};
constexpr uint8_t kTypeData = 1;
constexpr uint8_t kTypeCommit = 2;
constexpr uint8_t kTypeBatch = 3;

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Overwrites 4 bytes of `out` at `at` (a frame's length or checksum).
void store_u32(std::string& out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A record's CRC starts from its segment's number, so a record left from a
// reused file's earlier life never reads as valid: crc32c(payload, seed).
uint32_t segment_seed(uint64_t segment) {
  std::string seq;
  put_u64(seq, segment);
  return crc32c(seq);
}

// Starts a frame in `out`: magic, a length and a checksum filled in later.
size_t begin_frame(std::string& out) {
  size_t at = out.size();
  out.append(kMagic, 4);
  out.append(8, '\0');
  return at;
}

void end_frame(std::string& out, size_t at) {
  store_u32(out, at + 4, static_cast<uint32_t>(out.size() - at - kSpoolFrameBytes));
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool u8(uint8_t& v) {
    if (pos_ + 1 > data_.size()) return false;
    v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool u32(uint32_t& v) {
    if (pos_ + 4 > data_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (pos_ + 8 > data_.size()) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool str(std::string& s) {
    uint32_t n;
    if (!u32(n) || n > data_.size() - pos_) return false;
    s.assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  // A count u32 and that many ids u64.
  bool ids(std::vector<uint64_t>& out) {
    uint32_t n;
    if (!u32(n) || n > (data_.size() - pos_) / 8) return false;  // the ids must fit
    out.resize(n);
    for (uint64_t& id : out) u64(id);
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

bool decode_data(Reader& r, SpoolData& d) {
  uint32_t rows, header_count;
  uint8_t flags, format;
  if (!r.u64(d.id) || !r.u32(rows) || !r.u8(flags) || !r.u8(format)) return false;
  if (format > static_cast<uint8_t>(kLastRowFormat)) return false;
  d.row_count = rows;
  d.needs_newline = (flags & 1) != 0;
  d.target.format = static_cast<RowFormat>(format);
  if (!r.str(d.target.key) || !r.str(d.target.table) || !r.str(d.target.upstream_target) ||
      !r.u32(header_count))
    return false;
  for (uint32_t i = 0; i < header_count; ++i) {
    Header h;
    if (!r.str(h.name) || !r.str(h.value)) return false;
    d.target.headers.push_back(std::move(h));
  }
  return r.str(d.target.header_lines) && r.str(d.rows) && r.done();
}

}  // namespace

void encode_data_record(const SpoolRows& d, uint64_t id, std::string& out) {
  size_t at = begin_frame(out);
  put_u8(out, kTypeData);
  put_u64(out, id);
  put_u32(out, static_cast<uint32_t>(d.row_count));
  put_u8(out, d.needs_newline ? 1 : 0);
  put_u8(out, static_cast<uint8_t>(d.target.format));
  put_str(out, d.target.key);
  put_str(out, d.target.table);
  put_str(out, d.target.upstream_target);
  put_u32(out, static_cast<uint32_t>(d.target.headers.size()));
  for (const Header& h : d.target.headers) {
    put_str(out, h.name);
    put_str(out, h.value);
  }
  put_str(out, d.target.header_lines);
  put_str(out, d.rows);
  end_frame(out, at);
}

namespace {

void put_ids(std::string& out, const std::vector<uint64_t>& ids) {
  put_u32(out, static_cast<uint32_t>(ids.size()));
  for (uint64_t id : ids) put_u64(out, id);
}

}  // namespace

void encode_commit_record(const std::vector<uint64_t>& ids, std::string& out) {
  size_t at = begin_frame(out);
  put_u8(out, kTypeCommit);
  put_ids(out, ids);
  end_frame(out, at);
}

void encode_batch_record(const SpoolBatch& batch, std::string& out) {
  size_t at = begin_frame(out);
  put_u8(out, kTypeBatch);
  put_str(out, batch.request_target);
  put_ids(out, batch.ids);
  end_frame(out, at);
}

void seal_records(std::string& records, size_t from, uint64_t segment) {
  uint32_t seed = segment_seed(segment);
  for (size_t at = from; at + kSpoolFrameBytes <= records.size();) {
    uint32_t length = 0;
    Reader(std::string_view(records).substr(at + 4, 4)).u32(length);
    store_u32(records, at + 8, crc32c(std::string_view(records).substr(at + kSpoolFrameBytes, length), seed));
    at += kSpoolFrameBytes + length;
  }
}

namespace {

// The payload length of a whole frame header at the start of `rest` (magic,
// and a length that fits what follows), or 0.
uint32_t frame_length(std::string_view rest) {
  if (rest.size() < kSpoolFrameBytes || std::memcmp(rest.data(), kMagic, 4) != 0) return 0;
  uint32_t length = 0;
  Reader(rest.substr(4, 4)).u32(length);
  if (length > kSpoolMaxRecordBytes || length > rest.size() - kSpoolFrameBytes) return 0;
  return length;
}

// Reads the record framed at `at` into `scan`; returns its length with the
// frame, or 0 if there is no valid record there.
size_t read_record(std::string_view contents, size_t at, uint32_t seed, SpoolScan& scan) {
  std::string_view rest = contents.substr(at);
  uint32_t length = frame_length(rest);
  if (length == 0) return 0;
  uint32_t crc = 0;
  Reader(rest.substr(8, 4)).u32(crc);
  std::string_view payload = rest.substr(kSpoolFrameBytes, length);
  if (crc32c(payload, seed) != crc) return 0;
  Reader r(payload);
  uint8_t type = 0;
  r.u8(type);
  if (type == kTypeData) {
    SpoolData d;
    if (!decode_data(r, d)) return 0;
    scan.data.push_back(std::move(d));
  } else if (type == kTypeCommit) {
    std::vector<uint64_t> ids;
    if (!r.ids(ids) || !r.done()) return 0;
    scan.committed.insert(scan.committed.end(), ids.begin(), ids.end());
  } else if (type == kTypeBatch) {
    SpoolBatch batch;
    if (!r.str(batch.request_target) || !r.ids(batch.ids) || !r.done()) return 0;
    scan.batches.push_back(std::move(batch));
  } else {
    scan.unknown_type = type;  // sealed by a newer version: not damage
    return 0;
  }
  return kSpoolFrameBytes + length;
}

}  // namespace

SpoolScan scan_segment(std::string_view contents, uint64_t segment) {
  SpoolScan scan;
  uint32_t seed = segment_seed(segment);
  size_t pos = 0;
  while (pos < contents.size()) {
    if (size_t n = read_record(contents, pos, seed, scan)) {
      pos += n;
      scan.valid_bytes = pos;
      continue;
    }
    if (scan.unknown_type >= 0) break;
    // Every write ends with a frame's worth of zeros: finding them is a clean end.
    if (contents.substr(pos, kSpoolFrameBytes).find_first_not_of('\0') == std::string_view::npos)
      break;
    // Damage. A frame whose header is whole (magic, a length that fits) but
    // whose checksum fails had bytes changed in place: the next record starts
    // where its length says, so only this one is lost. Anything else is a
    // torn last write: the end. (The scan never looks for frames inside a
    // payload, which holds client data and could imitate one.)
    scan.damaged = true;
    uint32_t length = frame_length(contents.substr(pos));
    if (length == 0) break;
    size_t next = pos + kSpoolFrameBytes + length;
    size_t found = next < contents.size() ? read_record(contents, next, seed, scan) : 0;
    if (found == 0) break;  // nothing whole after it (or a newer type): a torn tail after all
    scan.skipped_bytes += next - pos;
    pos = next + found;
    scan.valid_bytes = pos;
  }
  return scan;
}

SpoolReplay group_for_replay(std::vector<SpoolBatch> batches, std::vector<SpoolData> live,
                             const std::unordered_set<uint64_t>& committed) {
  SpoolReplay replay;
  std::unordered_map<uint64_t, size_t> last_batch;  // id -> index in batches
  for (size_t b = 0; b < batches.size(); ++b)
    for (uint64_t id : batches[b].ids) last_batch[id] = b;
  std::unordered_map<uint64_t, size_t> at;  // id -> index in live
  for (size_t i = 0; i < live.size(); ++i) at[live[i].id] = i;
  std::vector<bool> taken(live.size(), false);
  for (size_t b = 0; b < batches.size(); ++b) {
    const std::vector<uint64_t>& ids = batches[b].ids;
    bool whole = !ids.empty() && std::all_of(ids.begin(), ids.end(), [&](uint64_t id) {
      auto it = at.find(id);
      return it != at.end() && !taken[it->second] && last_batch[id] == b &&
             live[it->second].target.key == live[at[ids[0]]].target.key;
    });
    if (!whole) continue;
    SpoolReplay::Batch& batch = replay.batches.emplace_back();
    batch.request_target = std::move(batches[b].request_target);
    for (uint64_t id : ids) {
      size_t i = at[id];
      if (taken[i]) continue;  // named twice
      taken[i] = true;
      batch.records.push_back(std::move(live[i]));
    }
  }
  std::vector<bool> partly_gone(batches.size(), false);
  for (const auto& [id, b] : last_batch)
    if (!at.count(id) && !committed.count(id)) partly_gone[b] = true;
  for (size_t i = 0; i < live.size(); ++i) {
    if (taken[i]) continue;
    auto last = last_batch.find(live[i].id);
    if (last != last_batch.end() && partly_gone[last->second]) ++replay.unsent_of_partly_gone_batches;
    replay.unsent.push_back(std::move(live[i]));
  }
  return replay;
}

}  // namespace chsidecar
