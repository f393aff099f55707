// Fuzz target: the row splitters (rows.h), every RowFormat.
//
// The first input byte picks the format (modulo the number of formats); the
// rest is the request's data. Checks that split_rows neither crashes nor
// breaks its contract: the header and rows are views into the data; for CSV
// and TSV, header + rows is the data; and the way the batcher joins chunks
// holds: the rows split again give the same count, and two chunks joined by
// chunk_separator() (with the newline the batcher adds when needs_newline)
// split into the sum of their counts.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "rows.h"

using namespace chsidecar;

namespace {

constexpr RowFormat kFormats[] = {
    RowFormat::kJSONEachRow, RowFormat::kCSV,  RowFormat::kCSVWithNames,
    RowFormat::kCSVWithNamesAndTypes, RowFormat::kTSV, RowFormat::kTSVWithNames,
    RowFormat::kTSVWithNamesAndTypes, RowFormat::kValues, RowFormat::kNative,
    RowFormat::kRowBinaryWithNamesAndTypes,
};

bool inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

// The header-less format whose rows a chunk of `f` joins in a batch.
RowFormat rows_format(RowFormat f) {
  switch (f) {
    case RowFormat::kCSVWithNames:
    case RowFormat::kCSVWithNamesAndTypes: return RowFormat::kCSV;
    case RowFormat::kTSVWithNames:
    case RowFormat::kTSVWithNamesAndTypes: return RowFormat::kTSV;
    default: return f;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  RowFormat format = kFormats[data[0] % std::size(kFormats)];
  // A private copy of exactly the data, so reads past its end are caught.
  std::string owned(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view rows_in(owned);

  RowChunk chunk;
  RowError error;
  if (!split_rows(format, rows_in, chunk, error)) {
    FUZZ_CHECK(error.row >= 1);
    FUZZ_CHECK(!error.message.empty());
    return 0;
  }
  FUZZ_CHECK(inside(chunk.header, rows_in));
  FUZZ_CHECK(inside(chunk.rows, rows_in));
  bool lines = format != RowFormat::kJSONEachRow && format != RowFormat::kValues &&
               !binary_format(format);
  if (binary_format(format)) {
    FUZZ_CHECK(chunk.header.size() + chunk.rows.size() == rows_in.size());
    FUZZ_CHECK(!chunk.needs_newline);
    FUZZ_CHECK((format == RowFormat::kNative) == !chunk.structure.empty() || chunk.row_count == 0);
  } else if (lines) {
    // CSV drops a leading byte order mark, as ClickHouse does.
    bool csv = rows_format(format) == RowFormat::kCSV;
    size_t mark = csv && rows_in.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
    FUZZ_CHECK(mark + chunk.header.size() + chunk.rows.size() == rows_in.size());
    FUZZ_CHECK(chunk.header.empty() || chunk.header.back() == '\n');
  } else {
    FUZZ_CHECK(chunk.header.empty());
    FUZZ_CHECK(!chunk.needs_newline);
  }
  if (chunk.row_count == 0) return 0;

  // The rows alone, as the batcher sends them after the header (a binary
  // header is part of what is split again).
  RowFormat joined_format = rows_format(format);
  std::string head = binary_format(format) ? std::string(chunk.header) : std::string();
  std::string rows(chunk.rows);
  if (chunk.needs_newline) rows += '\n';
  // Rows that begin with a byte order mark (after a header line) are never
  // first in a body: a header line or other rows go before them.
  if (joined_format == RowFormat::kCSV && rows.compare(0, 3, "\xEF\xBB\xBF") == 0) return 0;
  RowChunk again;
  RowError again_error;
  bool ok = split_rows(joined_format, head + rows, again, again_error);
  if (!ok) std::fprintf(stderr, "re-split failed: row %zu: %s\n", again_error.row, again_error.message.c_str());
  FUZZ_CHECK(ok);
  FUZZ_CHECK(again.row_count == chunk.row_count);

  // Two chunks joined as in a batch.
  std::string batch = head + rows + std::string(chunk_separator(joined_format)) + rows;
  RowChunk joined;
  RowError joined_error;
  ok = split_rows(joined_format, batch, joined, joined_error);
  if (!ok) std::fprintf(stderr, "joined split failed: row %zu: %s\n", joined_error.row, joined_error.message.c_str());
  FUZZ_CHECK(ok);
  if (joined.row_count != 2 * chunk.row_count)
    std::fprintf(stderr, "joined rows %zu != 2 * %zu\n", joined.row_count, chunk.row_count);
  FUZZ_CHECK(joined.row_count == 2 * chunk.row_count);
  FUZZ_CHECK(joined.structure == chunk.structure);
  return 0;
}
