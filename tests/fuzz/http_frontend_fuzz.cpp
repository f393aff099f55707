// Fuzz target: the HTTP front end (connection.cpp and exchange.cpp), bytes in
// through a real socket, answers and closes out.
//
// Once per process the target starts an App on its own libuv loop: listening
// on a free loopback port, batching off, no admin listener, and one upstream
// that is a fake ClickHouse in the same loop (a strict llhttp parser that
// answers each complete request "Ok."). For each input it connects a
// loopback TCP client, writes the input, half-closes, and runs the loop until
// the proxy has closed the connection (bounded: 10 s of loop time, else the
// target aborts as a hang).
//
// Checks, beyond "no crash, no sanitizer report":
//  - no smuggling: the fake upstream never sees more complete requests than
//    a strict llhttp parser finds in the input before its first error (a
//    message the front end rejects is never forwarded whole);
//  - what goes upstream is always well-formed HTTP/1.1 (strict llhttp);
//  - what comes back to the client is well-formed HTTP/1.1 responses
//    (skipped when the input holds a HEAD request, whose answers have no body).
#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "app.h"
#include "config.h"
#include "fuzz_check.h"
#include "log.h"

using namespace chsidecar;

namespace {

constexpr uint64_t kDeadlineMs = 10'000;

// ---- The fake ClickHouse -------------------------------------------------

struct Upstream {
  uv_tcp_t listener;
  int port = 0;
  uint64_t complete_requests = 0;  // client requests seen whole (probe excluded)
  uint64_t parse_errors = 0;
  std::string last_error;
};
Upstream* g_upstream = nullptr;

struct UpstreamConn {
  uv_tcp_t tcp;
  llhttp_t parser;
  std::string url;
  bool closing = false;
};

void upstream_close(UpstreamConn* c) {
  if (c->closing) return;
  c->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), [](uv_handle_t* h) {
    delete static_cast<UpstreamConn*>(h->data);
  });
}

int upstream_on_url(llhttp_t* p, const char* at, size_t n) {
  static_cast<UpstreamConn*>(p->data)->url.append(at, n);
  return 0;
}

int upstream_on_message_begin(llhttp_t* p) {
  static_cast<UpstreamConn*>(p->data)->url.clear();
  return 0;
}

int upstream_on_message_complete(llhttp_t* p) {
  auto* c = static_cast<UpstreamConn*>(p->data);
  // The sidecar's start-up probe (SELECT version(), ...) and health checks.
  bool probe = c->url.find("version()") != std::string::npos ||
               c->url.find("version%28%29") != std::string::npos || c->url == "/ping";
  if (!probe) ++g_upstream->complete_requests;
  static const char kAnswer[] =
      "HTTP/1.1 200 OK\r\nContent-Type: text/tab-separated-values; charset=UTF-8\r\n"
      "X-ClickHouse-Summary: {\"read_rows\":\"0\"}\r\nContent-Length: 4\r\n\r\nOk.\n";
  auto* req = new uv_write_t{};
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kAnswer), sizeof kAnswer - 1);
  if (uv_write(req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
               [](uv_write_t* r, int) { delete r; }) != 0)
    delete req;
  return 0;
}

const llhttp_settings_t* upstream_settings() {
  static llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    v.on_message_begin = upstream_on_message_begin;
    v.on_url = upstream_on_url;
    v.on_message_complete = upstream_on_message_complete;
    return v;
  }();
  return &s;
}

void upstream_on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<UpstreamConn*>(s->data);
  if (n > 0 && !c->closing) {
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, static_cast<size_t>(n));
    if (err != HPE_OK) {
      ++g_upstream->parse_errors;
      g_upstream->last_error = std::string(llhttp_errno_name(err)) + ": " +
                               llhttp_get_error_reason(&c->parser) + " in " +
                               std::string(buf->base, static_cast<size_t>(n));
      upstream_close(c);
    }
  } else if (n < 0) {
    upstream_close(c);
  }
  delete[] buf->base;
}

void upstream_on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* c = new UpstreamConn;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  llhttp_init(&c->parser, HTTP_REQUEST, upstream_settings());
  c->parser.data = c;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    upstream_close(c);
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t suggested, uv_buf_t* b) { *b = uv_buf_init(new char[suggested], suggested); },
      upstream_on_read);
}

int listen_loopback(uv_loop_t* loop, uv_tcp_t* tcp, uv_connection_cb cb) {
  uv_tcp_init(loop, tcp);
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  FUZZ_CHECK(uv_tcp_bind(tcp, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
  FUZZ_CHECK(uv_listen(reinterpret_cast<uv_stream_t*>(tcp), 128, cb) == 0);
  sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&bound), &len);
  return ntohs(bound.sin_port);
}

// A free loopback port for the App's own listener (it binds by number).
int free_port(uv_loop_t* loop) {
  uv_tcp_t probe;
  int port = listen_loopback(loop, &probe, [](uv_stream_t*, int) {});
  uv_close(reinterpret_cast<uv_handle_t*>(&probe), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return port;
}

// ---- The proxy under test ------------------------------------------------

struct Harness {
  uv_loop_t loop;
  Config config;
  std::unique_ptr<App> app;
  uv_timer_t tick;  // keeps UV_RUN_ONCE from blocking past the deadline
};
Harness* g = nullptr;

void harness_init() {
  g = new Harness;
  uv_loop_init(&g->loop);
  log_setup(LogLevel::kError, LogFormat::kText);
  g_upstream = new Upstream;
  g_upstream->port = listen_loopback(&g->loop, &g_upstream->listener, upstream_on_connection);
  Config& c = g->config;
  c.listen = {"127.0.0.1", free_port(&g->loop)};
  c.upstreams = {"http://127.0.0.1:" + std::to_string(g_upstream->port)};
  c.admin_enabled = false;
  c.batch_mode = BatchMode::kOff;
  c.spool_dir.clear();
  c.header_timeout_ms = 2'000;
  c.max_header_bytes = 4 * 1024;  // reachable with fuzz-sized inputs
  c.max_url_bytes = 1024;
  c.max_headers = 20;
  c.body_buffer_bytes = 16 * 1024;
  g->app = std::make_unique<App>(&g->loop, g->config);
  int rc = g->app->start();
  if (rc != 0) std::fprintf(stderr, "http_frontend: App::start: %s\n", uv_strerror(rc));
  FUZZ_CHECK(rc == 0);
  uv_timer_init(&g->loop, &g->tick);
  uv_timer_start(&g->tick, [](uv_timer_t*) {}, 5, 5);
}

// ---- The client ------------------------------------------------------------

struct Client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  uv_shutdown_t shutdown;
  std::string input;
  std::string received;
  bool done = false;  // closed
  bool closing = false;
};

void client_close(Client* c) {
  if (c->closing) return;
  c->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
           [](uv_handle_t* h) { static_cast<Client*>(h->data)->done = true; });
}

void client_on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<Client*>(s->data);
  if (n > 0) c->received.append(buf->base, static_cast<size_t>(n));
  else if (n < 0) client_close(c);
  delete[] buf->base;
}

void client_on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<Client*>(req->data);
  FUZZ_CHECK(status == 0);
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  uv_read_start(
      stream,
      [](uv_handle_t*, size_t suggested, uv_buf_t* b) { *b = uv_buf_init(new char[suggested], suggested); },
      client_on_read);
  if (!c->input.empty()) {
    uv_buf_t buf = uv_buf_init(c->input.data(), static_cast<unsigned>(c->input.size()));
    c->write.data = c;
    uv_write(&c->write, stream, &buf, 1, [](uv_write_t*, int) {});
  }
  c->shutdown.data = c;
  uv_shutdown(&c->shutdown, stream, [](uv_shutdown_t*, int) {});
}

// ---- The reference parse ---------------------------------------------------

struct Reference {
  uint64_t complete = 0;
  bool head = false;
};

Reference reference_parse(std::string_view input) {
  static llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    v.on_message_complete = [](llhttp_t* p) {
      ++static_cast<Reference*>(p->data)->complete;
      return 0;
    };
    v.on_headers_complete = [](llhttp_t* p) {
      if (p->method == HTTP_HEAD) static_cast<Reference*>(p->data)->head = true;
      return 0;
    };
    return v;
  }();
  Reference ref;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &s);
  parser.data = &ref;
  llhttp_execute(&parser, input.data(), input.size());
  return ref;
}

bool responses_well_formed(std::string_view bytes, std::string& why) {
  static llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    return v;
  }();
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &s);
  llhttp_errno_t err = llhttp_execute(&parser, bytes.data(), bytes.size());
  if (err == HPE_OK) err = llhttp_finish(&parser);
  if (err == HPE_OK) return true;
  why = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser);
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (g == nullptr) harness_init();
  g_upstream->complete_requests = 0;
  g_upstream->parse_errors = 0;

  auto* client = new Client;
  client->input.assign(reinterpret_cast<const char*>(data), size);
  uv_tcp_init(&g->loop, &client->tcp);
  client->tcp.data = client;
  client->connect.data = client;
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", g->config.listen.port, &addr);
  FUZZ_CHECK(uv_tcp_connect(&client->connect, &client->tcp, reinterpret_cast<const sockaddr*>(&addr),
                            client_on_connect) == 0);

  uv_update_time(&g->loop);
  uint64_t deadline = uv_now(&g->loop) + kDeadlineMs;
  while (!client->done || g->app->connections() > 0) {
    uv_run(&g->loop, UV_RUN_ONCE);
    if (uv_now(&g->loop) > deadline) {
      std::fprintf(stderr,
                   "http_frontend: no close within %llu ms (client %s, proxy connections %zu, "
                   "%zu bytes answered)\n",
                   static_cast<unsigned long long>(kDeadlineMs), client->done ? "closed" : "open",
                   g->app->connections(), client->received.size());
      std::abort();
    }
  }
  // Let the upstream side settle (a request forwarded whole is answered).
  for (int i = 0; i < 3; ++i) uv_run(&g->loop, UV_RUN_NOWAIT);

  Reference ref = reference_parse(client->input);
  if (g_upstream->parse_errors != 0)
    std::fprintf(stderr, "http_frontend: malformed upstream request: %s\n", g_upstream->last_error.c_str());
  FUZZ_CHECK(g_upstream->parse_errors == 0);
  if (g_upstream->complete_requests > ref.complete)
    std::fprintf(stderr, "http_frontend: %llu requests reached the upstream, the input holds %llu\n",
                 static_cast<unsigned long long>(g_upstream->complete_requests),
                 static_cast<unsigned long long>(ref.complete));
  FUZZ_CHECK(g_upstream->complete_requests <= ref.complete);
  if (!ref.head && !client->received.empty()) {
    std::string why;
    bool ok = responses_well_formed(client->received, why);
    if (!ok) std::fprintf(stderr, "http_frontend: malformed answer (%s):\n%s\n", why.c_str(), client->received.c_str());
    FUZZ_CHECK(ok);
  }
  delete client;
  return 0;
}
