#include "ch_errors.h"

#include <charconv>

namespace chsidecar {

int exception_code(std::string_view body, const std::vector<Header>& headers) {
  int code = 0;
  if (const Header* h = find_header(headers, "X-ClickHouse-Exception-Code")) {
    std::from_chars(h->value.data(), h->value.data() + h->value.size(), code);
    if (code != 0) return code;
  }
  while (!body.empty() && (body.front() == ' ' || body.front() == '\n')) body.remove_prefix(1);
  if (body.substr(0, 6) != "Code: ") return 0;
  body.remove_prefix(6);
  std::from_chars(body.data(), body.data() + body.size(), code);
  return code;
}

ErrorClass classify_error(int code) {
  switch (code) {
    // Timeouts, overload, network, memory, too many parts, unknown insert status.
    case 3: case 159: case 202: case 203: case 209: case 210: case 241: case 242: case 252:
    case 285: case 319: case 425: case 999: case 1002:
      return ErrorClass::kTransient;
    // Values that do not parse or do not fit their column.
    case 6: case 26: case 27: case 32: case 33: case 38: case 41: case 53: case 69: case 70:
    case 72: case 117: case 130: case 131:
      return ErrorClass::kData;
    default:
      return ErrorClass::kPermanent;
  }
}

}  // namespace chsidecar
