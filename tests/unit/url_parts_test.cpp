// Unit tests for url_parts.h: where a URL's authority starts and ends, and
// that the pieces are the URL again.
#include <doctest/doctest.h>

#include <string>

#include "url_parts.h"

using namespace chsidecar;

TEST_CASE("split_url gives scheme, userinfo, host and port, rest") {
  UrlParts p = split_url("http://alice:secret@ch.example:8123/base/path");
  CHECK(p.scheme == "http");
  CHECK(p.userinfo == "alice:secret");
  CHECK(p.host_port == "ch.example:8123");
  CHECK(p.rest == "/base/path");

  p = split_url("https://[::1]:8443");
  CHECK(p.scheme == "https");
  CHECK_FALSE(p.userinfo.has_value());
  CHECK(p.host_port == "[::1]:8443");
  CHECK(p.rest == "");
}

TEST_CASE("split_url tells an empty userinfo from none") {
  CHECK(split_url("http://@h:8123").userinfo == "");
  CHECK(split_url("http://:@h").userinfo == ":");
  CHECK_FALSE(split_url("http://h:8123").userinfo.has_value());
}

TEST_CASE("split_url takes the authority's last '@', never one after it") {
  UrlParts p = split_url("http://alice:p@ss@h:8123/x");
  CHECK(p.userinfo == "alice:p@ss");
  CHECK(p.host_port == "h:8123");
  p = split_url("http://h:8123/a@b");
  CHECK_FALSE(p.userinfo.has_value());
  CHECK(p.host_port == "h:8123");
  CHECK(p.rest == "/a@b");
}

TEST_CASE("split_url without a scheme starts the authority at the start") {
  UrlParts p = split_url("alice:secret@h:8123");
  CHECK_FALSE(p.scheme.has_value());
  CHECK(p.userinfo == "alice:secret");
  CHECK(p.host_port == "h:8123");
  CHECK(split_url("").host_port == "");
  CHECK(split_url("://h").scheme == "");
}

TEST_CASE("split_url ends the authority at the first of the characters given") {
  UrlParts p = split_url("http://h:8123?user=a@b");
  CHECK(p.host_port == "h:8123");
  CHECK(p.rest == "?user=a@b");
  CHECK(split_url("http://h#f").rest == "#f");
  p = split_url("http://h:8123?user=a@b", "/");
  CHECK(p.userinfo == "h:8123?user=a");
  CHECK(p.host_port == "b");
  CHECK(p.rest == "");
}

TEST_CASE("split_url's pieces are views that make up the URL") {
  for (const char* url : {"http://u:p@h:1/p?q#f", "https://[::1]:8123/", "u@h", "", "h/a://b@c",
                          "http://@h", "://", "http://h?x@y/z"}) {
    CAPTURE(url);
    std::string_view s = url;
    UrlParts p = split_url(s);
    std::string again = (p.scheme ? std::string(*p.scheme) + "://" : "") +
                        (p.userinfo ? std::string(*p.userinfo) + "@" : "") +
                        std::string(p.host_port) + std::string(p.rest);
    CHECK(again == s);
    CHECK(p.rest.data() + p.rest.size() == s.data() + s.size());
  }
}
