// Reading ClickHouse's error answers: the code, and what to do about it.
//
// ClickHouse's HTTP status says little (most errors are 500), so errors are
// classified by the `Code: N` at the start of the body, or by the
// X-ClickHouse-Exception-Code header of modern servers. Pure.
#pragma once

#include <string_view>
#include <vector>

#include "http_headers.h"

namespace chsidecar {

enum class ErrorClass {
  kTransient,  // the same bytes may succeed later: retry with backoff
  kData,       // maybe one request's rows: isolate them (bisection)
  kPermanent,  // the request is wrong as a whole (table, auth): fail it as it is
};

// The exception code of an error answer; 0 when none is found.
int exception_code(std::string_view body, const std::vector<Header>& headers);

ErrorClass classify_error(int code);

}  // namespace chsidecar
