#include "table_check.h"

#include "insert_query.h"

namespace chsidecar {

namespace {

constexpr size_t kMaxAnswer = 256;

std::string string_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

// Where the database part of "db.t" ends: the first '.' outside quotes.
size_t name_dot(std::string_view table) {
  char quote = '\0';
  for (size_t i = 0; i < table.size(); ++i) {
    char c = table[i];
    if (quote != '\0') {
      if (c == '\\') ++i;
      else if (c == quote) quote = '\0';
    } else if (c == '`' || c == '"') {
      quote = c;
    } else if (c == '.') {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::string table_check_sql(std::string_view table) {
  size_t dot = name_dot(table);
  std::string database = dot == std::string_view::npos
                             ? std::string("currentDatabase()")
                             : string_literal(unquote_identifier(table.substr(0, dot)));
  std::string name = string_literal(unquote_identifier(dot == std::string_view::npos ? table : table.substr(dot + 1)));
  return "SELECT notEmpty(dependencies_table), engine LIKE 'Replicated%' OR "
         "toUInt64OrZero(extract(create_table_query, "
         "'non_replicated_deduplication_window = ([0-9]+)')) > 0 "
         "FROM system.tables WHERE database = " + database + " AND name = " + name +
         " FORMAT TSV";
}

TableFacts parse_table_check(std::string_view answer) {
  TableFacts facts;
  if (answer.size() != 4 || answer[1] != '\t' || answer[3] != '\n') return facts;
  if ((answer[0] != '0' && answer[0] != '1') || (answer[2] != '0' && answer[2] != '1')) return facts;
  facts.has_views = answer[0] == '1';
  facts.deduplicates = answer[2] == '1';
  return facts;
}

void TableCheck::start(UpstreamSink& sink, std::string_view table, std::string_view insert_target,
                       const std::vector<Header>& headers, Done done) {
  query_.start(sink, table_check_sql(table), insert_target, headers, kMaxAnswer, 0,
               [done = std::move(done)](bool ok, std::string_view answer) {
                 done(ok ? parse_table_check(answer) : TableFacts{});
               });
}

}  // namespace chsidecar
