// Splitting and validating the rows of a batchable INSERT, per format.
//
// Each request's data is checked before it may join a batch: rows join
// only when the sidecar reads their boundaries exactly as ClickHouse will
// inside the batch, so that no request can change what another's rows
// become. Anything else (malformed, or read differently by some server
// version) goes to ClickHouse alone, and the client gets its answer. The
// checks are structural: JSON rows must be JSON objects (simdjson, values
// not reshaped); CSV records are read as ClickHouse's CSV reader reads them
// (blanks before a quote, "\r\n"), TSV with its escapes; *WithNames header
// lines are separated out; Values tuples must balance; Native and
// RowBinary* bodies are walked byte for byte by their column types
// (native_format.h, row_binary.h), which RowBinary, RowBinaryWithNames and
// RowBinaryWithDefaults take from the table (RowOptions::columns). Whether a value
// fits its column is for ClickHouse to say (the batcher isolates such rows
// by bisection).
//
// Pure; the result views point into the given data, which must outlive it.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "row_binary.h"

namespace chsidecar {

enum class RowFormat {
  kJSONEachRow,
  kCSV,
  kCSVWithNames,
  kCSVWithNamesAndTypes,
  kTSV,
  kTSVWithNames,
  kTSVWithNamesAndTypes,
  kValues,
  kNative,                      // blocks concatenate; names and types are in the key
  kRowBinaryWithNamesAndTypes,  // the header is taken once per batch
  // Walked by the table's types (RowOptions::columns; table_structure.h).
  kRowBinary,
  kRowBinaryWithNames,  // the header (count, names) is taken once per batch
  kRowBinaryWithDefaults,
};
inline constexpr RowFormat kLastRowFormat = RowFormat::kRowBinaryWithDefaults;

// Native and RowBinary*: bytes, not lines.
bool binary_format(RowFormat format);

// RowBinary, RowBinaryWithNames, RowBinaryWithDefaults: the rows are
// walked by the table's types, which the request does not carry.
bool needs_table_structure(RowFormat format);

// The format for a ClickHouse format name (TabSeparated and TSV alike);
// nullopt for formats that are not batched (Parquet, ...).
std::optional<RowFormat> row_format(std::string_view name);
// The name ClickHouse knows `format` by (TSV for both spellings).
std::string_view row_format_name(RowFormat format);

struct RowChunk {
  std::string_view header;  // the *WithNames header lines, each ending in '\n';
                            // RowBinaryWithNamesAndTypes: its binary header
  std::string_view rows;    // the data rows as they may be concatenated
  bool needs_newline = false;  // CSV/TSV data whose last row lacks '\n'
  size_t row_count = 0;
  // Native: the names and types of every block ("name\0type\0" per
  // column), which the merge key must hold; not sent as a header.
  std::string structure;
};

// Why rows cannot be batched. Not a verdict on the data: ClickHouse may
// still take it (bytes that are not UTF-8, numbers beyond 64 bits, a quote
// open to the end), so such a request goes to ClickHouse alone.
struct RowError {
  size_t row = 0;  // 1-based
  std::string message;
};

struct RowOptions {
  char csv_delimiter = ',';  // format_csv_delimiter
  // needs_table_structure() formats: the columns the INSERT writes, with
  // the table's types (table_structure.h); without them nothing splits.
  std::shared_ptr<const std::vector<RowBinaryColumn>> columns;
};

// Splits `data` in `format`. Returns false and fills `error` on the first
// row it cannot split exactly as ClickHouse would read it. JSONEachRow rows may be separated by whitespace, commas or
// nothing, and may follow a UTF-8 byte order mark, as ClickHouse allows.
bool split_rows(RowFormat format, std::string_view data, RowChunk& chunk, RowError& error,
                const RowOptions& options = {});

// The number of names in the first header line of a *WithNames chunk (the
// column count of a RowBinaryWithNames* header).
size_t header_name_count(RowFormat format, std::string_view header, const RowOptions& options = {});

// What goes between two chunks of `format` in a batch.
std::string_view chunk_separator(RowFormat format);

}  // namespace chsidecar
