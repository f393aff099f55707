// What the routing of a batchable INSERT decided from its URL, headers and
// SQL, kept per connection (PlanMemo) so that a client repeating the same
// INSERT (the usual case: one statement, a row or a few per request) is not
// parsed again: the query string decoded, the statement parsed, the merge
// key built. A plan is reused only for a byte-identical request target,
// identical values of every header the decision reads (plan_key), the same
// facts about the server, and, when the SQL came in the body, a body that
// begins with the very same SQL text up to and including the newline that
// ends it (the data follows the newline whatever its first byte is). A
// request in a session reuses it only while that session holds no state.
// Pure data.
#pragma once

#include <memory>
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

// The last batchable INSERT's plan on a connection and what it was made for.
class PlanMemo {
 public:
  struct Entry {
    std::shared_ptr<const BatchPlan> plan;
    std::string sql_prefix;   // the body's SQL through its newline; empty: SQL in the URL
    std::string session_key;  // the stateless session it ran in, if any
  };

  // The entry made for this target and headers under the same server
  // facts (an opaque value the caller compares), or null.
  const Entry* find(std::string_view target, const std::vector<Header>& headers,
                    unsigned facts) const {
    return entry_.plan != nullptr && facts == facts_ && plan_key_matches(key_, target, headers)
               ? &entry_
               : nullptr;
  }
  void remember(std::string_view target, const std::vector<Header>& headers, unsigned facts,
                Entry entry) {
    key_ = plan_key(target, headers);
    facts_ = facts;
    entry_ = std::move(entry);
  }

 private:
  std::string key_;
  unsigned facts_ = 0;
  Entry entry_;
};

// The headers that go into a batch's merge key and are sent with it.
inline constexpr const char* kBatchKeyHeaders[] = {"Authorization", "X-ClickHouse-User",
                                                   "X-ClickHouse-Key", "X-ClickHouse-Database",
                                                   "X-ClickHouse-Quota"};

}  // namespace chsidecar
