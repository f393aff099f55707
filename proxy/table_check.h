// Asks ClickHouse, after an INSERT of a batch failed, what that failure may
// have left behind in the table.
//
// ClickHouse writes a block to the table first and then pushes it to each
// dependent (materialized) view; when a view fails, the INSERT answers an
// error but the table's rows are committed. So a failed batch may be
// bisected or retried only when the table has no dependent views, or (for a
// retry of the very same bytes) when the table deduplicates that retry. The
// check runs after each failure, as the INSERT's own user, so that it sees
// any view made before the failure:
//
//   SELECT notEmpty(dependencies_table), <deduplicates> FROM system.tables
//   WHERE database = ... AND name = ...
//
// A table deduplicates a retry when it is Replicated*, or a plain MergeTree
// with non_replicated_deduplication_window > 0. Any answer but a row (an
// error, no table, no connection) counts as "has views, does not
// deduplicate": nothing is resent on a guess. The question is asked as
// the INSERT's user (user_query.h). Loop thread only.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http_headers.h"
#include "upstream_sink.h"
#include "user_query.h"

namespace chsidecar {

struct TableFacts {
  bool has_views = true;
  bool deduplicates = false;
};

// The query text for the table as written in an INSERT (db.t, `a b`, t);
// a table without a database is looked up in the request's own database.
std::string table_check_sql(std::string_view table);
// Reads the check's answer ("1\t0\n"); anything else gives the defaults.
TableFacts parse_table_check(std::string_view answer);

class TableCheck {
 public:
  using Done = std::function<void(const TableFacts&)>;

  // Sends the check for `table` to `sink` with the INSERT's credentials:
  // `insert_target` (its path and query string) and `headers`. `done` is
  // called once, unless the check is destroyed first.
  void start(UpstreamSink& sink, std::string_view table, std::string_view insert_target,
             const std::vector<Header>& headers, Done done);

 private:
  UserQuery query_;
};

}  // namespace chsidecar
