// Unit tests for ch_errors.h: reading ClickHouse's error answers.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ch_errors.h"

using namespace chsidecar;

TEST_CASE("exception_code reads the code at the start of the body") {
  const std::vector<Header> none;
  // 18.16-style
  CHECK(exception_code("Code: 373, e.displayText() = DB::Exception: Session is locked by a concurrent client., "
                       "e.what() = DB::Exception\n",
                       none) == 373);
  CHECK(exception_code("Code: 27, e.displayText() = DB::Exception: Cannot parse input", none) == 27);
  // Modern
  CHECK(exception_code("Code: 60. DB::Exception: Table default.x does not exist. (UNKNOWN_TABLE) "
                       "(version 23.8.1.1)\n",
                       none) == 60);
  CHECK(exception_code("Code: 1002. DB::Exception: unknown", none) == 1002);
  CHECK(exception_code("\n  Code: 241. DB::Exception: Memory limit exceeded", none) == 241);
  // No code.
  CHECK(exception_code("", none) == 0);
  CHECK(exception_code("Internal Server Error", none) == 0);
  CHECK(exception_code("Code: abc", none) == 0);
  CHECK(exception_code("Code:60.", none) == 0);
  CHECK(exception_code("Error. Code: 60. DB::Exception", none) == 0);  // only at the start
}

TEST_CASE("exception_code prefers the X-ClickHouse-Exception-Code header") {
  CHECK(exception_code("", {{"X-ClickHouse-Exception-Code", "516"}}) == 516);
  CHECK(exception_code("oops", {{"x-clickhouse-exception-code", "62"}}) == 62);
  CHECK(exception_code("Code: 60. DB::Exception: x", {{"Content-Type", "text/plain"},
                                                      {"X-ClickHouse-Exception-Code", "62"}}) == 62);
  // A header that is not a number falls back to the body.
  CHECK(exception_code("Code: 60. DB::Exception: x", {{"X-ClickHouse-Exception-Code", "x"}}) == 60);
  CHECK(exception_code("Code: 60. DB::Exception: x", {{"X-ClickHouse-Exception-Code", "0"}}) == 60);
  CHECK(exception_code("nothing", {{"X-ClickHouse-Exception-Code", ""}}) == 0);
  CHECK(exception_code("Code: 60. x", {{"X-ClickHouse-Summary", "{\"read_rows\":\"0\"}"}}) == 60);
}

TEST_CASE("classify_error sorts codes into transient, data and permanent") {
  for (int code : {252, 241, 202, 159, 210, 319, 209, 425, 3, 243, 225, 394, 236, 173, 1000,
                   74, 75, 76, 77, 107}) {
    CAPTURE(code);
    CHECK(classify_error(code) == ErrorClass::kTransient);
  }
  // Unknown codes too: a batch is split rather than every request failed.
  for (int code : {26, 27, 117, 6, 38, 53, 32, 33, 69, 70, 72, 130, 131, 36, 46, 47, 49, 62, 1,
                   -1, 100000}) {
    CAPTURE(code);
    CHECK(classify_error(code) == ErrorClass::kData);
  }
  for (int code : {60, 115, 516, 81, 16, 164, 192, 193, 497}) {
    CAPTURE(code);
    CHECK(classify_error(code) == ErrorClass::kPermanent);
  }
}
