// Counters, gauges and histograms, rendered in Prometheus text format.
//
// A Metrics registry is owned by App and reached through it (app.metrics());
// there is no global registry. Subsystems register their metric families
// once, keep the returned references (they stay valid for the registry's
// life) and update them on the loop thread. Nothing here locks: loop thread
// only, like everything else.
//
// Every name gets the prefix "chsidecar_". Units are base units (seconds,
// bytes), counters end in _total, histograms have fixed buckets and render
// _bucket{le=...}, _sum and _count (no summaries).
//
// Label sets are bounded by construction: every label has a cap on the
// number of distinct values it takes; a value beyond the cap is recorded
// as "other". Callers pass values from fixed sets (route, result, state),
// through the helpers below (status_label, ch_code_label), or through a
// shared BoundedValues (table names). Never pass a session id, a query
// text, a user name, a URL or any credential as a label value.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace chsidecar {

// The distinct values one label may take: the first `cap` values seen are
// kept, later new ones become "other". May be shared by several families
// (every per-table family shares one, so they show the same tables).
class BoundedValues {
 public:
  explicit BoundedValues(size_t cap) : cap_(cap) {}
  // Returns `value` if known or if there is room for it, else "other".
  std::string admit(std::string_view value);
  size_t size() const { return values_.size(); }

 private:
  size_t cap_;
  std::set<std::string, std::less<>> values_;
};

// The value of an HTTP status as a label: "100".."599", else "other".
std::string status_label(int status);
// A ClickHouse error code as a label: one of the codes the sidecar knows
// (those clients and operators act on), "none" for 0, else "other".
std::string ch_code_label(int code);

// A monotonically increasing count. The value may instead come from a
// function read at scrape time (set_function), for counts kept elsewhere.
class Counter {
 public:
  void inc(double by = 1) { value_ += by; }
  double value() const { return fn_ ? fn_() : value_; }
  void set_function(std::function<double()> fn) { fn_ = std::move(fn); }

 private:
  double value_ = 0;
  std::function<double()> fn_;
};

// A value that goes up and down; set directly or read from a function at
// scrape time (the function must be cheap and must outlive the registry's
// use, i.e. capture only objects that outlive the App's admin listener).
class Gauge {
 public:
  void set(double v) { value_ = v; }
  void add(double by) { value_ += by; }
  double value() const { return fn_ ? fn_() : value_; }
  void set_function(std::function<double()> fn) { fn_ = std::move(fn); }

 private:
  double value_ = 0;
  std::function<double()> fn_;
};

// Observations counted into fixed buckets (upper bounds, ascending; +Inf
// is implied).
class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void observe(double v);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // Cumulative count of observations <= bounds[i].
  uint64_t cumulative(size_t i) const;
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  const std::vector<double>* bounds_;  // owned by the family
  std::vector<uint64_t> counts_;       // per bucket, not cumulative; last = +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// A label of a family and the cap on its distinct values.
struct LabelSpec {
  std::string name;
  std::shared_ptr<BoundedValues> values;  // null: a private cap of kDefaultLabelCap
};

inline constexpr size_t kDefaultLabelCap = 32;

// One metric name and its series, one per label-value tuple.
template <typename T>
class Family {
 public:
  // The series for `values` (one per label, in order), created on first use.
  // The reference stays valid for the registry's life.
  // REQUIRES: values.size() equals the number of labels.
  T& at(std::initializer_list<std::string_view> values);
  T& at(const std::vector<std::string>& values);
  // The unlabelled series. REQUIRES: the family has no labels.
  T& get() { return at({}); }

 private:
  friend class Metrics;
  Family(std::vector<LabelSpec> labels, std::vector<double> bounds);
  T make() const;

  // Orders label tuples of strings and of string_views alike, so that an
  // existing series is found without building a key (the per-request path).
  struct TupleLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(
          a.begin(), a.end(), b.begin(), b.end(),
          [](std::string_view x, std::string_view y) { return x < y; });
    }
  };

  std::vector<LabelSpec> labels_;
  std::vector<double> bounds_;  // histograms only
  std::map<std::vector<std::string>, std::unique_ptr<T>, TupleLess> series_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Buckets for request durations in seconds (1 ms .. 60 s).
const std::vector<double>& duration_buckets();
// Buckets for fsync durations in seconds (100 µs .. 10 s).
const std::vector<double>& fsync_buckets();
// Powers of 4 from 1 to 4^12 (~16M): row counts of a batch.
const std::vector<double>& rows_buckets();
// Powers of 4 from 1KiB to 1GiB: byte sizes of a batch.
const std::vector<double>& bytes_buckets();

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Registration. `name` is without the "chsidecar_" prefix; counters must
  // end in "_total". Registering a name twice returns the same family.
  // REQUIRES: the same labels (and buckets) each time a name is registered.
  CounterFamily& counter(const std::string& name, const std::string& help,
                         std::vector<LabelSpec> labels = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     std::vector<LabelSpec> labels = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             const std::vector<double>& bounds, std::vector<LabelSpec> labels = {});

  // The values shared by every "table" label: at most kMaxTables tables get
  // their own series, the rest are "other".
  static constexpr size_t kMaxTables = 50;
  const std::shared_ptr<BoundedValues>& tables() const { return tables_; }

  // The whole registry in Prometheus text exposition format 0.0.4.
  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Entry {
    std::string name;  // with prefix
    std::string help;
    Type type;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
  };
  Entry* find(const std::string& full_name);

  std::vector<std::unique_ptr<Entry>> entries_;  // in registration order
  std::shared_ptr<BoundedValues> tables_;
};

// The request, connection, pool and session metrics, registered by App.
// Route values: ping, query, insert_batched, insert_passthrough, admin,
// rejected (answered by the connection before an exchange began).
struct ProxyMetrics {
  explicit ProxyMetrics(Metrics& m);

  CounterFamily& requests;              // {route, status}
  HistogramFamily& request_duration;    // {route} seconds, head received to answer queued
  GaugeFamily& requests_in_flight;      // exchanges begun and not finished
  CounterFamily& connections_accepted;  // client connections accepted
  GaugeFamily& connections;             // {listener}: client | admin (App sets functions)
  GaugeFamily& pool_slots;              // {upstream, state}: busy | idle (functions)
  GaugeFamily& upstream_healthy;        // {upstream} 1 healthy, 0 ejected (functions)
  GaugeFamily& queued_requests;         // {queue}: pool | session (functions)
  CounterFamily& upstream_requests;     // {upstream, result, code}
  HistogramFamily& upstream_duration;   // {upstream} seconds per upstream transfer
  CounterFamily& upstream_retries;      // {upstream, reason}: stale_connection | session_locked
  GaugeFamily& sessions_stateful;       // stateful sessions tracked (function)
  CounterFamily& session_requests;      // {mode}: stateless | stateful, requests with a session_id
  CounterFamily& log_suppressed;        // warn/error log lines dropped by the rate limit (function)
  GaugeFamily& memory_used;             // bytes of the --max-memory budget in use (function)
  GaugeFamily& memory_max;              // --max-memory (App sets it)
  GaugeFamily& memory_peak;             // the most of the budget in use so far (function)
  GaugeFamily& memory_waiting;          // requests waiting for their share (function)
  CounterFamily& memory_refused;        // requests answered 503 at the memory budget
  GaugeFamily& build_info;              // {version} always 1
  GaugeFamily& start_time;              // process start, seconds since the epoch
};

// The batch and spool metrics, registered by App for the batcher and the
// spool to update (App::batch_metrics()). Label "table" uses
// Metrics::tables(); pass the table name as written in the INSERT.
struct BatchMetrics {
  explicit BatchMetrics(Metrics& m);

  CounterFamily& rows_received;      // {table} rows accepted into a buffer
  CounterFamily& rows_acknowledged;  // {table} rows answered 200 to their client
  CounterFamily& rows_flushed;       // {table} rows committed by ClickHouse
  HistogramFamily& batch_rows;       // rows per flushed batch
  HistogramFamily& batch_bytes;      // bytes per flushed batch
  // {result}: ok | data_error | permanent_error | transient_error | network_error
  CounterFamily& flushes;
  CounterFamily& retries;            // {table} flush attempts repeated
  CounterFamily& rows_dead_lettered; // {table} rows given up on
  GaugeFamily& buffered_bytes;       // rows buffered or in flight (App sets the function)
  GaugeFamily& buffer_max_bytes;     // --buffer-max-bytes (App sets it)
  GaugeFamily& oldest_row_age;       // seconds the oldest unflushed row has waited
  GaugeFamily& spool_bytes;          // bytes held in the spool
  GaugeFamily& spool_max_bytes;      // the spool's cap
  GaugeFamily& spool_writable;       // 1 while the spool's disk takes writes, else 0
  GaugeFamily& dead_letter_bytes;    // bytes in the dead-letter files, as last measured
  GaugeFamily& dead_letter_max_bytes;  // --dead-letter-max-bytes
  CounterFamily& fsyncs;             // fsync calls of the spool
  CounterFamily& segments;           // {how="new"|"reused"} segments the spool started
  HistogramFamily& fsync_duration;   // seconds per fsync
};

}  // namespace chsidecar
