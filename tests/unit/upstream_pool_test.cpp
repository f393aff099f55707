// Unit tests for upstream_pool.h: slots, the FIFO behind them, cancel().
// A real pool on a private loop, against a small HTTP server on the same
// loop (127.0.0.1, a free port) that answers each request with its path.
#include <doctest/doctest.h>
#include <curl/curl.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "upstream_pool.h"

using namespace chsidecar;

namespace {

// Answers "GET /x" with 200 and the body "/x", keeping the connection.
class PathServer {
 public:
  explicit PathServer(uv_loop_t* loop) {
    uv_tcp_init(loop, &listener_);
    listener_.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 16, &PathServer::on_connection) == 0);
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  // Closes the listener; connections close when their client does.
  void close() { uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests = 0;

 private:
  struct Conn {
    uv_tcp_t tcp;
    PathServer* server;
    std::string in;
  };
  struct Write {
    uv_write_t req;
    std::string out;
  };

  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<PathServer*>(listener->data);
    if (status < 0) return;
    auto* conn = new Conn{};
    conn->server = self;
    uv_tcp_init(listener->loop, &conn->tcp);
    conn->tcp.data = conn;
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp)) != 0) {
      close_conn(conn);
      return;
    }
    uv_read_start(reinterpret_cast<uv_stream_t*>(&conn->tcp),
                  [](uv_handle_t*, size_t, uv_buf_t* buf) {
                    buf->base = new char[4096];
                    buf->len = 4096;
                  },
                  &PathServer::on_read);
  }
  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
    auto* conn = static_cast<Conn*>(stream->data);
    if (n > 0) conn->in.append(buf->base, size_t(n));
    delete[] buf->base;
    if (n < 0) {
      close_conn(conn);
      return;
    }
    for (size_t end; (end = conn->in.find("\r\n\r\n")) != std::string::npos;) {
      std::string head = conn->in.substr(0, end);
      conn->in.erase(0, end + 4);
      size_t from = head.find(' ') + 1;
      std::string path = head.substr(from, head.find(' ', from) - from);
      ++conn->server->requests;
      auto* w = new Write{};
      w->out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(path.size()) + "\r\n\r\n" + path;
      uv_buf_t out = uv_buf_init(w->out.data(), unsigned(w->out.size()));
      uv_write(&w->req, stream, &out, 1, [](uv_write_t* req, int) { delete reinterpret_cast<Write*>(req); });
    }
  }
  static void close_conn(Conn* conn) {
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
  }

  uv_tcp_t listener_;
  int port_ = 0;
};

// A GET without a body; keeps what the pool tells it.
struct Client final : UpstreamClient {
  int status = 0;
  std::string body;
  int done = 0;
  CURLcode code = CURLE_OK;
  size_t upstream_read_body(char*, size_t) override { return 0; }
  bool upstream_rewind_body() override { return true; }
  void upstream_response_head(int s, std::string, std::vector<Header>) override { status = s; }
  size_t upstream_response_data(const char* data, size_t size) override {
    body.append(data, size);
    return size;
  }
  void upstream_done(const UpstreamOutcome& outcome) override {
    ++done;
    code = outcome.code;
  }
};

UpstreamRequest get(std::string path) {
  UpstreamRequest r;
  r.method = "GET";
  r.target = std::move(path);
  return r;
}

class PoolRig {
 public:
  PoolRig(uint64_t pool_size, uint64_t queue_max) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_init(&loop);
    server = std::make_unique<PathServer>(&loop);
    config.pool_size = pool_size;
    config.queue_max = queue_max;
    pool = std::make_unique<UpstreamPool>(&loop, config, server->url());
  }
  ~PoolRig() {
    pool->close();
    server->close();
    uv_run(&loop, UV_RUN_DEFAULT);  // connections see their end; close callbacks
    pool.reset();
    CHECK(uv_loop_close(&loop) == 0);
    curl_global_cleanup();
  }
  // Runs the loop until `clients` are all done (or 5 s pass).
  void run_until_done(const std::vector<Client*>& clients) {
    uint64_t deadline = uv_now(&loop) + 5000;
    auto all_done = [&] {
      for (Client* c : clients)
        if (c->done == 0) return false;
      return true;
    };
    while (!all_done() && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(all_done());
  }

  uv_loop_t loop;
  Config config;
  std::unique_ptr<PathServer> server;
  std::unique_ptr<UpstreamPool> pool;
};

}  // namespace

TEST_CASE("requests beyond the slots wait in the FIFO, up to queue_max; each is answered once") {
  PoolRig rig(2, 2);
  Client c[5];
  CHECK(rig.pool->submit(&c[0], get("/0")) == UpstreamPool::Submit::kStarted);
  CHECK(rig.pool->submit(&c[1], get("/1")) == UpstreamPool::Submit::kStarted);
  CHECK(rig.pool->submit(&c[2], get("/2")) == UpstreamPool::Submit::kQueued);
  CHECK(rig.pool->submit(&c[3], get("/3")) == UpstreamPool::Submit::kQueued);
  CHECK(rig.pool->submit(&c[4], get("/4")) == UpstreamPool::Submit::kQueueFull);
  CHECK(rig.pool->busy_slots() == 2);
  CHECK(rig.pool->queued() == 2);
  rig.run_until_done({&c[0], &c[1], &c[2], &c[3]});
  const char* paths[] = {"/0", "/1", "/2", "/3"};
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(c[i].done == 1);
    CHECK(c[i].code == CURLE_OK);
    CHECK(c[i].status == 200);
    CHECK(c[i].body == paths[i]);
  }
  CHECK(c[4].done == 0);
  CHECK(rig.pool->busy_slots() == 0);
  CHECK(rig.pool->queued() == 0);
  CHECK(rig.server->requests == 4);
}

TEST_CASE("a cancelled request hears nothing; the rest go on") {
  PoolRig rig(1, 4);
  Client running, queued, after;
  rig.pool->submit(&running, get("/running"));
  rig.pool->submit(&queued, get("/queued"));
  rig.pool->submit(&after, get("/after"));
  rig.pool->cancel(&queued);
  CHECK(rig.pool->queued() == 1);
  rig.run_until_done({&running, &after});
  CHECK(running.body == "/running");
  CHECK(after.body == "/after");
  CHECK(queued.done == 0);
  CHECK(queued.status == 0);
  CHECK(rig.server->requests == 2);
}
