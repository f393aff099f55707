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
  size_t pos = 0;
  bool truncated = false;
  std::string first = next_word(sql, pos, truncated);
  if (truncated && !complete) return StatementKind::kUnknown;
  if (first == "SET" || first == "USE") return StatementKind::kStateful;
  // CREATE [OR REPLACE] TEMPORARY, REPLACE TEMPORARY, DROP TEMPORARY.
  if (first != "CREATE" && first != "DROP" && first != "REPLACE") return StatementKind::kStateless;
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
