// Serialising HTTP/1.1 answers to clients, and errors in ClickHouse's format.
//
// Pure string building: the response head of a forwarded answer, chunk
// framing, and the complete answers the sidecar makes itself (errors, /ping).
// Errors read like a modern ClickHouse server's:
//   Code: 202. DB::Exception: <message>. (TOO_MANY_SIMULTANEOUS_QUERIES) (chsidecar 0.1.0)
// with the X-ClickHouse-Exception-Code header, so clients that classify
// errors by code keep working.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http_headers.h"
#include "result.h"

namespace chsidecar {

const char* status_reason(int status);

// "HTTP/1.1 200 OK\r\n" followed by `headers` and the blank line.
std::string serialize_head(int status, std::string_view reason, const std::vector<Header>& headers);

// The same in pieces, appended to `out`: the status line, then each header
// line; the blank line is the caller's.
void append_status_line(std::string& out, int status, std::string_view reason,
                        int http_minor = 1);
void append_header(std::string& out, std::string_view name, std::string_view value);

// The error's body text, newline-terminated.
std::string error_body(const ChError& error);

// A complete response for `error`. `close` adds `Connection: close`;
// `retry_after_s` > 0 adds Retry-After.
std::string error_response(const ChError& error, bool close, int retry_after_s = 0);

// A complete 200 response with a text body (the local /ping answer).
std::string text_response(std::string_view body, bool close, bool head_only);

// ClickHouse's answer to /ping, rebuilt from the headers of its own
// (`upstream`, in order; empty: text_response): Date is now, Connection and
// Keep-Alive (`keep_alive`, unless `close`) are the client leg's, the body
// "Ok.\n" framed as the upstream framed it (chunked or with a length; to
// the close for HTTP/1.0).
std::string ping_response(const std::vector<Header>& upstream, int http_minor, bool close,
                          bool head_only, std::string_view keep_alive);

// The current time as an HTTP Date value: "Mon, 07 Dec 2026 04:15:45 GMT".
std::string http_date();

// Chunked transfer framing: the size line before `len` bytes of data.
std::string chunk_header(size_t len);
inline constexpr std::string_view kChunkTrailer = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace chsidecar
