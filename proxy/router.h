// How a request runs, decided from what ClickHouse will make of it.
//
// route_request() is a pure function: given the request head, the body
// bytes read so far and what is known outside the request (flags, the
// server's features, whether a session holds state), it returns a Route:
// read more of the body first; forward the request alone (to this target);
// batch it (with this plan); or run it in its session (this key, this
// timeout). Parameters are resolved as ClickHouse resolves them (the first
// query, user, session_id; settings in order), and the statement
// classified is the one ClickHouse runs (the query parameter, a newline
// and the body). Whatever the sidecar cannot judge exactly as ClickHouse
// would goes alone, or, for a session, pins it. Exchange does the I/O.
//
// An encoded body (Content-Encoding, or ClickHouse's blocks with
// decompress=1) whose SQL is in the body is routed twice: first on its raw
// bytes, when a batch is possible the router asks for the decoded body
// (kNeedDecodedBody); Exchange decodes the whole body, within the
// decompression limits, and routes again with the decoded bytes
// (BodyDecoding::kDecoded), or with the raw ones (kFailed: too large, over
// a limit, corrupt), which then go alone as the client sent them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "batch_plan.h"
#include "body_decoder.h"
#include "config.h"
#include "request.h"
#include "table_structure.h"

namespace chsidecar {

struct RequestHead {
  std::string method;
  std::string target;  // raw request target, e.g. /?query=SELECT%201
  int http_minor = 1;  // HTTP/1.<minor>
  std::vector<Header> headers;
  bool keep_alive = true;
  bool expect_continue = false;
  bool has_body = false;
  int64_t content_length = -1;  // -1 when chunked
};

// What the router knows besides the request.
struct RouteContext {
  SessionMode session_mode = SessionMode::kAuto;
  BatchMode batch_mode = BatchMode::kAuto;
  AckMode ack_mode = AckMode::kCommit;
  bool server_async_insert = false;  // the server knows async_insert (21.11+)
  // The server decodes Content-Encoding in any letter case (GZIP, Deflate,
  // ...; 22 and later). 18.16 takes only exactly "gzip" and "deflate" and
  // refuses the rest with code 89: such a body goes alone, for its answer.
  bool server_any_case_encoding = false;
  // The server reads RowBinaryWithDefaults (23.7 and later).
  bool server_row_binary_with_defaults = false;
  // The known columns of a table (table_structure.h) by structure_key(),
  // or null: RowBinary, RowBinaryWithNames and RowBinaryWithDefaults are
  // batched only by them (a plan without them waits for them: exchange.h).
  std::function<std::shared_ptr<const TableStructure>(const std::string& key)> table_structure;
  // Whether the session with this key holds state already.
  std::function<bool(const std::string& session_key)> session_is_stateful;
};

struct Route {
  enum class Action {
    kNeedBody,  // the statement's leading keywords are not here yet
    kForward,   // alone, to upstream_target
    kBatch,     // its rows join a batch: plan, data_offset
    kSession,   // in its session's order: session_key, session_timeout_ms
    kNeedDecodedBody,  // route again with the whole body decoded (body_coding)
  };
  Action action = Action::kForward;
  // Metrics label: "query", "insert_passthrough" or "insert_batched".
  const char* label = "query";
  // The SQL is in a body not read yet: the label may turn to
  // insert_passthrough once its first bytes show an INSERT.
  bool sniff_insert = false;
  std::string upstream_target;  // the target sent upstream (also a batch's fallback)
  bool has_session = false;     // the request names a session_id
  bool stateful = false;        // ... and runs in it, in order
  std::string session_key;
  uint64_t session_timeout_ms = 60'000;
  std::shared_ptr<BatchPlan> plan;
  size_t data_offset = 0;      // where the rows begin in the body
  bool plan_reusable = false;  // a connection may reuse the plan (batch_plan.h)
  BodyCoding body_coding = BodyCoding::kIdentity;  // for kNeedDecodedBody
  // A RowBinary INSERT batched by its table's columns: where to learn them
  // (StructureCache::use()), whether or not they are known yet (then the
  // plan's options.columns is null). Empty key otherwise.
  StructureSource structure;
};

// What the `body` given to route_request() is.
enum class BodyDecoding {
  kRaw,      // the bytes as received (maybe encoded)
  kDecoded,  // the whole body, decoded
  kFailed,   // the raw bytes of a body that could not be decoded within the limits
};

// True if the SQL text begins with INSERT (after blanks); for the route label only.
bool starts_with_insert(std::string_view sql);

// `body` holds the body bytes read so far; `body_complete` says whether
// that is all of it; `decoding` what they are (a decoded body is complete).
Route route_request(const RequestHead& head, std::string_view body, bool body_complete,
                    const RouteContext& context, BodyDecoding decoding = BodyDecoding::kRaw);

}  // namespace chsidecar
