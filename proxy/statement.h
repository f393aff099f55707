// Which SQL statements leave state behind in a ClickHouse session.
//
// A session that has only run stateless statements can have its requests
// fanned out over the pool without the session parameters; the first
// statement that leaves state (SET, USE, a temporary table) turns it into an
// ordered, pinned session. Looks only at the leading keywords, after
// whitespace and comments; a statement it does not know counts as
// stateful. Pure; unit-tested.
#pragma once

#include <string_view>

namespace chsidecar {

enum class StatementKind {
  kStateless,  // SELECT, INSERT, DDL on ordinary tables, SHOW, ...
  kStateful,   // SET, USE, CREATE/DROP/ATTACH TEMPORARY TABLE, anything unknown
  kUnknown,    // `sql` ends before the leading keywords do; give more text
};

// Classifies the statement at the start of `sql`. `complete` says whether
// `sql` is the whole text (then the answer is never kUnknown).
StatementKind classify_statement(std::string_view sql, bool complete);

}  // namespace chsidecar
