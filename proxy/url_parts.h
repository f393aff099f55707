// A URL split where its authority starts and ends, for the upstream base
// URLs: scheme "://" [userinfo "@"] host_port rest, each piece a view into
// the URL. Pure; no decoding and no checks (config.cpp checks).
#pragma once

#include <optional>
#include <string_view>

namespace chsidecar {

struct UrlParts {
  std::optional<std::string_view> scheme;    // before the first "://"; none without one
  std::optional<std::string_view> userinfo;  // before the authority's last '@'; none without '@'
  std::string_view host_port;                // the rest of the authority, e.g. "[::1]:8123"
  std::string_view rest;                     // from the authority's end on; "" if it has none
};

// The authority runs from after the first "://" (or from the start) to the
// first of `authority_ends`: "/?#" as in RFC 3986 §3.2, or just "/" for a
// caller that splits only at the path.
UrlParts split_url(std::string_view url, std::string_view authority_ends = "/?#");

}  // namespace chsidecar
