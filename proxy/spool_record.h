// The on-disk framing of spool records. Pure; unit-tested and fuzzed.
//
// A segment file is a sequence of records:
//   magic "CHSR" | payload length u32 | CRC-32C u32 | payload
// (integers little-endian). The CRC covers the segment's number, then the
// payload: a record is valid only in the segment it was written for, so a
// reused segment file's old contents never read as records. A payload
// starts with its type:
//   data   (1): id u64, row count u32, flags u8, format u8, then the merge key,
//               table, upstream target, headers, header lines and rows as
//               length-prefixed strings: all a later run needs to send the rows.
//   commit (2): count u32, then that many ids u64: records ClickHouse has
//               committed, which replay must skip.
//   batch  (3): the request target (path and query string, with any dedup
//               token) as a length-prefixed string, count u32, then that
//               many ids u64: the data records of one batch, in order.
//               Written before the batch is first sent, so that a replay
//               sends the very same request.
// Every write of records is followed by a frame's worth of zeros (the next
// write starts over them). Reading stops at the first record that is torn
// (runs past the end) or corrupt (bad magic, length or checksum); what
// precedes it is valid, and it is damage unless the zeros are there. A
// whole record of a type not listed here stops the reading too, but as a
// newer version's, not as damage (start-up refuses such a spool).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "batch_target.h"

namespace chsidecar {

struct SpoolData {
  uint64_t id = 0;
  BatchTarget target;
  std::string rows;
  size_t row_count = 0;
  bool needs_newline = false;
};

// A data record's contents by reference: what encoding reads.
struct SpoolRows {
  const BatchTarget& target;
  std::string_view rows;
  size_t row_count = 0;
  bool needs_newline = false;
};

// Appends the framed record to `out`, its checksum not yet set, with `id`
// (or data.id).
void encode_data_record(const SpoolRows& data, uint64_t id, std::string& out);
inline void encode_data_record(const SpoolData& data, std::string& out) {
  encode_data_record(SpoolRows{data.target, data.rows, data.row_count, data.needs_newline}, data.id,
                     out);
}
void encode_commit_record(const std::vector<uint64_t>& ids, std::string& out);
struct SpoolBatch {
  std::string request_target;
  std::vector<uint64_t> ids;
  bool operator==(const SpoolBatch&) const = default;
};
void encode_batch_record(const SpoolBatch& batch, std::string& out);

// Sets the checksums of the records in `records` from offset `from` for
// `segment`, the segment they are written to. REQUIRES: whole records from
// the encoders above.
void seal_records(std::string& records, size_t from, uint64_t segment);

struct SpoolScan {
  std::vector<SpoolData> data;       // in file order
  std::vector<uint64_t> committed;   // ids named by commit records
  std::vector<SpoolBatch> batches;   // batch records, in file order
  size_t valid_bytes = 0;            // end of the last valid record
  bool damaged = false;              // bytes that are no record, before valid_bytes or after it
  size_t skipped_bytes = 0;          // damaged bytes between valid records
  // A record with a valid checksum but a type this version does not know
  // (written by a newer one) ends the scan; the caller must not truncate.
  int unknown_type = -1;
};

// Reads every valid record of segment number `segment`'s contents: up to
// the zeros that end the last write, or the end of the file. A record whose
// frame is whole but whose checksum fails is skipped when a valid record
// follows it; other damage is the segment's torn tail.
SpoolScan scan_segment(std::string_view contents, uint64_t segment);

// The records a start-up found not committed.
struct SpoolReplay {
  struct Batch {
    std::string request_target;
    std::vector<SpoolData> records;
  };
  std::vector<Batch> batches;    // as they were last sent, whole
  std::vector<SpoolData> unsent; // the others, in spool order
  // Unsent records whose last batch also named records that are gone:
  // neither on disk nor committed (a segment that ended on a full disk
  // before its commit records were written, or damage). If that batch was
  // inserted, these rows are inserted a second time.
  size_t unsent_of_partly_gone_batches = 0;
};

// Groups `live` (the records not committed, in spool order) by `batches`
// (every batch record, in spool order). A record goes back into the batch
// that sent it last (a bisected half's record follows its whole's) if that
// batch is whole: none of its records committed or lost, all of one key.
// `committed`: the ids of every commit record.
SpoolReplay group_for_replay(std::vector<SpoolBatch> batches, std::vector<SpoolData> live,
                             const std::unordered_set<uint64_t>& committed);

// Bytes the frame adds to a payload.
inline constexpr size_t kSpoolFrameBytes = 12;
// Records larger than this are corrupt by definition.
inline constexpr uint32_t kSpoolMaxRecordBytes = 256u * 1024 * 1024;

}  // namespace chsidecar
