// A second look at the raw bytes of a request head.
//
// llhttp 8.1 in strict mode still accepts a few things a proxy must refuse,
// because a server behind it may read them differently (request smuggling):
// a bare LF as a line end, obs-fold continuation lines, an empty header
// name, and runs of spaces in the request line. The scanner walks the head
// (the request line byte by byte, a header line up to its first byte and
// then to its end), before the parser sees it, and stops at the blank line that
// ends the head, so no body byte is looked at. Pure; one per connection,
// reset at each request.
#pragma once

#include <cstddef>
#include <string_view>

namespace chsidecar {

class HeadScanner {
 public:
  enum class Result { kMore, kDone, kBad };

  // Scans `data`, the next bytes of a head. kDone: the head ended within
  // `data` (after `used` bytes); kBad: `problem` says why.
  Result feed(std::string_view data, size_t& used, const char*& problem);

  void reset() { *this = HeadScanner(); }
  bool done() const { return done_; }

 private:
  bool done_ = false;
  bool in_request_line_ = true;
  bool started_ = false;  // a byte of the request line was seen (leading CRLFs are skipped)
  size_t line_length_ = 0;
  char prev_ = '\0';
};

}  // namespace chsidecar
