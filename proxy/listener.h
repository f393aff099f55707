// A listening TCP socket and the accept step with a connection cap, as the
// proxy (App) and the admin port (Admin) both use them.
//
// Listener binds a host:port (an IPv4 or IPv6 literal), listens, and calls
// its owner's connection callback with the owner in `server->data`.
// accept_connection() then accepts into the owner's new client object and
// tracks it in the owner's set, where it stays until its close callback
// removes it; the owner decides what a connection over the cap gets (the
// proxy answers 503, the admin port closes it).
//
// The listening handle is heap-allocated and freed in its close callback
// (uv_handle.h). Owned by App or Admin. Loop thread only.
#pragma once

#include <uv.h>

#include <cstddef>
#include <unordered_set>

#include "config.h"

namespace chsidecar {

class Listener {
 public:
  Listener() = default;
  ~Listener() { close(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds `at` and listens with `backlog`; each connection calls
  // `on_connection` with `owner` in `server->data`. Returns 0, or a negative
  // libuv error (then nothing is left open). REQUIRES: not listening.
  int start(uv_loop_t* loop, const HostPort& at, int backlog, uv_connection_cb on_connection,
            void* owner);

  // The port bound (useful with port 0); 0 before start() succeeded. Stays
  // readable after close().
  int port() const { return port_; }

  // Stops listening; connections already accepted are the owner's. Idempotent.
  void close();

 private:
  uv_tcp_t* tcp_ = nullptr;
  int port_ = 0;
};

enum class Accepted {
  kYes,     // accepted; the owner starts it
  kOverCap, // accepted, but `cap` connections were open already: the owner refuses it
  kFailed,  // uv_accept failed: the owner closes it
};

// Accepts the connection `server` announced into `client` (new, with a
// stream() to accept into) and adds it to `open`, whatever the outcome, so
// its close callback finds it there. `client` is then the owner's to start
// or to close.
template <typename C>
Accepted accept_connection(uv_stream_t* server, C* client, std::unordered_set<C*>& open,
                           size_t cap) {
  bool over = open.size() >= cap;
  open.insert(client);
  if (uv_accept(server, client->stream()) != 0) return Accepted::kFailed;
  return over ? Accepted::kOverCap : Accepted::kYes;
}

}  // namespace chsidecar
