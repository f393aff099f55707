#include "insert_query.h"

#include <cctype>
#include <vector>

namespace chsidecar {

namespace {

class Lexer {
 public:
  Lexer(std::string_view text, bool complete) : text_(text), complete_(complete) {}

  // Skips whitespace and comments; false when the text ends inside a comment
  // or, for a partial text, ends here (what follows is not known yet).
  bool skip_blank() {
    for (;;) {
      while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      if (text_.substr(pos_, 2) == "--") {
        size_t nl = text_.find('\n', pos_);
        if (nl == std::string_view::npos) return ended();
        pos_ = nl + 1;
      } else if (text_.substr(pos_, 2) == "/*") {
        size_t end = text_.find("*/", pos_ + 2);
        if (end == std::string_view::npos) return ended();
        pos_ = end + 2;
      } else if (!complete_ && pos_ + 1 == text_.size() && (text_[pos_] == '-' || text_[pos_] == '/')) {
        return ended();  // maybe the start of a comment
      } else {
        return true;
      }
    }
  }

  // The text ran out: for a partial text that means "not known yet".
  bool ended() {
    pos_ = text_.size();
    if (!complete_) hit_end_ = true;
    return false;
  }
  bool hit_end() const { return hit_end_; }

  // A bare word or a quoted identifier (`x`, "x"), as written.
  std::string_view word() {
    size_t start = pos_;
    if (pos_ < text_.size() && (text_[pos_] == '`' || text_[pos_] == '"')) {
      char quote = text_[pos_++];
      while (pos_ < text_.size() && text_[pos_] != quote) {
        if (text_[pos_] == '\\') ++pos_;
        ++pos_;
      }
      if (pos_ >= text_.size()) {
        ended();
        return {};
      }
      ++pos_;
      return text_.substr(start, pos_ - start);
    }
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      ++pos_;
    if (pos_ >= text_.size() && !complete_) {  // the word may go on
      ended();
      return {};
    }
    return text_.substr(start, pos_ - start);
  }

  bool keyword(std::string_view upper) {
    size_t save = pos_;
    std::string_view w = word();
    if (w.size() == upper.size()) {
      bool same = true;
      for (size_t i = 0; i < w.size(); ++i)
        same &= std::toupper(static_cast<unsigned char>(w[i])) == upper[i];
      if (same) return true;
    }
    pos_ = save;
    return false;
  }

  bool at_end() const { return pos_ >= text_.size(); }
  bool truncated() const { return hit_end_ || (!complete_ && pos_ >= text_.size()); }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  size_t pos() const { return pos_; }
  void advance(size_t n) { pos_ += n; }
  std::string_view text() const { return text_; }

 private:
  std::string_view text_;
  bool complete_;
  size_t pos_ = 0;
  bool hit_end_ = false;
};

}  // namespace

InsertParse parse_insert(std::string_view sql, bool complete, InsertQuery& out) {
  Lexer lex(sql, complete);
  auto need_more_or_not = [&]() {
    return lex.truncated() ? InsertParse::kNeedMore : InsertParse::kNotInsert;
  };
  if (!lex.skip_blank() || !lex.keyword("INSERT")) return need_more_or_not();
  if (!lex.skip_blank() || !lex.keyword("INTO")) return need_more_or_not();
  if (!lex.skip_blank()) return need_more_or_not();
  if (lex.keyword("TABLE") && !lex.skip_blank()) return need_more_or_not();
  if (lex.keyword("FUNCTION")) return InsertParse::kNotInsert;
  std::string table(lex.word());
  if (table.empty()) return need_more_or_not();
  if (lex.peek() == '.') {
    lex.advance(1);
    std::string_view name = lex.word();
    if (name.empty()) return need_more_or_not();
    table += '.';
    table += name;
  }
  if (!lex.skip_blank()) return need_more_or_not();
  std::string columns;
  size_t column_count = 0;
  std::vector<std::string> column_names;
  if (lex.peek() == '(') {
    size_t start = lex.pos();
    // Find the closing parenthesis and the commas between names, outside
    // quoted names (`b,c` and `b)` are one name each).
    size_t close = std::string_view::npos;
    std::vector<std::string_view> names;
    size_t name_start = start + 1;
    char quote = '\0';
    for (size_t i = start + 1; i < sql.size(); ++i) {
      char c = sql[i];
      if (quote != '\0') {
        if (c == '\\') ++i;
        else if (c == quote) quote = '\0';
      } else if (c == '`' || c == '"') {
        quote = c;
      } else if (c == '(') {
        return InsertParse::kNotInsert;  // (* EXCEPT (b)), COLUMNS(...): not a plain list
      } else if (c == ',' || c == ')') {
        names.push_back(sql.substr(name_start, i - name_start));
        name_start = i + 1;
        if (c == ')') {
          close = i;
          break;
        }
      }
    }
    if (close == std::string_view::npos) return complete ? InsertParse::kNotInsert : InsertParse::kNeedMore;
    // "( a ,b )" and "(a, b)" name the same columns: trim each, join with ", ".
    columns = "(";
    for (size_t i = 0; i < names.size(); ++i) {
      std::string_view name = names[i];
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) name.remove_prefix(1);
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.remove_suffix(1);
      if (i != 0) columns += ", ";
      columns += name;
      column_names.push_back(unquote_identifier(name));
    }
    columns += ")";
    column_count = names.size();
    lex.advance(close + 1 - start);
    if (!lex.skip_blank()) return need_more_or_not();
  }
  std::string format;
  if (lex.keyword("VALUES")) {
    format = "Values";
    out.data_offset = lex.pos();
  } else if (lex.keyword("FORMAT")) {
    if (!lex.skip_blank()) return need_more_or_not();
    format = std::string(lex.word());
    if (format.empty() || lex.truncated()) return need_more_or_not();
    size_t pos = lex.pos();
    while (pos < sql.size() && (sql[pos] == ' ' || sql[pos] == '\t' || sql[pos] == '\f')) ++pos;
    if (pos < sql.size() && sql[pos] == '\r') ++pos;
    bool newline = pos < sql.size() && sql[pos] == '\n';
    if (newline) ++pos;
    if (!complete && !newline && pos >= sql.size()) return InsertParse::kNeedMore;  // a newline may follow
    out.data_offset = pos;
  } else {
    return need_more_or_not();  // SELECT, SETTINGS, WITH ...: pass through
  }
  out.table = std::move(table);
  out.columns = std::move(columns);
  out.column_count = column_count;
  out.column_names = std::move(column_names);
  out.format = std::move(format);
  return InsertParse::kInsert;
}

std::string unquote_identifier(std::string_view name) {
  if (name.size() < 2 || (name.front() != '`' && name.front() != '"')) return std::string(name);
  char quote = name.front();
  name = name.substr(1, name.size() - 2);
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if ((name[i] == '\\' || (name[i] == quote && i + 1 < name.size() && name[i + 1] == quote)) &&
        i + 1 < name.size())
      ++i;
    out += name[i];
  }
  return out;
}

std::string insert_sql(const InsertQuery& query) {
  std::string sql = "INSERT INTO " + query.table;
  if (!query.columns.empty()) sql += " " + query.columns;
  return sql + " FORMAT " + query.format;
}

}  // namespace chsidecar
