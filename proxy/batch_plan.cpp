#include "batch_plan.h"

namespace chsidecar {

namespace {

// Read by the routing besides the key headers: the body's encoding, and
// its type (a multipart body is never batched).
constexpr const char* kRoutingHeaders[] = {"Content-Encoding", "Content-Type"};

// Calls add(part) for each piece of the key, in order.
template <class Add>
void key_parts(std::string_view target, const std::vector<Header>& headers, Add add) {
  add(target);
  auto header = [&](const char* name) {
    add(std::string_view("\0", 1));
    for (const Header& h : headers) {  // every occurrence: a repeated one is not batched
      if (!iequals(h.name, name)) continue;
      add("=");  // present, even if empty
      add(h.value);
    }
  };
  for (const char* name : kBatchKeyHeaders) header(name);
  for (const char* name : kRoutingHeaders) header(name);
}

}  // namespace

std::string plan_key(std::string_view target, const std::vector<Header>& headers) {
  std::string key;
  key_parts(target, headers, [&key](std::string_view part) { key.append(part); });
  return key;
}

bool plan_key_matches(std::string_view key, std::string_view target,
                      const std::vector<Header>& headers) {
  bool same = true;
  key_parts(target, headers, [&](std::string_view part) {
    same = same && key.substr(0, part.size()) == part;
    if (same) key.remove_prefix(part.size());
  });
  return same && key.empty();
}

}  // namespace chsidecar
