#include "batch_target.h"

#include "http_response.h"

namespace chsidecar {

BatchResult error_result(const ChError& error, int retry_after_s) {
  BatchResult result{error.http_status,
                     status_reason(error.http_status),
                     {{"Content-Type", "text/plain; charset=UTF-8"},
                      {"X-ClickHouse-Exception-Code", std::to_string(error.code.number)}},
                     error_body(error)};
  if (retry_after_s > 0) result.headers.push_back({"Retry-After", std::to_string(retry_after_s)});
  return result;
}

}  // namespace chsidecar
