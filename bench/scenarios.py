"""The scenarios of scripts/bench. Each one is registered with
`@scenario(name, title)` on a function run(ctx) -> dict (the JSON result),
plus optional `@plot(name)` (result, png_path) and `@table(name)` (result)
-> markdown. Adding a scenario (batching, spool) is adding three functions
here; scripts/bench picks them up in registration order.

Every measurement: warm-up first (not recorded), then ctx.runs rounds with
the sides interleaved (A B A B ..., or rotated A B C, B C A, ...: _interleave)
so drift hits every side, summarized as median / min / max with the ratios
of medians (_sides).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import benchlib as bl
from benchlib import med, summarize


@dataclass
class Scenario:
    name: str
    title: str
    run: Callable
    plot: Optional[Callable] = None
    table: Optional[Callable] = None
    peer: bool = False  # measures clickhouse-bulk too: scripts/bench builds it first


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, title: str, peer: bool = False):
    def deco(fn):
        SCENARIOS[name] = Scenario(name, title, fn, peer=peer)
        return fn
    return deco


def plot(name: str):
    def deco(fn):
        SCENARIOS[name].plot = fn
        return fn
    return deco


def table(name: str):
    def deco(fn):
        SCENARIOS[name].table = fn
        return fn
    return deco


# Log events that every run produces by design, not anomalies: the start-up
# warning that 18.16 has no insert_deduplication_token (at-least-once window,
# documented in docs/benchmarks.md and README).
BENIGN_LOG_EVENTS = ("upstream_without_dedup_token",)


# -- context ------------------------------------------------------------------------

@dataclass
class Context:
    quick: bool
    runs: int
    duration: float   # seconds per wrk run
    warmup: float     # seconds of wrk warm-up per target
    cpus: bl.Cpus
    wrk: bl.Wrk
    out_dir: str
    log_dir: str
    sidecar_bin: str
    bare_exe: str
    peer_exe: Optional[str] = None  # clickhouse-bulk; None: not available
    peer_note: str = "peer not built (no scenario of this run needs it)"
    anomalies: list = field(default_factory=list)
    _ch: Optional[bl.ClickHouseServer] = None

    def clickhouse(self) -> bl.ClickHouseServer:
        """The ClickHouse shared by read-only scenarios (started once)."""
        if self._ch is None:
            self._ch = bl.start_clickhouse(self.cpus)
        return self._ch

    @contextlib.contextmanager
    def fresh_clickhouse(self):
        """A private ClickHouse for one side of a comparison that writes
        (INSERT scenarios: see PROTOCOL.md, a server's history skews them)."""
        srv = bl.start_clickhouse(self.cpus)
        try:
            yield srv
        finally:
            srv.kill()  # its data is thrown away: no need for a clean shutdown
            srv.close()

    def sidecar(self, upstream: str, *args: str, name: str = "sidecar"):
        return self.supervised(bl.Sidecar(self.sidecar_bin, upstream, list(args), self.cpus,
                                          self.log_dir, name), name, scan_log=True)

    def bare(self, name: str, extra: tuple = ()):
        # it has no SIGTERM handler
        return self.supervised(bl.BareServer(self.bare_exe, self.cpus, self.log_dir, name, extra),
                               name, ok_codes=(0, -15))

    def peer(self, upstream: str, name: str):
        # it exits 1 after a clean SIGTERM shutdown
        return self.supervised(bl.Peer(self.peer_exe, upstream, self.cpus,
                                       os.path.join(self.out_dir, "tmp"), self.log_dir, name),
                               name, ok_codes=(0, 1, -15))

    @contextlib.contextmanager
    def supervised(self, srv: bl.Served, name: str, ok_codes=(0,), scan_log: bool = False):
        """Yields the started `srv`, then stops it. An anomaly is recorded
        when it died during the run or exits with a code not in `ok_codes`
        and, with `scan_log`, for the warn and error lines of its log."""
        try:
            yield srv
        finally:
            died = not srv.alive()
            rc = srv.stop()
            text = srv.log_text()
            if died or rc not in ok_codes:
                self.anomalies.append({
                    "scenario": name, "what": f"{srv.what} exit code {rc}"
                    + (" (died during the run)" if died else " after SIGTERM"),
                    "cmd": " ".join(srv.cmd), "log_tail": text[-2000:]})
            bad = [l for l in text.splitlines()
                   if (" error " in l or " warn " in l or "fatal" in l.lower())
                   and not any(b in l for b in BENIGN_LOG_EVENTS)] if scan_log else []
            if bad:
                self.anomalies.append({
                    "scenario": name, "what": f"{len(bad)} warn/error log lines",
                    "cmd": " ".join(srv.cmd), "first_lines": bad[:10]})

    def close(self) -> None:
        if self._ch is not None:
            self._ch.close()
            self._ch = None


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 9})
    return plt


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _head(header: str) -> list:
    """A markdown table's header line and the separator under it."""
    return [header, "|" + "---|" * (header.count("|") - 1)]


def _group_rows(groups: dict, sides, cells: Callable, ratio: Callable) -> list:
    """Table rows for groups (connections, modes, readers): a row per side,
    | group | side | cells(side, its summary) |, then | group | ratio(group's summary) |."""
    out = []
    for g, s in groups.items():
        out += [f"| {g} | {t} | {cells(t, s[t])} |" for t in sides]
        out.append(f"| {g} | {ratio(s)} |")
    return out


def _bars(ax, groups, series, get, colors=None, fmt="{:.0f}", labels=None):
    """Grouped bars: groups on x, one bar per series, value = median with a
    min..max error bar. get(group, series) -> summary dict {median,min,max};
    labels: legend names for some series."""
    colors = colors or ["#888888", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                        "#8c564b"]
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for j, g in enumerate(groups):
            d = get(g, s)
            if d is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(d["median"])
            lo.append(d["median"] - d["min"])
            hi.append(d["max"] - d["median"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=(labels or {}).get(s, s),
               color=colors[i % len(colors)])
        for x, y in zip(xs, ys):
            ax.annotate(fmt.format(y), (x, y), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.legend(fontsize=8)


def _md_cell(d: dict, fmt: str = "{:.0f}") -> str:
    return (fmt.format(d["median"]) + " (" + fmt.format(d["min"]) + "–"
            + fmt.format(d["max"]) + ")")


def _round_order(sides, i: int, rotate: bool) -> list:
    """The sides in round i: A B every round, or rotated (A B C, B C A,
    C A B, ...) so that no side always follows the same one."""
    sides = list(sides)
    k = i % len(sides) if rotate else 0
    return sides[k:] + sides[:k]


def _interleave(n: int, sides, one: Callable, rotate: bool = False,
                after_round: Optional[Callable] = None) -> dict:
    """n rounds, each running every side once (_round_order):
    {side: [one(side, round index), ...]}; after_round(i, runs) after each."""
    runs = {t: [] for t in sides}
    for i in range(n):
        for t in _round_order(sides, i, rotate):
            runs[t].append(one(t, i))
        if after_round:
            after_round(i, runs)
    return runs


def _sides(runs: dict, **ratios) -> dict:
    """The summary of interleaved runs: {side: summarize(its runs)}, the
    count checks of INSERT runs under "checks" (taken out of the runs), and
    each ratio name=(a, b, metric): median of a / median of b."""
    out = {}
    checked = {t: v for t, v in runs.items() if v and "check" in v[0]}
    if checked:
        out["checks"] = {t: {"runs_ok": sum(1 for r in v if r["check"]["ok"]),
                             "runs": len(v), "checks": [r.pop("check") for r in v]}
                         for t, v in checked.items()}
    out.update({t: summarize(v) for t, v in runs.items() if v})
    for name, (a, b, key) in ratios.items():
        out[name] = _ratio(out, a, b, key)
    return out


def _cpu_per_request(r: dict, processes) -> None:
    """<name>_cpu_us_per_req for each sampled process (ProcSampler's
    utime + stime over the run, all threads) ÷ the requests wrk sent."""
    for k in processes:
        if f"{k}_cpu_s" in r:
            r[f"{k}_cpu_us_per_req"] = round(r[f"{k}_cpu_s"] * 1e6 / max(r["requests"], 1), 1)


def _ratio(s: dict, a: str, b: str, key: str) -> float:
    den = med(s[b], key)
    return round(med(s[a], key) / den, 3) if den else float("inf")


# == 1. passthrough SELECT 1 ===========================================================

PASS_POOL = 16


@scenario("passthrough", "Passthrough SELECT 1: direct, through the sidecar and through nginx")
def run_passthrough(ctx: Context) -> dict:
    ch = ctx.clickhouse()
    nginx_ok, nginx_note = bl.ReferenceProxy.available()
    res = {"query": "GET /?query=SELECT%201", "pool_size": PASS_POOL,
           "duration_s": ctx.duration, "runs": ctx.runs, "by_connections": {},
           "reference_proxy": nginx_note}
    with contextlib.ExitStack() as stack:
        sc = stack.enter_context(ctx.sidecar(ch.http_url, "--pool-size", str(PASS_POOL),
                                             "--queue-max", "4096", name="passthrough"))
        targets = {"direct": ch.http_url, "sidecar": sc.url}
        procs = {"sidecar": sc.pid, "clickhouse": ch.pid}
        if nginx_ok:
            ngx = stack.enter_context(ctx.supervised(bl.ReferenceProxy(
                ch.http_url, ctx.cpus, os.path.join(ctx.out_dir, "tmp"), ctx.log_dir, "passthrough"),
                "passthrough nginx"))
            targets["nginx"] = ngx.url
            procs["nginx"] = ngx.worker_pid
        else:
            bl.log(f"passthrough: nginx left out: {nginx_note}")
        res["targets"] = list(targets)
        for conns in (16, 256):
            for t, base in targets.items():
                ctx.wrk.run(base + "/?query=SELECT%201", conns, ctx.warmup)

            def one(t: str, i: int) -> dict:
                with bl.ProcSampler(procs) as smp:
                    r = ctx.wrk.run(targets[t] + "/?query=SELECT%201", conns, ctx.duration)
                r.update(smp.flat())
                _cpu_per_request(r, procs)
                bl.log(f"passthrough c={conns} {t} run {i + 1}: {r['rps']:.0f} req/s "
                       f"p50 {r['p50_ms']:.2f} ms errors {r['errors']} "
                       f"proxy cpu {r.get(t + '_cpu_pct', '-')}%")
                return r
            ratios = {"ratio_rps": ("sidecar", "direct", "rps")}
            if nginx_ok:
                ratios["nginx_ratio_rps"] = ("nginx", "direct", "rps")
            s = _sides(_interleave(ctx.runs, targets, one, rotate=True), **ratios)
            for t in targets:
                if t != "direct":
                    key = "p50_delta_ms" if t == "sidecar" else f"{t}_p50_delta_ms"
                    s[key] = round(med(s[t], "p50_ms") - med(s["direct"], "p50_ms"), 3)
            res["by_connections"][str(conns)] = s
    return res


@plot("passthrough")
def plot_passthrough(res: dict, path: str) -> None:
    plt = _plt()
    from matplotlib.ticker import FuncFormatter
    bc = res["by_connections"]
    groups = list(bc)
    sides = res["targets"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    _bars(axes[0], [f"c={g}" for g in groups], sides,
          lambda g, s: bc[g[2:]][s]["rps"])
    axes[0].set_title("SELECT 1 throughput (req/s)")
    for ax, conns in zip(axes[1:], groups):
        _bars(ax, ["p50", "p99", "p99.9"], sides,
              lambda g, s: bc[conns][s][{"p50": "p50_ms", "p99": "p99_ms",
                                         "p99.9": "p999_ms"}[g]], fmt="{:.1f}")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_title(f"latency (ms, log scale), c={conns}")
    _save(plt, fig, path)


@table("passthrough")
def table_passthrough(res: dict) -> str:
    bc = res["by_connections"]
    sides = res["targets"]

    def cells(t: str, d: dict) -> str:
        px = (f"{_md_cell(d[t + '_cpu_pct'])} | "
              f"{_md_cell(d[t + '_cpu_us_per_req'], '{:.1f}')} | "
              f"{d[t + '_rss_peak_kib']['median'] / 1024:.1f}"
              if t != "direct" else "– | – | –")
        return (f"{_md_cell(d['rps'])} | {_md_cell(d['p50_ms'], '{:.2f}')} "
                f"| {_md_cell(d['p99_ms'], '{:.1f}')} | {_md_cell(d['p999_ms'], '{:.1f}')} "
                f"| {d['errors']['median']:.0f} | {px}")

    def ratios(s: dict) -> str:
        out = (f"**sidecar / direct** | **{s['ratio_rps']:.2f}×** | "
               f"**{s['p50_delta_ms']:+.2f} ms** | | | | | | |")
        if "nginx_ratio_rps" in s:
            out += (f"\n| | nginx / direct | {s['nginx_ratio_rps']:.2f}× | "
                    f"{s['nginx_p50_delta_ms']:+.2f} ms | | | | | | |")
        return out
    return "\n".join(_head(
        "| conns | target | req/s | p50 ms | p99 ms | p99.9 ms | errors | proxy CPU % "
        "| proxy CPU µs/request | proxy peak RSS MiB |") + _group_rows(bc, sides, cells, ratios))


# == 2. front-end limit ===============================================================

@scenario("frontend", "Front-end limit: bare libuv+llhttp server vs sidecar /ping")
def run_frontend(ctx: Context) -> dict:
    ch = ctx.clickhouse()
    conns = 64
    res = {"connections": conns, "duration_s": ctx.duration, "runs": ctx.runs,
           "modes": {}}
    with ctx.bare("frontend bare") as bare, ctx.sidecar(ch.http_url, name="frontend") as sc:
        targets = {"bare": (bare.url + "/ping", bare.pid),
                   "sidecar": (sc.url + "/ping", sc.pid)}
        modes = {"plain": ((), ()), "pipelined x16": (("wrk_pipeline",), (16,))}
        for mode, (scripts, sargs) in modes.items():
            for t, (url, pid) in targets.items():
                ctx.wrk.run(url, conns, ctx.warmup, scripts=scripts, script_args=sargs)

            def one(t: str, i: int) -> dict:
                url, pid = targets[t]
                with bl.ProcSampler({"server": pid}) as smp:
                    r = ctx.wrk.run(url, conns, ctx.duration, scripts=scripts,
                                    script_args=sargs)
                r.update(smp.flat())
                cpu = max(r["server_cpu_pct"], 0.1)
                r["rps_per_core"] = round(r["rps"] / (cpu / 100.0), 1)
                bl.log(f"frontend {mode} {t} run {i + 1}: {r['rps']:.0f} req/s, "
                       f"server cpu {r['server_cpu_pct']}%, errors {r['errors']}")
                return r
            s = _sides(_interleave(ctx.runs, targets, one),
                       ratio_rps=("sidecar", "bare", "rps"),
                       ratio_rps_per_core=("sidecar", "bare", "rps_per_core"))
            res["modes"][mode] = s
    return res


@plot("frontend")
def plot_frontend(res: dict, path: str) -> None:
    plt = _plt()
    m = res["modes"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    _bars(axes[0], list(m), ["bare", "sidecar"], lambda g, s: m[g][s]["rps"],
          colors=["#888888", "#1f77b4"])
    axes[0].set_title(f"req/s, {res['connections']} connections")
    _bars(axes[1], list(m), ["bare", "sidecar"], lambda g, s: m[g][s]["rps_per_core"],
          colors=["#888888", "#1f77b4"])
    axes[1].set_title("req/s per busy core (req/s ÷ CPU share)")
    _save(plt, fig, path)


@table("frontend")
def table_frontend(res: dict) -> str:
    return "\n".join(_head(
        "| mode | server | req/s | server CPU % | req/s per busy core | p50 ms |") + _group_rows(
        res["modes"], ("bare", "sidecar"),
        lambda t, d: f"{_md_cell(d['rps'])} | {_md_cell(d['server_cpu_pct'])} "
                     f"| {_md_cell(d['rps_per_core'])} | {_md_cell(d['p50_ms'], '{:.2f}')}",
        lambda s: f"**sidecar / bare** | **{s['ratio_rps']:.2f}×** | | "
                  f"**{s['ratio_rps_per_core']:.2f}×** | |"))


# == 3. large result ==================================================================

LARGE_ROWS = 10_000_000   # SELECT number, toString(number): 157.8 MB of TSV
SLOW_RATE = 20e6          # bytes/s for the slow reader
SLOW_RCVBUF = 256 * 1024  # the slow reader's socket receive buffer


@scenario("large_result", "Large result (~150 MB) to a fast and a slow reader")
def run_large(ctx: Context) -> dict:
    ch = ctx.clickhouse()
    target = ("/?query=SELECT%20number%2C%20toString%28number%29%20FROM%20numbers%28"
              f"{LARGE_ROWS}%29%20FORMAT%20TSV")
    readers = {"fast": {}, "slow": {"rate_bytes_s": SLOW_RATE, "rcvbuf": SLOW_RCVBUF}}
    runs_for = {"fast": ctx.runs, "slow": 1 if ctx.quick else ctx.runs}
    res = {"query": f"SELECT number, toString(number) FROM numbers({LARGE_ROWS}) FORMAT TSV",
           "slow_reader_rate_mb_s": SLOW_RATE / 1e6,
           "slow_reader_rcvbuf_kib": SLOW_RCVBUF // 1024, "readers": {}}
    with ctx.sidecar(ch.http_url, name="large_result") as sc:
        ports = {"direct": ch.http_port, "sidecar": sc.port}
        bl.read_large(sc.port, target.replace(str(LARGE_ROWS), "100000"))  # warm
        res["sidecar_idle_rss_kib"] = bl.proc_status_kib(sc.pid, "VmRSS")
        for name, kw in readers.items():

            def one(t: str, i: int) -> dict:
                with bl.ProcSampler({"sidecar": sc.pid}) as smp:
                    r = bl.read_large(ports[t], target, **kw)
                r.update(smp.flat())
                if r["status"] != 200 or not r["complete"]:
                    ctx.anomalies.append({"scenario": "large_result",
                                          "what": f"{name} reader via {t}: incomplete", "run": r})
                bl.log(f"large_result {name} {t} run {i + 1}: {r['bytes'] / 1e6:.1f} MB "
                       f"{r['mb_s']} MB/s, sidecar peak RSS "
                       f"{r['sidecar_rss_peak_kib'] / 1024:.1f} MiB")
                return r
            res["readers"][name] = _sides(_interleave(runs_for[name], ports, one),
                                          ratio_throughput=("sidecar", "direct", "mb_s"))
    return res


@plot("large_result")
def plot_large(res: dict, path: str) -> None:
    plt = _plt()
    rd = res["readers"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    _bars(axes[0], list(rd), ["direct", "sidecar"], lambda g, s: rd[g][s]["mb_s"])
    axes[0].set_title("150 MB result: throughput (MB/s)")
    peak = {g: {k: v / 1024 for k, v in rd[g]["sidecar"]["sidecar_rss_peak_kib"].items()
                if k != "runs"} for g in rd}
    _bars(axes[1], list(rd), ["sidecar"], lambda g, s: peak[g], colors=["#1f77b4"],
          fmt="{:.1f}")
    axes[1].axhline(res["sidecar_idle_rss_kib"] / 1024, color="k", ls=":", lw=1,
                    label="idle RSS")
    axes[1].set_title("sidecar peak RSS (MiB)")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    _save(plt, fig, path)


@table("large_result")
def table_large(res: dict) -> str:
    def cells(t: str, d: dict) -> str:
        rss = (_md_cell({k: v / 1024 for k, v in d["sidecar_rss_peak_kib"].items()
                         if k != "runs"}, "{:.1f}") if t == "sidecar" else "–")
        return f"{_md_cell(d['mb_s'])} | {_md_cell(d['seconds'], '{:.2f}')} | {rss}"
    out = _head("| reader | target | MB/s | seconds | sidecar peak RSS MiB |") + _group_rows(
        res["readers"], ("direct", "sidecar"), cells,
        lambda s: f"**sidecar / direct** | **{s['ratio_throughput']:.2f}×** | | |")
    out.append(f"\nSidecar RSS when idle (after warm-up): "
               f"{res['sidecar_idle_rss_kib'] / 1024:.1f} MiB.")
    return "\n".join(out)


# == 4. the seed's scenario: one shared session_id ====================================

SESSION_CLIENTS = 200


@scenario("shared_session", "200 concurrent requests sharing one session_id")
def run_shared_session(ctx: Context) -> dict:
    ch = ctx.clickhouse()
    rounds = 2 if ctx.quick else 5
    query = "SELECT%20sleep%280.01%29"
    res = {"clients": SESSION_CLIENTS, "rounds_per_client": rounds,
           "query": "SELECT sleep(0.01)", "runs": ctx.runs}
    with ctx.sidecar(ch.http_url, name="shared_session") as sc:
        ports = {"direct": ch.http_port, "sidecar": sc.port}
        runs = {t: [] for t in ports}
        outcomes = {t: {} for t in ports}
        for i in range(ctx.runs + 1):  # run 0 is the warm-up
            for t, port in ports.items():
                sid = f"bench-{t}-{i}-{time.time_ns()}"
                with bl.ProcSampler({"sidecar": sc.pid}) as smp:
                    r = bl.session_burst(port, f"/?query={query}&session_id={sid}",
                                         SESSION_CLIENTS, rounds)
                r.update(smp.flat())
                bl.log(f"shared_session {t} run {i}: {r['failed']}/{r['requests']} failed, "
                       f"{r['ok_per_s']} ok/s, {r['outcomes']}")
                if i == 0:
                    continue
                for k, v in r.pop("outcomes").items():
                    outcomes[t][k] = outcomes[t].get(k, 0) + v
                runs[t].append(r)
        res.update(_sides(runs))
        res["outcomes_total"] = outcomes
    return res


@plot("shared_session")
def plot_shared_session(res: dict, path: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    _bars(axes[0], ["failed %"], ["direct", "sidecar"], lambda g, s: res[s]["failed_pct"],
          fmt="{:.1f}")
    axes[0].set_title(f"{res['clients']} concurrent, one session_id: failures")
    axes[0].set_ylim(0, 105)
    _bars(axes[1], ["successful req/s"], ["direct", "sidecar"], lambda g, s: res[s]["ok_per_s"])
    axes[1].set_title("successful requests per second")
    _save(plt, fig, path)


@table("shared_session")
def table_shared_session(res: dict) -> str:
    out = _head("| target | requests per run | failed | failed % | successful req/s | wall s | outcomes (all runs) |")
    for t in ("direct", "sidecar"):
        d = res[t]
        oc = ", ".join(f"{k}: {v}" for k, v in sorted(res["outcomes_total"][t].items()))
        out.append(f"| {t} | {d['requests']['median']:.0f} | {_md_cell(d['failed'])} | "
                   f"{_md_cell(d['failed_pct'], '{:.1f}')} | {_md_cell(d['ok_per_s'])} | "
                   f"{_md_cell(d['wall_s'], '{:.2f}')} | {oc} |")
    return "\n".join(out)


# == 5. idle client connections =======================================================

IDLE_COUNTS = (10, 100, 1000, 10000)


@scenario("idle_connections", "Sidecar RSS per idle client connection")
def run_idle(ctx: Context) -> dict:
    ch = ctx.clickhouse()
    res = {"counts": {}, "runs": ctx.runs,
           "method": "fresh sidecar per run; each connection does one GET /ping "
                     "then stays idle; (RSS after - RSS before) / N"}
    for n in IDLE_COUNTS:
        runs = []
        for i in range(ctx.runs):
            with ctx.sidecar(ch.http_url, "--max-connections", str(max(4096, n + 100)),
                             name=f"idle-{n}") as sc:
                warm, _ = bl.open_idle(sc.port, 5)  # first-use allocations
                bl.close_all(warm)
                time.sleep(0.2)
                before = bl.proc_status_kib(sc.pid, "VmRSS")
                t0 = time.monotonic()
                socks, failures = bl.open_idle(sc.port, n)
                open_s = time.monotonic() - t0
                time.sleep(0.5)
                after = bl.proc_status_kib(sc.pid, "VmRSS")
                closed = bl.count_closed(socks)
                bl.close_all(socks)
                r = {"rss_before_kib": before, "rss_after_kib": after,
                     "kib_per_conn": round((after - before) / n, 2),
                     "failures": failures, "closed_by_server": closed,
                     "open_seconds": round(open_s, 2)}
                if failures or closed:
                    ctx.anomalies.append({"scenario": "idle_connections",
                                          "what": f"n={n}: {failures} failed, {closed} closed",
                                          "run": r})
                runs.append(r)
                bl.log(f"idle n={n} run {i + 1}: {before} -> {after} KiB, "
                       f"{r['kib_per_conn']} KiB/conn, failures {failures}, closed {closed}")
        res["counts"][str(n)] = summarize(runs)
    return res


@plot("idle_connections")
def plot_idle(res: dict, path: str) -> None:
    plt = _plt()
    c = res["counts"]
    ns = [int(n) for n in c]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    growth = [(c[str(n)]["rss_after_kib"]["median"] - c[str(n)]["rss_before_kib"]["median"]) / 1024
              for n in ns]
    axes[0].plot(ns, growth, "o-")
    axes[0].set_xscale("log")
    axes[0].set_title("sidecar RSS growth (MiB) vs idle connections")
    axes[0].set_xlabel("idle connections")
    per = [c[str(n)]["kib_per_conn"] for n in ns]
    axes[1].errorbar(ns, [p["median"] for p in per],
                     yerr=[[p["median"] - p["min"] for p in per],
                           [p["max"] - p["median"] for p in per]], fmt="o-", capsize=3)
    axes[1].axhline(10, color="r", ls=":", lw=1, label="aim: 10 KiB")
    axes[1].set_xscale("log")
    axes[1].set_title("KiB per idle connection")
    axes[1].set_xlabel("idle connections")
    axes[1].legend(fontsize=8)
    _save(plt, fig, path)


@table("idle_connections")
def table_idle(res: dict) -> str:
    out = _head("| idle connections | RSS before KiB | RSS after KiB | KiB per connection | failed / closed |")
    for n, d in res["counts"].items():
        out.append(f"| {n} | {d['rss_before_kib']['median']:.0f} | {d['rss_after_kib']['median']:.0f} "
                   f"| {_md_cell(d['kib_per_conn'], '{:.2f}')} | "
                   f"{d['failures']['max']:.0f} / {d['closed_by_server']['max']:.0f} |")
    return "\n".join(out)


# == INSERT scenarios: common part =====================================================
#
# Each run of each side gets its own fresh ClickHouse (data on /dev/shm), a new
# MergeTree table and, for the sidecar sides, a new sidecar: a server that has
# taken a storm of single-row parts gets slower (PROTOCOL.md), so reusing one
# would measure its history. Load: wrk -t1 with bench/wrk_insert.lua (one row
# with a unique id per request, or a fixed body of N rows); 1 s of warm-up into
# the same table, not recorded. Parts: max(max_block_number) of the table in
# system.parts before and after the run (on 18.16's MergeTree every INSERT
# takes the next block number, merges take none, so the difference is the
# number of parts created). Afterwards the driver waits until every row the
# sidecar took in is in ClickHouse and checks count() == uniqExact(id).

INSERT_TABLE = "bench_rows"
INSERT_DDL = (f"CREATE TABLE {INSERT_TABLE} (id UInt64, v UInt32, s String) "
              "ENGINE = MergeTree() ORDER BY id")
INSERT_Q = f"/?query=INSERT%20INTO%20{INSERT_TABLE}%20FORMAT%20JSONEachRow"
INSERT_WARMUP = 1.0
DRAIN_TIMEOUT = 120.0
# sidecar / direct, the ratios of every INSERT scenario
INSERT_RATIOS = {"ratio_rows": ("sidecar", "direct", "rows_per_s"),
                 "ratio_parts": ("sidecar", "direct", "parts_per_s")}


def _insert_duration(ctx: Context) -> int:
    """Seconds per INSERT run: 0.8 x the wrk run length (full 8 s, quick 2 s),
    whole seconds for wrk; each run also pays a fresh server and a warm-up."""
    return max(1, int(ctx.duration * 0.8))


def _insert_runs(ctx: Context) -> int:
    """Runs per side: ctx.runs, but 1 in quick mode (every INSERT run pays a
    fresh ClickHouse, a new sidecar and a warm-up; --quick stays < 3 min)."""
    return 1 if ctx.quick else ctx.runs


def _ch_int(ch, sql: str) -> int:
    out = ch.query(sql).decode().strip()
    return int(out) if out and out != "\\N" else 0


def _block(ch) -> int:
    return _ch_int(ch, "SELECT max(max_block_number) FROM system.parts "
                       f"WHERE database = currentDatabase() AND table = '{INSERT_TABLE}'")


def _insert_run(ctx: Context, label: str, side: str, conns: int, rows_per_req: int,
                sidecar_args: tuple = (), query_extra: str = "",
                spool_dir: Optional[str] = None, background_clickhouse: bool = False,
                target: str = INSERT_Q, script: str = "wrk_insert",
                script_args: Optional[tuple] = None, unique_ids: bool = True) -> dict:
    """One measured run on a fresh ClickHouse, `side` "direct", "sidecar"
    (a new sidecar started with sidecar_args) or "peer" (clickhouse-bulk, its
    rows counted after its last flush). `target`
    (path and query string), `script` and `script_args` (the same for warm-up
    and run) replace the JSONEachRow load of bench/wrk_insert.lua; with
    unique_ids False (fixed bodies) the check does not ask for distinct ids."""
    duration = _insert_duration(ctx)
    # The sidecar sends INSERTs of --passthrough-rows (default 1000) rows or
    # more as they are: those are not counted by its batch metrics.
    batching = (side == "sidecar" and "off" not in sidecar_args
                and rows_per_req < PASSTHROUGH_ROWS)
    with contextlib.ExitStack() as stack:
        ch = stack.enter_context(ctx.fresh_clickhouse())
        # In the background, ClickHouse takes only the CPU time wrk leaves
        # on the load core, as a server on its own host would take none.
        ch_priority = bl.yield_cpu(ch.pid) if background_clickhouse else "default"
        ch.query(INSERT_DDL)
        sc = None
        args = list(sidecar_args)
        if spool_dir:
            args += ["--spool-dir", spool_dir]
        if side == "sidecar":
            sc = stack.enter_context(ctx.sidecar(ch.http_url, *args, name=label))
        pr = stack.enter_context(ctx.peer(ch.http_url, label)) if side == "peer" else None
        url = (sc.url if sc else pr.url if pr else ch.http_url) + target + query_extra
        wa = ctx.wrk.run(url, conns, INSERT_WARMUP, scripts=(script,),
                         script_args=script_args or (rows_per_req, 32, 0))
        b0 = _block(ch)
        m0 = sc.metrics() if sc else {}
        pids = {"clickhouse": ch.pid}
        if sc:
            pids["sidecar"] = sc.pid
        if pr:
            pids["peer"] = pr.pid
        with bl.ProcSampler(pids) as smp:
            r = ctx.wrk.run(url, conns, duration, scripts=(script,),
                            script_args=script_args or (rows_per_req, 32, 10 ** 12))
        t_end = time.monotonic()
        m1 = sc.metrics() if sc else {}
        b1 = _block(ch)
        r.update(smp.flat())
        _cpu_per_request(r, pids)
        r["rows_per_s"] = round(r["ok_per_s"] * rows_per_req, 1)
        r["parts"] = b1 - b0
        r["parts_per_s"] = round((b1 - b0) / r["secs"], 2)
        r["clickhouse_priority"] = ch_priority
        r["errors_total"] = r["errors"]
        if sc:
            d = lambda name, **lb: (bl.metric_sum(m1, name, **lb)  # noqa: E731
                                    - bl.metric_sum(m0, name, **lb))
            flushes = d("chsidecar_batch_flushes_total", result="ok")
            r["flushes_ok"] = flushes
            r["flushes_failed"] = d("chsidecar_batch_flushes_total") - flushes
            r["rows_per_flush"] = round(d("chsidecar_batch_rows_flushed_total")
                                        / max(flushes, 1), 1)
            r["retries"] = d("chsidecar_batch_retries_total")
            r["dead_lettered"] = d("chsidecar_batch_rows_dead_lettered_total")
            if spool_dir:
                fs = d("chsidecar_spool_fsyncs_total")
                r["fsyncs"] = fs
                r["fsyncs_per_s"] = round(fs / r["secs"], 1)
                r["rows_per_fsync"] = round(d("chsidecar_batch_rows_received_total")
                                            / max(fs, 1), 1)
                r["fsync_ms_mean"] = round(
                    1000 * d("chsidecar_spool_fsync_duration_seconds_sum") / max(fs, 1), 3)
                # The slow tail of the disk: every answer waiting on a slow
                # group commit waits with it.
                for le in ("0.0025", "0.01"):
                    r[f"fsyncs_over_{le}_pct"] = round(100 * (fs - d(
                        "chsidecar_spool_fsync_duration_seconds_bucket", le=le)) / max(fs, 1), 3)
                # The sidecar's own view of its answers (head read -> answer
                # queued), beside wrk's, which adds the client's side.
                hist = "chsidecar_request_duration_seconds_bucket"
                answers = d(hist, route="insert_batched", le="+Inf")
                for le in ("0.0025", "0.005"):
                    r[f"own_within_{le}_pct"] = round(
                        100 * d(hist, route="insert_batched", le=le) / max(answers, 1), 2)
            if r["flushes_failed"] or r["dead_lettered"]:
                ctx.anomalies.append({"scenario": label, "what":
                                      f"{r['flushes_failed']:.0f} failed flushes, "
                                      f"{r['dead_lettered']:.0f} dead-lettered rows",
                                      "cmd": " ".join(sc.cmd)})
        # every row in: wait for the sidecar to commit what it took in
        acked_client = (wa["ok"] + r["ok"]) * rows_per_req
        check = {"acked_by_client": acked_client}
        deadline = time.monotonic() + DRAIN_TIMEOUT
        prev, changed = -1, time.monotonic()
        while True:
            count = _ch_int(ch, f"SELECT count() FROM {INSERT_TABLE}")
            if count != prev:
                changed = time.monotonic()
            if batching:
                m = sc.metrics()
                want = bl.metric_sum(m, "chsidecar_batch_rows_received_total")
                check["acked_by_sidecar"] = bl.metric_sum(
                    m, "chsidecar_batch_rows_acknowledged_total")
                done = (count >= want and m.get("chsidecar_batch_buffered_bytes", 0) == 0)
            elif pr:
                # it tells nothing of what it holds: done when no flush has
                # added rows for two of its flush intervals
                want = acked_client
                done = time.monotonic() - changed > 2 * bl.Peer.FLUSH_INTERVAL_MS / 1000
            else:
                want = acked_client
                # ClickHouse answered the acked ones; requests cut off when
                # wrk stopped may still be committing: wait until it is stable
                done = count == prev and count >= acked_client
            if done or time.monotonic() > deadline:
                break
            prev = count
            time.sleep(0.05 if batching else 0.2)
        check["drain_s"] = round((changed if pr else time.monotonic()) - t_end, 2)
        check["rows_in_clickhouse"] = count
        check["taken_in_by_sidecar"] = want if batching else None
        if rows_per_req == 1 and unique_ids:
            count, distinct = map(int, ch.query(
                f"SELECT count(), uniqExact(id) FROM {INSERT_TABLE}").split())
            check["rows_in_clickhouse"] = count
            check["distinct_ids"] = distinct
        else:
            check["distinct_ids"] = None
        acked = max(acked_client, check.get("acked_by_sidecar") or 0)
        check["landed_minus_acked"] = count - acked
        check["ok"] = bool(count >= acked and (check["distinct_ids"] is None
                                               or check["distinct_ids"] == count)
                           and (not batching or count == want))
        if not check["ok"]:
            ctx.anomalies.append({"scenario": label, "what": "row count check failed",
                                  "check": check})
        r["check"] = check
        r["drain_s"] = check["drain_s"]
        r["rows_acked"] = acked
        r["rows_landed"] = count
        r["parts_landed"] = _block(ch) - b0  # the run's parts and those of the drain
        if sc and spool_dir:
            r["spool_fs"] = bl.fs_type(spool_dir)
    bl.log(f"{label}: {r['rows_per_s']:.0f} rows/s, {r['parts_per_s']} parts/s, "
           f"p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms, errors {r['errors']}, "
           f"wrk cpu {r['wrk_cpu_pct']}%, sidecar cpu {r.get('sidecar_cpu_pct', '–')}%, "
           f"ch cpu {r.get('clickhouse_cpu_pct')}%"
           + (f", {r['fsyncs_per_s']} fsyncs/s, {r['rows_per_fsync']} rows/fsync"
              if "fsyncs" in r else "")
           + f"; check {check}")
    return r


def _lat_bars(ax, groups: list, series: list, get, title: str, aim: Optional[float] = None,
              **kw):
    from matplotlib.ticker import FuncFormatter
    _bars(ax, groups, series, get, fmt="{:.1f}", **kw)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    if aim:
        ax.axhline(aim, color="r", ls=":", lw=1, label=f"aim {aim:g} ms")
        ax.legend(fontsize=8)
    ax.set_title(title)


# == 6. single-row INSERTs, ack after commit ========================================

COMMIT_CONNS = (64, 1024)


@scenario("insert_commit", "Single-row INSERTs, ack after commit: direct vs sidecar")
def run_insert_commit(ctx: Context) -> dict:
    res = {"format": "JSONEachRow, one row per request", "ack": "commit (default)",
           "duration_s": _insert_duration(ctx), "runs": _insert_runs(ctx),
           "sidecar_args": "defaults (--ack commit, flush delay 10–200 ms, 5 parts/s)",
           "by_connections": {}}
    for conns in COMMIT_CONNS:
        runs = _interleave(_insert_runs(ctx), ("direct", "sidecar"), lambda t, i: _insert_run(
            ctx, f"insert_commit c={conns} {t} run {i + 1}", t, conns, 1))
        res["by_connections"][str(conns)] = _sides(runs, **INSERT_RATIOS)
    return res


@plot("insert_commit")
def plot_insert_commit(res: dict, path: str) -> None:
    plt = _plt()
    bc = res["by_connections"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    _bars(axes[0], [f"c={c}" for c in bc], ["direct", "sidecar"],
          lambda g, s: bc[g[2:]][s]["rows_per_s"])
    axes[0].set_title("single-row INSERTs: rows/s (acked)")
    _bars(axes[1], [f"c={c}" for c in bc], ["direct", "sidecar"],
          lambda g, s: bc[g[2:]][s]["parts_per_s"], fmt="{:.1f}")
    axes[1].set_yscale("log")
    axes[1].axhline(5, color="r", ls=":", lw=1, label="5 parts/s")
    axes[1].legend(fontsize=8)
    axes[1].set_title("new parts per second (log)")
    groups = [f"c={c} {p}" for c in bc for p in ("p50", "p99")]
    _lat_bars(axes[2], groups, ["direct", "sidecar"],
              lambda g, s: bc[g.split()[0][2:]][s][g.split()[1] + "_ms"],
              "ack latency (ms, log)")
    axes[2].tick_params(axis="x", labelsize=7)
    _save(plt, fig, path)


def _insert_row(label: str, t: str, d: dict, extra: str = "") -> str:
    cpu = _md_cell(d["sidecar_cpu_pct"]) if "sidecar_cpu_pct" in d and t != "direct" else "–"
    return (f"| {label} | {t} | {_md_cell(d['rows_per_s'])} | {_md_cell(d['parts_per_s'], '{:.1f}')} "
            f"| {_md_cell(d['p50_ms'], '{:.1f}')} | {_md_cell(d['p99_ms'], '{:.1f}')} "
            f"| {d['errors']['max']:.0f} | {cpu} | {_md_cell(d['clickhouse_cpu_pct'])} "
            f"| {_md_cell(d['wrk_cpu_pct'])} |{extra}")


def _checks_cell(ch: dict) -> str:
    return f"{ch['runs_ok']}/{ch['runs']}"


@table("insert_commit")
def table_insert_commit(res: dict) -> str:
    out = _head("| writers | target | rows/s | parts/s | ack p50 ms | ack p99 ms | errors (max) "
                "| sidecar CPU % | ClickHouse CPU % | wrk CPU % | sidecar CPU µs/request "
                "| count check |")
    for c, s in res["by_connections"].items():
        for t in ("direct", "sidecar"):
            us = (_md_cell(s[t]["sidecar_cpu_us_per_req"], "{:.1f}")
                  if "sidecar_cpu_us_per_req" in s[t] else "–")
            out.append(_insert_row(c, t, s[t], f" {us} | {_checks_cell(s['checks'][t])} |"))
        out.append(f"| {c} | **sidecar / direct** | **{s['ratio_rows']:.2f}×** | "
                   f"**{s['ratio_parts']:.3f}×** | | | | | | | | |")
    extra = []
    for c, s in res["by_connections"].items():
        d = s["sidecar"]
        extra.append(f"c={c}: {_md_cell(d['rows_per_flush'])} rows per flush")
    out.append("\nSidecar batches: " + "; ".join(extra) + ".")
    return "\n".join(out)


# == 7. single-row INSERTs, spool ack (wait_for_async_insert=0) ======================

SPOOL_CONNS = 64
PASSTHROUGH_ROWS = 1000  # the sidecar's --passthrough-rows default


# Least µs from one group's write + fdatasync to the next in the synced
# group-commit floors: fewer, larger groups trade rows/s for a shorter tail.
SYNCED_FLOOR_PAUSES = (0, 400, 500)


def _synced_floor(pause: int) -> str:
    return f"group_commit_synced_{pause}"


@scenario("insert_spool", "Single-row INSERTs with wait_for_async_insert=0 (spool ack): "
          "direct, sidecar, clickhouse-bulk", peer=True)
def run_insert_spool(ctx: Context) -> dict:
    import shutil
    spool_base = os.path.join(ctx.out_dir, "spool")
    os.makedirs(spool_base, exist_ok=True)
    targets = ["direct", "sidecar"] + (["peer"] if ctx.peer_exe else [])
    res = {"format": "JSONEachRow, one row per request", "connections": SPOOL_CONNS,
           "duration_s": _insert_duration(ctx), "runs": _insert_runs(ctx),
           "targets": targets,
           "sidecar_query": "...&wait_for_async_insert=0",
           "direct_query": "the same INSERT without the setting (18.16 does not know it)",
           "peer": {"available": bool(ctx.peer_exe), "note": ctx.peer_note,
                    "query": "the same INSERT without the setting (it would pass it on to "
                             "18.16, which does not know it)",
                    "ack": "from memory: 200 before the row is even buffered, no disk",
                    "flush_count": bl.Peer.FLUSH_COUNT,
                    "flush_interval_ms": bl.Peer.FLUSH_INTERVAL_MS},
           "spool_dir": spool_base, "spool_fs": bl.fs_type(spool_base),
           "fsync_probe_before": bl.fsync_probe(spool_base)}
    bl.log(f"insert_spool: spool on {res['spool_fs']}, raw 4 KiB append+fdatasync "
           f"p50 {res['fsync_probe_before']['p50_ms']} ms p99 {res['fsync_probe_before']['p99_ms']} ms")
    if not ctx.peer_exe:
        bl.log(f"insert_spool: clickhouse-bulk left out: {ctx.peer_note}")
    ceiling = []
    floors = {"group_commit": [], **{_synced_floor(p): [] for p in SYNCED_FLOOR_PAUSES}}

    def one(t: str, i: int) -> dict:
        sd = os.path.join(spool_base, f"run{i + 1}") if t == "sidecar" else None
        r = _insert_run(ctx, f"insert_spool {t} run {i + 1}", t, SPOOL_CONNS, 1,
                        query_extra="&wait_for_async_insert=0" if t == "sidecar" else "",
                        spool_dir=sd, background_clickhouse=True)
        if sd:
            shutil.rmtree(sd, ignore_errors=True)
        return r

    runs = _interleave(_insert_runs(ctx), targets, one, rotate=True,
                       after_round=lambda i, runs: _spool_floors(
                           ctx, i, runs["sidecar"][-1], spool_base, ceiling, floors))
    res["clickhouse_priority"] = sorted({r["clickhouse_priority"] for v in runs.values() for r in v})
    res["fsync_probe_after"] = bl.fsync_probe(spool_base)
    res["rounds"] = [{"round": i + 1, "order": _round_order(targets, i, True),
                      **{t: {k: runs[t][i][k] for k in ROUND_KEYS if k in runs[t][i]}
                         for t in targets}} for i in range(_insert_runs(ctx))]
    for rd in res["rounds"]:
        for t in (t for t in targets if t != "sidecar"):
            if rd[t]["rows_per_s"]:
                rd[f"sidecar_over_{t}"] = round(rd["sidecar"]["rows_per_s"] / rd[t]["rows_per_s"], 3)
    ratios = dict(INSERT_RATIOS)
    if "peer" in targets:
        ratios.update(ratio_rows_peer=("sidecar", "peer", "rows_per_s"),
                      ratio_parts_peer=("sidecar", "peer", "parts_per_s"),
                      ratio_p99_peer=("sidecar", "peer", "p99_ms"),
                      peer_ratio_rows=("peer", "direct", "rows_per_s"))
    res.update(_sides({**runs, "ceiling": ceiling, **floors}, **ratios,
                      ratio_ceiling=("ceiling", "direct", "rows_per_s"),
                      sidecar_of_ceiling=("sidecar", "ceiling", "rows_per_s")))
    return res


# What the results keep of each side's run, round by round (the per-round
# table shows rows/s and p99).
ROUND_KEYS = ("rows_per_s", "p50_ms", "p99_ms", "parts_per_s", "parts_landed", "rows_acked",
              "rows_landed", "sidecar_cpu_us_per_req", "peer_cpu_us_per_req")


def _spool_floors(ctx: Context, i: int, sidecar_run: dict, spool_base: str,
                  ceiling: list, floors: dict) -> None:
    """The no-op servers of round i, after its last side: the ceiling, and
    floors that answer in group commits and do nothing else, one with the
    sidecar's cycle and no disk, others gated by a real write + fdatasync per
    group on the spool's disk, the groups at least a pause apart (see
    bare_server.c)."""
    ceiling.append(_noop_run(ctx, f"insert_spool ceiling run {i + 1}"))
    fsyncs_per_s = sidecar_run.get("fsyncs_per_s", 0)
    if fsyncs_per_s >= 1:
        cycle_us = int(1e6 / fsyncs_per_s)
        floors["group_commit"].append(_noop_run(
            ctx, f"insert_spool group_commit ({cycle_us} µs) run {i + 1}", (cycle_us,)))
        floors["group_commit"][-1]["cycle_us"] = cycle_us
    else:
        ctx.anomalies.append({"scenario": "insert_spool", "what": "the sidecar made no "
                              "fsyncs: no group-commit floor at its cycle"})
    sync_file = os.path.join(spool_base, "group-commit-floor")
    for pause in SYNCED_FLOOR_PAUSES:
        floors[_synced_floor(pause)].append(_noop_run(
            ctx, f"insert_spool group_commit_synced pause {pause} µs run {i + 1}",
            (pause, sync_file)))
        os.unlink(sync_file)


def _noop_run(ctx: Context, label: str, extra: tuple = ()) -> dict:
    """The same requests answered 200 at once by bench/bare_server.c on the
    sidecar's core: what any server could reach here with this load
    generator, before doing anything with the rows (`extra`: its group-commit
    and disk-flush options)."""
    with ctx.bare(label, extra) as bare:
        url = bare.url + INSERT_Q + "&wait_for_async_insert=0"
        ctx.wrk.run(url, SPOOL_CONNS, INSERT_WARMUP, scripts=("wrk_insert",),
                    script_args=(1, 32, 0))
        with bl.ProcSampler({"server": bare.pid}) as smp:
            r = ctx.wrk.run(url, SPOOL_CONNS, _insert_duration(ctx), scripts=("wrk_insert",),
                            script_args=(1, 32, 0))
        r.update(smp.flat())
    r["rows_per_s"] = r["ok_per_s"]
    bl.log(f"{label}: {r['rows_per_s']:.0f} rows/s, p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms, "
           f"server cpu {r['server_cpu_pct']}%, wrk cpu {r['wrk_cpu_pct']}%")
    return r


SIDE_COLORS = {"direct": "#888888", "sidecar": "#1f77b4", "peer": "#ff7f0e",
               "ceiling": "#2ca02c", "group_commit": "#9467bd",
               **{_synced_floor(p): c for p, c in zip(SYNCED_FLOOR_PAUSES,
                                                      ("#8c564b", "#c49c94", "#e377c2"))}}
PEER_LABEL = "clickhouse-bulk"


@plot("insert_spool")
def plot_insert_spool(res: dict, path: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    peer = ["peer"] if "peer" in res.get("targets", ()) else []
    sides = ["direct", "sidecar"] + peer
    floor = [_synced_floor(p) for p in SYNCED_FLOOR_PAUSES if _synced_floor(p) in res]
    colors = lambda ss: [SIDE_COLORS.get(x, "#8c564b") for x in ss]  # noqa: E731
    series = sides + (["ceiling"] if "ceiling" in res else []) + floor
    _bars(axes[0], ["rows/s"], series, lambda g, s: res[s]["rows_per_s"], colors=colors(series),
          labels={"peer": PEER_LABEL})
    axes[0].set_yscale("log")
    vs = (f"sidecar / {PEER_LABEL} {res['ratio_rows_peer']:.2f}×, " if peer
          else f"{PEER_LABEL}: not available; ")
    axes[0].set_title(f"rows/s, {res['connections']} writers (log)\n{vs}"
                      f"sidecar / direct {res['ratio_rows']:.1f}×", fontsize=8)
    _bars(axes[1], ["parts/s"], sides, lambda g, s: res[s]["parts_per_s"], fmt="{:.1f}",
          colors=colors(sides), labels={"peer": PEER_LABEL})
    axes[1].set_yscale("log")
    axes[1].set_title("new parts per second (log)")
    _lat_bars(axes[2], ["p50", "p99"], sides + floor, lambda g, s: res[s][g + "_ms"],
              "ack latency (ms, log)", colors=colors(sides + floor),
              labels={"peer": PEER_LABEL + " (from memory)"})
    cpu = [("sidecar", "sidecar_cpu_us_per_req")] + [("peer", "peer_cpu_us_per_req")] * len(peer)
    _bars(axes[3], ["CPU µs/request"], [t for t, _ in cpu],
          lambda g, s: res[s][dict(cpu)[s]], fmt="{:.1f}", colors=colors([t for t, _ in cpu]),
          labels={"peer": PEER_LABEL})
    axes[3].set_title("the proxy's CPU per request (µs)")
    rounds = res.get("rounds", [])
    xs = [r["round"] for r in rounds]
    key, what = (("sidecar_over_peer", f"sidecar / {PEER_LABEL}") if peer
                 else ("sidecar_over_direct", "sidecar / direct"))
    ys = [r.get(key, 0) for r in rounds]
    axes[4].bar(xs, ys, color=SIDE_COLORS["sidecar"])
    for x, y in zip(xs, ys):
        axes[4].annotate(f"{y:.2f}×", (x, y), ha="center", va="bottom", fontsize=7)
    axes[4].axhline(res["ratio_rows_peer" if peer else "ratio_rows"], color="k", ls=":",
                    lw=1, label="median of medians")
    axes[4].set_xticks(xs)
    axes[4].set_xlabel("round")
    axes[4].legend(fontsize=7)
    axes[4].set_title(f"{what}, rows/s, each round", fontsize=8)
    _save(plt, fig, path)


def _side_label(t: str) -> str:
    return PEER_LABEL if t == "peer" else t


def _noop_row(label: str, g: dict) -> str:
    """A table row of bench/bare_server.c's runs (the ceiling, the floors)."""
    return (f"| {label} | {_md_cell(g['rows_per_s'])} | – | {_md_cell(g['p50_ms'], '{:.1f}')} "
            f"| {_md_cell(g['p99_ms'], '{:.1f}')} | {g['errors']['max']:.0f} "
            f"| {_md_cell(g['server_cpu_pct'])} | – | {_md_cell(g['wrk_cpu_pct'])} |")


@table("insert_spool")
def table_insert_spool(res: dict) -> str:
    peer = "peer" in res.get("targets", ())
    out = _head("| target | rows/s | parts/s | ack p50 ms | ack p99 ms | errors (max) "
                "| proxy CPU % | proxy CPU µs/request | ClickHouse CPU % | wrk CPU % "
           "| rows acked / landed (all runs) | parts landed (all runs) |")
    for t in res["targets"]:
        d, chk = res[t], res["checks"][t]["checks"]
        cpu = (f"{_md_cell(d[t + '_cpu_pct'])} | {_md_cell(d[t + '_cpu_us_per_req'], '{:.1f}')}"
               if t != "direct" else "– | –")
        label = {"peer": f"{PEER_LABEL} (acks from memory)",
                 "sidecar": "sidecar (acks after fsync)"}.get(t, t)
        out.append(f"| {label} | {_md_cell(d['rows_per_s'])} "
                   f"| {_md_cell(d['parts_per_s'], '{:.1f}')} | {_md_cell(d['p50_ms'], '{:.1f}')} "
                   f"| {_md_cell(d['p99_ms'], '{:.1f}')} | {d['errors']['max']:.0f} | {cpu} "
                   f"| {_md_cell(d['clickhouse_cpu_pct'])} | {_md_cell(d['wrk_cpu_pct'])} "
                   f"| {sum(d['rows_acked']['runs']):.0f} / {sum(d['rows_landed']['runs']):.0f} "
                   f"| {sum(d['parts_landed']['runs']):.0f} |")
    out.append(f"| **sidecar / direct** | **{res['ratio_rows']:.1f}×** | "
               f"**{res['ratio_parts']:.4f}×** | | | | | | | | | |")
    if peer:
        out.append(f"| **sidecar / {PEER_LABEL}** | **{res['ratio_rows_peer']:.2f}×** | "
                   f"{res['ratio_parts_peer']:.2f}× | | {res['ratio_p99_peer']:.2f}× | | | | | | | |")
    else:
        out.append(f"| {PEER_LABEL} | {res['peer']['note']} | | | | | | | | | | |")
    out += ["", "Every round (rows/s, ack p99 ms; the sides in the order they ran):", "",
            *_head("| round | order | " + " | ".join(_side_label(t) for t in res["targets"])
                   + " | sidecar / direct" + (f" | sidecar / {PEER_LABEL}" if peer else "")
                   + " |")]
    for rd in res.get("rounds", []):
        out.append(f"| {rd['round']} | {', '.join(map(_side_label, rd['order']))} | "
                   + " | ".join(f"{rd[t]['rows_per_s']:.0f}, {rd[t]['p99_ms']:.1f}"
                                for t in res["targets"])
                   + f" | {rd.get('sidecar_over_direct', 0):.1f}×"
                   + (f" | {rd.get('sidecar_over_peer', 0):.2f}×" if peer else "") + " |")
    out += ["", *_head("| no-op servers on the proxy's core | rows/s | – | ack p50 ms "
                       "| ack p99 ms | errors (max) | server CPU % | – | wrk CPU % |")]
    if "ceiling" in res:
        out.append(_noop_row("no-op server on the sidecar's core (ceiling)", res["ceiling"]))
        out.append(f"| **ceiling / direct; sidecar / ceiling** | **{res['ratio_ceiling']:.1f}×; "
                   f"{res['sidecar_of_ceiling']:.2f}** | | | | | | | |")
    floors = [("group_commit", "no-op server answering in group commits of the sidecar's "
               "cycle, no disk")]
    floors += [(_synced_floor(p), "no-op server answering in group commits gated by "
                f"a write + fdatasync each on the spool's disk, {p} µs or more apart")
               for p in SYNCED_FLOOR_PAUSES]
    for f, what in floors:
        if f in res:
            g = res[f]
            cycle = f" ({_md_cell(g['cycle_us'], '{:.0f}')} µs)" if "cycle_us" in g else ""
            out.append(_noop_row(what + cycle, g))
    d = res["sidecar"]
    pb, pa = res["fsync_probe_before"], res["fsync_probe_after"]
    chk = res["checks"]["sidecar"]["checks"]
    out += ["", *_head("| spool (sidecar) | value |"),
            f"| fsyncs/s | {_md_cell(d['fsyncs_per_s'])} |",
            f"| rows per fsync | {_md_cell(d['rows_per_fsync'], '{:.1f}')} |",
            f"| mean write+fdatasync cycle ms (chsidecar_spool_fsync_duration_seconds) | {_md_cell(d['fsync_ms_mean'], '{:.2f}')} |",
            *([f"| write+fdatasync cycles over 2.5 / 10 ms, % | "
               f"{_md_cell(d['fsyncs_over_0.0025_pct'], '{:.3f}')} / "
               f"{_md_cell(d['fsyncs_over_0.01_pct'], '{:.3f}')} |"]
              if "fsyncs_over_0.01_pct" in d else []),
            f"| raw 4 KiB append + fdatasync on the spool's disk ({res['spool_fs']}), "
            f"p50 / p99 ms, before / after | {pb['p50_ms']:.2f} / {pb['p99_ms']:.2f}, "
            f"{pa['p50_ms']:.2f} / {pa['p99_ms']:.2f} |",
            f"| rows per flush to ClickHouse | {_md_cell(d['rows_per_flush'])} |",
            *([f"| answers within 2.5 / 5 ms as the sidecar measures them (head read → answer "
               f"queued; wrk's latency adds the client's side), % | "
               f"{_md_cell(d['own_within_0.0025_pct'], '{:.2f}')} / "
               f"{_md_cell(d['own_within_0.005_pct'], '{:.2f}')} |"]
              if "own_within_0.005_pct" in d else []),
            f"| drain after the load stopped, s | {_md_cell(d['drain_s'], '{:.2f}')} |",
            "| count check (rows in ClickHouse = rows taken in ≥ acked; no duplicate id) | "
            + "; ".join(f"{c['rows_in_clickhouse']} in CH, {c['taken_in_by_sidecar']:.0f} "
                        f"taken in, {c['acked_by_sidecar']:.0f} acked by the sidecar, "
                        f"{c['acked_by_client']} acks seen by wrk, {c['distinct_ids']} "
                        f"distinct: {'ok' if c['ok'] else 'FAILED'}" for c in chk) + " |"]
    return "\n".join(out)


# == 8. 1,000-row INSERTs (the already-batched app) ==================================

BATCHED_CONNS = 16
BATCHED_ROWS = 1000


@scenario("insert_batched", "1,000-row INSERTs (an already-batched app): direct vs sidecar")
def run_insert_batched(ctx: Context) -> dict:
    targets = {"direct": None, "sidecar": (), "sidecar --batch=off": ("--batch", "off")}
    res = {"format": f"JSONEachRow, {BATCHED_ROWS} rows per request (fixed body)",
           "connections": BATCHED_CONNS, "duration_s": _insert_duration(ctx),
           "runs": _insert_runs(ctx), "targets": list(targets)}
    runs = _interleave(_insert_runs(ctx), targets, lambda t, i: _insert_run(
        ctx, f"insert_batched {t} run {i + 1}", "direct" if targets[t] is None else "sidecar",
        BATCHED_CONNS, BATCHED_ROWS, sidecar_args=targets[t] or ()))
    res.update(_sides(runs, ratio_rows=("sidecar", "direct", "rows_per_s"),
                      ratio_rows_batch_off=("sidecar --batch=off", "direct", "rows_per_s")))
    return res


@plot("insert_batched")
def plot_insert_batched(res: dict, path: str) -> None:
    plt = _plt()
    ts = res["targets"]
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3))
    _bars(axes[0], ["rows/s"], ts, lambda g, s: res[s]["rows_per_s"])
    axes[0].axhline(0.9 * res["direct"]["rows_per_s"]["median"], color="r", ls=":", lw=1,
                    label="0.9 × direct")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{res['connections']} writers × {BATCHED_ROWS}-row INSERTs: rows/s")
    _lat_bars(axes[1], ["p50", "p99"], ts, lambda g, s: res[s][g + "_ms"],
              "INSERT latency (ms, log)")
    _save(plt, fig, path)


@table("insert_batched")
def table_insert_batched(res: dict) -> str:
    out = _head("| target | rows/s | parts/s | p50 ms | p99 ms | errors (max) "
                "| sidecar CPU % | ClickHouse CPU % | wrk CPU % | count check |")
    for t in res["targets"]:
        out.append(_insert_row(t, "", res[t], f" {_checks_cell(res['checks'][t])} |")
                   .replace(f"| {t} |  |", f"| {t} |"))
    out.append(f"| **sidecar / direct** | **{res['ratio_rows']:.2f}×** | | | | | | | | |")
    out.append(f"| **sidecar --batch=off / direct** | **{res['ratio_rows_batch_off']:.2f}×** "
               "| | | | | | | | |")
    out.append(f"\nRows per flush through the batching sidecar: "
               f"{_md_cell(res['sidecar']['rows_per_flush'])}.")
    return "\n".join(out)


# == 9. clickhouse-connect's insert: single-row Native in an LZ4 frame ===============
#
# The request clickhouse-connect makes for client.insert() of one row: POST
# with no `query` parameter, settings as URL parameters
# (async_insert=1&wait_for_async_insert=0), Content-Type
# application/octet-stream, Content-Encoding lz4, and a body that is an LZ4
# frame (lz4.frame.compress, as the driver calls it) of
# "INSERT INTO default.bench_rows (`id`, `v`, `s`) FORMAT Native\n" and one
# Native block of one row, made by the bench's ClickHouse itself (SELECT ...
# FORMAT Native). One fixed body for every request (bench/wrk_native.lua):
# all rows are equal, so the count check asks for no distinct ids. ClickHouse
# 18.16 refuses Content-Encoding lz4 (code 89) and the async_insert settings
# (code 115), so the direct side sends what it takes: the same SQL line and
# Native block, uncompressed, in the body, no settings. wrk sends a
# Content-Length where the driver sends chunked.

NATIVE_CONNS = 64
NATIVE_SQL = (f"INSERT INTO default.{INSERT_TABLE} (`id`, `v`, `s`) FORMAT Native\n").encode()
NATIVE_SIDECAR_Q = "/?async_insert=1&wait_for_async_insert=0"


def _native_bodies(ctx: Context, out_dir: str) -> dict:
    """Write the direct and the driver-shaped bodies to out_dir; their paths
    and sizes."""
    import lz4.frame
    with ctx.fresh_clickhouse() as ch:
        block = ch.query("SELECT toUInt64(1) AS id, toUInt32(1) AS v, "
                         f"'{'x' * 32}' AS s FORMAT Native")
    plain = NATIVE_SQL + block
    framed = lz4.frame.compress(plain)
    assert lz4.frame.decompress(framed) == plain
    paths = {"direct": os.path.join(out_dir, "native-direct.bin"),
             "sidecar": os.path.join(out_dir, "native-lz4.bin")}
    for t, data in (("direct", plain), ("sidecar", framed)):
        with open(paths[t], "wb") as f:
            f.write(data)
    return {"paths": paths, "native_block_bytes": len(block), "direct_body_bytes": len(plain),
            "lz4_body_bytes": len(framed)}


@scenario("insert_native_lz4", "clickhouse-connect's single-row Native inserts in LZ4 "
          "frames (wait_for_async_insert=0): direct vs sidecar")
def run_insert_native_lz4(ctx: Context) -> dict:
    import shutil
    base = os.path.join(ctx.out_dir, "native")
    spool_base = os.path.join(base, "spool")
    os.makedirs(spool_base, exist_ok=True)
    bodies = _native_bodies(ctx, base)
    res = {"format": "Native, one row per request, SQL in the body (fixed body)",
           "connections": NATIVE_CONNS, "duration_s": _insert_duration(ctx),
           "runs": _insert_runs(ctx),
           "sidecar_request": "POST " + NATIVE_SIDECAR_Q + ", Content-Type "
           "application/octet-stream, Content-Encoding lz4, body lz4.frame.compress("
           "SQL line + Native block); the sidecar with --spool-dir",
           "direct_request": "POST / (no settings: 18.16 refuses async_insert, code 115), "
           "Content-Type application/octet-stream, the same SQL line + Native block "
           "uncompressed (18.16 refuses Content-Encoding lz4, code 89)",
           **{k: v for k, v in bodies.items() if k != "paths"},
           "spool_dir": spool_base, "spool_fs": bl.fs_type(spool_base)}
    bl.log(f"insert_native_lz4: Native block {bodies['native_block_bytes']} B, body "
           f"{bodies['direct_body_bytes']} B direct, {bodies['lz4_body_bytes']} B as an LZ4 frame")

    def one(t: str, i: int) -> dict:
        sd = os.path.join(spool_base, f"run{i + 1}") if t == "sidecar" else None
        r = _insert_run(ctx, f"insert_native_lz4 {t} run {i + 1}", t, NATIVE_CONNS, 1,
                        spool_dir=sd,
                        background_clickhouse=True,
                        target="/" if t == "direct" else NATIVE_SIDECAR_Q,
                        script="wrk_native",
                        script_args=(bodies["paths"][t], "-" if t == "direct" else "lz4"),
                        unique_ids=False)
        if sd:
            shutil.rmtree(sd, ignore_errors=True)
        return r
    runs = _interleave(_insert_runs(ctx), ("direct", "sidecar"), one)
    res["clickhouse_priority"] = sorted({r["clickhouse_priority"] for v in runs.values() for r in v})
    res.update(_sides(runs, **INSERT_RATIOS))
    return res


@plot("insert_native_lz4")
def plot_insert_native_lz4(res: dict, path: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    _bars(axes[0], ["rows/s"], ["direct", "sidecar"], lambda g, s: res[s]["rows_per_s"])
    axes[0].set_title(f"rows/s, {res['connections']} writers: {res['ratio_rows']:.1f}×")
    _bars(axes[1], ["parts/s"], ["direct", "sidecar"], lambda g, s: res[s]["parts_per_s"],
          fmt="{:.1f}")
    axes[1].set_yscale("log")
    axes[1].axhline(5, color="r", ls=":", lw=1, label="aim ≤ 5")
    axes[1].legend(fontsize=8)
    axes[1].set_title("new parts per second (log)")
    _lat_bars(axes[2], ["p50", "p99"], ["direct", "sidecar"],
              lambda g, s: res[s][g + "_ms"], "ack latency (ms, log)")
    _bars(axes[3], ["CPU µs/request"], ["sidecar"],
          lambda g, s: res[s]["sidecar_cpu_us_per_req"], fmt="{:.1f}")
    axes[3].set_title("sidecar CPU per request (µs)")
    _save(plt, fig, path)


@table("insert_native_lz4")
def table_insert_native_lz4(res: dict) -> str:
    out = _head("| target | rows/s | parts/s | ack p50 ms | ack p99 ms | errors (max) "
                "| sidecar CPU % | ClickHouse CPU % | wrk CPU % | sidecar CPU µs/request "
           "| ClickHouse CPU µs/request | count check |")
    for t in ("direct", "sidecar"):
        d = res[t]
        sc_us = _md_cell(d["sidecar_cpu_us_per_req"], "{:.1f}") if t == "sidecar" else "–"
        out.append(_insert_row(t, "", d).replace(f"| {t} |  |", f"| {t} |")
                   + f" {sc_us} | {_md_cell(d['clickhouse_cpu_us_per_req'], '{:.1f}')} "
                   f"| {_checks_cell(res['checks'][t])} |")
    out.append(f"| **sidecar / direct** | **{res['ratio_rows']:.1f}×** | "
               f"**{res['ratio_parts']:.4f}×** | | | | | | | | | |")
    d = res["sidecar"]
    out += ["", f"Bodies: Native block {res['native_block_bytes']} B; direct "
            f"{res['direct_body_bytes']} B (SQL line + block, uncompressed, no settings: "
            f"18.16 refuses lz4 and async_insert); through the sidecar {res['lz4_body_bytes']} B "
            f"LZ4 frame, `{NATIVE_SIDECAR_Q}`. Rows per flush to ClickHouse "
            f"{_md_cell(d['rows_per_flush'])}; spool fsyncs/s {_md_cell(d['fsyncs_per_s'])}, "
            f"rows per fsync {_md_cell(d['rows_per_fsync'], '{:.1f}')}; drain "
            f"{_md_cell(d['drain_s'], '{:.2f}')} s."]
    return "\n".join(out)
