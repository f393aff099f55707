// Header fields: the vocabulary every HTTP-speaking file shares.
//
// A Header is one field as it came or as it goes, name and value copied
// (the value without trailing blanks). Lookups are case-insensitive, as
// field names are (RFC 9110 §5.1). Pure functions, no I/O; used by the
// request parser, the answer serialiser, the upstream pool and the batcher,
// so this header pulls in nothing of them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chsidecar {

struct Header {
  std::string name;
  std::string value;
};

// ASCII case-insensitive comparison.
bool iequals(std::string_view a, std::string_view b);

// The first field named `name` (case-insensitive); nullptr when absent. The
// pointer is into `headers`: valid while it is not modified.
const Header* find_header(const std::vector<Header>& headers, std::string_view name);

// True for fields that describe one hop, not the message (RFC 9110 §7.6.1),
// and Expect: a proxy neither forwards them nor passes them back.
bool is_hop_by_hop(std::string_view name);

}  // namespace chsidecar
