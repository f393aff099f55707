// Fuzz target: the head of an SQL text (insert_query.h, statement.h).
//
// The input is the SQL text of a request. Checks that parse_insert and
// classify_statement neither crash nor break their contracts: the data
// offset lies inside the text; a text that is an INSERT stays one when more
// text follows (kNeedMore only for incomplete text, never a different
// answer for a longer prefix); classify_statement never answers kUnknown
// for complete text; and insert_sql() of a parsed INSERT parses back to the
// same table, columns and format.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "insert_query.h"
#include "statement.h"

using namespace chsidecar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string owned(reinterpret_cast<const char*>(data), size);
  std::string_view sql(owned);

  InsertQuery q;
  InsertParse complete = parse_insert(sql, true, q);
  FUZZ_CHECK(complete != InsertParse::kNeedMore);
  if (complete == InsertParse::kInsert) {
    FUZZ_CHECK(q.data_offset <= sql.size());
    FUZZ_CHECK(!q.table.empty());
    FUZZ_CHECK(!q.format.empty());
    // The INSERT the batch is sent with parses to the same target.
    std::string head = insert_sql(q);
    InsertQuery back;
    InsertParse again = parse_insert(head, true, back);
    if (again != InsertParse::kInsert || back.table != q.table || back.columns != q.columns ||
        back.format != q.format)
      std::fprintf(stderr, "insert_sql round trip: [%s] table [%s] columns [%s] format [%s]\n",
                   head.c_str(), back.table.c_str(), back.columns.c_str(), back.format.c_str());
    FUZZ_CHECK(again == InsertParse::kInsert);
    FUZZ_CHECK(back.table == q.table);
    FUZZ_CHECK(back.columns == q.columns);
    FUZZ_CHECK(back.format == q.format);
  }

  // A prefix, as the sidecar sees it while the body arrives.
  size_t cut = size == 0 ? 0 : (data[0] * 7u + size) % (size + 1);
  std::string prefix(sql.substr(0, cut));
  InsertQuery p;
  InsertParse partial = parse_insert(prefix, false, p);
  if (partial == InsertParse::kInsert) {
    // Decided on a prefix: the whole text must agree.
    FUZZ_CHECK(complete == InsertParse::kInsert);
    FUZZ_CHECK(p.table == q.table);
    FUZZ_CHECK(p.format == q.format);
    FUZZ_CHECK(p.data_offset == q.data_offset);
  } else if (partial == InsertParse::kNotInsert) {
    FUZZ_CHECK(complete == InsertParse::kNotInsert);
  }

  StatementKind kind = classify_statement(sql, true);
  FUZZ_CHECK(kind != StatementKind::kUnknown);
  StatementKind early = classify_statement(prefix, false);
  if (early != StatementKind::kUnknown) FUZZ_CHECK(early == kind);
  return 0;
}
