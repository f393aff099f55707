// The vocabulary shared by the batcher, the routing and the spool: how a
// merge key's batches are sent (BatchTarget), ClickHouse's answer for one
// request's rows (BatchResult), and how a waiting request hears it
// (BatchWaiter, through a BatchTicket). Plain data; no I/O.
#pragma once

#include <string>
#include <vector>

#include "http_headers.h"
#include "result.h"
#include "rows.h"

namespace chsidecar {

// ClickHouse's answer for one request's rows.
struct BatchResult {
  int status = 200;
  std::string reason = "OK";
  std::vector<Header> headers;  // end-to-end headers of the answer (no Content-Length)
  std::string body;             // empty on success, the error text otherwise
};

// A request whose rows wait in a batch.
class BatchWaiter {
 public:
  virtual void batch_done(const BatchResult& result) = 0;

 protected:
  ~BatchWaiter() = default;
};

// Shared between a waiting request and the batch holding its rows; the
// request clears `waiter` when it goes away (its rows are still inserted).
struct BatchTicket {
  BatchWaiter* waiter = nullptr;
};

// How a merge key's batches are sent; identical for every request of a key.
struct BatchTarget {
  std::string key;
  std::string table;            // for logs
  std::string upstream_target;  // path and query string, with query=INSERT ...
  std::vector<Header> headers;  // credential and database headers
  RowFormat format = RowFormat::kJSONEachRow;
  std::string header_lines;     // *WithNames header, sent once per batch
  // RowBinary walked by the table's learnt columns: their cache key
  // (table_structure.h), asked again when a batch fails on them; else empty.
  std::string structure_key;
};

// An error answer in ClickHouse's format, with X-ClickHouse-Exception-Code
// (and Retry-After when `retry_after_s` > 0).
BatchResult error_result(const ChError& error, int retry_after_s = 0);

}  // namespace chsidecar
