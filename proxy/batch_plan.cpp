#include "batch_plan.h"

namespace chsidecar {

std::string plan_key(std::string_view target, const std::vector<Header>& headers) {
  std::string key(target);
  auto add = [&](const char* name) {
    key.push_back('\0');
    if (const Header* h = find_header(headers, name)) {
      key.push_back('=');  // present, even if empty
      key.append(h->value);
    }
  };
  for (const char* name : kBatchKeyHeaders) add(name);
  add("Content-Encoding");
  return key;
}

}  // namespace chsidecar
