// Unit tests for flush_verdict.h: what the batcher does after one try.
#include <doctest/doctest.h>

#include <string>

#include "flush_verdict.h"

using namespace chsidecar;

namespace {

// Tries as the pool reports them.
FlushTry answered(int status, int code = 0) {
  FlushTry t;
  t.transfer_ok = true;
  t.response_started = true;
  t.status = status;
  t.body_has_exception = status != 200;
  t.exception_code = code;
  t.requests = 4;
  return t;
}
FlushTry checked(FlushTry t, bool has_views, bool deduplicates) {
  t.table_checked = true;
  t.table_has_views = has_views;
  t.table_deduplicates = deduplicates;
  return t;
}
FlushTry no_answer() {
  FlushTry t;
  t.transfer_ok = false;
  t.response_started = false;
  t.requests = 4;
  return t;
}
FlushTry cut_after_head(int status, bool exception) {
  FlushTry t = answered(status);
  t.transfer_ok = false;
  t.body_has_exception = exception;
  return t;
}
FlushTry with(FlushTry t, auto&& change) {
  change(t);
  return t;
}

}  // namespace

TEST_CASE("classify_flush: one row per kind of try") {
  struct Case {
    const char* what;
    FlushTry t;
    FlushAction action;
    const char* label;
  };
  const bool views = true, no_views = false, dedup = true, no_dedup = false;
  const Case cases[] = {
      {"200", answered(200), FlushAction::kCommitted, "ok"},
      {"200, then the connection broke, no exception", cut_after_head(200, false),
       FlushAction::kCommitted, "ok"},
      {"200, then an exception and a broken connection", checked(cut_after_head(200, true), no_views, no_dedup),
       FlushAction::kRetry, "transient_error"},
      {"no answer at all", no_answer(), FlushAction::kRetry, "network_error"},
      {"bad data, not asked about the table yet", answered(500, 27), FlushAction::kCheckTable, "ok"},
      {"bad data, no views: bisect", checked(answered(500, 27), no_views, no_dedup),
       FlushAction::kBisect, "data_error"},
      {"bad data in one request: fail it", with(checked(answered(500, 27), no_views, no_dedup),
                                                [](FlushTry& t) { t.requests = 1; }),
       FlushAction::kFail, "data_error"},
      {"bad data, views: fail all, maybe in table", checked(answered(500, 27), views, dedup),
       FlushAction::kFailMaybeInTable, "data_error"},
      {"whole-key refusal (60): no table check, fail all", answered(404, 60), FlushAction::kFail,
       "permanent_error"},
      {"auth (516): fail all", answered(403, 516), FlushAction::kFail, "permanent_error"},
      {"too many parts (252), no views: retry", checked(answered(500, 252), no_views, no_dedup),
       FlushAction::kRetry, "transient_error"},
      {"252, views, dedup token and a deduplicating table: retry",
       with(checked(answered(500, 252), views, dedup), [](FlushTry& t) { t.dedup_token = true; }),
       FlushAction::kRetry, "transient_error"},
      {"252, views, no token: never resent", checked(answered(500, 252), views, dedup),
       FlushAction::kFailMaybeInTable, "transient_error"},
      {"252, views, token, table without dedup: never resent",
       with(checked(answered(500, 252), views, no_dedup), [](FlushTry& t) { t.dedup_token = true; }),
       FlushAction::kFailMaybeInTable, "transient_error"},
      {"a proxy's 502 without a code: transient", checked(answered(502), no_views, no_dedup),
       FlushAction::kRetry, "transient_error"},
      {"an answer cut before the end, status 500", checked(cut_after_head(500, true), no_views, no_dedup),
       FlushAction::kRetry, "transient_error"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.what));
    FlushVerdict v = classify_flush(c.t);
    CHECK(v.action == c.action);
    if (v.action != FlushAction::kCheckTable) CHECK(std::string(v.metric_label) == c.label);
  }
}

TEST_CASE("classify_flush: no answer may have inserted the batch; an answer did not") {
  CHECK(classify_flush(no_answer()).no_answer);
  CHECK_FALSE(classify_flush(checked(cut_after_head(500, true), false, false)).no_answer);
  CHECK_FALSE(classify_flush(answered(200)).no_answer);
  CHECK(classify_flush(checked(answered(500, 27), false, false)).code == 27);
  CHECK(classify_flush(no_answer()).code == 0);
}

TEST_CASE("classify_flush: a limit of the batch's own splits it after --retry-limit tries") {
  struct Case {
    const char* what;
    int code;
    uint64_t earlier;    // own transient failures before this try
    bool others_commit;  // other batches committed since its first failure
    FlushAction action;
    bool own_limit;
    bool gave_up;
  };
  const Case cases[] = {
      {"241, first failure", 241, 0, false, FlushAction::kRetry, true, false},
      {"241, limit reached, nothing else commits", 241, 19, false, FlushAction::kRetry, true, false},
      {"241, one short of the limit, others commit", 241, 18, true, FlushAction::kRetry, true, false},
      {"241, limit reached while others commit", 241, 19, true, FlushAction::kBisect, true, true},
      {"159 past the limit", 159, 30, true, FlushAction::kBisect, true, true},
      {"74..77, 107 count too", 107, 19, true, FlushAction::kBisect, true, true},
      {"252 is the server's state: never given up", 252, 50, true, FlushAction::kRetry, false, false},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.what));
    FlushTry t = checked(answered(500, c.code), false, false);
    t.own_transient_failures = c.earlier;
    t.others_committed_since_first_failure = c.others_commit;
    t.retry_limit = 20;
    FlushVerdict v = classify_flush(t);
    CHECK(v.action == c.action);
    CHECK(v.own_limit == c.own_limit);
    CHECK(v.gave_up == c.gave_up);
    CHECK(std::string(v.metric_label) == (c.gave_up ? "data_error" : "transient_error"));
  }
  // Given up in a batch of one request: that request gets the error.
  FlushTry one = checked(answered(500, 241), false, false);
  one.own_transient_failures = 19;
  one.others_committed_since_first_failure = true;
  one.requests = 1;
  CHECK(classify_flush(one).action == FlushAction::kFail);
}
