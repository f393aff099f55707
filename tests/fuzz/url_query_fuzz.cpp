// Fuzz target: the request target and credentials (request.h).
//
// The input is a request target. Checks that split_target, parse_query,
// url_decode, remove_params, base64_decode and request_user neither crash
// nor break their contracts: parameter spans lie inside the query,
// url_decode inverts url_encode, base64_decode inverts an encoder, and
// removing the session parameters leaves exactly the other parameters, in
// order and byte for byte. Also feeds the input to exception_code as an
// error body (ch_errors.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ch_errors.h"
#include "fuzz_check.h"
#include "request.h"

using namespace chsidecar;

namespace {

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  Target target = split_target(input);
  FUZZ_CHECK(target.path.data() == input.data());
  FUZZ_CHECK(target.path.size() + target.query.size() <= input.size());

  std::vector<QueryParam> params = parse_query(target.query);
  size_t previous_end = 0;
  for (const QueryParam& p : params) {
    FUZZ_CHECK(p.raw_begin < p.raw_end);
    FUZZ_CHECK(p.raw_end <= target.query.size());
    FUZZ_CHECK(p.raw_begin >= previous_end);
    previous_end = p.raw_end;
    FUZZ_CHECK(p.name.size() + p.value.size() <= p.raw_end - p.raw_begin);
  }

  // Removing the session parameters keeps every other pair, in order.
  std::vector<std::string_view> names = kSessionParams;
  if (!params.empty()) names.push_back(params.front().name);
  std::string rest = remove_params(target.query, params, names);
  std::vector<QueryParam> kept = parse_query(rest);
  std::vector<const QueryParam*> expected;
  for (const QueryParam& p : params) {
    bool removed = false;
    for (std::string_view n : names) removed |= p.name == n;
    if (!removed) expected.push_back(&p);
  }
  FUZZ_CHECK(kept.size() == expected.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    FUZZ_CHECK(kept[i].name == expected[i]->name);
    FUZZ_CHECK(kept[i].value == expected[i]->value);
    // Kept pairs are copied byte for byte.
    FUZZ_CHECK(rest.substr(kept[i].raw_begin, kept[i].raw_end - kept[i].raw_begin) ==
               target.query.substr(expected[i]->raw_begin,
                                   expected[i]->raw_end - expected[i]->raw_begin));
  }

  // url_decode inverts url_encode for any bytes.
  FUZZ_CHECK(url_decode(url_encode(input)) == input);
  std::string decoded = url_decode(input);
  FUZZ_CHECK(decoded.size() <= input.size());

  // base64.
  if (auto b = base64_decode(input)) FUZZ_CHECK(b->size() <= input.size());
  auto round = base64_decode(base64_encode(input));
  FUZZ_CHECK(round.has_value() && *round == input);

  // Credentials from headers made of the query's pairs.
  std::vector<Header> headers;
  for (const QueryParam& p : params) headers.push_back({p.name, p.value});
  headers.push_back({"Authorization", "Basic " + std::string(target.query)});
  std::string user = request_user(params, headers);
  std::vector<QueryParam> no_params;
  std::string user2 = request_user(no_params, headers);
  (void)user;
  (void)user2;
  (void)find_header(headers, target.path);
  (void)find_param(params, target.path);

  (void)exception_code(input, headers);
  return 0;
}
