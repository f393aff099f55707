#include "head_scanner.h"

#include <cstring>

namespace chsidecar {

HeadScanner::Result HeadScanner::feed(std::string_view data, size_t& used, const char*& problem) {
  used = 0;
  if (done_) return Result::kDone;
  for (size_t i = 0; i < data.size(); ++i) {
    char c = data[i];
    if (!in_request_line_ && line_length_ > 0 && c != '\n') {
      // Past a header line's first byte only its end matters: skip to it.
      const void* lf = std::memchr(data.data() + i, '\n', data.size() - i);
      size_t end = lf != nullptr ? static_cast<size_t>(static_cast<const char*>(lf) - data.data())
                                 : data.size();
      line_length_ += end - i;
      prev_ = data[end - 1];
      i = end - 1;
      continue;
    }
    if (c == '\n') {
      if (prev_ != '\r') {
        problem = "bare LF as a line end";
        return Result::kBad;
      }
      if (!started_) {  // an empty line before the request line is ignored
        prev_ = c;
        continue;
      }
      if (!in_request_line_ && line_length_ == 0) {
        done_ = true;
        used = i + 1;
        return Result::kDone;
      }
      in_request_line_ = false;
      line_length_ = 0;
    } else if (c != '\r') {
      started_ = true;
      if (in_request_line_ && c == ' ' && prev_ == ' ') {
        problem = "more than one space in the request line";
        return Result::kBad;
      }
      if (!in_request_line_ && line_length_ == 0) {
        if (c == ' ' || c == '\t') {
          problem = "obsolete line folding (obs-fold)";
          return Result::kBad;
        }
        if (c == ':') {
          problem = "empty header name";
          return Result::kBad;
        }
      }
      ++line_length_;
    }
    prev_ = c;
  }
  used = data.size();
  return Result::kMore;
}

}  // namespace chsidecar
