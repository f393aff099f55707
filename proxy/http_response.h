// Serialising HTTP/1.1 answers to clients, and errors in ClickHouse's format.
//
// Pure string building: the response head of a forwarded answer and the
// client leg's framing (Connection, Keep-Alive, chunks), and the complete
// answers the sidecar makes itself (errors, /ping, a batched INSERT's).
// Errors read like a modern ClickHouse server's:
//   Code: 202. DB::Exception: <message>. (TOO_MANY_SIMULTANEOUS_QUERIES) (chsidecar 0.1.0)
// with the X-ClickHouse-Exception-Code header, so clients that classify
// errors by code keep working.
#pragma once

#include <cstdint>
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

// What answers advertise in Keep-Alive: --idle-timeout when it was given,
// else what the upstream says.
struct KeepAlivePolicy {
  bool idle_timeout_given = false;
  uint64_t idle_timeout_ms = 0;
  std::string_view probed;  // the probe's Keep-Alive value; empty: none seen yet
};

// The client side of one answer: what its framing depends on. Views into
// `keep_alive.probed` must outlive the calls it is passed to.
struct ClientLeg {
  int http_minor = 1;     // the request's HTTP/1.x
  bool close = false;     // no further request on the connection after this answer
  uint64_t requests = 0;  // requests begun on the connection, this one included
  KeepAlivePolicy keep_alive;
};

// The Keep-Alive value an answer on `leg` advertises: "timeout=N" from
// --idle-timeout when given (or when the upstream said nothing), else the
// upstream's (`upstream`, else the probe's) as a client of ClickHouse would
// read it: a modern server's "max=N" (requests left on the connection)
// counts the client connection's requests, from ClickHouse's default
// keep_alive_max_requests (10000).
std::string keep_alive_value(const ClientLeg& leg, std::string_view upstream = {});

// The head of a forwarded answer, and how its body goes to the client.
struct ForwardedHead {
  std::string bytes;     // status line, headers, blank line
  bool chunked = false;  // the body goes in chunks (chunk_header ... kLastChunk)
  bool close = false;    // the connection ends after the answer
};

// The upstream's status line and headers (`upstream`, in its order), with
// the client leg's framing written where the upstream wrote its own and the
// way it did: Connection (ours: Keep-Alive or Close), Keep-Alive (the
// upstream's value unless --idle-timeout was given; none when closing),
// Transfer-Encoding (chunked when the body has no length, on a HEAD answer
// too as the upstream sent it); the other hop-by-hop fields are dropped.
// A body without a length is chunked for HTTP/1.1 and ends with the
// connection for HTTP/1.0 (then `close` is set whatever `leg.close` said).
// `head_only`: the answer has no body (HEAD, 204, 304).
ForwardedHead forwarded_head(int status, std::string_view reason,
                             const std::vector<Header>& upstream, bool head_only,
                             const ClientLeg& leg);

// A complete answer whose body the sidecar holds whole (a batched INSERT's):
// the status line (HTTP/1.1 whatever `leg.http_minor`), `headers`
// (end-to-end only), Content-Length,
// Connection (and Keep-Alive unless `leg.close`), then `body`. Appended to
// `out`, so that a caller can build each answer in one reused buffer.
void append_whole_answer(std::string& out, int status, std::string_view reason,
                         const std::vector<Header>& headers, std::string_view body,
                         const ClientLeg& leg);

// ClickHouse's answer to /ping, rebuilt from the headers of its own
// (`upstream`, in order; empty: text_response): Date is now, Connection and
// Keep-Alive (the probe's value, unless closing) are the client leg's, the
// body "Ok.\n" framed as the upstream framed it (chunked or with a length;
// to the close for HTTP/1.0).
std::string ping_response(const std::vector<Header>& upstream, bool head_only,
                          const ClientLeg& leg);

// The current time as an HTTP Date value: "Mon, 07 Dec 2026 04:15:45 GMT".
std::string http_date();

// Chunked transfer framing: the size line before `len` bytes of data.
std::string chunk_header(size_t len);
inline constexpr std::string_view kChunkTrailer = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace chsidecar
