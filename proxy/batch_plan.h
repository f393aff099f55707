// What the routing of a batchable INSERT decided from its URL and headers,
// kept per connection so that a client repeating the same INSERT (the
// usual case: one statement, a row or a few per request) is not parsed
// again: the query string decoded, the statement parsed, the merge key
// built. A plan is reused only for a byte-identical request target and
// identical values of every header the decision reads (plan_key); it
// covers only INSERTs with the SQL in the URL and no session. Pure data.
#pragma once

#include <string>
#include <vector>

#include "batch_target.h"
#include "body_decoder.h"
#include "insert_query.h"
#include "request.h"
#include "rows.h"

namespace chsidecar {

struct BatchPlan {
  InsertQuery insert;
  RowFormat format = RowFormat::kJSONEachRow;
  RowOptions options;
  bool spool_ack = false;
  // How the body is encoded (Content-Encoding or decompress=1); its rows are
  // decoded before they are split, and batches are sent in the sidecar's
  // own upstream coding.
  BodyCoding coding = BodyCoding::kIdentity;
  BatchTarget target;  // before any *WithNames header line is added
  std::string passthrough_target;  // where it goes if it is not batched after all
};

// The request parts a plan depends on: the target and the headers the
// routing reads (credentials, database, quota, Content-Encoding and
// Content-Type), every occurrence of each.
std::string plan_key(std::string_view target, const std::vector<Header>& headers);
// plan_key(target, headers) == key, without building the key.
bool plan_key_matches(std::string_view key, std::string_view target,
                      const std::vector<Header>& headers);

// The headers that go into a batch's merge key and are sent with it.
inline constexpr const char* kBatchKeyHeaders[] = {"Authorization", "X-ClickHouse-User",
                                                   "X-ClickHouse-Key", "X-ClickHouse-Database",
                                                   "X-ClickHouse-Quota"};

}  // namespace chsidecar
