// A small query of the sidecar's own, asked as an INSERT's user.
//
// The sidecar asks ClickHouse about a table an INSERT writes (whether it
// has dependent views: table_check.h; its columns: table_structure.h). It
// asks as the INSERT's own user, so it learns what that user may see and
// nothing else: with the INSERT's path, its credential and database
// parameters (user, password, quota_key, database) and the credential
// headers given, none of its other settings (a memory limit, say, is not
// the question's). The answer is kept up to a cap; a longer one counts as
// no answer. Loop thread only; destroying a running query cancels it and
// its callback is not called.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http_headers.h"
#include "upstream_sink.h"

namespace chsidecar {

class UserQuery final : public UpstreamClient {
 public:
  // `ok`: ClickHouse answered 200 with at most `max_answer` bytes, which
  // `answer` holds (valid during the call only).
  using Done = std::function<void(bool ok, std::string_view answer)>;

  UserQuery() = default;
  ~UserQuery();
  UserQuery(const UserQuery&) = delete;
  UserQuery& operator=(const UserQuery&) = delete;

  // Sends `sql` to `sink` (which must outlive the query) as the user of
  // the INSERT whose target (path and query string) is `insert_target`,
  // with `headers` (its credential headers). `done` is called once, maybe
  // before start() returns (the pool's queue is full); `timeout_ms` > 0
  // ends the question after so long without a byte (0: --upstream-timeout).
  // REQUIRES: !running().
  void start(UpstreamSink& sink, std::string_view sql, std::string_view insert_target,
             const std::vector<Header>& headers, size_t max_answer, uint64_t timeout_ms, Done done);
  bool running() const { return sink_ != nullptr; }

 private:
  size_t upstream_read_body(char*, size_t) override { return 0; }
  bool upstream_rewind_body() override { return true; }
  void upstream_response_head(int status, std::string, std::vector<Header>) override { status_ = status; }
  size_t upstream_response_data(const char* data, size_t size) override;
  void upstream_done(const UpstreamOutcome& outcome) override;

  UpstreamSink* sink_ = nullptr;  // while the query runs
  int status_ = 0;
  size_t max_answer_ = 0;
  bool cut_ = false;  // the answer was longer than max_answer_
  std::string body_;
  Done done_;
};

}  // namespace chsidecar
