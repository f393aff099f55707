#include "statement.h"

#include <cctype>
#include <string>

namespace chsidecar {

namespace {

// Reads the next keyword: skips whitespace and comments, returns the word in
// upper case. `truncated` is set when the text ends inside a comment or word.
std::string next_word(std::string_view sql, size_t& pos, bool& truncated) {
  for (;;) {
    while (pos < sql.size() && std::isspace(static_cast<unsigned char>(sql[pos]))) ++pos;
    if (pos + 1 == sql.size() && (sql[pos] == '-' || sql[pos] == '/')) {
      truncated = true;  // maybe the start of a comment
      return {};
    }
    if (sql.substr(pos, 2) == "--" || (pos < sql.size() && sql[pos] == '#')) {
      size_t nl = sql.find('\n', pos);
      if (nl == std::string_view::npos) {
        truncated = true;
        return {};
      }
      pos = nl + 1;
    } else if (sql.substr(pos, 2) == "/*") {
      size_t end = sql.find("*/", pos + 2);
      if (end == std::string_view::npos) {
        truncated = true;
        return {};
      }
      pos = end + 2;
    } else {
      break;
    }
  }
  std::string word;
  while (pos < sql.size() &&
         (std::isalnum(static_cast<unsigned char>(sql[pos])) || sql[pos] == '_')) {
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[pos])));
    ++pos;
  }
  if (pos == sql.size()) truncated = true;
  return word;
}

}  // namespace

StatementKind classify_statement(std::string_view sql, bool complete) {
  // Statements known to leave nothing in the session (unless TEMPORARY,
  // below). Anything else (SET, USE, a statement this list does not know)
  // counts as stateful: pinning a session costs concurrency, missing its
  // state costs the client its data.
  static constexpr std::string_view kStateless[] = {
      "SELECT", "INSERT", "WITH",  "SHOW",  "DESCRIBE", "DESC",   "EXISTS", "EXPLAIN",
      "ALTER",  "OPTIMIZE", "TRUNCATE", "RENAME", "CHECK", "KILL", "SYSTEM", "GRANT",
      "REVOKE", "WATCH", "CREATE", "DROP", "REPLACE", "ATTACH", "DETACH"};
  size_t pos = 0;
  bool truncated = false;
  while (pos < sql.size() && std::isspace(static_cast<unsigned char>(sql[pos]))) ++pos;
  if (pos < sql.size() && sql[pos] == '(') return StatementKind::kStateless;  // (SELECT ...)
  std::string first = next_word(sql, pos, truncated);
  if (truncated && !complete) return StatementKind::kUnknown;
  if (first.empty() && (truncated || pos >= sql.size())) return StatementKind::kStateless;  // "Empty query"
  bool known = false;
  for (std::string_view k : kStateless) known |= first == k;
  if (!known) return StatementKind::kStateful;
  // CREATE [OR REPLACE] TEMPORARY, REPLACE TEMPORARY, DROP TEMPORARY,
  // ATTACH TEMPORARY, DETACH TEMPORARY.
  if (first != "CREATE" && first != "DROP" && first != "REPLACE" && first != "ATTACH" &&
      first != "DETACH")
    return StatementKind::kStateless;
  std::string word = next_word(sql, pos, truncated);
  if (truncated && !complete) return StatementKind::kUnknown;
  if (first == "CREATE" && word == "OR") {
    word = next_word(sql, pos, truncated);
    if (truncated && !complete) return StatementKind::kUnknown;
    if (word != "REPLACE") return StatementKind::kStateless;
    word = next_word(sql, pos, truncated);
    if (truncated && !complete) return StatementKind::kUnknown;
  }
  return word == "TEMPORARY" ? StatementKind::kStateful : StatementKind::kStateless;
}

}  // namespace chsidecar
