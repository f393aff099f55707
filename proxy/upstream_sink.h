// Where the batching side sends its upstream requests (batch INSERTs and
// table checks): the narrow face of Replicas it needs. Replicas implements
// it on the real pools; unit tests put a fake in its place and answer the
// requests themselves, as LevelDB's tests fake its Env.
//
// The contract is UpstreamPool's (upstream_pool.h): a submitted client is
// called back with its answer and upstream_done() once, outside submit(),
// unless it is cancelled first. Loop thread only.
#pragma once

#include <string>

#include "upstream_pool.h"

namespace chsidecar {

class UpstreamSink {
 public:
  // Starts or queues `request` where it is best sent now (Replicas: the
  // healthy replica with the least work). `client` must stay alive until
  // upstream_done() or cancel().
  virtual UpstreamPool::Submit submit(UpstreamClient* client, UpstreamRequest request) = 0;
  // Forgets `client` wherever it was submitted; no callback reaches it
  // afterwards. REQUIRES: not inside one of its callbacks.
  virtual void cancel(UpstreamClient* client) = 0;
  // host:port of where submit() would send now, for error messages.
  virtual std::string display_name() = 0;

 protected:
  ~UpstreamSink() = default;
};

}  // namespace chsidecar
