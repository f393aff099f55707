// What one try of a batch's upstream INSERT came to, and so what the
// batcher does next with the batch (batcher.h). Pure: the facts of the try
// in, a verdict out; the batcher acts on it (answers, retries, splits).
//
// The order of the rules:
//   1. An error ClickHouse answered (not a refusal of the whole request,
//      which it checks before writing a row) may have left rows in a table
//      with dependent views: the table is asked first (table_check.h) and
//      the try classified again with its facts.
//   2. Such a table's batch is never bisected nor resent, except a
//      transient error retried with the same bytes where the retry is
//      deduplicated (a token, and a table that deduplicates): every client
//      gets the error, spooled rows are dead-lettered with a note.
//   3. A 200 is a commit, also when the connection broke after it without
//      an exception in the body (ClickHouse sends it only once rows are in).
//   4. A transient error (or no answer at all) is retried with the same
//      bytes. A memory or time limit or a file error (241, 159, 74-77, 107)
//      that outlasts --retry-limit tries while other batches commit is the
//      batch's own: it is split like bad data instead.
//   5. Bad data in a batch of several requests: split in halves (bisection).
//   6. Anything else fails every request of the batch with the error.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ch_errors.h"

namespace chsidecar {

// The facts of one finished try, and of the batch's earlier tries.
struct FlushTry {
  bool transfer_ok = true;        // the transfer ended normally (CURLE_OK)
  bool response_started = false;  // a response head arrived
  int status = 0;                 // its HTTP status
  bool body_has_exception = false;  // "Exception" in the answer's body
  int exception_code = 0;         // its "Code: N"; 0: none
  size_t requests = 1;            // requests whose rows the batch holds
  // table_check.h's answer, when asked after this try.
  bool table_checked = false;
  bool table_has_views = true;
  bool table_deduplicates = false;
  // Earlier tries that failed with a code counted against --retry-limit.
  uint64_t own_transient_failures = 0;
  // Other batches committed since this one first failed (false when this
  // is its first failure).
  bool others_committed_since_first_failure = false;
  uint64_t retry_limit = 20;      // --retry-limit
  bool dedup_token = false;       // batches carry insert_deduplication_token
};

enum class FlushAction {
  kCheckTable,        // ask table_check.h, then classify again with its facts
  kCommitted,         // answer every request 200; spooled rows are done
  kRetry,             // send the same bytes again after a backoff
  kBisect,            // split along request boundaries, send both halves
  kFail,              // answer every request with the error; dead-letter spooled rows
  kFailMaybeInTable,  // the same, noting that the rows may be in the table
};

struct FlushVerdict {
  FlushAction action = FlushAction::kCommitted;
  ErrorClass error_class = ErrorClass::kTransient;  // after a give-up: kData
  int code = 0;             // the exception code the class was taken from; 0: none
  bool no_answer = false;   // no response at all: the server may have inserted it
  bool own_limit = false;   // counts against --retry-limit
  bool gave_up = false;     // the own limit passed --retry-limit: split like bad data
  const char* metric_label = "ok";  // chsidecar_flushes_total{result}
};

FlushVerdict classify_flush(const FlushTry& t);

}  // namespace chsidecar
