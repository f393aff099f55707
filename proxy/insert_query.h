// Recognising an INSERT whose data the sidecar can batch.
//
// Reads the head of an SQL text: INSERT INTO [TABLE] name [(columns)]
// followed by FORMAT <name> or VALUES, and where the inline data begins.
// Anything else (INSERT ... SELECT, INSERT with SETTINGS, FUNCTION, other
// statements) is not batchable and passes through unchanged. Pure; views in
// the result point into the given text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chsidecar {

struct InsertQuery {
  std::string table;    // as written, e.g. db.events or `my table`
  std::string columns;  // "(a, b)" with whitespace collapsed, or empty
  size_t column_count = 0;  // names in `columns`; 0 when there is no list
  std::vector<std::string> column_names;  // the names in `columns`, unquoted
  std::string format;   // format name as written; "Values" for VALUES
  size_t data_offset = 0;  // where inline data begins in the parsed text
};

enum class InsertParse { kInsert, kNotInsert, kNeedMore };

// `complete` says whether `sql` holds the whole text. The data begins after
// the format name: after the first newline if only blanks precede it, else
// after the blanks (ClickHouse's rule); for VALUES right after the keyword.
InsertParse parse_insert(std::string_view sql, bool complete, InsertQuery& out);

// One identifier as written: `x`, "x" (with \ escapes or doubled quotes)
// or bare; the name it stands for.
std::string unquote_identifier(std::string_view name);

// The INSERT text a batch is sent with: "INSERT INTO t (a, b) FORMAT fmt".
std::string insert_sql(const InsertQuery& query);

}  // namespace chsidecar
