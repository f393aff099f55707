#include "router.h"

#include <algorithm>
#include <optional>

#include "insert_query.h"
#include "sessions.h"
#include "statement.h"

namespace chsidecar {

namespace {

// Enough of a body to find the leading keywords of the SQL in it.
constexpr size_t kSqlHeadBytes = 4096;

// A session_timeout every ClickHouse with the default max_session_timeout
// takes: digits only, at most 3600 seconds.
bool plain_session_timeout(std::string_view value) {
  constexpr uint64_t kDefaultMaxSessionTimeout = 3600;
  uint64_t seconds = 0;
  return parse_u64(value, seconds) && seconds <= kDefaultMaxSessionTimeout;
}

bool is_multipart(const std::vector<Header>& headers) {
  const Header* type = find_header(headers, "Content-Type");
  return type != nullptr && type->value.size() >= 10 &&
         iequals(std::string_view(type->value).substr(0, 10), "multipart/");
}

// Settings the sidecar consumes on a batched INSERT instead of forwarding.
bool consumed_by_batching(std::string_view name) {
  return name == "query" || name == "query_id" || name == "async_insert" ||
         name == "wait_for_async_insert" || name.substr(0, 13) == "async_insert_" ||
         name == "session_id" || name == "session_timeout" || name == "session_check" ||
         name == "decompress";  // batches go in the sidecar's own coding
}

// Settings whose effect on a request's rows the splitter does not model
// (quoting, line ends, skipped lines, error budgets counted per INSERT, a
// client's own dedup token): a request with one goes alone.
bool changes_row_reading(std::string_view name) {
  static constexpr std::string_view kPrefixes[] = {
      "format_csv_",          "format_tsv_",     "input_format_csv_",
      "input_format_tsv_",    "format_custom_",  "input_format_allow_errors_",
      "input_format_with_names_", "input_format_values_", "insert_deduplication_token",
      "format_schema",
      // Native and RowBinary: types read from the table, not the header
      // (with_types_use_header=0), other encodings of types or values, a
      // newer protocol revision's serialization flags.
      "input_format_with_types_", "input_format_native_", "input_format_binary_",
      "format_binary_", "client_protocol_version", "low_cardinality_allow_in_native_format"};
  for (std::string_view prefix : kPrefixes)
    if (name.substr(0, prefix.size()) == prefix) return true;
  return false;
}

// How the body is encoded, when the sidecar may decode and batch it:
// Content-Encoding gzip, deflate, lz4 or zstd, or decompress=1 (ClickHouse's
// blocks); nullopt for anything else. gzip and deflate only as the server
// spells them (18.16: exactly so), so that a body it would refuse goes
// alone and gets its answer. lz4 and zstd are taken on any server: the
// sidecar decodes them and sends its batches in a coding the server has
// (a request that goes alone still goes as the client sent it).
std::optional<BodyCoding> batchable_coding(const Header* encoding, const QueryParam* decompress,
                                           const RouteContext& context) {
  bool blocks = false;
  if (decompress != nullptr) {
    if (decompress->value != "0" && decompress->value != "1") return std::nullopt;
    blocks = decompress->value == "1";
  }
  if (encoding == nullptr) return blocks ? BodyCoding::kClickHouseBlocks : BodyCoding::kIdentity;
  if (blocks) return std::nullopt;  // both layers: rare, the server's to judge
  std::optional<BodyCoding> coding = content_coding(encoding->value);
  if (!coding) return std::nullopt;
  bool exact = encoding->value == "gzip" || encoding->value == "deflate" ||
               encoding->value == "lz4" || encoding->value == "zstd";
  if (!exact && !context.server_any_case_encoding) return std::nullopt;
  return coding;
}

// ClickHouse reads the first of a repeated header: two requests that differ
// only there must not share a batch.
bool repeated_header(const std::vector<Header>& headers, std::string_view name) {
  int seen = 0;
  for (const Header& h : headers) seen += iequals(h.name, name) ? 1 : 0;
  return seen > 1;
}

// A batchable INSERT's plan: its merge key and how its batches are sent;
// nullptr when anything about it must go alone. The rows are checked once
// the whole body is here.
std::shared_ptr<BatchPlan> batch_plan(const RequestHead& head, std::string_view sql,
                                      bool sql_complete, bool sql_in_body, bool body_decoded,
                                      const std::vector<QueryParam>& params,
                                      const RouteContext& context, StructureSource& structure) {
  // ClickHouse resolves a repeated parameter in its own order (the first
  // query, user, database; settings in turn): such a request goes alone.
  if (has_repeated_param(params)) return nullptr;
  for (std::string_view name : {"Content-Encoding", "Content-Type"})
    if (repeated_header(head.headers, name)) return nullptr;
  for (const char* name : kBatchKeyHeaders)
    if (repeated_header(head.headers, name)) return nullptr;
  // multipart/form-data: the parts are external tables (and maybe the query), not rows.
  if (is_multipart(head.headers)) return nullptr;
  auto plan = std::make_shared<BatchPlan>();
  InsertQuery& insert = plan->insert;
  std::string query_text;
  if (!sql_in_body) {
    // ClickHouse reads the parameter, a newline, then the body as one text:
    // anything left after the format name (";", a second newline) is data.
    query_text.assign(sql).push_back('\n');
    sql = query_text;
  }
  if (parse_insert(sql, sql_complete, insert) != InsertParse::kInsert) return nullptr;
  std::optional<RowFormat> format = row_format(insert.format);
  if (!format) return nullptr;
  // ClickHouse reads RowBinaryWithNamesAndTypes from 19.x on; 18.16 refuses
  // the name (code 73): only where the server has async inserts (21.11+)
  // is it surely known, elsewhere it goes alone.
  // RowBinaryWithNames came with it too (18.16: code 73); RowBinaryWithDefaults in 23.7.
  if ((*format == RowFormat::kRowBinaryWithNamesAndTypes || *format == RowFormat::kRowBinaryWithNames) &&
      !context.server_async_insert)
    return nullptr;
  if (*format == RowFormat::kRowBinaryWithDefaults && !context.server_row_binary_with_defaults)
    return nullptr;
  if (!sql_in_body && sql.find_first_not_of(*format == RowFormat::kValues ? " \t\r\n\f" : "",
                                            insert.data_offset) != std::string_view::npos)
    return nullptr;
  const QueryParam* wait = find_setting(params, "wait_for_async_insert");
  plan->spool_ack = wait != nullptr ? wait->value == "0" : context.ack_mode == AckMode::kSpool;
  for (const QueryParam& p : params) {
    if (p.name == "format_csv_delimiter") {
      if (p.value.size() != 1 || std::string_view(" \t\r\n\"'").find(p.value[0]) != std::string_view::npos)
        return nullptr;
      plan->options.csv_delimiter = p.value[0];
    } else if (changes_row_reading(p.name)) {
      return nullptr;
    } else if (needs_table_structure(*format) && p.name == "insert_allow_materialized_columns") {
      return nullptr;  // other columns than the walker's
    } else if (*format == RowFormat::kNative && p.name.substr(0, 21) == "min_insert_block_size") {
      // A batch's blocks are squashed into one part (all or none) only
      // below the default thresholds, which --flush-rows stays under.
      return nullptr;
    }
  }
  std::optional<BodyCoding> coding = batchable_coding(
      find_header(head.headers, "Content-Encoding"), find_param(params, "decompress"), context);
  if (!coding) return nullptr;
  // SQL in an encoded body is read only from its decoded bytes.
  if (*coding != BodyCoding::kIdentity && sql_in_body && !body_decoded) return nullptr;
  plan->coding = *coding;
  plan->format = *format;
  std::string columns_signature;
  if (needs_table_structure(*format)) {
    // The rows are walked by the table's columns, learnt once per key
    // (structure_cache.h). Not known yet: the plan has none, and Exchange
    // waits for them and routes again.
    structure.key = structure_key(insert.table, params, head.headers);
    structure.table = insert.table;
    structure.target = head.target;
    for (const char* name : kBatchKeyHeaders)
      if (const Header* h = find_header(head.headers, name)) structure.headers.push_back(*h);
    std::shared_ptr<const TableStructure> table =
        context.table_structure ? context.table_structure(structure.key) : nullptr;
    if (table != nullptr) {
      auto columns = std::make_shared<std::vector<RowBinaryColumn>>();
      if (!insert_columns(*table, insert.column_names, *columns, columns_signature)) return nullptr;
      for (const RowBinaryColumn& c : *columns)
        if (!c.known) return nullptr;  // a type the walker does not read
      plan->options.columns = std::move(columns);
    }
    plan->target.structure_key = structure.key;
  }

  // The key: everything that must match for two INSERTs to share a batch.
  Target target = split_target(head.target);
  BatchTarget& bt = plan->target;
  bt.table = insert.table;
  bt.format = plan->format;
  std::string& key = bt.key;
  auto add = [&key](std::string_view part) {
    key.append(part);
    key.push_back('\0');
  };
  add(target.path);
  for (const char* name : kBatchKeyHeaders) {
    if (const Header* h = find_header(head.headers, name)) {
      bt.headers.push_back(*h);
      add(name);
      add(h->value);
    }
  }
  std::vector<std::string_view> consumed;
  std::vector<std::string> kept;
  for (const QueryParam& p : params) {
    if (consumed_by_batching(p.name)) consumed.push_back(p.name);
    else kept.push_back(p.name + "=" + p.value);
  }
  std::sort(kept.begin(), kept.end());  // no name is repeated (above)
  for (const std::string& k : kept) add(k);
  std::string sql_text = insert_sql(insert);
  add(sql_text);
  add(columns_signature);  // rows walked by other types do not mix
  std::string rest = remove_params(target.query, params, consumed);
  bt.upstream_target = std::string(target.path) + "?" + rest + (rest.empty() ? "" : "&") +
                       "query=" + url_encode(sql_text);
  return plan;
}

}  // namespace

bool starts_with_insert(std::string_view sql) {
  while (!sql.empty() && (sql.front() == ' ' || sql.front() == '\n' || sql.front() == '\t' ||
                          sql.front() == '\r'))
    sql.remove_prefix(1);
  return sql.size() >= 6 && iequals(sql.substr(0, 6), "INSERT");
}

Route route_request(const RequestHead& head, std::string_view body, bool body_complete,
                    const RouteContext& context, BodyDecoding decoding) {
  Route route;
  Target target = split_target(head.target);
  std::vector<QueryParam> params = parse_query(target.query);
  route.upstream_target = head.target;
  const QueryParam* session = find_param(params, "session_id");
  route.has_session = session != nullptr && !session->value.empty();
  bool pinned = false;
  if (route.has_session) {
    route.session_key = SessionTable::key(request_user(params, head.headers), session->value);
    pinned = context.session_mode == SessionMode::kPin ||
             (context.session_is_stateful && context.session_is_stateful(route.session_key));
    if (const QueryParam* check = find_param(params, "session_check"))
      pinned |= !check->value.empty() && check->value != "0";
    // ClickHouse refuses a session_timeout that is not a whole number of
    // seconds within its max_session_timeout (3600 by default) with 374:
    // such a request goes with its session, for ClickHouse to judge.
    if (const QueryParam* timeout = find_param(params, "session_timeout")) {
      pinned |= !plain_session_timeout(timeout->value);
      uint64_t ms;
      if (parse_duration_ms(timeout->value, ms)) route.session_timeout_ms = ms;
    }
  }
  const QueryParam* async_insert = find_setting(params, "async_insert");
  bool opted_out = async_insert != nullptr && async_insert->value == "0";
  bool batching = context.batch_mode == BatchMode::kAuto && head.method == "POST" &&
                  head.has_body && !pinned && !opted_out;
  const QueryParam* query = find_param(params, "query");
  bool sql_in_body = query == nullptr || query->value.empty();
  if (!sql_in_body) route.label = starts_with_insert(query->value) ? "insert_passthrough" : "query";
  else if (!body.empty()) route.label = starts_with_insert(body) ? "insert_passthrough" : "query";
  route.sniff_insert = sql_in_body && body.empty() && head.has_body;
  const Header* encoding = find_header(head.headers, "Content-Encoding");
  const QueryParam* decompress = find_param(params, "decompress");
  bool encoded = encoding != nullptr || (decompress != nullptr && decompress->value != "0");
  bool decoded = decoding == BodyDecoding::kDecoded;
  if (batching && sql_in_body && encoded && decoding == BodyDecoding::kRaw) {
    // The SQL is inside the encoding: route again once the body is decoded.
    if (std::optional<BodyCoding> coding = batchable_coding(encoding, decompress, context)) {
      route.action = Route::Action::kNeedDecodedBody;
      route.body_coding = *coding;
      return route;
    }
  }
  if (decoded) body_complete = true;
  // Parameters not to forward. A server without async inserts refuses them
  // (code 115); on an INSERT they are the sidecar's (batch, spool), so one it
  // passes on unbatched goes without them and is answered once committed
  // (also when its SQL, in a body not read yet or encoded, may be one).
  bool maybe_insert = std::string_view(route.label) == "insert_passthrough" || route.sniff_insert ||
                      (sql_in_body && head.has_body && encoded && !decoded);
  std::vector<std::string_view> dropped;
  if (!context.server_async_insert && (opted_out || maybe_insert)) {
    for (const QueryParam& p : params)
      if (p.name == "async_insert" || p.name == "wait_for_async_insert" ||
          p.name.substr(0, 13) == "async_insert_")
        dropped.push_back(p.name);
  }
  std::string_view sql;
  bool sql_complete = true;
  std::string joined;
  if ((route.has_session && !pinned) || batching) {
    if (!sql_in_body) {
      sql = query->value;
    } else {
      if (!body_complete && body.size() < kSqlHeadBytes) {
        route.action = Route::Action::kNeedBody;
        return route;
      }
      sql = body;
      sql_complete = body_complete;
    }
  }
  if (route.has_session && !pinned) {
    // ClickHouse runs the parameter, a newline and the body as one text: a
    // parameter of only blanks, comments or a first keyword leaves the
    // statement to the body. A multipart body may carry the query itself.
    std::string_view statement = sql;
    bool statement_complete = sql_complete;
    if (!sql_in_body && head.has_body && classify_statement(sql, false) == StatementKind::kUnknown) {
      if (!body_complete && body.size() < kSqlHeadBytes) {
        route.action = Route::Action::kNeedBody;
        return route;
      }
      joined = std::string(sql) + "\n" + std::string(body);
      statement = joined;
      statement_complete = body_complete;
    }
    pinned = is_multipart(head.headers) ||
             classify_statement(statement, statement_complete) != StatementKind::kStateless;
  }
  route.stateful = pinned;
  if (!pinned && route.has_session) dropped.insert(dropped.end(), kSessionParams.begin(), kSessionParams.end());
  if (!dropped.empty()) {
    std::string rest = remove_params(target.query, params, dropped);
    route.upstream_target = std::string(target.path) + (rest.empty() ? "" : "?" + rest);
  }
  if (pinned) {
    route.action = Route::Action::kSession;
    return route;
  }
  if (batching) {
    auto plan = batch_plan(head, sql, sql_complete, sql_in_body, decoded, params, context, route.structure);
    if (plan != nullptr) {
      plan->passthrough_target = route.upstream_target;
      route.action = Route::Action::kBatch;
      route.label = "insert_batched";
      route.data_offset = sql_in_body ? plan->insert.data_offset : 0;
      // SQL in the body: reusable when it ends with a newline, after which
      // every byte is data (batch_plan.h). A plan walked by learnt columns
      // is made again for each request, so that it takes the newest.
      route.plan_reusable = route.structure.key.empty() &&
                            (!sql_in_body || (route.data_offset > 0 && sql[route.data_offset - 1] == '\n'));
      route.plan = std::move(plan);
      return route;
    }
  }
  route.action = Route::Action::kForward;
  return route;
}

}  // namespace chsidecar
