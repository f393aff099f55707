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
    // Also the server's own state: disk full (243, and 75 when a write hits
    // ENOSPC), its files (74, 76, 77, 107), no ZooKeeper, cancelled, aborted,
    // allocation failed, system errors.
    case 3: case 74: case 75: case 76: case 77: case 107: case 159: case 173: case 202:
    case 203: case 209: case 210: case 225: case 236: case 241: case 242: case 243: case 252:
    case 285: case 319: case 394: case 425: case 999: case 1000: case 1001: case 1002:
      return ErrorClass::kTransient;
    // About the request as a whole, the same for every request of a batch
    // (they share table, columns, settings and credentials): unknown table,
    // database, column or setting, read-only, access, quota, not supported.
    case 16: case 48: case 60: case 81: case 115: case 164: case 192: case 193: case 194:
    case 195: case 201: case 291: case 497: case 516:
      return ErrorClass::kPermanent;
    // Anything else may come from one row: a value that does not parse or fit
    // (6, 26, 27, 117...), an unknown Enum element (49 on 18.16), an
    // identifier or function in a Values row (47, 46). Splitting the batch
    // finds out; a request that fails alone gets the error.
    default:
      return ErrorClass::kData;
  }
}

}  // namespace chsidecar
