#include "http_response.h"

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

void append_status_line(std::string& out, int status, std::string_view reason) {
  char code[16];
  auto end = std::to_chars(code, code + sizeof code, status).ptr;
  out += "HTTP/1.1 ";
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

std::string chunk_header(size_t len) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%zx\r\n", len);
  return std::string(buf, static_cast<size_t>(n));
}

bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view kHop[] = {
      "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "TE",
      "Trailer",    "Transfer-Encoding", "Upgrade", "Expect"};
  for (std::string_view h : kHop)
    if (iequals(h, name)) return true;
  return false;
}

}  // namespace chsidecar
