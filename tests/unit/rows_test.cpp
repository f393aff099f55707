// Unit tests for rows.h: splitting and validating the rows of an INSERT.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "rows.h"

using namespace chsidecar;

namespace {

struct Split {
  bool ok = false;
  RowChunk chunk;
  RowError error;
};

Split split(RowFormat format, std::string_view data, const RowOptions& options = {}) {
  Split s;
  s.ok = split_rows(format, data, s.chunk, s.error, options);
  return s;
}

// The row count of valid data; -1 when it is refused.
long count(RowFormat format, std::string_view data, const RowOptions& options = {}) {
  Split s = split(format, data, options);
  return s.ok ? static_cast<long>(s.chunk.row_count) : -1;
}

constexpr auto kJSON = RowFormat::kJSONEachRow;
constexpr auto kCSV = RowFormat::kCSV;
constexpr auto kTSV = RowFormat::kTSV;
constexpr auto kValues = RowFormat::kValues;

}  // namespace

TEST_CASE("row_format maps ClickHouse format names") {
  CHECK(row_format("JSONEachRow") == RowFormat::kJSONEachRow);
  CHECK(row_format("CSV") == RowFormat::kCSV);
  CHECK(row_format("CSVWithNames") == RowFormat::kCSVWithNames);
  CHECK(row_format("CSVWithNamesAndTypes") == RowFormat::kCSVWithNamesAndTypes);
  CHECK(row_format("TSV") == RowFormat::kTSV);
  CHECK(row_format("TabSeparated") == RowFormat::kTSV);
  CHECK(row_format("TSVWithNames") == RowFormat::kTSVWithNames);
  CHECK(row_format("TabSeparatedWithNames") == RowFormat::kTSVWithNames);
  CHECK(row_format("TSVWithNamesAndTypes") == RowFormat::kTSVWithNamesAndTypes);
  CHECK(row_format("TabSeparatedWithNamesAndTypes") == RowFormat::kTSVWithNamesAndTypes);
  CHECK(row_format("Values") == RowFormat::kValues);
  CHECK_FALSE(row_format("RowBinaryWithNamesAndTypesAndDefaults").has_value());
  CHECK_FALSE(row_format("Parquet").has_value());
  CHECK_FALSE(row_format("").has_value());
  CHECK_FALSE(row_format("CSV ").has_value());
}

TEST_CASE("row_format_name writes a format's first name, which row_format reads back") {
  CHECK(row_format_name(RowFormat::kTSV) == "TSV");
  CHECK(row_format_name(RowFormat::kTSVWithNamesAndTypes) == "TSVWithNamesAndTypes");
  CHECK(row_format_name(RowFormat::kRowBinaryWithDefaults) == "RowBinaryWithDefaults");
  for (RowFormat f : {RowFormat::kJSONEachRow, RowFormat::kCSV, RowFormat::kCSVWithNames,
                      RowFormat::kCSVWithNamesAndTypes, RowFormat::kTSV, RowFormat::kTSVWithNames,
                      RowFormat::kTSVWithNamesAndTypes, RowFormat::kValues, RowFormat::kNative,
                      RowFormat::kRowBinaryWithNamesAndTypes, RowFormat::kRowBinary,
                      RowFormat::kRowBinaryWithNames, RowFormat::kRowBinaryWithDefaults})
    CHECK(row_format(row_format_name(f)) == f);
}

TEST_CASE("chunk_separator joins chunks of each format") {
  CHECK(chunk_separator(kJSON) == "\n");
  CHECK(chunk_separator(kValues) == ",");
  CHECK(chunk_separator(kCSV) == "");
  CHECK(chunk_separator(RowFormat::kCSVWithNames) == "");
  CHECK(chunk_separator(kTSV) == "");
  CHECK(chunk_separator(RowFormat::kTSVWithNamesAndTypes) == "");
}

TEST_CASE("JSONEachRow rows separated by newlines, nothing or commas") {
  Split s = split(kJSON, "{\"a\":1}\n{\"a\":2}\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.header.empty());
  CHECK_FALSE(s.chunk.needs_newline);
  CHECK(s.chunk.rows.substr(0, 7) == "{\"a\":1}");

  CHECK(count(kJSON, "{\"a\":1}{\"a\":2}{\"a\":3}") == 3);
  CHECK(count(kJSON, "{\"a\":1},{\"a\":2}") == 2);
  CHECK(count(kJSON, "{\"a\":1}, {\"a\":2},\n{\"a\":3}") == 3);
  CHECK(count(kJSON, "{\"a\":1}\r\n{\"a\":2}\r\n") == 2);
  CHECK(count(kJSON, "\n\n  {\"a\":1}\t\n\n{\"a\":2}  \n\n") == 2);
  CHECK(count(kJSON, "{}") == 1);

  // Leading blanks are not part of the rows.
  s = split(kJSON, "  \n{\"a\":1}");
  REQUIRE(s.ok);
  CHECK(s.chunk.rows == "{\"a\":1}");
}

TEST_CASE("JSONEachRow accepts a UTF-8 byte order mark") {
  Split s = split(kJSON, "\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.rows.substr(0, 1) == "{");  // the mark is not passed on
  CHECK(count(kJSON, "\xEF\xBB\xBF \n{\"a\":1}") == 1);
  // A half mark is not one.
  CHECK(count(kJSON, "\xEF\xBB{\"a\":1}") == -1);
}

TEST_CASE("a byte order mark: dropped before a header, plain CSV and TSV go alone") {
  // Every version drops it before a *WithNames header.
  Split s = split(RowFormat::kCSVWithNames, "\xEF\xBB\xBFx,y\n1,2\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "x,y\n");
  // 18.16 drops it from plain CSV and keeps it in TSV; 26.x keeps it when
  // the first column is a String: such a body is not batched.
  CHECK_FALSE(split(RowFormat::kCSV, "\xEF\xBB\xBFx,y\n1,2\n").ok);
  CHECK_FALSE(split(RowFormat::kTSV, "\xEF\xBB\xBFx\ty\n").ok);
}

TEST_CASE("JSONEachRow keeps nested objects, arrays and tricky strings") {
  CHECK(count(kJSON, R"({"a":{"b":[1,{"c":[[2],{}]}]},"d":[]})") == 1);
  CHECK(count(kJSON, R"({"a":{"b":{"c":{}}}}{"x":[{"y":1}]})") == 2);
  CHECK(count(kJSON, R"({"s":"}{"}{"s":"]["})") == 2);
  CHECK(count(kJSON, R"({"s":"{{{"}{"s":"}}}"})") == 2);
  CHECK(count(kJSON, R"({"s":"a\"}b"}{"s":"\"{"})") == 2);
  CHECK(count(kJSON, R"({"s":"back\\"}{"s":"\\\\"})") == 2);
  CHECK(count(kJSON, R"({"s":"\u007b\n\t"})") == 1);
  CHECK(count(kJSON, "{\"s\":\"h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80\"}\n") == 1);
  CHECK(count(kJSON, "{\"\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87\":\"\xE4\xB8\xAD\"}") == 1);

  Split s = split(kJSON, R"({"a":{"b":[1,2]}})" "\n" R"({"a":{"b":[]}})");
  REQUIRE(s.ok);
  CHECK(s.chunk.rows == R"({"a":{"b":[1,2]}})" "\n" R"({"a":{"b":[]}})");
}

TEST_CASE("JSONEachRow refuses a row that is not an object, naming it") {
  Split s = split(kJSON, "{\"a\":1}\n[1,2]\n");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);
  CHECK(s.error.message.find("object") != std::string::npos);

  s = split(kJSON, "{\"a\":1}\n{\"a\":2}\n5\n");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 3);

  s = split(kJSON, "\"text\"");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);

  s = split(kJSON, "{\"a\":1} garbage");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);

  s = split(kJSON, "null");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
}

TEST_CASE("JSONEachRow refuses a truncated last object with its row number") {
  Split s = split(kJSON, "{\"a\":1}\n{\"a\":2}\n{\"a\":");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 3);
  CHECK_FALSE(s.error.message.empty());

  s = split(kJSON, "{\"s\":\"}");  // the brace is inside the unfinished string
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);

  s = split(kJSON, "{\"a\":[1,2}");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);

  s = split(kJSON, "{");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
}

TEST_CASE("JSONEachRow refuses invalid JSON") {
  for (std::string_view bad : {R"({"a":})", R"({a:1})", R"({"a":1,})", R"({"a" 1})",
                               R"({"a":tru})", R"({"a":'x'})", R"({"a":1]})"}) {
    CAPTURE(bad);
    Split s = split(kJSON, std::string("{\"ok\":1}\n") + std::string(bad));
    REQUIRE_FALSE(s.ok);
    CHECK(s.error.row == 2);
    CHECK(s.error.message.find("invalid JSON") != std::string::npos);
  }
}

TEST_CASE("JSONEachRow defers bytes that are not UTF-8 and big numbers to the server") {
  Split s = split(kJSON, "{\"a\":1}\n{\"s\":\"\xFF\xFE\"}\n");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);

  s = split(kJSON, "{\"s\":\"\xC3\"}");  // a truncated two-byte sequence
  REQUIRE_FALSE(s.ok);

  s = split(kJSON, "{\"n\":123456789012345678901234567890}");  // a UInt128 / Int256 value
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);

  s = split(kJSON, "{\"n\":-99999999999999999999}");
  REQUIRE_FALSE(s.ok);

  s = split(kJSON, "{\"n\":1e400}");
  REQUIRE_FALSE(s.ok);

  // UInt64's largest value is fine.
  CHECK(count(kJSON, "{\"n\":18446744073709551615}") == 1);
  CHECK(count(kJSON, "{\"n\":-9223372036854775808}") == 1);
}

TEST_CASE("JSONEachRow: an empty body has no rows") {
  Split s = split(kJSON, "");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 0);
  CHECK(s.chunk.rows.empty());
  CHECK(count(kJSON, " \n\r\n\t") == 0);
  CHECK(count(kJSON, "\xEF\xBB\xBF") == 0);
}

TEST_CASE("JSONEachRow: a row of several MiB") {
  std::string big = "{\"s\":\"" + std::string(5u << 20, 'x') + "\",\"a\":[" ;
  for (int i = 0; i < 10000; ++i) big += std::to_string(i) + ",";
  big += "0]}";
  std::string data = "{\"a\":1}\n" + big + "\n{\"a\":2}\n";
  Split s = split(kJSON, data);
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 3);
  CHECK(s.chunk.rows.size() == data.size());

  // The same row, cut short, names its row.
  s = split(kJSON, std::string_view(data).substr(0, 8 + big.size() - 1));
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);
}

TEST_CASE("CSV respects quotes") {
  Split s = split(kCSV, "1,\"a,b\"\n2,\"c\nd\"\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.header.empty());
  CHECK(s.chunk.rows == "1,\"a,b\"\n2,\"c\nd\"\n");
  CHECK_FALSE(s.chunk.needs_newline);

  CHECK(count(kCSV, "1,\"say \"\"hi\"\"\"\n2,\"\"\"\"\n") == 2);
  CHECK(count(kCSV, "1,\"a\"\"\nb\"\n") == 1);        // a doubled quote, then a quoted newline
  CHECK(count(kCSV, "\"\"\n\"\"\n") == 2);             // empty quoted fields
  CHECK(count(kCSV, "\"a'b\nc\"\n") == 1);              // the other quote is literal inside
  CHECK(count(kCSV, "1,ab\"c,d\n2,x\n") == 2);         // a quote in the middle is literal
  CHECK(count(kCSV, "1,ab\"c\n\"2\",x\n") == 2);
  CHECK(count(kCSV, "1,it's\n2,x\n") == 2);
  CHECK(count(kCSV, "1,a\r\n2,b\r\n") == 2);
}

TEST_CASE("CSV: blanks before a quote do not keep it from opening a field, as in ClickHouse") {
  CHECK(count(kCSV, "1, \"a\nb\"\n2,c\n") == 2);
  CHECK(count(kCSV, "1,\t \"x,y\"\n") == 1);
  CHECK(header_name_count(RowFormat::kCSVWithNames, "a, \"b,c\"\n") == 2);
  Split s = split(kCSV, "1, \"hello\n2,x\n");  // the quote runs to the end of the data
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
  CHECK(s.error.message.find("unterminated") != std::string::npos);
}

TEST_CASE("CSV: what server versions read differently is not batched") {
  for (std::string_view data : {"1,a\n\r2,b\n", "1,a\r2,b\n", "\r\n1,a\n", "1,'a'\n", "1, 'a,b'\n",
                                "1,a\r\n\r2,b\n", "1,a\r"}) {
    CAPTURE(data);
    CHECK_FALSE(split(kCSV, data).ok);
  }
  // A quote inside an unquoted field is text, so is a single quote there.
  CHECK(count(kCSV, "1,it's\n") == 1);
}

TEST_CASE("CSVWithNames: a header alone without its newline is ClickHouse's to judge") {
  CHECK_FALSE(split(RowFormat::kCSVWithNames, "id,s").ok);
  Split s = split(RowFormat::kCSVWithNames, "id,s\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 0);
}

TEST_CASE("CSV does not batch an unterminated quote: ClickHouse judges it alone") {
  Split s = split(kCSV, "1,a\n2,\"abc\n3,x\n");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);
  CHECK(s.error.message.find("unterminated") != std::string::npos);

  s = split(kCSV, "\"abc");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);

  s = split(kCSV, "\"a\"\"\n");  // the doubled quote is not a closing one
  REQUIRE_FALSE(s.ok);
}

TEST_CASE("CSV data without a final newline needs one") {
  Split s = split(kCSV, "1,a\n2,b");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.needs_newline);
  CHECK(s.chunk.rows == "1,a\n2,b");

  s = split(kCSV, "1,\"a\nb\"");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 1);
  CHECK(s.chunk.needs_newline);

  s = split(kCSV, "1,a\n");
  REQUIRE(s.ok);
  CHECK_FALSE(s.chunk.needs_newline);

  s = split(kCSV, "");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 0);
  CHECK_FALSE(s.chunk.needs_newline);
}

TEST_CASE("CSV uses the custom delimiter for field starts") {
  RowOptions semi;
  semi.csv_delimiter = ';';
  // After ';' the quote opens a field only when ';' is the delimiter.
  CHECK(count(kCSV, "1;\"a;b\nc\"\n", semi) == 1);
  CHECK(count(kCSV, "1;\"a;b\nc\"\n") == 2);
  CHECK(count(kCSV, "1,\"a\nb\"\n", semi) == 2);
  CHECK(count(kCSV, "1,\"a\nb\"\n") == 1);
  RowOptions tab;
  tab.csv_delimiter = '\t';
  CHECK(count(kCSV, "1\t\"x\ny\"\n2\tz\n", tab) == 2);
}

TEST_CASE("CSVWithNames and CSVWithNamesAndTypes separate their header lines") {
  Split s = split(RowFormat::kCSVWithNames, "a,b\n1,2\n3,4\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "a,b\n");
  CHECK(s.chunk.rows == "1,2\n3,4\n");
  CHECK(s.chunk.row_count == 2);

  s = split(RowFormat::kCSVWithNamesAndTypes, "a,b\nUInt8,String\n1,x\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "a,b\nUInt8,String\n");
  CHECK(s.chunk.rows == "1,x\n");
  CHECK(s.chunk.row_count == 1);

  // A quoted newline in the header stays in the header.
  s = split(RowFormat::kCSVWithNames, "\"a\nb\",c\n1,2");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "\"a\nb\",c\n");
  CHECK(s.chunk.rows == "1,2");
  CHECK(s.chunk.row_count == 1);
  CHECK(s.chunk.needs_newline);

  // Header only: no rows.
  s = split(RowFormat::kCSVWithNames, "a,b\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "a,b\n");
  CHECK(s.chunk.row_count == 0);
  CHECK(s.chunk.rows.empty());
  CHECK_FALSE(s.chunk.needs_newline);
  CHECK(count(RowFormat::kCSVWithNamesAndTypes, "a,b\nUInt8,String\n") == 0);
}

TEST_CASE("CSVWithNames refuses a missing header") {
  Split s = split(RowFormat::kCSVWithNames, "");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
  CHECK(s.error.message.find("header") != std::string::npos);

  s = split(RowFormat::kCSVWithNamesAndTypes, "a,b\n");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);

  s = split(RowFormat::kCSVWithNames, "\"a,b\n");  // the header's quote never closes
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
}

TEST_CASE("TSV rows with escapes") {
  Split s = split(kTSV, "a\\tb\tc\\nd\te\\\\\n2\tx\\\\\ty\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK_FALSE(s.chunk.needs_newline);
  CHECK(s.chunk.header.empty());

  // A backslash before a literal newline escapes it: one row.
  CHECK(count(kTSV, "1\tline\\\nnext\n2\tx\n") == 2);
  CHECK(count(kTSV, "1\t\\\\\n2\n") == 2);  // an escaped backslash does not escape the newline
  CHECK(count(kTSV, "1\t'\"\n") == 1);      // quotes mean nothing in TSV
  CHECK(count(kTSV, "") == 0);

  s = split(kTSV, "1\ta\n2\tb");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.needs_newline);
}

TEST_CASE("TSV data ending in an escaped newline needs a newline") {
  Split s = split(kTSV, "1\ta\\\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 1);
  CHECK(s.chunk.needs_newline);

  s = split(kTSV, "0\tz\n1\ta\\\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.needs_newline);

  // A lone backslash at the end is refused.
  s = split(kTSV, "1\ta\n2\tb\\");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);
}

TEST_CASE("TSVWithNames and TSVWithNamesAndTypes separate their header lines") {
  Split s = split(RowFormat::kTSVWithNames, "a\tb\n1\t2\n");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "a\tb\n");
  CHECK(s.chunk.rows == "1\t2\n");
  CHECK(s.chunk.row_count == 1);

  s = split(RowFormat::kTSVWithNamesAndTypes, "a\tb\nUInt8\tString\n1\tx\n2\ty");
  REQUIRE(s.ok);
  CHECK(s.chunk.header == "a\tb\nUInt8\tString\n");
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.needs_newline);

  CHECK(count(RowFormat::kTSVWithNames, "a\tb\n") == 0);
  s = split(RowFormat::kTSVWithNames, "");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
  s = split(RowFormat::kTSVWithNamesAndTypes, "a\tb\n");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);
}

TEST_CASE("Values tuples") {
  Split s = split(kValues, "(1,'a'),(2,'b');");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 2);
  CHECK(s.chunk.rows == "(1,'a'),(2,'b')");
  CHECK(s.chunk.header.empty());
  CHECK_FALSE(s.chunk.needs_newline);

  s = split(kValues, " \n(1), (2) ,\n(3) , ; \n");
  REQUIRE(s.ok);
  CHECK(s.chunk.row_count == 3);
  CHECK(s.chunk.rows == "(1), (2) ,\n(3)");

  CHECK(count(kValues, "(1,[1,2],(3,(4,5)),{'k':[1]}),(2,[],(),{})") == 2);
  CHECK(count(kValues, "('(',')'),(')','(')") == 2);
  CHECK(count(kValues, "('it\\'s (', \"x)\"),(`)`)") == 2);
  CHECK(count(kValues, "('\\\\'),('a')") == 2);  // an escaped backslash before the closing quote
  CHECK(count(kValues, "('it''s)')") == 1);
  CHECK(count(kValues, "(1)(2)") == 2);
  CHECK(count(kValues, "") == 0);
  CHECK(count(kValues, " ;\n") == 0);
}

TEST_CASE("Values refuses unbalanced tuples and rows not starting with '('") {
  Split s = split(kValues, "(1),(2,(3)");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);

  s = split(kValues, "(1),(2,'x)");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);

  s = split(kValues, "(1,'a\\')");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);

  s = split(kValues, "1,2");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 1);
  CHECK(s.error.message.find("'('") != std::string::npos);

  s = split(kValues, "(1),x(2)");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);

  s = split(kValues, "(1))");
  REQUIRE_FALSE(s.ok);
  CHECK(s.error.row == 2);
}

TEST_CASE("header_name_count counts the names of the first header line") {
  using F = RowFormat;
  CHECK(header_name_count(F::kCSVWithNames, "a,b,c\n") == 3);
  CHECK(header_name_count(F::kCSVWithNames, "a\n") == 1);
  CHECK(header_name_count(F::kCSVWithNames, "a,\"b,c\",d\n") == 3);
  CHECK(header_name_count(F::kCSVWithNames, " \"x,y\" ,z\n") == 2);
  CHECK(header_name_count(F::kCSVWithNames, "\"a\"\",b\",c\n") == 2);  // a doubled quote
  CHECK(header_name_count(F::kCSVWithNames, "a\"b,c\n") == 2);  // a quote in the middle is literal
  CHECK(header_name_count(F::kCSVWithNames, "it's,b,c\n") == 3);
  CHECK(header_name_count(F::kCSVWithNames, "\"a\nb\",c\n") == 2);  // a quoted newline
  CHECK(header_name_count(F::kCSVWithNamesAndTypes, "a,b\nUInt8,Tuple(a UInt8, b UInt8)\n") == 2);
  CHECK(header_name_count(F::kCSVWithNames, "a,b\r\n") == 2);
  CHECK(header_name_count(F::kTSVWithNames, "a\tb\tc\n") == 3);
  CHECK(header_name_count(F::kTSVWithNames, "a,b\tc\n") == 2);
  CHECK(header_name_count(F::kTSVWithNames, "\"a\tb\"\n") == 2);  // no quoting in TSV
  CHECK(header_name_count(F::kTSVWithNamesAndTypes, "a\tb\nUInt8\tString\tx\n") == 2);
  RowOptions semi;
  semi.csv_delimiter = ';';
  CHECK(header_name_count(F::kCSVWithNames, "a;b,c;d\n", semi) == 3);
  CHECK(header_name_count(F::kCSVWithNames, "a;\"b;c\"\n", semi) == 2);
  CHECK(header_name_count(F::kCSVWithNames, "a;b,c;d\n") == 2);
}

TEST_CASE("property: joined chunks split into the sum of their rows") {
  struct Case {
    RowFormat format;
    std::vector<std::string> samples;
  };
  const std::vector<Case> cases = {
      {kJSON,
       {"{\"a\":1}", "{\"a\":1}\n", "{\"a\":1},{\"a\":2},", "\xEF\xBB\xBF{\"a\":[1,{}]}\r\n",
        "{\"s\":\"}\\\"{\"} {\"b\":2}  \n\n"}},
      {kCSV, {"1,a", "1,a\n", "1,\"a\nb\"\n2, \"c\"", "\"x\"\"\"", "1,a\r\n2,b\r\n", "1,ab\"c"}},
      {RowFormat::kCSVWithNames, {"a,b\n1,2", "a,b\n1,2\n3,\"x\ny\"\n"}},
      {RowFormat::kCSVWithNamesAndTypes, {"a,b\nUInt8,String\n1,x", "a,b\nUInt8,String\n1,x\n2,y\n"}},
      {kTSV, {"1\ta", "1\ta\n", "1\ta\\\n", "1\tb\\\nc\n2\t\\\\", "1\t\\\\\n2\t\\t"}},
      {RowFormat::kTSVWithNames, {"a\tb\n1\t2", "a\tb\n1\t2\\\n", "a\tb\n1\t2\n3\t4\n"}},
      {RowFormat::kTSVWithNamesAndTypes, {"a\tb\nUInt8\tString\n1\tx\\\n", "a\tb\nUInt8\tString\n1\tx\n"}},
      {kValues, {"(1)", "(1),(2);", "  (1,'a)'),\n(2,[3]) , ;\n", "('\\'(')"}},
  };
  for (const Case& c : cases) {
    for (const std::string& a : c.samples) {
      for (const std::string& b : c.samples) {
        CAPTURE(static_cast<int>(c.format));
        CAPTURE(a);
        CAPTURE(b);
        Split sa = split(c.format, a);
        Split sb = split(c.format, b);
        REQUIRE(sa.ok);
        REQUIRE(sb.ok);
        REQUIRE(sa.chunk.row_count > 0);
        REQUIRE(sb.chunk.row_count > 0);
        std::string joined(sa.chunk.header);
        joined += sa.chunk.rows;
        if (sa.chunk.needs_newline) joined += '\n';
        joined += chunk_separator(c.format);
        joined += sb.chunk.rows;
        Split sj = split(c.format, joined);
        CAPTURE(joined);
        REQUIRE(sj.ok);
        CHECK(sj.chunk.row_count == sa.chunk.row_count + sb.chunk.row_count);
        CHECK(sj.chunk.header == sa.chunk.header);
        CHECK(sj.chunk.needs_newline == sb.chunk.needs_newline);
      }
    }
  }
}
