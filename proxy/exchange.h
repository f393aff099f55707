// One client request and its answer, carried through the upstream pool.
//
// An Exchange is created by its Connection when a request's headers are
// complete and owned by it until the Connection retires it. It answers
// /ping locally and carries out the route that router.h decides: a
// batchable INSERT, whose whole body is read, validated and handed to the
// Batcher (answered when its batch commits, or once fsynced to the Spool
// for wait_for_async_insert=0); a forwarded request; or a request of a
// stateful session, which waits its turn in the SessionTable and stays on
// its replica. It feeds the
// request body to the pool as it arrives and streams the answer back as it
// comes.
//
// Memory is bounded: at most body_buffer bytes of request body are held
// (the client is paused beyond that; one read more at most), and the
// upstream transfer is paused while more than response_buffer bytes wait to
// be written to the client. While the whole body is still held, the body
// can be sent again, which the pool's stale-connection retry and the 373
// retry rely on.
//
// The memory budget (memory_budget.h): before it routes, a request takes
// its share, the most its body can hold (min(Content-Length, body_buffer +
// one read); 0 without a body). It waits for it up to --memory-wait
// (reading nothing meanwhile), then gets 503 with Retry-After. Once
// admitted it never waits for memory again: its body fits its share, and
// its answer is paused for memory only while some of it is still queued
// to the client (so each answer moves on as its client reads). The share
// is given back once the rows are in a batch or the answer is complete.
//
// A RowBinary INSERT whose table's columns are not known yet waits, with
// its whole body, for the DESCRIBE already asked (structure_cache.h), and
// is routed again once it is answered.
//
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "batch_plan.h"
#include "batcher.h"
#include "memory_budget.h"
#include "request.h"
#include "result.h"
#include "router.h"
#include "sessions.h"
#include "structure_cache.h"
#include "upstream_pool.h"

namespace chsidecar {

class App;
class Connection;

class Exchange final : public UpstreamClient,
                       public SessionWaiter,
                       public BatchWaiter,
                       public MemoryWaiter {
 public:
  // `app` and `connection` must outlive the exchange.
  Exchange(App& app, Connection& connection, RequestHead head);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Routes the request: answers it locally, rejects it, or forwards it.
  void start();

  // Request body bytes from the client, and its end.
  void append_body(const char* data, size_t size);
  void finish_body();

  // True while the client may send more body (unsent bytes below the cap).
  bool wants_body() const;

  // The client's write queue fell below its low mark.
  void client_drained();

  // The connection is going away: release the pool slot and the session,
  // make no more calls to the connection.
  void abort();

  // True once the answer is complete (or failed); the connection may retire
  // the exchange when the request has also been read to its end.
  bool done() const { return state_ == State::kDone; }
  // True while the request waits for its share of the memory budget.
  bool waiting_for_memory() const { return state_ == State::kAdmitting; }

  // The request head, handed back for its buffers' reuse once the exchange
  // is retired and nothing of it runs any more.
  RequestHead take_head() { return std::move(head_); }

 private:
  // Every move goes through enter(), which asserts it is one of these
  // (kDone may follow any state but itself):
  //   kRouting -> kAdmitting -> kRouting      memory first
  //   kRouting -> kDecoding -> kRouting       the SQL is inside an encoded body
  //   kRouting -> kWaitingTurn -> kUpstream   a stateful session's turn
  //   kRouting -> kCollecting -> kBatched     rows into a batch (or the spool)
  //   kRouting | kCollecting -> kUpstream     alone
  //   kCollecting [-> kAwaitingColumns] -> kRouting   RowBinary, its table's columns learnt
  //   kUpstream -> kUpstream                  failover to another replica
  //   kUpstream -> kHoldingHead -> kUpstream  the answer is no 373
  //   kHoldingHead -> kAbortingFor373 -> kRetryWait -> kUpstream
  enum class State {
    kAdmitting,       // waiting for its share of the memory budget
    kRouting,         // waiting for enough body to classify the statement
    kDecoding,        // collecting the whole encoded body to decode it, then route again
    kWaitingTurn,     // queued behind another request of its session
    kCollecting,      // a batchable INSERT: reading its whole body
    kAwaitingColumns, // RowBinary: the whole body is here, its table's DESCRIBE runs
    kBatched,         // its rows wait in a batch for ClickHouse's answer
    kUpstream,        // queued in or running on the pool
    kHoldingHead,     // on the pool; a session's 500 head held until the body shows a 373 or not
    kAbortingFor373,  // on the pool; a 373 seen, the transfer aborted: upstream_done() retries
    kRetryWait,       // 373 seen; waiting before sending again
    kDone,
  };
  static bool can_enter(State from, State to);
  void enter(State next);
  // The request is on the pool: cancel, resume and pause apply.
  static bool on_upstream(State s) {
    return s == State::kUpstream || s == State::kHoldingHead || s == State::kAbortingFor373;
  }

  // UpstreamClient
  size_t upstream_read_body(char* buf, size_t size) override;
  bool upstream_rewind_body() override;
  void upstream_response_head(int status, std::string reason, std::vector<Header> headers) override;
  size_t upstream_response_data(const char* data, size_t size) override;
  void upstream_done(const UpstreamOutcome& outcome) override;
  // SessionWaiter
  void session_turn() override;
  // BatchWaiter
  void batch_done(const BatchResult& result) override;
  // MemoryWaiter
  void memory_granted() override;
  void memory_refused() override;

  uint64_t body_share() const;
  void admitted();
  void respond_memory_full();

  void route();
  void decode_for_routing();
  void forward();
  void forward_to(UpstreamPool* pool);
  UpstreamRequest upstream_request() const;
  void send_continue();
  std::string_view routing_body() const;
  void await_decoding(BodyCoding coding);
  bool use_plan();
  unsigned server_facts_bits() const;
  void use(std::shared_ptr<const BatchPlan> plan, size_t data_offset);
  // A batchable INSERT's whole body is here: wait_for_columns() (RowBinary),
  // batch_data() (decoded), split_batchable(), key_by_chunk(), hand_over()
  // to the spool or the batcher; or forward() alone.
  void submit_batch();
  bool wait_for_columns();
  bool batch_data(std::string& decoded, MemoryCharge& charge, std::string_view& data);
  bool split_batchable(std::string_view data, RowChunk& chunk);
  void key_by_chunk(const RowChunk& chunk);
  void hand_over(const RowChunk& chunk);
  void spool_rows(const RowChunk& chunk);
  void respond_buffers_full();
  void send_head();
  void send_data(const char* data, size_t size);
  // `close`: the connection ends after the answer (a body left unread).
  void respond_error(const ChError& error, int retry_after_s = 0, bool close = false);
  void complete();
  void record(int status);
  void leave_session();
  bool holds_for_373() const;
  void schedule_373_retry();
  static void on_retry_timer(uv_timer_t* timer) noexcept;

  App& app_;
  Connection& connection_;
  RequestHead head_;
  State state_ = State::kRouting;

  // Metrics and the access log: the route label (a string literal), when
  // the request began, the status answered, and the connection's byte
  // count at the start. Recorded once, on entering kDone.
  const char* route_ = "query";
  bool sniff_insert_ = false;  // the SQL is in the body: look at its first bytes (once)
  int answer_status_ = 0;
  uint64_t started_ns_ = 0;
  uint64_t bytes_at_start_ = 0;

  // Forwarding decisions.
  UpstreamPool* pool_ = nullptr;  // the replica this request runs on
  size_t failovers_ = 0;          // replicas tried after one refused the connection
  std::string upstream_target_;
  std::string session_key_;  // set when the request runs in a tracked session
  // Holds its place in the session table (SessionTable::admit until
  // finished or cancel): through kWaitingTurn, kUpstream and the 373
  // retries, whatever the state, so a flag beside it.
  bool in_session_ = false;
  uint64_t session_timeout_ms_ = 60'000;

  // Batching.
  std::shared_ptr<const BatchPlan> plan_;
  std::shared_ptr<const BatchTarget> target_;  // plan_'s, or a copy with a header line
  size_t data_offset_ = 0;                     // where the rows begin in the body
  std::shared_ptr<BatchTicket> ticket_;
  // Set once it waited for its table's columns (structure_cache.h): it waits once.
  std::shared_ptr<StructureTicket> structure_ticket_;

  // Memory budget: the bytes taken for this request (its share), and what
  // it waits for while kAdmitting.
  MemoryCharge share_;
  uint64_t need_ = 0;

  // An encoded body whose SQL is inside it (kDecoding): decoded whole,
  // once, before it is routed again (router.h). body_ keeps the bytes as
  // the client sent them, for a request that goes alone.
  BodyCoding decode_coding_ = BodyCoding::kIdentity;
  BodyDecoding decoding_ = BodyDecoding::kRaw;
  std::string decoded_;

  // Request body. Its flags are facts of the body (all of it here, still
  // resendable, 100 Continue sent) that change as bytes arrive, whatever
  // the state: a body still streams while the request routes, waits or runs.
  std::string body_;
  size_t body_sent_ = 0;
  uint64_t body_received_ = 0;
  bool body_complete_ = false;
  bool body_rewindable_ = true;
  bool continue_sent_ = false;

  // Response. head_sent_, chunked_ and close_after_ are facts of the
  // answer's framing, read while writing it and at the end.
  int status_ = 0;
  std::string reason_;
  std::vector<Header> response_headers_;
  bool head_sent_ = false;
  bool chunked_ = false;
  bool close_after_ = false;
  std::string held_body_;  // in kHoldingHead: the body's first bytes
  // ClickHouse answered 372 or 374: it holds no such session. A fact of
  // the answer, read when the session is left.
  bool session_refused_ = false;
  int retries_373_ = 0;
  uint64_t first_373_ns_ = 0;  // when the first 373 came; 0: none yet
  uv_timer_t* retry_timer_ = nullptr;
};

}  // namespace chsidecar
