// Unit tests for head_scanner.h: refusing request heads a server behind the
// proxy might read differently.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "head_scanner.h"

using namespace chsidecar;

namespace {

using R = HeadScanner::Result;

struct Fed {
  R result = R::kMore;
  size_t used = 0;
  const char* problem = nullptr;
};

Fed feed(HeadScanner& scanner, std::string_view data) {
  Fed f;
  f.result = scanner.feed(data, f.used, f.problem);
  return f;
}

Fed feed_all(std::string_view data) {
  HeadScanner scanner;
  return feed(scanner, data);
}

const std::vector<std::string> kGood = {
    "GET / HTTP/1.1\r\n\r\n",
    "GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "POST /?query=INSERT%20INTO%20t%20FORMAT%20CSV HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
    "X-ClickHouse-User: default\r\nAccept:  two  spaces\t\r\nEmpty:\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",  // leading empty lines are skipped
    "\r\nPOST / HTTP/1.0\r\nA:b\r\n\r\n",
};

}  // namespace

TEST_CASE("HeadScanner accepts normal heads and stops at the blank line") {
  for (const std::string& head : kGood) {
    CAPTURE(head);
    Fed f = feed_all(head + "1,2\n");
    CHECK(f.result == R::kDone);
    CHECK(f.used == head.size());

    f = feed_all(head);
    CHECK(f.result == R::kDone);
    CHECK(f.used == head.size());
  }
  // A body that would be refused as a head is never looked at.
  Fed f = feed_all("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n\n :x  \n\r\n");
  CHECK(f.result == R::kDone);
  CHECK(f.used == 38);
}

TEST_CASE("HeadScanner: an incomplete head needs more") {
  HeadScanner scanner;
  Fed f = feed(scanner, "GET / HTTP/1.1\r\nHost: x\r\n");
  CHECK(f.result == R::kMore);
  CHECK(f.used == 25);
  CHECK_FALSE(scanner.done());
  f = feed(scanner, "\r");
  CHECK(f.result == R::kMore);
  f = feed(scanner, "\nbody");
  CHECK(f.result == R::kDone);
  CHECK(f.used == 1);
  CHECK(scanner.done());
  // Once done, nothing more is read until reset.
  f = feed(scanner, "\n\n\n");
  CHECK(f.result == R::kDone);
  CHECK(f.used == 0);
  scanner.reset();
  CHECK_FALSE(scanner.done());
  f = feed(scanner, "GET / HTTP/1.1\r\n\r\n");
  CHECK(f.result == R::kDone);
  CHECK(f.used == 18);

  CHECK(feed_all("").result == R::kMore);
  CHECK(feed_all("\r\n\r\n\r\n").result == R::kMore);  // only empty lines so far
}

TEST_CASE("HeadScanner gives the same answer however the head is split") {
  for (const std::string& head : kGood) {
    std::string data = head + "BODY\n";
    for (size_t cut = 0; cut <= head.size(); ++cut) {
      CAPTURE(head);
      CAPTURE(cut);
      HeadScanner scanner;
      Fed a = feed(scanner, std::string_view(data).substr(0, cut));
      if (cut < head.size()) {
        REQUIRE(a.result == R::kMore);
        CHECK(a.used == cut);
        Fed b = feed(scanner, std::string_view(data).substr(cut));
        CHECK(b.result == R::kDone);
        CHECK(b.used == head.size() - cut);
      } else {
        CHECK(a.result == R::kDone);
        CHECK(a.used == head.size());
      }
    }
    // One byte at a time.
    HeadScanner scanner;
    size_t total = 0;
    Fed f;
    for (char c : data) {
      f = feed(scanner, std::string_view(&c, 1));
      total += f.used;
      if (f.result != R::kMore) break;
    }
    CHECK(f.result == R::kDone);
    CHECK(total == head.size());
  }
}

TEST_CASE("HeadScanner refuses what a server might read differently") {
  const std::vector<std::string> bad = {
      "GET / HTTP/1.1\nHost: x\r\n\r\n",              // bare LF after the request line
      "GET / HTTP/1.1\r\nHost: x\n\r\n",              // bare LF after a header
      "GET / HTTP/1.1\r\nHost: x\r\n\n",              // a bare LF as the blank line
      "\nGET / HTTP/1.1\r\n\r\n",                     // a bare LF before the request line
      "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",         // obs-fold with a space
      "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",        // obs-fold with a tab
      "GET / HTTP/1.1\r\n Host: x\r\n\r\n",           // a first header line folded
      "GET / HTTP/1.1\r\n: v\r\n\r\n",                // an empty header name
      "GET / HTTP/1.1\r\nHost: x\r\n:\r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n",                      // two spaces in the request line
      "GET /  HTTP/1.1\r\n\r\n",
  };
  for (const std::string& head : bad) {
    CAPTURE(head);
    Fed f = feed_all(head);
    CHECK(f.result == R::kBad);
    REQUIRE(f.problem != nullptr);
    CHECK(std::string(f.problem).size() > 0);
    // Also when the bytes come one at a time.
    HeadScanner scanner;
    R result = R::kMore;
    for (char c : head) {
      result = feed(scanner, std::string_view(&c, 1)).result;
      if (result != R::kMore) break;
    }
    CHECK(result == R::kBad);
  }
  CHECK(std::string(feed_all("GET / HTTP/1.1\nX: y\r\n\r\n").problem).find("LF") != std::string::npos);
  CHECK(std::string(feed_all("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n").problem).find("fold") != std::string::npos);
  CHECK(std::string(feed_all("GET / HTTP/1.1\r\n: v\r\n\r\n").problem).find("name") != std::string::npos);
  CHECK(std::string(feed_all("GET  / HTTP/1.1\r\n\r\n").problem).find("space") != std::string::npos);

  // Runs of spaces in a header value are fine, and the double space is
  // caught even when it is split between two feeds.
  CHECK(feed_all("GET / HTTP/1.1\r\nA: b  c\r\n\r\n").result == R::kDone);
  HeadScanner scanner;
  CHECK(feed(scanner, "GET ").result == R::kMore);
  CHECK(feed(scanner, " / HTTP/1.1\r\n\r\n").result == R::kBad);
}
