#include "structure_cache.h"

#include "log.h"

namespace chsidecar {

namespace {

// A DESCRIBE answer longer than this (thousands of columns) is not kept:
// that table's RowBinary INSERTs go alone.
constexpr size_t kMaxAnswer = 1 << 20;
// A key whose DESCRIBE failed (no such table yet, no answer) is asked
// again at its first request after this long.
constexpr uint64_t kFailedRetryMs = 1'000;

}  // namespace

StructureCache::StructureCache(uv_loop_t* loop, const Config& config, UpstreamSink& upstream)
    : loop_(loop), config_(config), upstream_(upstream) {}

StructureCache::~StructureCache() = default;

std::shared_ptr<const TableStructure> StructureCache::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second->structure;
}

void StructureCache::use(const StructureSource& source) {
  auto it = entries_.find(source.key);
  if (it == entries_.end()) {
    make_room();
    auto entry = std::make_unique<Entry>();
    entry->source = source;
    Entry& e = *entry;
    entries_.emplace(source.key, std::move(entry));
    ask(e);
    return;
  }
  Entry& e = *it->second;
  uint64_t age = uv_now(loop_) - e.asked_ms;
  if (age >= (e.structure ? config_.table_structure_ttl_ms : kFailedRetryMs)) ask(e);
}

void StructureCache::refresh(const std::string& key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) ask(*it->second);
}

bool StructureCache::wait(const std::string& key, std::shared_ptr<StructureTicket> ticket) {
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second->query.running()) return false;
  it->second->waiting.push_back(std::move(ticket));
  return true;
}

void StructureCache::ask(Entry& entry) {
  if (entry.query.running()) return;
  entry.asked_ms = uv_now(loop_);
  Entry* e = &entry;
  entry.query.start(upstream_, describe_sql(entry.source.table), entry.source.target,
                    entry.source.headers, kMaxAnswer, config_.table_structure_timeout_ms,
                    [this, e](bool ok, std::string_view answer) { answered(*e, ok, answer); });
}

void StructureCache::answered(Entry& e, bool ok, std::string_view answer) {
  auto structure = std::make_shared<TableStructure>();
  ok = ok && parse_describe(answer, *structure);
  e.structure = ok ? std::move(structure) : nullptr;
  e.asked_ms = uv_now(loop_);
  log_event(LogLevel::kInfo, ok ? "table_structure_learnt" : "table_structure_unknown",
            {{"table", e.source.table},
             {"columns", ok ? std::to_string(e.structure->columns.size()) : "0"}});
  // The waiters route again; they may ask about other keys meanwhile.
  std::vector<std::shared_ptr<StructureTicket>> waiting = std::move(e.waiting);
  e.waiting.clear();
  e.answering = true;
  for (const std::shared_ptr<StructureTicket>& ticket : waiting) {
    std::function<void()> done = std::move(ticket->done);
    ticket->done = nullptr;
    if (done) done();
  }
  e.answering = false;
}

// Forgets the key asked longest ago whose question is not running.
void StructureCache::make_room() {
  while (entries_.size() >= config_.max_table_structures) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (!it->second->query.running() && !it->second->answering &&
          (oldest == entries_.end() || it->second->asked_ms < oldest->second->asked_ms))
        oldest = it;
    if (oldest == entries_.end()) return;
    entries_.erase(oldest);
  }
}

}  // namespace chsidecar
