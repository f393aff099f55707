#include "flush_verdict.h"

namespace chsidecar {

namespace {

// Transient codes that may also be one batch's own doing.
bool may_be_the_requests_own(int code) {
  switch (code) {
    case 74: case 75: case 76: case 77: case 107: case 159: case 241:
      return true;
    default:
      return false;
  }
}

}  // namespace

FlushVerdict classify_flush(const FlushTry& t) {
  FlushVerdict v;
  bool committed = t.status == 200 && (t.transfer_ok || (t.response_started && !t.body_has_exception));
  bool answered_error = !committed && (t.transfer_ok || t.response_started) &&
                        !(t.exception_code != 0 && classify_error(t.exception_code) == ErrorClass::kPermanent);
  if (answered_error && !t.table_checked) {
    v.action = FlushAction::kCheckTable;
    return v;
  }
  if (t.transfer_ok && !committed) {
    v.code = t.exception_code;
    // An answer without a code (a proxy's 502/503) is not about the data.
    v.error_class = v.code != 0 ? classify_error(v.code) : ErrorClass::kTransient;
  }
  v.no_answer = !committed && !t.transfer_ok && !t.response_started;
  v.own_limit = !committed && v.error_class == ErrorClass::kTransient && may_be_the_requests_own(v.code);
  v.gave_up = v.own_limit && t.own_transient_failures + 1 >= t.retry_limit &&
              t.others_committed_since_first_failure;
  if (v.gave_up) v.error_class = ErrorClass::kData;
  v.metric_label = committed                                  ? "ok"
                   : v.no_answer                              ? "network_error"
                   : v.error_class == ErrorClass::kTransient  ? "transient_error"
                   : v.error_class == ErrorClass::kData       ? "data_error"
                                                              : "permanent_error";
  bool maybe_in_table = answered_error && t.table_has_views;
  if (maybe_in_table &&
      !(v.error_class == ErrorClass::kTransient && t.dedup_token && t.table_deduplicates))
    v.action = FlushAction::kFailMaybeInTable;
  else if (committed)
    v.action = FlushAction::kCommitted;
  else if (v.error_class == ErrorClass::kTransient)
    v.action = FlushAction::kRetry;
  else if (v.error_class == ErrorClass::kData && t.requests > 1)
    v.action = FlushAction::kBisect;
  else
    v.action = FlushAction::kFail;
  return v;
}

}  // namespace chsidecar
