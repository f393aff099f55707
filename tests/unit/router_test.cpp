#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "router.h"

using namespace chsidecar;

namespace {

using Action = Route::Action;

RequestHead post(std::string target, std::vector<Header> headers = {}) {
  RequestHead head;
  head.method = "POST";
  head.target = std::move(target);
  head.headers = std::move(headers);
  head.has_body = true;
  head.content_length = 10;
  return head;
}

Route route(const RequestHead& head, std::string_view body = "1,a\n", bool complete = true,
            std::set<std::string> stateful = {}, bool async_insert = false,
            BodyDecoding decoding = BodyDecoding::kRaw, bool modern_server = false) {
  RouteContext context;
  context.server_async_insert = async_insert;
  context.server_any_case_encoding = modern_server;
  context.session_is_stateful = [stateful](const std::string& key) { return stateful.count(key) > 0; };
  return route_request(head, body, complete, context, decoding);
}

const std::string kInsert = "/?query=INSERT%20INTO%20t%20FORMAT%20CSV";

}  // namespace

TEST_CASE("router: a plain INSERT in the query parameter is batched") {
  Route r = route(post(kInsert));
  CHECK(r.action == Action::kBatch);
  CHECK(std::string(r.label) == "insert_batched");
  REQUIRE(r.plan != nullptr);
  CHECK(r.plan->target.table == "t");
  CHECK(r.data_offset == 0);
  CHECK(r.plan_reusable);
  CHECK(r.plan->target.upstream_target == "/?query=INSERT%20INTO%20t%20FORMAT%20CSV");
}

TEST_CASE("router: what ClickHouse would read differently alone goes alone") {
  struct Case {
    const char* why;
    RequestHead head;
  };
  const std::vector<Case> alone = {
      {"query twice", post(kInsert + "&query=INSERT%20INTO%20u%20FORMAT%20CSV")},
      {"user twice", post(kInsert + "&user=readonly&user=default")},
      {"database twice", post(kInsert + "&database=a&database=b")},
      {"a setting twice", post(kInsert + "&max_threads=1&max_threads=2")},
      {"user header twice", post(kInsert, {{"X-ClickHouse-User", "a"}, {"X-ClickHouse-User", "b"}})},
      {"multipart", post(kInsert, {{"Content-Type", "multipart/form-data; boundary=x"}})},
      {"';' after the format", post("/?query=INSERT%20INTO%20t%20FORMAT%20CSV%3B")},
      {"' ;' after the format", post("/?query=INSERT%20INTO%20t%20FORMAT%20CSV%20%3B")},
      {"a newline after the format", post("/?query=INSERT%20INTO%20t%20FORMAT%20CSV%0A")},
      {"two newlines", post("/?query=INSERT%20INTO%20t%20FORMAT%20CSV%0A%0A")},
      {"GZIP", post(kInsert, {{"Content-Encoding", "GZIP"}})},
      {"Gzip", post(kInsert, {{"Content-Encoding", "Gzip"}})},
      {"identity", post(kInsert, {{"Content-Encoding", "identity"}})},
      {"LZ4 on 18.16", post(kInsert, {{"Content-Encoding", "LZ4"}})},
      {"br", post(kInsert, {{"Content-Encoding", "br"}})},
      {"gzip and decompress=1", post(kInsert + "&decompress=1", {{"Content-Encoding", "gzip"}})},
      {"decompress=true", post(kInsert + "&decompress=true")},
      {"allow_errors_ratio", post(kInsert + "&input_format_allow_errors_ratio=0.5")},
      {"allow_errors_num", post(kInsert + "&input_format_allow_errors_num=1")},
      {"single quotes off", post(kInsert + "&format_csv_allow_single_quotes=0")},
      {"a quote as delimiter", post(kInsert + "&format_csv_delimiter=%22")},
      {"a tab as delimiter", post(kInsert + "&format_csv_delimiter=%09")},
      {"a client's dedup token", post(kInsert + "&insert_deduplication_token=x")},
      {"async_insert=0", post(kInsert + "&async_insert=0")},
      {"RowBinaryWithNames on a server without it", post("/?query=INSERT%20INTO%20t%20FORMAT%20RowBinaryWithNames")},
      {"RowBinaryWithNamesAndTypes on a server without it",
       post("/?query=INSERT%20INTO%20t%20FORMAT%20RowBinaryWithNamesAndTypes")},
      {"Native with types from the table",
       post("/?query=INSERT%20INTO%20t%20FORMAT%20Native&input_format_with_types_use_header=0")},
      {"Native squashed into smaller blocks",
       post("/?query=INSERT%20INTO%20t%20FORMAT%20Native&min_insert_block_size_rows=10")},
      {"Native with a newer protocol revision",
       post("/?query=INSERT%20INTO%20t%20FORMAT%20Native&client_protocol_version=54470")},
      {"INSERT SELECT", post("/?query=INSERT%20INTO%20t%20SELECT%201")},
  };
  for (const Case& c : alone) {
    CAPTURE(c.why);
    Route r = route(c.head);
    CHECK(r.action == Action::kForward);
    CHECK(r.plan == nullptr);
  }
  // The last occurrence of a setting is the one that counts.
  Route r = route(post(kInsert + "&async_insert=0&async_insert=1&wait_for_async_insert=0"));
  CHECK(r.action == Action::kForward);  // still repeated: alone
  r = route(post(kInsert + "&wait_for_async_insert=0"));
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.plan->spool_ack);
  r = route(post(kInsert + "&format_csv_delimiter=%3B"));
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.plan->options.csv_delimiter == ';');
}

TEST_CASE("router: SQL in the body, and what follows the format name") {
  RequestHead head = post("/");
  Route r = route(head, "INSERT INTO t FORMAT CSV\f1,a\n");  // a form feed: skipped, as ClickHouse does
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.data_offset == std::string_view("INSERT INTO t FORMAT CSV\f").size());
  CHECK_FALSE(r.plan_reusable);  // the next body's byte after the name may be a newline
  r = route(head, "INSERT INTO t FORMAT CSV\n1,a\n");
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.data_offset == 25);
  CHECK(r.plan_reusable);  // for a body that begins with the same SQL and newline
  // An encoded body hides its SQL: it is routed again once decoded.
  r = route(post("/", {{"Content-Encoding", "gzip"}}), "\x1f\x8b");
  CHECK(r.action == Action::kNeedDecodedBody);
  CHECK(r.body_coding == BodyCoding::kGzip);
  r = route(post("/", {{"Content-Encoding", "gzip"}}), "\x1f\x8b", true, {}, false, BodyDecoding::kFailed);
  CHECK(r.action == Action::kForward);
  // Not enough of the body yet.
  r = route(head, "INSERT INTO", false);
  CHECK(r.action == Action::kNeedBody);
  CHECK(r.sniff_insert == false);
  r = route(head, "", false);
  CHECK(r.action == Action::kNeedBody);
  CHECK(r.sniff_insert);
}

TEST_CASE("router: async_insert settings are dropped on a server without them, for an INSERT") {
  Route r = route(post("/?wait_for_async_insert=0", {{"Content-Encoding", "gzip"}}), "\x1f\x8b", true,
                  {}, false, BodyDecoding::kFailed);
  CHECK(r.action == Action::kForward);
  CHECK(r.upstream_target == "/");
  r = route(post("/?wait_for_async_insert=0", {{"Content-Encoding", "gzip"}}), "\x1f\x8b", true, {}, true,
            BodyDecoding::kFailed);
  CHECK(r.upstream_target == "/?wait_for_async_insert=0");
  RequestHead get = post("/?query=SELECT%201&wait_for_async_insert=0");
  get.method = "GET";
  get.has_body = false;
  r = route(get, "");
  CHECK(r.upstream_target == "/?query=SELECT%201&wait_for_async_insert=0");  // ClickHouse's to refuse
}

TEST_CASE("router: the statement a session runs decides whether it is stateful") {
  struct Case {
    const char* target;
    std::string_view body;
    bool stateful;
  };
  const std::vector<Case> cases = {
      {"/?session_id=s&query=SELECT%201", "", false},
      {"/?session_id=s", "SELECT 1", false},
      {"/?session_id=s", "SET max_threads = 1", true},
      {"/?session_id=s&query=--%20c%0A", "SET max_threads = 1", true},     // comment in the parameter
      {"/?session_id=s&query=%20", "SET max_threads = 1", true},           // a blank parameter
      {"/?session_id=s&query=CREATE", " TEMPORARY TABLE t (x UInt8) ENGINE = Memory", true},
      {"/?session_id=s&query=CREATE", " TABLE t (x UInt8) ENGINE = Memory", false},
      {"/?session_id=s", "ATTACH TEMPORARY TABLE t (x UInt8) ENGINE = Memory", true},
      {"/?session_id=s", "UNDROP TABLE t", true},                          // not known: pinned
      {"/?session_id=s&session_check=1&query=SELECT%201", "", true},
      {"/?session_id=s&session_timeout=1.5&query=SELECT%201", "", true},    // ClickHouse's 374
      {"/?session_id=&query=SELECT%201", "", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.target);
    CAPTURE(c.body);
    RequestHead head = post(c.target);
    head.has_body = !c.body.empty();
    Route r = route(head, c.body);
    CHECK(r.stateful == c.stateful);
    CHECK((r.action == Action::kSession) == c.stateful);
    if (r.has_session && !c.stateful) CHECK(r.upstream_target.find("session_id") == std::string::npos);
  }
  // A multipart body may hold the query: the session is pinned.
  Route r = route(post("/?session_id=s", {{"Content-Type", "multipart/form-data; boundary=b"}}), "--b");
  CHECK(r.action == Action::kSession);
  // The first session_id and user are ClickHouse's.
  r = route(post("/?session_id=a&session_id=b&user=u&user=v&query=SET%20x%3D1"), "");
  CHECK(r.session_key == "u\na");
  // A session already stateful stays so.
  r = route(post("/?session_id=s&query=SELECT%201"), "", true, {"default\ns"});
  CHECK(r.action == Action::kSession);
}

TEST_CASE("router: Native batches; RowBinaryWithNamesAndTypes where the server knows it") {
  Route r = route(post("/?query=INSERT%20INTO%20t%20FORMAT%20Native"));
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.plan->format == RowFormat::kNative);
  // clickhouse-connect's shape: the SQL and a newline, then the block.
  std::string body = std::string("INSERT INTO db.t (`a`) FORMAT Native\n") + std::string("\x01\x01\x01" "a\x05UInt8\x07", 11);
  r = route(post("/"), body);
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.data_offset == body.size() - 11);
  const std::string rb = "/?query=INSERT%20INTO%20t%20FORMAT%20RowBinaryWithNamesAndTypes";
  CHECK(route(post(rb)).action == Action::kForward);
  r = route(post(rb), "", true, {}, true);
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.plan->format == RowFormat::kRowBinaryWithNamesAndTypes);
}

TEST_CASE("router: encoded bodies, by the encodings the server takes") {
  // In the query parameter: lz4 and zstd on any server (decoded, sent in the
  // sidecar's coding); other spellings only where the server takes them.
  for (const char* enc : {"gzip", "deflate", "lz4", "zstd"}) {
    CAPTURE(enc);
    Route r = route(post(kInsert, {{"Content-Encoding", enc}}));
    REQUIRE(r.action == Action::kBatch);
    CHECK(r.plan->coding == *content_coding(enc));
    CHECK(r.plan->target.upstream_target.find("decompress") == std::string::npos);
  }
  for (const char* enc : {"GZIP", "Deflate", "LZ4", "Zstd"}) {
    CAPTURE(enc);
    CHECK(route(post(kInsert, {{"Content-Encoding", enc}})).action == Action::kForward);
    CHECK(route(post(kInsert, {{"Content-Encoding", enc}}), "1,a\n", true, {}, false, BodyDecoding::kRaw, true)
              .action == Action::kBatch);
  }
  CHECK(route(post(kInsert, {{"Content-Encoding", "identity"}}), "1,a\n", true, {}, false, BodyDecoding::kRaw, true)
            .action == Action::kForward);
  // decompress=1: ClickHouse's blocks; the batch goes without it.
  Route r = route(post(kInsert + "&decompress=1"));
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.plan->coding == BodyCoding::kClickHouseBlocks);
  CHECK(r.plan->target.upstream_target.find("decompress") == std::string::npos);
  CHECK(r.plan->passthrough_target.find("decompress=1") != std::string::npos);
  CHECK(route(post(kInsert + "&decompress=0")).plan->coding == BodyCoding::kIdentity);
  // Requests with and without decompress=1 share a key: their rows are decoded alike.
  CHECK(r.plan->target.key == route(post(kInsert)).plan->target.key);
}

TEST_CASE("router: SQL inside an encoded body is read once decoded") {
  const std::string body = "INSERT INTO db.t (`a`, `b`) FORMAT JSONEachRow\n{\"a\":1,\"b\":\"x\"}\n";
  RequestHead lz4 = post("/?wait_for_async_insert=0", {{"Content-Encoding", "lz4"},
                                                       {"Content-Type", "application/octet-stream"}});
  lz4.content_length = -1;
  // Before any body: decode first (not the raw 4 KiB head).
  Route r = route(lz4, "", false);
  CHECK(r.action == Action::kNeedDecodedBody);
  CHECK(r.body_coding == BodyCoding::kLz4);
  r = route(lz4, body, true, {}, false, BodyDecoding::kDecoded);
  REQUIRE(r.action == Action::kBatch);
  CHECK(r.data_offset == body.find('{'));
  CHECK(r.plan->spool_ack);
  CHECK(r.plan_reusable);
  CHECK(r.plan->target.table == "db.t");
  // clickhouse-connect's own shape: Native in an lz4 body.
  r = route(lz4, "INSERT INTO t FORMAT Native\nxx", true, {}, false, BodyDecoding::kDecoded);
  CHECK(r.action == Action::kBatch);
  // Not batchable after all (Parquet): alone, as sent.
  r = route(lz4, "INSERT INTO t FORMAT Parquet\nxx", true, {}, false, BodyDecoding::kDecoded);
  CHECK(r.action == Action::kForward);
  CHECK(std::string(r.label) == "insert_passthrough");
  // decompress=1 with the SQL in the blocks.
  r = route(post("/?decompress=1"), "", false);
  CHECK(r.action == Action::kNeedDecodedBody);
  CHECK(r.body_coding == BodyCoding::kClickHouseBlocks);
  // An encoding the server would refuse is not decoded at all.
  CHECK(route(post("/", {{"Content-Encoding", "LZ4"}}), "", false).action == Action::kNeedBody);
  CHECK(route(post("/", {{"Content-Encoding", "br"}}), "xx", true).action == Action::kForward);
  // Batching off: nothing to decode for.
  RequestHead get = lz4;
  get.method = "GET";
  CHECK(route(get, "", false).action != Action::kNeedDecodedBody);
}

namespace {

Route route_described(const RequestHead& head, const std::string& describe, bool async_insert = true,
                      bool with_defaults = true) {
  RouteContext context;
  context.server_async_insert = async_insert;
  context.server_row_binary_with_defaults = with_defaults;
  auto table = std::make_shared<TableStructure>();
  if (!describe.empty()) REQUIRE(parse_describe(describe, *table));
  context.table_structure = [table, known = !describe.empty()](const std::string& key) {
    return known && key == structure_key("t", {}, {}) ? table : nullptr;
  };
  return route_request(head, "", true, context);
}

const std::string kTable = "a\tUInt32\t\t\t\t\t\nb\tString\tDEFAULT\t\\'x\\'\t\t\t\n"
                           "c\tUInt32\tMATERIALIZED\ta\t\t\t\n";

}  // namespace

TEST_CASE("router: RowBinary, RowBinaryWithNames, RowBinaryWithDefaults by the table's columns") {
  for (const char* format : {"RowBinary", "RowBinaryWithNames", "RowBinaryWithDefaults"}) {
    CAPTURE(format);
    std::string target = std::string("/?query=INSERT%20INTO%20t%20FORMAT%20") + format;
    Route r = route_described(post(target), kTable);
    REQUIRE(r.action == Action::kBatch);
    CHECK(r.plan->format == *row_format(format));
    REQUIRE(r.plan->options.columns != nullptr);
    CHECK(r.plan->options.columns->size() == 2);  // a, b: not the MATERIALIZED c
    CHECK(r.structure.key == structure_key("t", {}, {}));
    CHECK(r.structure.table == "t");
    CHECK(r.plan->target.structure_key == r.structure.key);
    CHECK_FALSE(r.plan_reusable);  // made again, with the newest columns
    // Not known yet: a plan without columns (it waits for them), and where to learn them.
    r = route_described(post(target), "");
    REQUIRE(r.action == Action::kBatch);
    CHECK(r.plan->options.columns == nullptr);
    CHECK(r.structure.key == structure_key("t", {}, {}));
    CHECK(r.structure.target == target);
  }
  // A column list: its columns; one the table does not take: alone.
  Route r = route_described(post("/?query=INSERT%20INTO%20t%20(%60b%60)%20FORMAT%20RowBinary"), kTable);
  REQUIRE(r.action == Action::kBatch);
  REQUIRE(r.plan->options.columns->size() == 1);
  CHECK((*r.plan->options.columns)[0].name == "b");
  CHECK(route_described(post("/?query=INSERT%20INTO%20t%20(a,c)%20FORMAT%20RowBinary"), kTable).action ==
        Action::kForward);
  // Other columns' types, another key.
  std::string other = "a\tUInt64\t\t\t\t\t\nb\tString\tDEFAULT\t\\'x\\'\t\t\t\n";
  const std::string rb = "/?query=INSERT%20INTO%20t%20FORMAT%20RowBinary";
  CHECK(route_described(post(rb), kTable).plan->target.key !=
        route_described(post(rb), other).plan->target.key);
  // Servers without the format: alone, for ClickHouse's own answer.
  CHECK(route_described(post("/?query=INSERT%20INTO%20t%20FORMAT%20RowBinaryWithNames"), kTable, false)
            .action == Action::kForward);
  CHECK(route_described(post("/?query=INSERT%20INTO%20t%20FORMAT%20RowBinaryWithDefaults"), kTable, true, false)
            .action == Action::kForward);
  CHECK(route_described(post(rb), kTable, false, false).action == Action::kBatch);  // 18.16 has RowBinary
  // Settings that change which columns or how they are read: alone.
  for (const char* setting : {"insert_allow_materialized_columns=1", "input_format_binary_read_json_as_string=1",
                              "format_binary_max_string_size=10"})
    CHECK(route_described(post(rb + "&" + setting), kTable).action == Action::kForward);
  // Another user's or database's key is not this one's.
  CHECK(route_described(post(rb + "&user=alice"), kTable).plan->options.columns == nullptr);
  CHECK(route_described(post(rb, {{"X-ClickHouse-Database", "d"}}), kTable).plan->options.columns == nullptr);
  // A written column of a type the walker does not read: alone.
  CHECK(route_described(post(rb), kTable + "j\tJSON\t\t\t\t\t\n").action == Action::kForward);
  CHECK(route_described(post("/?query=INSERT%20INTO%20t%20(a)%20FORMAT%20RowBinary"),
                        kTable + "j\tJSON\t\t\t\t\t\n").action == Action::kBatch);
}
