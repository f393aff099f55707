#include "table_check.h"

#include "request.h"

namespace chsidecar {

namespace {

constexpr size_t kMaxAnswer = 256;

// One identifier as written: `x`, "x" (with \ escapes or doubled quotes) or bare.
std::string unquote(std::string_view name) {
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
                             : string_literal(unquote(table.substr(0, dot)));
  std::string name = string_literal(unquote(dot == std::string_view::npos ? table : table.substr(dot + 1)));
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

TableCheck::~TableCheck() {
  if (sink_ != nullptr) sink_->cancel(this);
}

void TableCheck::start(UpstreamSink& sink, std::string_view table, std::string_view insert_target,
                       const std::vector<Header>& headers, Done done) {
  done_ = std::move(done);
  status_ = 0;
  body_.clear();
  Target target = split_target(insert_target);
  // Only who asks and where: the INSERT's settings (a memory limit, say)
  // are not the check's.
  std::vector<QueryParam> params = parse_query(target.query);
  std::vector<std::string_view> not_credentials;
  for (const QueryParam& p : params)
    if (p.name != "user" && p.name != "password" && p.name != "database" && p.name != "quota_key")
      not_credentials.push_back(p.name);
  std::string rest = remove_params(target.query, params, not_credentials);
  UpstreamRequest request;
  request.method = "GET";
  request.target = std::string(target.path) + "?" + rest + (rest.empty() ? "" : "&") +
                   "query=" + url_encode(table_check_sql(table));
  request.headers = headers;
  request.tells_health = false;
  sink_ = &sink;
  if (sink.submit(this, std::move(request)) == UpstreamPool::Submit::kQueueFull) {
    UpstreamOutcome outcome;
    outcome.code = CURLE_COULDNT_CONNECT;
    upstream_done(outcome);
  }
}

size_t TableCheck::upstream_response_data(const char* data, size_t size) {
  if (body_.size() < kMaxAnswer) body_.append(data, std::min(size, kMaxAnswer - body_.size()));
  return size;
}

void TableCheck::upstream_done(const UpstreamOutcome& outcome) {
  sink_ = nullptr;
  TableFacts facts;
  if (outcome.code == CURLE_OK && status_ == 200) facts = parse_table_check(body_);
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(facts);
}

}  // namespace chsidecar
