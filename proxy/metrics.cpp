#include "metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>

namespace chsidecar {

namespace {

constexpr std::string_view kPrefix = "chsidecar_";
constexpr std::string_view kOther = "other";

// ClickHouse codes worth their own series: what the sidecar answers itself
// and what operators act on (auth, schema, syntax, overload, data).
constexpr int kKnownCodes[] = {
    3,   6,   26,  27,  32,  33,  38,  41,  46,  47,  53,  60,  62,  69,  70,  72,
    81,  117, 130, 131, 159, 164, 192, 193, 194, 202, 203, 209, 210, 241, 242, 252,
    285, 290, 319, 373, 394, 425, 457, 497, 516, 999, 1002,
};

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Plain decimals ("0.0001", not "1e-04") where they stay short.
  double mag = std::fabs(v);
  auto format = (mag >= 1e-6 && mag < 1e15) || v == 0 ? std::chars_format::fixed
                                                       : std::chars_format::general;
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, format);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

void append_escaped(std::string& out, std::string_view s, bool quote_escape) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quote_escape) out += "\\\"";
    else out += c;
  }
}

// {a="x",b="y"} plus an optional extra pair (le for buckets); empty if none.
std::string label_text(const std::vector<LabelSpec>& specs, const std::vector<std::string>& values,
                       std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (specs.empty() && extra_name.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i > 0) out += ',';
    out += specs[i].name;
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!specs.empty()) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
  return out;
}

std::vector<double> make_bounds(double first, double factor, int n) {
  std::vector<double> out;
  double v = first;
  for (int i = 0; i < n; ++i, v *= factor) out.push_back(v);
  return out;
}

}  // namespace

std::string BoundedValues::admit(std::string_view value) {
  if (values_.find(value) != values_.end()) return std::string(value);
  if (values_.size() >= cap_) return std::string(kOther);
  values_.emplace(value);
  return std::string(value);
}

std::string status_label(int status) {
  if (status < 100 || status > 599) return std::string(kOther);
  return std::to_string(status);
}

std::string ch_code_label(int code) {
  if (code == 0) return "none";
  for (int known : kKnownCodes)
    if (known == code) return std::to_string(code);
  return std::string(kOther);
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(bounds->size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), v) -
                                 bounds_->begin());
  ++counts_[i];
  ++count_;
  sum_ += v;
}

uint64_t Histogram::cumulative(size_t i) const {
  uint64_t total = 0;
  for (size_t j = 0; j <= i && j < counts_.size(); ++j) total += counts_[j];
  return total;
}

template <typename T>
Family<T>::Family(std::vector<LabelSpec> labels, std::vector<double> bounds)
    : labels_(std::move(labels)), bounds_(std::move(bounds)) {
  for (LabelSpec& spec : labels_)
    if (!spec.values) spec.values = std::make_shared<BoundedValues>(kDefaultLabelCap);
}

template <typename T>
T Family<T>::make() const {
  if constexpr (std::is_same_v<T, Histogram>) return Histogram(&bounds_);
  else return T();
}

template <typename T>
T& Family<T>::at(std::initializer_list<std::string_view> values) {
  if (auto it = series_.find(values); it != series_.end()) return *it->second;
  std::vector<std::string> v;
  v.reserve(values.size());
  for (std::string_view s : values) v.emplace_back(s);
  return at(v);
}

template <typename T>
T& Family<T>::at(const std::vector<std::string>& values) {
  assert(values.size() == labels_.size());
  std::vector<std::string> key;
  key.reserve(labels_.size());
  for (size_t i = 0; i < labels_.size(); ++i)
    key.push_back(labels_[i].values->admit(i < values.size() ? values[i] : std::string()));
  auto it = series_.find(key);
  if (it == series_.end()) it = series_.emplace(std::move(key), std::make_unique<T>(make())).first;
  return *it->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

const std::vector<double>& duration_buckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60};
  return b;
}

const std::vector<double>& fsync_buckets() {
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 10};
  return b;
}

const std::vector<double>& rows_buckets() {
  static const std::vector<double> b = make_bounds(1, 4, 13);
  return b;
}

const std::vector<double>& bytes_buckets() {
  static const std::vector<double> b = make_bounds(1024, 4, 11);
  return b;
}

Metrics::Metrics() : tables_(std::make_shared<BoundedValues>(kMaxTables)) {}

Metrics::Entry* Metrics::find(const std::string& full_name) {
  for (auto& e : entries_)
    if (e->name == full_name) return e.get();
  return nullptr;
}

CounterFamily& Metrics::counter(const std::string& name, const std::string& help,
                                std::vector<LabelSpec> labels) {
  assert(name.size() > 6 && name.substr(name.size() - 6) == "_total");
  std::string full = std::string(kPrefix) + name;
  if (Entry* e = find(full)) {
    assert(e->type == Type::kCounter);
    return *e->counter;
  }
  auto e = std::make_unique<Entry>();
  e->name = full;
  e->help = help;
  e->type = Type::kCounter;
  e->counter.reset(new CounterFamily(std::move(labels), {}));
  entries_.push_back(std::move(e));
  return *entries_.back()->counter;
}

GaugeFamily& Metrics::gauge(const std::string& name, const std::string& help,
                            std::vector<LabelSpec> labels) {
  std::string full = std::string(kPrefix) + name;
  if (Entry* e = find(full)) {
    assert(e->type == Type::kGauge);
    return *e->gauge;
  }
  auto e = std::make_unique<Entry>();
  e->name = full;
  e->help = help;
  e->type = Type::kGauge;
  e->gauge.reset(new GaugeFamily(std::move(labels), {}));
  entries_.push_back(std::move(e));
  return *entries_.back()->gauge;
}

HistogramFamily& Metrics::histogram(const std::string& name, const std::string& help,
                                    const std::vector<double>& bounds,
                                    std::vector<LabelSpec> labels) {
  std::string full = std::string(kPrefix) + name;
  if (Entry* e = find(full)) {
    assert(e->type == Type::kHistogram);
    return *e->histogram;
  }
  auto e = std::make_unique<Entry>();
  e->name = full;
  e->help = help;
  e->type = Type::kHistogram;
  e->histogram.reset(new HistogramFamily(std::move(labels), bounds));
  entries_.push_back(std::move(e));
  return *entries_.back()->histogram;
}

std::string Metrics::render() const {
  std::string out;
  out.reserve(16 * 1024);
  for (const auto& e : entries_) {
    out += "# HELP ";
    out += e->name;
    out += ' ';
    append_escaped(out, e->help, false);
    out += "\n# TYPE ";
    out += e->name;
    out += e->type == Type::kCounter ? " counter\n" : e->type == Type::kGauge ? " gauge\n" : " histogram\n";
    if (e->type == Type::kCounter) {
      for (const auto& [values, c] : e->counter->series_)
        out += e->name + label_text(e->counter->labels_, values) + ' ' + format_value(c->value()) + '\n';
    } else if (e->type == Type::kGauge) {
      for (const auto& [values, g] : e->gauge->series_)
        out += e->name + label_text(e->gauge->labels_, values) + ' ' + format_value(g->value()) + '\n';
    } else {
      const HistogramFamily& f = *e->histogram;
      for (const auto& [values, h] : f.series_) {
        for (size_t i = 0; i < f.bounds_.size(); ++i)
          out += e->name + "_bucket" + label_text(f.labels_, values, "le", format_value(f.bounds_[i])) +
                 ' ' + std::to_string(h->cumulative(i)) + '\n';
        out += e->name + "_bucket" + label_text(f.labels_, values, "le", "+Inf") + ' ' +
               std::to_string(h->count()) + '\n';
        out += e->name + "_sum" + label_text(f.labels_, values) + ' ' + format_value(h->sum()) + '\n';
        out += e->name + "_count" + label_text(f.labels_, values) + ' ' +
               std::to_string(h->count()) + '\n';
      }
    }
  }
  return out;
}

ProxyMetrics::ProxyMetrics(Metrics& m)
    : requests(m.counter("requests_total", "Client requests answered, by route and HTTP status.",
                         {{"route", nullptr}, {"status", nullptr}})),
      request_duration(m.histogram("request_duration_seconds",
                                   "Time from a request's headers to the end of its answer.",
                                   duration_buckets(), {{"route", nullptr}})),
      requests_in_flight(m.gauge("requests_in_flight", "Client requests begun and not yet answered.")),
      connections_accepted(m.counter("connections_accepted_total",
                                     "Client connections accepted.")),
      connections(m.gauge("connections", "Open connections, by listener.", {{"listener", nullptr}})),
      pool_slots(m.gauge("pool_slots", "Upstream pool slots by state (busy, idle).",
                         {{"upstream", nullptr}, {"state", nullptr}})),
      upstream_healthy(m.gauge("upstream_healthy", "1 while an upstream replica is healthy, 0 while ejected.",
                               {{"upstream", nullptr}})),
      queued_requests(m.gauge("queued_requests",
                              "Requests waiting: for a pool slot, or for their session's turn.",
                              {{"queue", nullptr}})),
      upstream_requests(m.counter("upstream_requests_total",
                                  "Upstream transfers by result (ok, http_error, network_error, "
                                  "timeout, aborted) and ClickHouse error code.",
                                  {{"upstream", nullptr}, {"result", nullptr}, {"code", nullptr}})),
      upstream_duration(m.histogram("upstream_request_duration_seconds",
                                    "Duration of upstream transfers.", duration_buckets(),
                                    {{"upstream", nullptr}})),
      upstream_retries(m.counter("upstream_retries_total",
                                 "Upstream requests sent again (stale keep-alive connection, "
                                 "session locked by a concurrent query).",
                                 {{"upstream", nullptr}, {"reason", nullptr}})),
      sessions_stateful(m.gauge("sessions_stateful", "Stateful client sessions tracked.")),
      session_requests(m.counter("session_requests_total",
                                 "Requests that carried a session_id, by how they ran.",
                                 {{"mode", nullptr}})),
      log_suppressed(m.counter("log_lines_suppressed_total",
                               "Repeated warn/error log lines dropped by the rate limit.")),
      memory_used(m.gauge("memory_used_bytes",
                          "Bytes of the memory budget in use: request bodies held, answers "
                          "queued to clients, batch buffers, decoded bodies.")),
      memory_max(m.gauge("memory_max_bytes", "The memory budget, --max-memory.")),
      memory_peak(m.gauge("memory_peak_bytes", "The most bytes of the memory budget in use so far.")),
      memory_waiting(m.gauge("memory_waiting_requests",
                             "Requests waiting for their share of the memory budget.")),
      memory_refused(m.counter("memory_refused_total",
                               "Requests answered 503 because the memory budget was used up.")),
      build_info(m.gauge("build_info", "Build information; the value is always 1.",
                         {{"version", nullptr}})),
      start_time(m.gauge("start_time_seconds", "Start time of the process, seconds since the epoch.")) {}

BatchMetrics::BatchMetrics(Metrics& m)
    : rows_received(m.counter("batch_rows_received_total",
                              "Rows of batchable INSERTs accepted into a buffer.",
                              {{"table", m.tables()}})),
      rows_acknowledged(m.counter("batch_rows_acknowledged_total",
                                  "Rows whose INSERT was answered 200 to its client.",
                                  {{"table", m.tables()}})),
      rows_flushed(m.counter("batch_rows_flushed_total",
                             "Rows committed to ClickHouse by batch flushes.",
                             {{"table", m.tables()}})),
      batch_rows(m.histogram("batch_rows", "Rows per flushed batch.", rows_buckets())),
      batch_bytes(m.histogram("batch_bytes", "Bytes per flushed batch.", bytes_buckets())),
      flushes(m.counter("batch_flushes_total", "Batch flushes by result.", {{"result", nullptr}})),
      retries(m.counter("batch_retries_total", "Batch flush attempts repeated after a failure.",
                        {{"table", m.tables()}})),
      rows_dead_lettered(m.counter("batch_rows_dead_lettered_total",
                                   "Rows given up on and set aside (dead-lettered).",
                                   {{"table", m.tables()}})),
      buffered_bytes(m.gauge("batch_buffered_bytes",
                             "Bytes of rows buffered or in flight in all batches.")),
      buffer_max_bytes(m.gauge("batch_buffer_max_bytes",
                               "Cap on buffered batch bytes (--buffer-max-bytes).")),
      oldest_row_age(m.gauge("batch_oldest_row_age_seconds",
                             "Age of the oldest row not yet committed to ClickHouse.")),
      spool_bytes(m.gauge("spool_bytes", "Bytes held in the on-disk spool.")),
      spool_max_bytes(m.gauge("spool_max_bytes", "Cap on the on-disk spool's size.")),
      spool_writable(m.gauge("spool_writable",
                             "1 while the spool's disk takes writes; 0 while early answers get "
                             "503 (a full disk), until a write succeeds.")),
      dead_letter_bytes(m.gauge("dead_letter_bytes",
                                "Bytes in the dead-letter files of the spool directory.")),
      dead_letter_max_bytes(m.gauge("dead_letter_max_bytes",
                                    "Cap on the dead-letter files (--dead-letter-max-bytes).")),
      fsyncs(m.counter("spool_fsyncs_total", "fsync calls made by the spool.")),
      segments(m.counter("spool_segments_total",
                         "Segment files the spool started appending to, new or reused.",
                         {{"how", nullptr}})),
      fsync_duration(m.histogram("spool_fsync_duration_seconds", "Duration of spool fsync calls.",
                                 fsync_buckets())) {}

}  // namespace chsidecar
