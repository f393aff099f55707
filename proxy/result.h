// Error values that carry a ClickHouse error code.
//
// The sidecar answers its own failures the way ClickHouse would: an HTTP
// status, a numeric ClickHouse code and the code's name. ChError is that
// triple plus a human message; it is a plain value, cheap to move, and is
// what every fallible step returns instead of throwing.
#pragma once

#include <string>
#include <utility>

namespace chsidecar {

// The ClickHouse codes the sidecar itself uses. Clients classify errors by
// these numbers (retry 202/159/210, do not retry 62/115...), so each use
// picks the code whose meaning a client already handles.
struct ChCode {
  int number;
  const char* name;
};
inline constexpr ChCode kNotImplemented{48, "NOT_IMPLEMENTED"};
inline constexpr ChCode kIncorrectData{117, "INCORRECT_DATA"};
inline constexpr ChCode kTimeoutExceeded{159, "TIMEOUT_EXCEEDED"};
inline constexpr ChCode kTooManySimultaneousQueries{202, "TOO_MANY_SIMULTANEOUS_QUERIES"};
inline constexpr ChCode kNoFreeConnection{203, "NO_FREE_CONNECTION"};
inline constexpr ChCode kNetworkError{210, "NETWORK_ERROR"};
inline constexpr ChCode kLimitExceeded{290, "LIMIT_EXCEEDED"};
inline constexpr ChCode kUnknownStatusOfInsert{319, "UNKNOWN_STATUS_OF_INSERT"};
inline constexpr ChCode kLengthRequired{381, "LENGTH_REQUIRED"};
inline constexpr ChCode kBadRequestParameter{457, "BAD_REQUEST_PARAMETER"};

struct ChError {
  int http_status = 500;
  ChCode code{0, "OK"};
  std::string message;  // one sentence, no trailing period; never a secret

  ChError() = default;
  ChError(int status, ChCode c, std::string msg)
      : http_status(status), code(c), message(std::move(msg)) {}

  bool ok() const { return code.number == 0; }
};

}  // namespace chsidecar
