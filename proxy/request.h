// What the sidecar reads from a client request before forwarding it.
//
// Pure functions over the request line and headers: split the target into
// path and query string, decode parameters, find the user and the session,
// and rewrite the query string without the session parameters. The query
// string of a forwarded request is kept byte for byte except where a
// parameter is removed on purpose. No I/O; unit-tested directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http_headers.h"

namespace chsidecar {

// One name=value pair of a query string, decoded, with the raw span it came
// from so it can be removed without touching its neighbours.
struct QueryParam {
  std::string name;
  std::string value;
  size_t raw_begin = 0;  // offset of the pair in the query string
  size_t raw_end = 0;    // one past the pair (excluding the '&')
};

struct Target {
  std::string_view path;   // "/" for "/?query=..."; views into the target
  std::string_view query;  // the text after '?', or empty
};

Target split_target(std::string_view target);

// Decodes %XX and '+' (as a space) the way ClickHouse's HTML form parser
// does. Malformed escapes are kept literally.
std::string url_decode(std::string_view text);

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string url_encode(std::string_view text);

std::vector<QueryParam> parse_query(std::string_view query);

// Returns `query` without every pair whose decoded name is in `names`.
std::string remove_params(std::string_view query, const std::vector<QueryParam>& params,
                          const std::vector<std::string_view>& names);

// A parameter the HTTP handler reads by name (query, user, password,
// database, session_id, session_timeout, session_check, ...): ClickHouse
// takes its first occurrence.
const QueryParam* find_param(const std::vector<QueryParam>& params, std::string_view name);

// The parameters that say whom a request runs as and where: its
// credentials and its default database.
inline constexpr std::string_view kUserParams[] = {"user", "password", "quota_key", "database"};

// A setting: ClickHouse applies settings in order, so the last one counts.
const QueryParam* find_setting(const std::vector<QueryParam>& params, std::string_view name);

// True when some parameter name occurs more than once.
bool has_repeated_param(const std::vector<QueryParam>& params);

// The ClickHouse user a request runs as: URL `user`, X-ClickHouse-User, or
// the user of `Authorization: Basic`, else "default".
std::string request_user(const std::vector<QueryParam>& params,
                         const std::vector<Header>& headers);

// Decodes standard base64; returns nullopt on malformed input.
std::optional<std::string> base64_decode(std::string_view text);

// The session parameters the sidecar consumes for a stateless session.
inline const std::vector<std::string_view> kSessionParams = {"session_id", "session_timeout",
                                                             "session_check"};

}  // namespace chsidecar
