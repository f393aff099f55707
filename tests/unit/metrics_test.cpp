// Unit tests for metrics.h: Prometheus text rendering, bounded labels, histograms.
#include <doctest/doctest.h>

#include <string>

#include "metrics.h"

using namespace chsidecar;

namespace {
bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}
}  // namespace

TEST_CASE("counters render with HELP, TYPE, prefix and labels") {
  Metrics m;
  CounterFamily& c = m.counter("requests_total", "Requests.", {{"route", nullptr}, {"status", nullptr}});
  c.at({"query", "200"}).inc();
  c.at({"query", "200"}).inc(2);
  c.at({"ping", "200"}).inc();
  std::string text = m.render();
  CHECK(has_line(text, "# HELP chsidecar_requests_total Requests."));
  CHECK(has_line(text, "# TYPE chsidecar_requests_total counter"));
  CHECK(has_line(text, "chsidecar_requests_total{route=\"query\",status=\"200\"} 3"));
  CHECK(has_line(text, "chsidecar_requests_total{route=\"ping\",status=\"200\"} 1"));
}

TEST_CASE("registering a name twice returns the same family") {
  Metrics m;
  CounterFamily& a = m.counter("x_total", "X.");
  CounterFamily& b = m.counter("x_total", "X.");
  CHECK(&a == &b);
  a.get().inc();
  CHECK(b.get().value() == 1);
}

TEST_CASE("gauges: set, add, and functions read at render time") {
  Metrics m;
  GaugeFamily& g = m.gauge("in_flight", "In flight.");
  g.get().add(3);
  g.get().add(-1);
  int backing = 7;
  GaugeFamily& f = m.gauge("slots", "Slots.", {{"state", nullptr}});
  f.at({"busy"}).set_function([&backing] { return double(backing); });
  backing = 9;
  std::string text = m.render();
  CHECK(has_line(text, "# TYPE chsidecar_in_flight gauge"));
  CHECK(has_line(text, "chsidecar_in_flight 2"));
  CHECK(has_line(text, "chsidecar_slots{state=\"busy\"} 9"));
}

TEST_CASE("histograms: cumulative buckets, +Inf, sum and count") {
  Metrics m;
  static const std::vector<double> bounds = {0.1, 1, 10};
  HistogramFamily& h = m.histogram("duration_seconds", "Durations.", bounds, {{"route", nullptr}});
  Histogram& q = h.at({"query"});
  q.observe(0.05);
  q.observe(0.1);  // on the bound: counted in le="0.1"
  q.observe(5);
  q.observe(100);
  std::string text = m.render();
  CHECK(has_line(text, "# TYPE chsidecar_duration_seconds histogram"));
  CHECK(has_line(text, "chsidecar_duration_seconds_bucket{route=\"query\",le=\"0.1\"} 2"));
  CHECK(has_line(text, "chsidecar_duration_seconds_bucket{route=\"query\",le=\"1\"} 2"));
  CHECK(has_line(text, "chsidecar_duration_seconds_bucket{route=\"query\",le=\"10\"} 3"));
  CHECK(has_line(text, "chsidecar_duration_seconds_bucket{route=\"query\",le=\"+Inf\"} 4"));
  CHECK(has_line(text, "chsidecar_duration_seconds_sum{route=\"query\"} 105.15"));
  CHECK(has_line(text, "chsidecar_duration_seconds_count{route=\"query\"} 4"));
}

TEST_CASE("an unlabelled histogram renders le alone") {
  Metrics m;
  HistogramFamily& h = m.histogram("batch_rows", "Rows.", rows_buckets());
  h.get().observe(3);
  std::string text = m.render();
  CHECK(has_line(text, "chsidecar_batch_rows_bucket{le=\"1\"} 0"));
  CHECK(has_line(text, "chsidecar_batch_rows_bucket{le=\"4\"} 1"));
  CHECK(has_line(text, "chsidecar_batch_rows_bucket{le=\"+Inf\"} 1"));
  CHECK(has_line(text, "chsidecar_batch_rows_count 1"));
  Metrics m2;
  m2.histogram("fsync_seconds", "F.", fsync_buckets()).get();
  CHECK(has_line(m2.render(), "chsidecar_fsync_seconds_bucket{le=\"0.0001\"} 0"));
}

TEST_CASE("label values are capped: beyond the cap they become other") {
  Metrics m;
  auto tables = std::make_shared<BoundedValues>(2);
  CounterFamily& a = m.counter("rows_total", "Rows.", {{"table", tables}});
  CounterFamily& b = m.counter("flushed_total", "Flushed.", {{"table", tables}});
  a.at({"t1"}).inc();
  a.at({"t2"}).inc();
  a.at({"t3"}).inc();
  a.at({"t4"}).inc();
  b.at({"t1"}).inc();  // shared cap: t1 known
  b.at({"t5"}).inc();  // over the shared cap
  // Asked again (the lookup of an existing series): the same series.
  a.at({"t1"}).inc();
  a.at({"t3"}).inc();
  CHECK(&a.at({"t4"}) == &a.at({"t3"}));
  CHECK(&a.at({"other"}) == &a.at({"t3"}));
  std::string text = m.render();
  CHECK(has_line(text, "chsidecar_rows_total{table=\"t1\"} 2"));
  CHECK(has_line(text, "chsidecar_rows_total{table=\"t2\"} 1"));
  CHECK(has_line(text, "chsidecar_rows_total{table=\"other\"} 3"));
  CHECK(has_line(text, "chsidecar_flushed_total{table=\"t1\"} 1"));
  CHECK(has_line(text, "chsidecar_flushed_total{table=\"other\"} 1"));
  CHECK(text.find("t3") == std::string::npos);
}

TEST_CASE("every label has a default cap") {
  Metrics m;
  CounterFamily& c = m.counter("x_total", "X.", {{"result", nullptr}});
  for (int i = 0; i < 1000; ++i) c.at({std::to_string(i)}).inc();
  std::string text = m.render();
  size_t lines = 0;
  for (char ch : text) lines += ch == '\n';
  CHECK(lines == 2 + kDefaultLabelCap + 1);  // HELP, TYPE, the cap, "other"
}

TEST_CASE("label values and help are escaped") {
  Metrics m;
  m.counter("e_total", "Line one\nback\\slash", {{"v", nullptr}}).at({"a\"b\\c\nd"}).inc();
  std::string text = m.render();
  CHECK(has_line(text, "# HELP chsidecar_e_total Line one\\nback\\\\slash"));
  CHECK(has_line(text, "chsidecar_e_total{v=\"a\\\"b\\\\c\\nd\"} 1"));
}

TEST_CASE("status and ClickHouse code labels are bounded") {
  CHECK(status_label(200) == "200");
  CHECK(status_label(503) == "503");
  CHECK(status_label(99) == "other");
  CHECK(status_label(1000) == "other");
  CHECK(ch_code_label(0) == "none");
  CHECK(ch_code_label(60) == "60");
  CHECK(ch_code_label(373) == "373");
  CHECK(ch_code_label(12345) == "other");
  CHECK(ch_code_label(-1) == "other");
}

TEST_CASE("the proxy and batch families render as valid exposition") {
  Metrics m;
  ProxyMetrics pm(m);
  BatchMetrics bm(m);
  pm.build_info.at({"1.2.3"}).set(1);
  pm.requests.at({"query", "200"}).inc();
  bm.rows_received.at({"db.events"}).inc(10);
  bm.flushes.at({"ok"}).inc();
  bm.batch_rows.get().observe(10);
  std::string text = m.render();
  CHECK(has_line(text, "chsidecar_build_info{version=\"1.2.3\"} 1"));
  CHECK(has_line(text, "chsidecar_batch_rows_received_total{table=\"db.events\"} 10"));
  CHECK(has_line(text, "chsidecar_batch_flushes_total{result=\"ok\"} 1"));
  // Every sample line belongs to a family announced by TYPE before it.
  std::string current;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line[0] == '#') continue;
    CHECK_MESSAGE(line.rfind(current, 0) == 0, line);
    CHECK_MESSAGE(line.rfind("chsidecar_", 0) == 0, line);
  }
}
