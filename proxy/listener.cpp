#include "listener.h"

#include "uv_handle.h"

namespace chsidecar {

namespace {

// The port a bound socket got (the one asked for, or the kernel's for 0).
int bound_port(const uv_tcp_t* tcp) {
  sockaddr_storage bound{};
  int len = sizeof bound;
  if (uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&bound), &len) != 0) return 0;
  return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

}  // namespace

int Listener::start(uv_loop_t* loop, const HostPort& at, int backlog,
                    uv_connection_cb on_connection, void* owner) {
  tcp_ = make_handle<uv_tcp_t>(loop, uv_tcp_init, owner);
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(at.host.c_str(), at.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) rc = uv_ip6_addr(at.host.c_str(), at.port, reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc == 0) rc = uv_tcp_bind(tcp_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), backlog, on_connection);
  if (rc != 0) {
    close();
    return rc;
  }
  port_ = bound_port(tcp_);
  return 0;
}

void Listener::close() {
  close_handle(tcp_);
  tcp_ = nullptr;
}

}  // namespace chsidecar
