// Unit tests for http_response.h: ClickHouse-format errors and framing.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http_response.h"

using namespace chsidecar;

namespace {

// Splits a serialised response at the blank line.
struct Parsed {
  std::string status_line;
  std::vector<Header> headers;
  std::string body;
};

Parsed parse_response(const std::string& text) {
  Parsed out;
  size_t end = text.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  out.body = text.substr(end + 4);
  std::string head = text.substr(0, end + 2);
  size_t line_end = head.find("\r\n");
  out.status_line = head.substr(0, line_end);
  for (size_t pos = line_end + 2; pos < head.size();) {
    size_t eol = head.find("\r\n", pos);
    std::string line = head.substr(pos, eol - pos);
    size_t colon = line.find(": ");
    REQUIRE(colon != std::string::npos);
    out.headers.push_back({line.substr(0, colon), line.substr(colon + 2)});
    pos = eol + 2;
  }
  return out;
}

size_t count_header(const std::vector<Header>& headers, std::string_view name) {
  size_t n = 0;
  for (const Header& h : headers) n += iequals(h.name, name);
  return n;
}

}  // namespace

TEST_CASE("error_body reads like a ClickHouse exception") {
  ChError e(503, kTooManySimultaneousQueries, "Too many requests waiting in session s1");
  CHECK(error_body(e) ==
        "Code: 202. DB::Exception: Too many requests waiting in session s1. "
        "(TOO_MANY_SIMULTANEOUS_QUERIES) (chsidecar " CHSIDECAR_VERSION ")\n");
  CHECK(std::string(CHSIDECAR_VERSION) == "0.1.0");
  CHECK(error_body(ChError(504, kTimeoutExceeded, "Upstream timed out")) ==
        "Code: 159. DB::Exception: Upstream timed out. (TIMEOUT_EXCEEDED) (chsidecar 0.1.0)\n");
  CHECK(error_body(ChError(400, kBadRequestParameter, "")) ==
        "Code: 457. DB::Exception: . (BAD_REQUEST_PARAMETER) (chsidecar 0.1.0)\n");
}

TEST_CASE("error_response is a complete response with code and length") {
  ChError e(503, kNoFreeConnection, "No free upstream connection");
  const std::string body = error_body(e);
  Parsed r = parse_response(error_response(e, false));
  CHECK(r.status_line == "HTTP/1.1 503 Service Unavailable");
  CHECK(r.body == body);
  const Header* code = find_header(r.headers, "X-ClickHouse-Exception-Code");
  REQUIRE(code != nullptr);
  CHECK(code->value == "203");
  const Header* length = find_header(r.headers, "Content-Length");
  REQUIRE(length != nullptr);
  CHECK(length->value == std::to_string(body.size()));
  CHECK(length->value == std::to_string(r.body.size()));
  const Header* type = find_header(r.headers, "Content-Type");
  REQUIRE(type != nullptr);
  CHECK(type->value.rfind("text/plain", 0) == 0);
  const Header* connection = find_header(r.headers, "Connection");
  REQUIRE(connection != nullptr);
  CHECK(connection->value == "keep-alive");
  CHECK(find_header(r.headers, "Retry-After") == nullptr);
  CHECK(count_header(r.headers, "Connection") == 1);
  CHECK(count_header(r.headers, "Content-Length") == 1);
  CHECK(find_header(r.headers, "Transfer-Encoding") == nullptr);

  r = parse_response(error_response(e, true, 2));
  CHECK(find_header(r.headers, "Connection")->value == "close");
  REQUIRE(find_header(r.headers, "Retry-After") != nullptr);
  CHECK(find_header(r.headers, "Retry-After")->value == "2");
  CHECK(count_header(r.headers, "Connection") == 1);

  CHECK(find_header(parse_response(error_response(e, true, 0)).headers, "Retry-After") == nullptr);
  CHECK(find_header(parse_response(error_response(e, true, -1)).headers, "Retry-After") ==
        nullptr);

  // Other statuses get their own reason phrase.
  r = parse_response(error_response(ChError(504, kTimeoutExceeded, "slow"), true));
  CHECK(r.status_line == "HTTP/1.1 504 Gateway Timeout");
  CHECK(find_header(r.headers, "X-ClickHouse-Exception-Code")->value == "159");
  r = parse_response(error_response(ChError(431, kLimitExceeded, "big"), true));
  CHECK(r.status_line == "HTTP/1.1 431 Request Header Fields Too Large");

  // A multi-byte message: the length counts bytes.
  ChError utf8(400, kBadRequestParameter, "caf\xC3\xA9");
  r = parse_response(error_response(utf8, false));
  CHECK(find_header(r.headers, "Content-Length")->value == std::to_string(r.body.size()));
  CHECK(r.body == error_body(utf8));
}

TEST_CASE("serialize_head and text_response") {
  CHECK(serialize_head(200, "OK", {}) == "HTTP/1.1 200 OK\r\n\r\n");
  CHECK(serialize_head(502, "Bad Gateway", {{"A", "1"}, {"b", ""}}) ==
        "HTTP/1.1 502 Bad Gateway\r\nA: 1\r\nb: \r\n\r\n");

  CHECK(text_response("Ok.\n", false, false) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: 4\r\n"
        "Connection: keep-alive\r\n\r\nOk.\n");
  // HEAD: the length of the body that GET would send, but no body.
  Parsed r = parse_response(text_response("Ok.\n", true, true));
  CHECK(r.body.empty());
  CHECK(find_header(r.headers, "Content-Length")->value == "4");
  CHECK(find_header(r.headers, "Connection")->value == "close");
}

TEST_CASE("status_reason knows the statuses the sidecar sends") {
  CHECK(std::string(status_reason(200)) == "OK");
  CHECK(std::string(status_reason(400)) == "Bad Request");
  CHECK(std::string(status_reason(408)) == "Request Timeout");
  CHECK(std::string(status_reason(413)) == "Payload Too Large");
  CHECK(std::string(status_reason(414)) == "URI Too Long");
  CHECK(std::string(status_reason(502)) == "Bad Gateway");
  CHECK(std::string(status_reason(503)) == "Service Unavailable");
  CHECK(std::string(status_reason(599)) == "Unknown");
}

TEST_CASE("chunk_header is the size in hex and CRLF") {
  CHECK(chunk_header(0) == "0\r\n");
  CHECK(chunk_header(1) == "1\r\n");
  CHECK(chunk_header(10) == "A\r\n");  // upper case, as ClickHouse writes it
  CHECK(chunk_header(255) == "FF\r\n");
  CHECK(chunk_header(4096) == "1000\r\n");
  CHECK(chunk_header(0xDEADBEEF) == "DEADBEEF\r\n");
  CHECK(chunk_header(SIZE_MAX) == "FFFFFFFFFFFFFFFF\r\n");
  CHECK(kChunkTrailer == "\r\n");
  CHECK(kLastChunk == "0\r\n\r\n");
}

namespace {

ClientLeg leg_of(int http_minor, bool close, uint64_t requests = 1, std::string_view probed = {}) {
  return {http_minor, close, requests, {false, 30'000, probed}};
}

}  // namespace

TEST_CASE("keep_alive_value: --idle-timeout, else the upstream's with max counted down") {
  ClientLeg leg = leg_of(1, false, 3);
  CHECK(keep_alive_value(leg) == "timeout=30");  // nothing from the upstream yet
  CHECK(keep_alive_value(leg, "timeout=10") == "timeout=10");
  CHECK(keep_alive_value(leg, "timeout=10, max=10000") == "timeout=10, max=9997");
  leg.keep_alive.probed = "timeout=3, max=9999";
  CHECK(keep_alive_value(leg) == "timeout=3, max=9997");  // the probe's, when the answer has none
  leg.requests = 20'000;
  CHECK(keep_alive_value(leg) == "timeout=3, max=0");
  leg.keep_alive.idle_timeout_given = true;
  CHECK(keep_alive_value(leg, "timeout=10, max=10000") == "timeout=30");
}

TEST_CASE("forwarded_head keeps the upstream's order and writes the client leg's framing") {
  std::vector<Header> upstream = {{"Date", "Mon, 07 Dec 2026 04:15:45 GMT"},
                                  {"Connection", "Keep-Alive"},
                                  {"Content-Type", "text/tab-separated-values; charset=UTF-8"},
                                  {"X-ClickHouse-Summary", "{}"},
                                  {"Transfer-Encoding", "chunked"},
                                  {"Proxy-Connection", "x"},
                                  {"Keep-Alive", "timeout=10"}};
  ForwardedHead head = forwarded_head(200, "OK", upstream, false, leg_of(1, false));
  CHECK(head.chunked);
  CHECK_FALSE(head.close);
  CHECK(head.bytes ==
        "HTTP/1.1 200 OK\r\n"
        "Date: Mon, 07 Dec 2026 04:15:45 GMT\r\n"
        "Connection: Keep-Alive\r\n"
        "Content-Type: text/tab-separated-values; charset=UTF-8\r\n"
        "X-ClickHouse-Summary: {}\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Keep-Alive: timeout=10\r\n"
        "\r\n");

  SUBCASE("closing: Connection: Close and no Keep-Alive") {
    head = forwarded_head(200, "OK", upstream, false, leg_of(1, true));
    CHECK(head.close);
    Parsed p = parse_response(head.bytes);
    CHECK(find_header(p.headers, "Connection")->value == "Close");
    CHECK(find_header(p.headers, "Keep-Alive") == nullptr);
  }
  SUBCASE("HTTP/1.0 without a length: no chunks, the close ends the body") {
    head = forwarded_head(200, "OK", upstream, false, leg_of(0, false));
    CHECK_FALSE(head.chunked);
    CHECK(head.close);
    Parsed p = parse_response(head.bytes);
    CHECK(p.status_line == "HTTP/1.0 200 OK");
    CHECK(find_header(p.headers, "Transfer-Encoding") == nullptr);
    CHECK(find_header(p.headers, "Connection")->value == "Close");
  }
  SUBCASE("HEAD: the upstream's Transfer-Encoding stays, no body is framed") {
    head = forwarded_head(200, "OK", upstream, true, leg_of(1, false));
    CHECK_FALSE(head.chunked);
    CHECK_FALSE(head.close);
    CHECK(find_header(parse_response(head.bytes).headers, "Transfer-Encoding")->value == "chunked");
  }
}

TEST_CASE("forwarded_head adds the framing the upstream did not write") {
  std::vector<Header> upstream = {{"Content-Length", "3"}, {"Upgrade", "h2c"}};
  ForwardedHead head = forwarded_head(404, "Not Found", upstream, false, leg_of(1, false));
  CHECK_FALSE(head.chunked);
  CHECK_FALSE(head.close);
  CHECK(head.bytes ==
        "HTTP/1.1 404 Not Found\r\n"
        "Content-Length: 3\r\n"
        "Connection: Keep-Alive\r\n"
        "Keep-Alive: timeout=30\r\n"
        "\r\n");
  head = forwarded_head(200, "OK", {}, false, leg_of(1, false));
  CHECK(head.chunked);
  CHECK(head.bytes.find("Transfer-Encoding: chunked\r\nConnection: Keep-Alive\r\n") !=
        std::string::npos);
}

TEST_CASE("append_whole_answer: the batched INSERT's answer, appended") {
  std::string out = "kept";
  append_whole_answer(out, 200, "OK", {{"Content-Type", "text/plain; charset=UTF-8"}}, "",
                      leg_of(1, false, 1, "timeout=3"));
  CHECK(out ==
        "keptHTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Length: 0\r\n"
        "Connection: Keep-Alive\r\n"
        "Keep-Alive: timeout=3\r\n"
        "\r\n");
  out.clear();
  append_whole_answer(out, 500, "Internal Server Error", {{"X-ClickHouse-Exception-Code", "60"}},
                      "Code: 60.\n", leg_of(0, true));
  CHECK(out ==
        "HTTP/1.1 500 Internal Server Error\r\n"
        "X-ClickHouse-Exception-Code: 60\r\n"
        "Content-Length: 10\r\n"
        "Connection: close\r\n"
        "\r\n"
        "Code: 60.\n");
}

TEST_CASE("ping_response rebuilds ClickHouse's /ping answer on the client leg") {
  CHECK(ping_response({}, false, leg_of(1, false)) == text_response("Ok.\n", false, false));
  std::vector<Header> upstream = {{"Date", "Mon, 07 Dec 2026 04:15:45 GMT"},
                                  {"Connection", "Keep-Alive"},
                                  {"Content-Type", "text/html; charset=UTF-8"},
                                  {"Transfer-Encoding", "chunked"},
                                  {"Keep-Alive", "timeout=10"}};
  Parsed p = parse_response(ping_response(upstream, false, leg_of(1, false, 1, "timeout=10")));
  CHECK(p.status_line == "HTTP/1.1 200 OK");
  CHECK(find_header(p.headers, "Keep-Alive")->value == "timeout=10");
  CHECK(find_header(p.headers, "Transfer-Encoding")->value == "chunked");
  CHECK(p.body == "4\r\nOk.\n\r\n0\r\n\r\n");
  // HTTP/1.0 without a length: the body ends with the connection.
  p = parse_response(ping_response(upstream, false, leg_of(0, false, 1, "timeout=10")));
  CHECK(p.status_line == "HTTP/1.0 200 OK");
  CHECK(find_header(p.headers, "Connection")->value == "Close");
  CHECK(find_header(p.headers, "Keep-Alive") == nullptr);
  CHECK(find_header(p.headers, "Transfer-Encoding") == nullptr);
  CHECK(p.body == "Ok.\n");
  // HEAD: the head alone.
  p = parse_response(ping_response(upstream, true, leg_of(1, false, 1, "timeout=10")));
  CHECK(p.body.empty());
}
