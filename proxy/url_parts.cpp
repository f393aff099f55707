#include "url_parts.h"

#include <algorithm>

namespace chsidecar {

UrlParts split_url(std::string_view url, std::string_view authority_ends) {
  UrlParts parts;
  std::string_view authority = url;
  if (size_t scheme = url.find("://"); scheme != std::string_view::npos) {
    parts.scheme = url.substr(0, scheme);
    authority = url.substr(scheme + 3);
  }
  size_t end = std::min(authority.find_first_of(authority_ends), authority.size());
  parts.rest = authority.substr(end);
  authority = authority.substr(0, end);
  // The last '@': a password's unencoded '@' stays in the userinfo.
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    parts.userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
  }
  parts.host_port = authority;
  return parts;
}

}  // namespace chsidecar
