#include "http_headers.h"

namespace chsidecar {

// ASCII only, as HTTP and ClickHouse compare names (the "C" locale's
// tolower, without a call per byte).
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}

const Header* find_header(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return &h;
  return nullptr;
}

bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view kHop[] = {
      "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "TE",
      "Trailer",    "Transfer-Encoding", "Upgrade", "Expect"};
  for (std::string_view h : kHop)
    if (iequals(h, name)) return true;
  return false;
}

}  // namespace chsidecar
