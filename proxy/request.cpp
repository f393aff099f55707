#include "request.h"

#include <algorithm>
#include <cctype>

namespace chsidecar {

Target split_target(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string url_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::vector<QueryParam> parse_query(std::string_view query) {
  std::vector<QueryParam> params;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(pos, amp - pos);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      QueryParam p;
      p.name = url_decode(pair.substr(0, eq));
      if (eq != std::string_view::npos) p.value = url_decode(pair.substr(eq + 1));
      p.raw_begin = pos;
      p.raw_end = amp;
      params.push_back(std::move(p));
    }
    pos = amp + 1;
  }
  return params;
}

std::string remove_params(std::string_view query, const std::vector<QueryParam>& params,
                          const std::vector<std::string_view>& names) {
  std::string out;
  size_t copied_to = 0;
  for (const QueryParam& p : params) {
    if (std::find(names.begin(), names.end(), p.name) == names.end()) continue;
    out.append(query.substr(copied_to, p.raw_begin - copied_to));
    if (p.raw_end < query.size()) {
      copied_to = p.raw_end + 1;  // drop the '&' after the pair too
    } else {
      copied_to = p.raw_end;  // the last pair: drop the '&' before it instead
      if (!out.empty() && out.back() == '&') out.pop_back();
    }
  }
  out.append(query.substr(copied_to));
  return out;
}

const QueryParam* find_param(const std::vector<QueryParam>& params, std::string_view name) {
  for (const QueryParam& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

const QueryParam* find_setting(const std::vector<QueryParam>& params, std::string_view name) {
  const QueryParam* found = nullptr;
  for (const QueryParam& p : params)
    if (p.name == name) found = &p;
  return found;
}

bool has_repeated_param(const std::vector<QueryParam>& params) {
  for (size_t i = 0; i < params.size(); ++i)
    for (size_t j = i + 1; j < params.size(); ++j)
      if (params[i].name == params[j].name) return true;
  return false;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') {
      ++padding;
      continue;
    } else return std::nullopt;
    if (padding) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // One sextet left over (length 1 mod 4) cannot encode a byte.
  if (padding > 2 || bits >= 6) return std::nullopt;
  return out;
}

std::string request_user(const std::vector<QueryParam>& params,
                         const std::vector<Header>& headers) {
  if (const QueryParam* p = find_param(params, "user")) return p->value;
  if (const Header* h = find_header(headers, "X-ClickHouse-User")) return h->value;
  if (const Header* h = find_header(headers, "Authorization")) {
    std::string_view v = h->value;
    if (v.size() > 6 && iequals(v.substr(0, 6), "Basic ")) {
      if (auto decoded = base64_decode(v.substr(6))) return decoded->substr(0, decoded->find(':'));
    }
  }
  return "default";
}

}  // namespace chsidecar
