// The admin listener: /metrics, /live, /ready and /status on their own port.
//
// A tiny HTTP/1.1 server on the same loop as the proxy (--admin-listen,
// default 127.0.0.1:9124). Each connection carries one small GET (or HEAD)
// request, parsed with llhttp; the answer ends with Connection: close.
// Requests beyond kMaxRequestBytes, other methods and slow clients
// (kTimeoutMs) are refused; at most kMaxConnections are open at once.
//
//   /metrics  Prometheus text format 0.0.4 of App::metrics()
//   /live     200 "ok" whenever the loop runs this handler
//   /ready    200 while accepting; 503 with the reason while draining or
//             while a readiness check (App::add_readiness_check) fails
//   /status   JSON: version, uptime, upstream pool, sessions, batch
//             buffers, connections, plus sections added with add_status()
//
// Nothing served here holds a credential: upstreams appear by host:port,
// and no request text, session id or user name is kept by the admin side.
//
// Owned by App; stays open while the App drains (so /ready can say 503)
// and is closed by close() at the end of the shutdown. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "listener.h"

namespace chsidecar {

class App;
class AdminConnection;

class Admin {
 public:
  static constexpr size_t kMaxConnections = 64;
  static constexpr size_t kMaxRequestBytes = 8 * 1024;
  static constexpr uint64_t kTimeoutMs = 5'000;

  // `app` must outlive the Admin.
  explicit Admin(App& app);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // Binds config().admin_listen. Returns 0 or a negative libuv error.
  int start();

  // The port bound (useful with port 0), or 0 before start().
  int port() const { return listener_.port(); }

  // Adds a top-level member to /status: `json` returns a JSON value (object,
  // number...) read at request time. REQUIRES: `key` is a plain identifier.
  void add_status(std::string key, std::function<std::string()> json);

  // Closes the listener and every admin connection. Idempotent.
  void close();

  // The bodies, exposed for tests and reuse. `status` is the HTTP status.
  std::string answer(std::string_view method, std::string_view path, int& status,
                     std::string& content_type);

  // Called by an AdminConnection from its close callback, before it is freed.
  void connection_closed(AdminConnection* c);
  size_t connections() const { return connections_.size(); }
  App& app() { return app_; }

 private:
  static void on_connection(uv_stream_t* server, int status) noexcept;
  std::string status_json();

  App& app_;
  Listener listener_;
  std::unordered_set<AdminConnection*> connections_;
  std::vector<std::pair<std::string, std::function<std::string()>>> extra_status_;
};

}  // namespace chsidecar
