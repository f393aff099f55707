#include "user_query.h"

#include <algorithm>
#include <iterator>

#include "request.h"

namespace chsidecar {

UserQuery::~UserQuery() {
  if (sink_ != nullptr) sink_->cancel(this);
}

void UserQuery::start(UpstreamSink& sink, std::string_view sql, std::string_view insert_target,
                      const std::vector<Header>& headers, size_t max_answer, uint64_t timeout_ms,
                      Done done) {
  done_ = std::move(done);
  status_ = 0;
  max_answer_ = max_answer;
  cut_ = false;
  body_.clear();
  Target target = split_target(insert_target);
  std::vector<QueryParam> params = parse_query(target.query);
  std::vector<std::string_view> not_credentials;
  for (const QueryParam& p : params)
    if (std::ranges::find(kUserParams, p.name) == std::end(kUserParams))
      not_credentials.push_back(p.name);
  std::string rest = remove_params(target.query, params, not_credentials);
  UpstreamRequest request;
  request.method = "GET";
  request.target = std::string(target.path) + "?" + rest + (rest.empty() ? "" : "&") +
                   "query=" + url_encode(sql);
  request.headers = headers;
  request.tells_health = false;
  request.no_byte_timeout_ms = timeout_ms;
  sink_ = &sink;
  if (sink.submit(this, std::move(request)) == UpstreamPool::Submit::kQueueFull) {
    UpstreamOutcome outcome;
    outcome.code = CURLE_COULDNT_CONNECT;
    upstream_done(outcome);
  }
}

size_t UserQuery::upstream_response_data(const char* data, size_t size) {
  size_t room = max_answer_ - body_.size();
  body_.append(data, std::min(size, room));
  cut_ |= size > room;
  return size;
}

void UserQuery::upstream_done(const UpstreamOutcome& outcome) {
  sink_ = nullptr;
  bool ok = outcome.code == CURLE_OK && status_ == 200 && !cut_;
  Done done = std::move(done_);
  done_ = nullptr;
  std::string body = std::move(body_);
  body_.clear();
  if (done) done(ok, body);
}

}  // namespace chsidecar
