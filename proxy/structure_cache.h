// The table structures learnt for RowBinary INSERTs (table_structure.h).
//
// An entry (one per structure_key()) lives through these states:
// - unknown: its DESCRIBE runs (one per key at a time) and the key's
//   requests wait for the answer (wait()), at most
//   --table-structure-timeout, then are routed again: batched by the
//   columns learnt, or alone if there are none;
// - known: requests are walked by it; it is asked again, and used
//   meanwhile, once older than --table-structure-ttl, after a request of
//   the key did not walk by it (a column added: its rows went alone), and
//   after a batch of the key failed with a structure error
//   (structure_error());
// - failed (an error answer, no answer within --table-structure-timeout,
//   an answer not understood or over 1 MiB): the key's requests go alone;
//   asked again at the first request a second after the answer.
// The question is asked as the INSERT's user (user_query.h), where the
// upstream sink sends it (Replicas: the healthy replica with the least
// work). At most --max-table-structures keys are kept; past it the key
// asked longest ago (and not being asked) is forgotten. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "table_structure.h"
#include "user_query.h"

namespace chsidecar {

// Held by a request that waits for its table's columns; the request
// clears `done` when it goes away.
struct StructureTicket {
  std::function<void()> done;
};

class StructureCache {
 public:
  // `loop`, `config` and `upstream` must outlive the cache.
  StructureCache(uv_loop_t* loop, const Config& config, UpstreamSink& upstream);
  ~StructureCache();
  StructureCache(const StructureCache&) = delete;
  StructureCache& operator=(const StructureCache&) = delete;

  // The known structure of `key`, or null.
  std::shared_ptr<const TableStructure> find(const std::string& key) const;
  // A request of `source.key` was routed: asks when the key is unknown,
  // failed a second ago or more, or known for longer than the TTL.
  void use(const StructureSource& source);
  // A request or batch of `key` did not fit its structure: asks again
  // (unless a question runs), keeping the known one meanwhile.
  void refresh(const std::string& key);
  // While a question of `key` runs: calls `ticket->done` (if still set)
  // once it is answered, and returns true. False when none runs.
  bool wait(const std::string& key, std::shared_ptr<StructureTicket> ticket);

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    StructureSource source;
    std::shared_ptr<const TableStructure> structure;  // null: unknown or failed
    uint64_t asked_ms = 0;  // when last asked or answered
    UserQuery query;
    std::vector<std::shared_ptr<StructureTicket>> waiting;
    bool answering = false;  // its waiters are being called: not to be forgotten
  };
  void ask(Entry& entry);
  void answered(Entry& entry, bool ok, std::string_view answer);
  void make_room();

  uv_loop_t* loop_;
  const Config& config_;
  UpstreamSink& upstream_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace chsidecar
