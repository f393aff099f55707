// Owning helpers for libuv handles.
//
// libuv's rule: uv_close() must be called on a handle before its memory is
// released, and the memory may be released only in (or after) the close
// callback. Every handle the sidecar owns is therefore allocated on the heap
// by make_handle<T>() and released by close_handle(), which closes it and
// deletes it in the close callback. A handle never lives inside a container
// that could move it. Loop thread only.
#pragma once

#include <uv.h>

namespace chsidecar {

// Allocates a zeroed handle of type T (uv_tcp_t, uv_timer_t, ...). The caller
// initialises it with the matching uv_*_init and must eventually pass it to
// close_handle().
template <typename T>
T* make_handle() {
  return new T{};
}

// make_handle<T>() initialised on `loop` by `init` (uv_tcp_init,
// uv_timer_init, ...), with `owner` in its data for the callbacks.
template <typename T>
T* make_handle(uv_loop_t* loop, int (*init)(uv_loop_t*, T*), void* owner) {
  T* handle = make_handle<T>();
  init(loop, handle);
  handle->data = owner;
  return handle;
}

// Closes `handle` and frees it in the close callback. Safe to call once per
// handle; `handle->data` is cleared first so no callback of the owner runs
// after this call. REQUIRES: handle came from make_handle<T>() and was
// initialised.
template <typename T>
void close_handle(T* handle) {
  if (handle == nullptr) return;
  auto* base = reinterpret_cast<uv_handle_t*>(handle);
  if (uv_is_closing(base)) return;
  base->data = nullptr;
  uv_close(base, [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
}

}  // namespace chsidecar
