// Unit tests for request.h: target splitting, query strings, users.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "request.h"

using namespace chsidecar;

namespace {

// Applies remove_params the way the exchange does: parse, then remove.
std::string strip(std::string_view query, const std::vector<std::string_view>& names = kSessionParams) {
  return remove_params(query, parse_query(query), names);
}

}  // namespace

TEST_CASE("split_target separates path and query at the first '?'") {
  Target t = split_target("/?query=SELECT%201");
  CHECK(t.path == "/");
  CHECK(t.query == "query=SELECT%201");

  t = split_target("/ping");
  CHECK(t.path == "/ping");
  CHECK(t.query.empty());

  t = split_target("/x?");
  CHECK(t.path == "/x");
  CHECK(t.query.empty());

  // A second '?' belongs to the query.
  t = split_target("/?query=SELECT+'?'&a=1");
  CHECK(t.path == "/");
  CHECK(t.query == "query=SELECT+'?'&a=1");

  // The parts are views into the caller's target.
  std::string target = "/replicas_status?verbose=1";
  t = split_target(target);
  CHECK(t.path.data() == target.data());
  CHECK(t.query.data() == target.data() + 17);
}

TEST_CASE("url_decode decodes %XX and '+' and keeps malformed escapes") {
  CHECK(url_decode("") == "");
  CHECK(url_decode("plain") == "plain");
  CHECK(url_decode("SELECT+1") == "SELECT 1");
  CHECK(url_decode("SELECT%201") == "SELECT 1");
  CHECK(url_decode("%2b") == "+");
  CHECK(url_decode("%2B%2b") == "++");
  CHECK(url_decode("a%3Db%26c") == "a=b&c");
  CHECK(url_decode("%41") == "A");      // escape at the very end
  CHECK(url_decode("x%41") == "xA");
  CHECK(url_decode("%C3%A9") == "\xC3\xA9");
  CHECK(url_decode("%00") == std::string(1, '\0'));
  CHECK(url_decode("%FF") == std::string(1, '\xFF'));

  // Malformed escapes are kept literally.
  CHECK(url_decode("%") == "%");
  CHECK(url_decode("%4") == "%4");
  CHECK(url_decode("a%4") == "a%4");
  CHECK(url_decode("%G1") == "%G1");
  CHECK(url_decode("%1G") == "%1G");
  CHECK(url_decode("100%") == "100%");
  CHECK(url_decode("%%41") == "%A");
  CHECK(url_decode("%+1") == "% 1");  // the '+' after a bad escape still decodes
}

TEST_CASE("parse_query yields decoded pairs with their raw spans") {
  std::string_view q = "query=SELECT+1&session_id=abc&x=%41";
  auto params = parse_query(q);
  REQUIRE(params.size() == 3);
  CHECK(params[0].name == "query");
  CHECK(params[0].value == "SELECT 1");
  CHECK(q.substr(params[0].raw_begin, params[0].raw_end - params[0].raw_begin) ==
        "query=SELECT+1");
  CHECK(params[1].name == "session_id");
  CHECK(params[1].value == "abc");
  CHECK(params[1].raw_begin == 15);
  CHECK(params[1].raw_end == 29);
  CHECK(params[2].name == "x");
  CHECK(params[2].value == "A");
  CHECK(params[2].raw_end == q.size());
}

TEST_CASE("parse_query handles empty pairs, missing '=', and repeats") {
  CHECK(parse_query("").empty());
  CHECK(parse_query("&").empty());
  CHECK(parse_query("&&&").empty());

  std::string_view q = "&a=1&&b&c=&=v&";
  auto params = parse_query(q);
  REQUIRE(params.size() == 4);
  CHECK(params[0].name == "a");
  CHECK(params[0].value == "1");
  CHECK(params[0].raw_begin == 1);
  CHECK(params[0].raw_end == 4);
  CHECK(params[1].name == "b");  // no '=': empty value
  CHECK(params[1].value == "");
  CHECK(q.substr(params[1].raw_begin, params[1].raw_end - params[1].raw_begin) == "b");
  CHECK(params[2].name == "c");
  CHECK(params[2].value == "");
  CHECK(params[3].name == "");
  CHECK(params[3].value == "v");

  // Only the first '=' splits; the rest belong to the value.
  params = parse_query("query=SELECT+1%3D1+WHERE+a=b");
  REQUIRE(params.size() == 1);
  CHECK(params[0].value == "SELECT 1=1 WHERE a=b");

  // Encoded names are decoded; repeated names are all kept, in order.
  params = parse_query("session%5Fid=1&a+b=2&session_id=3");
  REQUIRE(params.size() == 3);
  CHECK(params[0].name == "session_id");
  CHECK(params[1].name == "a b");
  CHECK(params[2].name == "session_id");
  CHECK(params[2].value == "3");
}

TEST_CASE("remove_params drops session parameters wherever they are") {
  // first, middle, last
  CHECK(strip("session_id=s&query=SELECT+1") == "query=SELECT+1");
  CHECK(strip("query=SELECT+1&session_id=s&database=db") == "query=SELECT+1&database=db");
  CHECK(strip("query=SELECT+1&session_id=s") == "query=SELECT+1");
  // all of them, in any order, including repeats
  CHECK(strip("session_check=1&query=q&session_timeout=60&session_id=s&session_id=t") ==
        "query=q");
  // every pair removed
  CHECK(strip("session_id=s") == "");
  CHECK(strip("session_id=s&session_timeout=60&session_check=0") == "");
  // nothing to remove
  CHECK(strip("") == "");
  CHECK(strip("query=SELECT+1") == "query=SELECT+1");
  // names compare decoded: an encoded name is still the session parameter
  CHECK(strip("session%5Fid=s&query=q") == "query=q");
  // only exact names: prefixes and look-alikes stay
  CHECK(strip("session_id_x=1&xsession_id=2&session=3") == "session_id_x=1&xsession_id=2&session=3");
  // a pair without '=' is removed too
  CHECK(strip("a=1&session_check&b=2") == "a=1&b=2");
  // custom names
  CHECK(strip("a=1&b=2&c=3", {"b"}) == "a=1&c=3");
  CHECK(strip("a=1&b=2&c=3", {}) == "a=1&b=2&c=3");
}

TEST_CASE("remove_params keeps the other parameters byte for byte") {
  // Odd but legal encodings must reach ClickHouse exactly as the client sent
  // them: lower-case escapes, encoded '=' and '&', '+', malformed escapes,
  // raw UTF-8, encoded reserved characters.
  std::string_view odd =
      "query=SELECT%20%27a%3db%26c%27%2c+1&param_x=%zz%4&param_y=caf\xC3\xA9&"
      "param_z=%e2%82%ac&default_format=JSONEachRow";
  std::string q = std::string("session_id=s&") + std::string(odd);
  CHECK(strip(q) == odd);
  q = std::string(odd) + "&session_timeout=30";
  CHECK(strip(q) == odd);

  std::string middle = "query=SELECT+%271%27&session_id=a%20b&param_p=%7B%7D&session_check=1&x=%2";
  CHECK(strip(middle) == "query=SELECT+%271%27&param_p=%7B%7D&x=%2");

  // Empty pairs between other parameters are not the sidecar's to clean up.
  CHECK(strip("a=1&&b=2&session_id=s&c=3") == "a=1&&b=2&c=3");
}

TEST_CASE("remove_params leaves a query with nothing to remove untouched") {
  // The contract: the query string is kept byte for byte except where a
  // parameter is removed on purpose.
  CHECK(strip("query=SELECT+1&") == "query=SELECT+1&");
  CHECK(strip("a=1&&") == "a=1&&");
  CHECK(strip("&a=1") == "&a=1");
  // Removing the last pair takes its own separator, nothing more.
  CHECK(strip("a=1&&session_id=s") == "a=1&");
  CHECK(strip("a=1&session_id=s&") == "a=1&");
}

TEST_CASE("find_param takes the first pair, find_setting the last, as ClickHouse does") {
  auto params = parse_query("user=a&x=1&user=b&user%3D=c");
  const QueryParam* p = find_param(params, "user");
  REQUIRE(p != nullptr);
  CHECK(p->value == "a");
  CHECK(p == &params[0]);
  CHECK(find_setting(params, "user") == &params[2]);
  CHECK(has_repeated_param(params));
  CHECK_FALSE(has_repeated_param(parse_query("user=a&x=1&user%3D=c")));
  CHECK(find_param(params, "x")->value == "1");
  CHECK(find_param(params, "USER") == nullptr);  // names are case-sensitive
  CHECK(find_param(params, "missing") == nullptr);
  CHECK(find_param({}, "user") == nullptr);
}

TEST_CASE("base64_decode decodes standard base64 and rejects malformed input") {
  CHECK(base64_decode("") == std::string());
  CHECK(base64_decode("TQ==") == std::string("M"));
  CHECK(base64_decode("TWE=") == std::string("Ma"));
  CHECK(base64_decode("TWFu") == std::string("Man"));
  CHECK(base64_decode("YWxpY2U6c2VjcmV0") == std::string("alice:secret"));
  CHECK(base64_decode("+/+/") == std::string("\xFB\xFF\xBF"));
  CHECK(base64_decode("AAA=") == std::string(2, '\0'));
  // unpadded input is accepted
  CHECK(base64_decode("TWE") == std::string("Ma"));

  CHECK_FALSE(base64_decode("TW-u").has_value());   // URL-safe alphabet is not standard
  CHECK_FALSE(base64_decode("TW_u").has_value());
  CHECK_FALSE(base64_decode("TW u").has_value());
  CHECK_FALSE(base64_decode("TQ==TQ==").has_value());  // data after padding
  CHECK_FALSE(base64_decode("T=Q=").has_value());
  CHECK_FALSE(base64_decode("TQ===").has_value());     // too much padding
  CHECK_FALSE(base64_decode("T").has_value());         // a lone sextet is no byte
  CHECK_FALSE(base64_decode("TWFuT").has_value());
}

TEST_CASE("request_user: URL user, then X-ClickHouse-User, then Basic, else default") {
  const std::vector<QueryParam> none;
  const std::vector<Header> no_headers;
  CHECK(request_user(none, no_headers) == "default");

  // Authorization: Basic alice:secret
  std::vector<Header> basic = {{"Authorization", "Basic YWxpY2U6c2VjcmV0"}};
  CHECK(request_user(none, basic) == "alice");
  CHECK(request_user(none, {{"authorization", "basic YWxpY2U6c2VjcmV0"}}) == "alice");
  // Basic without a colon: the whole decoded text is the user
  CHECK(request_user(none, {{"Authorization", "Basic Ym9i"}}) == "bob");
  // an empty user name stays empty (ClickHouse would reject it, not us)
  CHECK(request_user(none, {{"Authorization", "Basic OnB3"}}) == "");
  // not Basic, or malformed: default
  CHECK(request_user(none, {{"Authorization", "Bearer YWxpY2U6c2VjcmV0"}}) == "default");
  CHECK(request_user(none, {{"Authorization", "Basic !!!"}}) == "default");
  CHECK(request_user(none, {{"Authorization", "Basic "}}) == "default");
  CHECK(request_user(none, {{"Authorization", "Basic"}}) == "default");

  std::vector<Header> both = {{"Authorization", "Basic YWxpY2U6c2VjcmV0"},
                              {"x-clickhouse-user", "carol"},
                              {"X-ClickHouse-Key", "pw"}};
  CHECK(request_user(none, both) == "carol");

  auto params = parse_query("query=SELECT+1&user=dave&password=pw");
  CHECK(request_user(params, both) == "dave");
  CHECK(request_user(params, no_headers) == "dave");
  // the first URL user wins, as in ClickHouse; decoded
  CHECK(request_user(parse_query("user=e%20f&user=a"), no_headers) == "e f");
}
