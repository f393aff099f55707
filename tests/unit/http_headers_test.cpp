// Unit tests for http_headers.h: case-insensitive lookup, hop-by-hop fields.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http_headers.h"

using namespace chsidecar;

TEST_CASE("find_header and iequals ignore ASCII case") {
  std::vector<Header> headers = {{"Content-Type", "text/plain"},
                                 {"x-clickhouse-user", "alice"},
                                 {"X-ClickHouse-User", "bob"}};
  const Header* h = find_header(headers, "content-type");
  REQUIRE(h != nullptr);
  CHECK(h->value == "text/plain");
  h = find_header(headers, "X-CLICKHOUSE-USER");
  REQUIRE(h != nullptr);
  CHECK(h->value == "alice");  // the first one
  CHECK(find_header(headers, "Content-Typ") == nullptr);
  CHECK(find_header(headers, "Content-Type ") == nullptr);
  CHECK(find_header({}, "Host") == nullptr);

  CHECK(iequals("", ""));
  CHECK(iequals("Keep-Alive", "kEEP-aLIVE"));
  CHECK_FALSE(iequals("abc", "abd"));
  CHECK_FALSE(iequals("abc", "ab"));
  CHECK_FALSE(iequals("a-b", "a_b"));
}

TEST_CASE("is_hop_by_hop") {
  for (const char* name : {"Connection", "connection", "KEEP-ALIVE", "Keep-Alive", "Proxy-Connection",
                           "TE", "te", "Trailer", "Transfer-Encoding", "transfer-encoding",
                           "Upgrade"}) {
    CAPTURE(name);
    CHECK(is_hop_by_hop(name));
  }
  for (const char* name : {"Content-Length", "Content-Type", "Content-Encoding", "Host",
                           "X-ClickHouse-Summary", "X-ClickHouse-Exception-Code", "Date", "",
                           "Connection2", "Trailers", "T"}) {
    CAPTURE(name);
    CHECK_FALSE(is_hop_by_hop(name));
  }
}
