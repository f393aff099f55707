#include "http_response.h"

#include <ctime>

#include <charconv>
#include <cstdio>

namespace chsidecar {

const char* status_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void append_status_line(std::string& out, int status, std::string_view reason, int http_minor) {
  char code[16];
  auto end = std::to_chars(code, code + sizeof code, status).ptr;
  out += http_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";  // the client's version, as ClickHouse answers
  out.append(code, static_cast<size_t>(end - code));
  out += ' ';
  out += reason;
  out += "\r\n";
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

std::string serialize_head(int status, std::string_view reason,
                           const std::vector<Header>& headers) {
  std::string out;
  append_status_line(out, status, reason);
  for (const Header& h : headers) append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::string error_body(const ChError& error) {
  return "Code: " + std::to_string(error.code.number) + ". DB::Exception: " + error.message +
         ". (" + error.code.name + ") (chsidecar " CHSIDECAR_VERSION ")\n";
}

std::string error_response(const ChError& error, bool close, int retry_after_s) {
  std::string body = error_body(error);
  std::vector<Header> headers = {
      {"Content-Type", "text/plain; charset=UTF-8"},
      {"X-ClickHouse-Exception-Code", std::to_string(error.code.number)},
      {"Content-Length", std::to_string(body.size())},
  };
  if (retry_after_s > 0) headers.push_back({"Retry-After", std::to_string(retry_after_s)});
  headers.push_back({"Connection", close ? "close" : "keep-alive"});
  return serialize_head(error.http_status, status_reason(error.http_status), headers) + body;
}

std::string text_response(std::string_view body, bool close, bool head_only) {
  std::vector<Header> headers = {
      {"Content-Type", "text/html; charset=UTF-8"},
      {"Content-Length", std::to_string(body.size())},
      {"Connection", close ? "close" : "keep-alive"},
  };
  std::string out = serialize_head(200, "OK", headers);
  if (!head_only) out += body;
  return out;
}

std::string http_date() {
  static time_t cached_second = 0;
  static char cached[40];
  time_t now = std::time(nullptr);
  if (now != cached_second) {
    struct tm tm {};
    gmtime_r(&now, &tm);
    std::strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_second = now;
  }
  return cached;
}

std::string keep_alive_value(const ClientLeg& leg, std::string_view upstream) {
  constexpr uint64_t kKeepAliveMaxRequests = 10'000;
  const KeepAlivePolicy& policy = leg.keep_alive;
  if (upstream.empty()) upstream = policy.probed;
  if (policy.idle_timeout_given || upstream.empty())
    return "timeout=" + std::to_string(policy.idle_timeout_ms / 1000);
  std::string value(upstream);
  size_t max = value.find("max=");
  if (max != std::string::npos) {
    size_t digits = max + 4;
    size_t end = value.find_first_not_of("0123456789", digits);
    uint64_t left = leg.requests < kKeepAliveMaxRequests ? kKeepAliveMaxRequests - leg.requests : 0;
    value.replace(digits, (end == std::string::npos ? value.size() : end) - digits,
                  std::to_string(left));
  }
  return value;
}

ForwardedHead forwarded_head(int status, std::string_view reason,
                             const std::vector<Header>& upstream, bool head_only,
                             const ClientLeg& leg) {
  ForwardedHead out;
  out.close = leg.close;
  bool has_length = false;
  bool upstream_chunked = false;
  for (const Header& h : upstream) {
    has_length |= iequals(h.name, "Content-Length");
    upstream_chunked |= iequals(h.name, "Transfer-Encoding");
  }
  if (!has_length && !head_only) {
    if (leg.http_minor >= 1) out.chunked = true;
    else out.close = true;  // HTTP/1.0: the end of the body is the end of the connection
  }
  bool framed_chunked = out.chunked || (head_only && upstream_chunked && leg.http_minor >= 1);
  std::string& head = out.bytes;
  append_status_line(head, status, reason, leg.http_minor);
  bool wrote_connection = false;
  bool wrote_keep_alive = false;
  bool wrote_chunked = false;
  for (const Header& h : upstream) {
    if (iequals(h.name, "Connection")) {
      if (!wrote_connection) append_header(head, "Connection", out.close ? "Close" : "Keep-Alive");
      wrote_connection = true;
    } else if (iequals(h.name, "Keep-Alive")) {
      if (!out.close && !wrote_keep_alive)
        append_header(head, "Keep-Alive", keep_alive_value(leg, h.value));
      wrote_keep_alive = true;
    } else if (iequals(h.name, "Transfer-Encoding")) {
      if (framed_chunked && !wrote_chunked) append_header(head, "Transfer-Encoding", "chunked");
      wrote_chunked = true;
    } else if (!is_hop_by_hop(h.name)) {
      append_header(head, h.name, h.value);
    }
  }
  if (framed_chunked && !wrote_chunked) append_header(head, "Transfer-Encoding", "chunked");
  if (!wrote_connection) append_header(head, "Connection", out.close ? "Close" : "Keep-Alive");
  if (!out.close && !wrote_keep_alive) append_header(head, "Keep-Alive", keep_alive_value(leg));
  head += "\r\n";
  return out;
}

void append_whole_answer(std::string& out, int status, std::string_view reason,
                         const std::vector<Header>& headers, std::string_view body,
                         const ClientLeg& leg) {
  append_status_line(out, status, reason);
  for (const Header& h : headers) append_header(out, h.name, h.value);
  char length[24];
  append_header(out, "Content-Length",
                std::string_view(length, std::to_chars(length, length + sizeof length,
                                                       body.size()).ptr - length));
  if (leg.close) {
    append_header(out, "Connection", "close");
  } else {
    append_header(out, "Connection", "Keep-Alive");
    append_header(out, "Keep-Alive", keep_alive_value(leg));
  }
  out += "\r\n";
  out += body;
}

std::string ping_response(const std::vector<Header>& upstream, bool head_only,
                          const ClientLeg& leg) {
  bool close = leg.close;
  int http_minor = leg.http_minor;
  if (upstream.empty()) return text_response("Ok.\n", close, head_only);
  constexpr std::string_view kBody = "Ok.\n";
  bool chunked = find_header(upstream, "Transfer-Encoding") != nullptr && http_minor >= 1;
  bool length = find_header(upstream, "Content-Length") != nullptr;
  close |= http_minor == 0 && !length;  // the end of the body is the end of the connection
  std::string out;
  append_status_line(out, 200, "OK", http_minor);
  bool wrote_connection = false;
  for (const Header& h : upstream) {
    if (iequals(h.name, "Date")) {
      append_header(out, h.name, http_date());
    } else if (iequals(h.name, "Connection")) {
      append_header(out, h.name, close ? "Close" : "Keep-Alive");
      wrote_connection = true;
    } else if (iequals(h.name, "Keep-Alive")) {
      if (!close) append_header(out, h.name, keep_alive_value(leg));
    } else if (iequals(h.name, "Transfer-Encoding")) {
      if (chunked) append_header(out, h.name, "chunked");
    } else if (iequals(h.name, "Content-Length")) {
      append_header(out, h.name, std::to_string(kBody.size()));
    } else if (head_only && iequals(h.name, "X-ClickHouse-Summary")) {
      continue;  // a modern server sends none with a HEAD answer
    } else if (!is_hop_by_hop(h.name)) {
      append_header(out, h.name, h.value);
    }
  }
  if (!wrote_connection) append_header(out, "Connection", close ? "Close" : "Keep-Alive");
  out += "\r\n";
  if (head_only) return out;
  if (chunked) {
    out += chunk_header(kBody.size());
    out += kBody;
    out += kChunkTrailer;
    out += kLastChunk;
  } else {
    out += kBody;
  }
  return out;
}

std::string chunk_header(size_t len) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%zX\r\n", len);  // as ClickHouse writes it
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace chsidecar
