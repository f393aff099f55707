// Unit tests for dead_letters.h's pure parts: which lines fit under the
// cap, and which file names count as rotated dead letters.
#include <doctest/doctest.h>

#include "dead_letters.h"
#include "json_text.h"

using namespace chsidecar;

TEST_CASE("only whole lines that fit the room are written, in order") {
  uint64_t bytes = 7;
  CHECK(dead_letter_lines_that_fit("", 100, bytes) == 0);
  CHECK(bytes == 0);
  CHECK(dead_letter_lines_that_fit("aaaa\nbb\n", 100, bytes) == 2);
  CHECK(bytes == 8);
  CHECK(dead_letter_lines_that_fit("aaaa\nbb\n", 8, bytes) == 2);
  CHECK(dead_letter_lines_that_fit("aaaa\nbb\n", 7, bytes) == 1);
  CHECK(bytes == 5);
  CHECK(dead_letter_lines_that_fit("aaaa\nbb\n", 4, bytes) == 0);  // never a part of a line
  CHECK(bytes == 0);
  CHECK(dead_letter_lines_that_fit("aaaa\nb\n", 0, bytes) == 0);
  // A later short line never jumps the queue.
  CHECK(dead_letter_lines_that_fit("aaaaaaaa\nb\n", 3, bytes) == 0);
}

TEST_CASE("rotated dead-letter files are dead-letter-<n>.jsonl") {
  CHECK(dead_letter_file_number("dead-letter-1.jsonl") == 1);
  CHECK(dead_letter_file_number("dead-letter-42.jsonl") == 42);
  CHECK(dead_letter_file_number("dead-letter.jsonl") == 0);
  CHECK(dead_letter_file_number("dead-letter-.jsonl") == 0);
  CHECK(dead_letter_file_number("dead-letter--1.jsonl") == 0);
  CHECK(dead_letter_file_number("dead-letter-3.jsonl.gz") == 0);
  CHECK(dead_letter_file_number("dead-letter-3.json") == 0);
  CHECK(dead_letter_file_number("segment-00000000000000000001.log") == 0);
}

TEST_CASE("append_json_base64 keeps binary rows exactly (RFC 4648 vectors)") {
  auto b64 = [](std::string_view s) {
    std::string out;
    chsidecar::append_json_base64(out, s);
    return out;
  };
  CHECK(b64("") == "\"\"");
  CHECK(b64("f") == "\"Zg==\"");
  CHECK(b64("fo") == "\"Zm8=\"");
  CHECK(b64("foo") == "\"Zm9v\"");
  CHECK(b64("foobar") == "\"Zm9vYmFy\"");
  CHECK(b64(std::string("\x00\xff\x10", 3)) == "\"AP8Q\"");
}
