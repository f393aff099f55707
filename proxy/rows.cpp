#include "rows.h"

#include <simdjson.h>

#include <utility>

#include "native_format.h"
#include "row_binary.h"

namespace chsidecar {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Finds the end of the JSON value that starts at data[pos] ('{'): one past
// its closing brace, or npos when the data ends first.
size_t json_object_end(std::string_view data, size_t pos) {
  int depth = 0;
  bool in_string = false;
  for (; pos < data.size(); ++pos) {
    char c = data[pos];
    if (in_string) {
      if (c == '\\') ++pos;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return pos + 1;
    }
  }
  return std::string_view::npos;
}

// A parser and a padded copy of the row, kept from call to call: making
// them for every request cost more than validating a small row. Trimmed
// after a call that grew them, so one large body does not pin memory.
struct JsonValidator {
  static constexpr size_t kKeptBytes = 64 * 1024;
  simdjson::dom::parser parser;
  std::string padded;

  simdjson::error_code check(std::string_view row) {
    padded.assign(row);
    padded.append(simdjson::SIMDJSON_PADDING, '\0');
    simdjson::dom::element element;
    return parser.parse(padded.data(), row.size(), false).get(element);
  }
  void trim() {
    if (padded.capacity() > kKeptBytes) std::string().swap(padded);
    if (parser.capacity() > kKeptBytes) parser = simdjson::dom::parser();
  }
};

// ClickHouse skips a UTF-8 byte order mark at the start of JSONEachRow and
// CSV data (not TSV); inside a batch it would land in the first value.
constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

std::string_view skip_byte_order_mark(std::string_view data) {
  return data.substr(0, 3) == kByteOrderMark ? data.substr(3) : data;
}

bool split_json(std::string_view data, RowChunk& chunk, RowError& error) {
  data = skip_byte_order_mark(data);
  size_t pos = 0;
  while (pos < data.size() && is_blank(data[pos])) ++pos;
  chunk.rows = data.substr(pos);
  thread_local JsonValidator validator;
  struct Trim {
    ~Trim() { validator.trim(); }
  } trim_on_return;
  size_t row = 0;
  while (pos < data.size()) {
    ++row;
    if (data[pos] != '{') {
      error = {row, "a JSONEachRow row must be a JSON object"};
      return false;
    }
    size_t end = json_object_end(data, pos);
    if (end == std::string_view::npos) {
      error = {row, "incomplete JSON object at the end of the data"};
      return false;
    }
    if (auto err = validator.check(data.substr(pos, end - pos))) {
      error = {row, std::string("invalid JSON: ") + simdjson::error_message(err)};
      return false;
    }
    pos = end;
    while (pos < data.size() && (is_blank(data[pos]) || data[pos] == ',')) ++pos;
  }
  chunk.row_count = row;
  return true;
}

// How one CSV record reads, the way ClickHouse's CSV reader takes it.
enum class CsvRecord {
  kRecord,        // pos is one past its line end (or at the end of the data)
  kUnterminated,  // a quoted field runs to the end of the data
  kUnmodelled,    // a line end or quote whose reading differs between versions
};

// Reads the record starting at `pos`; counts its fields into `fields`.
// ClickHouse skips spaces and tabs before a field, so a quote after them
// still opens a quoted field; a line ends at "\n" or "\r\n". Left to the
// server: "\n\r" (one line end to 18.16), a lone "\r", a record that starts
// with "\r", and a single quote opening a field (quoted by default on
// 18.16, plain text on newer servers).
CsvRecord csv_record(std::string_view data, size_t& pos, char delimiter, size_t& fields) {
  fields = 1;
  if (pos < data.size() && data[pos] == '\r') return CsvRecord::kUnmodelled;
  for (;;) {  // at the start of a field
    while (pos < data.size() && (data[pos] == ' ' || data[pos] == '\t')) ++pos;
    if (pos < data.size() && data[pos] == '\'') return CsvRecord::kUnmodelled;
    if (pos < data.size() && data[pos] == '"') {
      for (++pos;; ++pos) {
        if (pos >= data.size()) return CsvRecord::kUnterminated;
        if (data[pos] != '"') continue;
        if (pos + 1 < data.size() && data[pos + 1] == '"') {
          ++pos;
          continue;
        }
        ++pos;
        break;
      }
    }
    while (pos < data.size()) {  // the rest of the field
      char c = data[pos];
      if (c == delimiter) break;
      if (c == '\n') {
        ++pos;
        return pos < data.size() && data[pos] == '\r' ? CsvRecord::kUnmodelled : CsvRecord::kRecord;
      }
      if (c == '\r') {
        if (pos + 1 >= data.size() || data[pos + 1] != '\n') return CsvRecord::kUnmodelled;
        pos += 2;
        return pos < data.size() && data[pos] == '\r' ? CsvRecord::kUnmodelled : CsvRecord::kRecord;
      }
      ++pos;
    }
    if (pos >= data.size()) return CsvRecord::kRecord;
    ++pos;  // the delimiter
    ++fields;
  }
}

bool tsv_record_end(std::string_view data, size_t& pos, bool& terminated) {
  terminated = false;
  while (pos < data.size()) {
    char c = data[pos++];
    if (c == '\\') {
      if (pos >= data.size()) return false;
      ++pos;  // an escaped character, a literal newline included
    } else if (c == '\n') {
      terminated = true;
      return true;
    }
  }
  return true;
}

bool split_lines(std::string_view data, size_t header_lines, bool csv, RowChunk& chunk,
                 RowError& error, char delimiter = ',') {
  size_t pos = 0;
  size_t row = 0;
  size_t rows_start = 0;
  bool terminated = true;
  while (pos < data.size()) {
    ++row;
    if (csv) {
      size_t fields;
      switch (csv_record(data, pos, delimiter, fields)) {
        case CsvRecord::kRecord:
          terminated = pos > 0 && data[pos - 1] == '\n';
          break;
        case CsvRecord::kUnterminated:
          // ClickHouse reads an open quote to the end of the data, and takes
          // the row when the columns work out: its answer, unbatched (in a
          // batch the quote would swallow the next request's rows).
          error = {row, "unterminated quoted field"};
          return false;
        case CsvRecord::kUnmodelled:
          error = {row, "a line end or quote read differently by server versions"};
          return false;
      }
    } else if (!tsv_record_end(data, pos, terminated)) {
      error = {row, "data ends inside an escape sequence"};
      return false;
    }
    if (row == header_lines) rows_start = pos;
  }
  if (row < header_lines) {
    error = {row + 1, "missing header line"};
    return false;
  }
  chunk.header = data.substr(0, rows_start);
  chunk.rows = data.substr(rows_start);
  chunk.row_count = row - header_lines;
  // An escaped newline at the very end does not end the last row.
  chunk.needs_newline = !chunk.rows.empty() && !terminated;
  if (!chunk.header.empty() && chunk.header.back() != '\n') {
    // ClickHouse takes a header alone, without its newline: no rows.
    error = {header_lines, "header line must end with a newline"};
    return false;
  }
  return true;
}

// Values: tuples such as (1,'a'),(2,'b'), with quotes and nesting respected.
bool split_values(std::string_view data, RowChunk& chunk, RowError& error) {
  size_t end = data.size();
  while (end > 0 && (is_blank(data[end - 1]) || data[end - 1] == ';' || data[end - 1] == ',')) --end;
  size_t pos = 0;
  while (pos < end && is_blank(data[pos])) ++pos;
  chunk.rows = data.substr(pos, end - pos);
  size_t row = 0;
  while (pos < end) {
    if (data[pos] != '(') {
      error = {row + 1, "expected '(' at the start of a row"};
      return false;
    }
    ++row;
    int depth = 0;
    do {
      char c = data[pos++];
      if (c == '\'' || c == '"' || c == '`') {
        while (pos < end && data[pos] != c) pos += data[pos] == '\\' ? 2 : 1;
        if (pos >= end) {
          error = {row, "unterminated quoted value"};
          return false;
        }
        ++pos;
      } else if (c == '(' || c == '[' || c == '{') {
        ++depth;
      } else if (c == ')' || c == ']' || c == '}') {
        --depth;
      }
    } while (depth > 0 && pos < end);
    if (depth != 0) {
      error = {row, "unbalanced parentheses"};
      return false;
    }
    while (pos < end && is_blank(data[pos])) ++pos;
    if (pos < end && data[pos] == ',') ++pos;
    while (pos < end && is_blank(data[pos])) ++pos;
  }
  chunk.row_count = row;
  return true;
}

bool split_csv(std::string_view data, size_t header_lines, RowChunk& chunk, RowError& error,
               char delimiter) {
  // A mark before a header line goes with the header (every version drops
  // it there); before plain rows versions differ (18.16 drops it, 26.x
  // keeps it in a String first column): that body goes alone.
  if (data.substr(0, 3) == kByteOrderMark && header_lines == 0) {
    error = {1, "a byte order mark before the rows"};
    return false;
  }
  data = skip_byte_order_mark(data);
  if (data.substr(0, 3) == kByteOrderMark) {  // data to ClickHouse, but a mark first in a batch
    error = {1, "a second byte order mark"};
    return false;
  }
  return split_lines(data, header_lines, true, chunk, error, delimiter);
}

bool split_native(std::string_view data, RowChunk& chunk, RowError& error) {
  NativeBody body;
  NativeError why;
  if (!walk_native(data, body, why)) {
    error = {why.block, "Native block " + std::to_string(why.block) + ": " + why.message};
    return false;
  }
  chunk.rows = data;
  chunk.row_count = body.row_count;
  chunk.structure = std::move(body.structure);
  return true;
}

bool split_row_binary(std::string_view data, RowFormat format, const RowOptions& options,
                      RowChunk& chunk, RowError& error) {
  RowBinaryBody body;
  RowBinaryError why;
  bool walked = false;
  if (format == RowFormat::kRowBinaryWithNamesAndTypes) {
    walked = walk_row_binary(data, body, why);
  } else if (options.columns == nullptr) {
    why = {0, "the table's columns are not known"};
  } else {
    RowBinaryLayout layout = format == RowFormat::kRowBinary           ? RowBinaryLayout::kPlain
                             : format == RowFormat::kRowBinaryWithNames ? RowBinaryLayout::kWithNames
                                                                        : RowBinaryLayout::kWithDefaults;
    walked = walk_row_binary_described(data, *options.columns, layout, body, why);
  }
  if (!walked) {
    error = {why.row == 0 ? 1 : why.row, why.row == 0 ? "header: " + why.message : why.message};
    return false;
  }
  chunk.header = body.header;
  chunk.rows = body.rows;
  chunk.row_count = body.row_count;
  return true;
}

}  // namespace

bool binary_format(RowFormat format) {
  return format == RowFormat::kNative || format == RowFormat::kRowBinaryWithNamesAndTypes ||
         needs_table_structure(format);
}

bool needs_table_structure(RowFormat format) {
  return format == RowFormat::kRowBinary || format == RowFormat::kRowBinaryWithNames ||
         format == RowFormat::kRowBinaryWithDefaults;
}

namespace {

// Every name ClickHouse takes for a format the splitter reads; a format's
// first name is the one written back (row_format_name).
constexpr std::pair<std::string_view, RowFormat> kFormatNames[] = {
    {"JSONEachRow", RowFormat::kJSONEachRow},
    {"CSV", RowFormat::kCSV},
    {"CSVWithNames", RowFormat::kCSVWithNames},
    {"CSVWithNamesAndTypes", RowFormat::kCSVWithNamesAndTypes},
    {"TSV", RowFormat::kTSV},
    {"TabSeparated", RowFormat::kTSV},
    {"TSVWithNames", RowFormat::kTSVWithNames},
    {"TabSeparatedWithNames", RowFormat::kTSVWithNames},
    {"TSVWithNamesAndTypes", RowFormat::kTSVWithNamesAndTypes},
    {"TabSeparatedWithNamesAndTypes", RowFormat::kTSVWithNamesAndTypes},
    {"Values", RowFormat::kValues},
    {"Native", RowFormat::kNative},
    {"RowBinaryWithNamesAndTypes", RowFormat::kRowBinaryWithNamesAndTypes},
    {"RowBinary", RowFormat::kRowBinary},
    {"RowBinaryWithNames", RowFormat::kRowBinaryWithNames},
    {"RowBinaryWithDefaults", RowFormat::kRowBinaryWithDefaults},
};

}  // namespace

std::optional<RowFormat> row_format(std::string_view name) {
  for (const auto& [known, format] : kFormatNames)
    if (known == name) return format;
  return std::nullopt;
}

std::string_view row_format_name(RowFormat format) {
  for (const auto& [name, known] : kFormatNames)
    if (known == format) return name;
  return "";
}

bool split_rows(RowFormat format, std::string_view data, RowChunk& chunk, RowError& error,
                const RowOptions& options) {
  chunk = RowChunk{};
  char d = options.csv_delimiter;
  switch (format) {
    case RowFormat::kJSONEachRow: return split_json(data, chunk, error);
    case RowFormat::kCSV: return split_csv(data, 0, chunk, error, d);
    case RowFormat::kCSVWithNames: return split_csv(data, 1, chunk, error, d);
    case RowFormat::kCSVWithNamesAndTypes: return split_csv(data, 2, chunk, error, d);
    case RowFormat::kTSV:
      if (data.substr(0, 3) == kByteOrderMark) {  // versions read it differently (see split_csv)
        error = {1, "a byte order mark before the rows"};
        return false;
      }
      return split_lines(data, 0, false, chunk, error);
    case RowFormat::kTSVWithNames: return split_lines(data, 1, false, chunk, error);
    case RowFormat::kTSVWithNamesAndTypes: return split_lines(data, 2, false, chunk, error);
    case RowFormat::kValues: return split_values(data, chunk, error);
    case RowFormat::kNative: return split_native(data, chunk, error);
    case RowFormat::kRowBinaryWithNamesAndTypes:
    case RowFormat::kRowBinary:
    case RowFormat::kRowBinaryWithNames:
    case RowFormat::kRowBinaryWithDefaults: return split_row_binary(data, format, options, chunk, error);
  }
  return false;
}

size_t header_name_count(RowFormat format, std::string_view header, const RowOptions& options) {
  if (binary_format(format)) return row_binary_column_count(header);
  bool csv = format == RowFormat::kCSVWithNames || format == RowFormat::kCSVWithNamesAndTypes;
  size_t count = 1;
  if (csv) {  // the splitter's own reading; it took this header already
    size_t pos = 0;
    csv_record(header, pos, options.csv_delimiter, count);
    return count;
  }
  for (size_t i = 0; i < header.size(); ++i) {
    char c = header[i];
    if (c == '\n') break;
    if (c == '\\') {
      ++i;  // an escaped character
      continue;
    }
    if (c == '\t') ++count;
  }
  return count;
}

std::string_view chunk_separator(RowFormat format) {
  switch (format) {
    case RowFormat::kJSONEachRow: return "\n";
    case RowFormat::kValues: return ",";
    default: return "";  // CSV/TSV chunks end in '\n' already; binary ones concatenate
  }
}

}  // namespace chsidecar
