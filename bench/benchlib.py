"""Infrastructure for scripts/bench: processes, CPU pinning, samplers, wrk,
and small load generators for what wrk cannot express.

Python standard library only (matplotlib is imported by the plots, later).
Scenarios live in bench/scenarios.py and use only what is here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from typing import Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(REPO, "bench")
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from clickhouse_server import ClickHouseServer, find_binary  # noqa: E402
from netutil import free_port, wait_port  # noqa: E402

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- CPU layout -----------------------------------------------------------------

class Cpus:
    """Which core runs what. With 2+ cores: the sidecar (and the bare
    reference server) alone on `sidecar`; ClickHouse, the load generators and
    this driver on `load`. With 1 core nothing is pinned."""

    def __init__(self, sidecar: Optional[int], load: Optional[int]):
        self.sidecar = sidecar
        self.load = load

    @classmethod
    def detect(cls) -> "Cpus":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[1], cpus[0])

    def prefix(self, cpu: Optional[int]) -> list[str]:
        return [] if cpu is None else ["taskset", "-c", str(cpu)]

    def describe(self) -> dict:
        return {"sidecar_and_bare_server": self.sidecar,
                "clickhouse_and_load_generators": self.load}


# -- /proc sampling -------------------------------------------------------------

def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of all threads of pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def reset_peak_rss(pid: int) -> None:
    try:  # "5" resets VmHWM (Linux >= 4.0); best effort
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class ProcSampler:
    """CPU use and RSS of processes while a measurement runs: CPU% of one
    core from /proc/PID/stat over the window, RSS sampled every `interval` s
    (plus VmHWM, reset at start) for the peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05):
        self.pids = {k: v for k, v in pids.items() if v}
        self.interval = interval
        self._stop = threading.Event()
        self._peak = {k: 0 for k in self.pids}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProcSampler":
        self._t0 = time.monotonic()
        self._ticks0 = {}
        for k, pid in self.pids.items():
            reset_peak_rss(pid)
            self._ticks0[k] = proc_cpu_ticks(pid)
            self._peak[k] = proc_status_kib(pid, "VmRSS")
        self.rss_start = dict(self._peak)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for k, pid in self.pids.items():
                try:
                    self._peak[k] = max(self._peak[k], proc_status_kib(pid, "VmRSS"))
                except (OSError, RuntimeError):
                    pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self._t0
        self.result = {}
        for k, pid in self.pids.items():
            try:
                ticks = proc_cpu_ticks(pid) - self._ticks0[k]
                hwm = proc_status_kib(pid, "VmHWM")
                rss = proc_status_kib(pid, "VmRSS")
            except (OSError, RuntimeError):
                continue
            self.result[k] = {
                "cpu_pct": round(100.0 * ticks / CLK_TCK / wall, 1),
                "cpu_s": round(ticks / CLK_TCK, 2),  # utime + stime, for CPU per request
                "rss_start_kib": self.rss_start[k],
                "rss_end_kib": rss,
                "rss_peak_kib": max(self._peak[k], hwm),
            }

    def flat(self, prefix_map: Optional[dict[str, str]] = None) -> dict:
        out = {}
        for k, d in self.result.items():
            for m, v in d.items():
                out[f"{k}_{m}"] = v
        return out


# -- processes ------------------------------------------------------------------

def up_to_date(exe: str, sources: list[str]) -> bool:
    """True when the built `exe` is newer than every one of its sources."""
    return os.path.exists(exe) and os.path.getmtime(exe) >= max(map(os.path.getmtime, sources))


class Served:
    """A server process listening on self.port, its output in a log file
    under log_dir; stop() sends SIGTERM and waits."""

    what = "server"

    def _start(self, cmd: list[str], log_dir: str, name: str) -> None:
        self.cmd = cmd
        self.log_path = os.path.join(
            log_dir, f"{self.what}-" + re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)
            + f"-{self.port}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True)
        if not wait_port(HOST, self.port, 10, alive=lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError(f"{self.what} did not start: {cmd}\n{self.log_text()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> Optional[int]:
        """SIGTERM, wait; returns the exit code (negative: killed by signal).
        A server that died on its own is reported by the caller."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Sidecar(Served):
    """A chsidecar process on a free port, pinned to cpus.sidecar."""

    what = "sidecar"

    def __init__(self, binary: str, upstream: str, args: list[str], cpus: Cpus,
                 log_dir: str, name: str):
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.name = name
        # its own admin port (the default 127.0.0.1:9124 may be taken by
        # another sidecar on the machine, and a failed admin bind is fatal)
        if not any(a.startswith("--admin-listen") for a in args):
            args = ["--admin-listen", f"{HOST}:{free_port(HOST)}"] + list(args)
        admin = next((args[i + 1] for i, a in enumerate(args[:-1])
                      if a == "--admin-listen"), None)
        self.admin_url = f"http://{admin}" if admin and admin != "off" else None
        self._start(cpus.prefix(cpus.sidecar) + [
            binary, "--listen", f"{HOST}:{self.port}", "--upstream", upstream,
            "--log-level", "warn"] + list(args), log_dir, name)

    def metrics(self) -> dict[str, float]:
        """GET /metrics from the admin listener: {"name{labels}": value}."""
        return fetch_metrics(self.admin_url + "/metrics")


class BareServer(Served):
    """bench/bare_server.c, compiled on demand, pinned to cpus.sidecar."""

    what = "bare_server"
    SRC = os.path.join(BENCH_DIR, "bare_server.c")

    @staticmethod
    def build(out_dir: str) -> str:
        exe = os.path.join(out_dir, "bare_server")
        srcs = [BareServer.SRC] + [f"/usr/share/llhttp/{n}.c"
                                   for n in ("llhttp", "api", "http")]
        if up_to_date(exe, srcs):
            return exe
        os.makedirs(out_dir, exist_ok=True)
        cmd = ["cc", "-O2", "-I/usr/share/include/llhttp", *srcs, "-luv", "-o", exe]
        log("building " + " ".join(cmd))
        subprocess.run(cmd, check=True)
        return exe

    def __init__(self, exe: str, cpus: Cpus, log_dir: str, name: str, extra: tuple = ()):
        """extra: bare_server's optional arguments, CYCLE_US [SYNC_FILE]:
        answers in group commits on a timer, or gated by a write + fdatasync
        of SYNC_FILE per group (see bench/bare_server.c)."""
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self._start(cpus.prefix(cpus.sidecar) + [exe, HOST, str(self.port), *map(str, extra)],
                    log_dir, name)


class Peer(Served):
    """clickhouse-bulk, the batching proxy most users pick, measured beside
    the sidecar. It is not part of this repository: PEERS_DIR/build.sh builds
    it from sources kept beside the script (outside the repository), and the
    binary is cached in results/.bin. Pinned to cpus.sidecar, the core the
    sidecar gets. It acknowledges an INSERT before the row is even buffered
    (no disk), and flushes every FLUSH_COUNT rows or FLUSH_INTERVAL_MS."""

    what = "peer"
    PEERS_DIR = os.environ.get("CHSIDECAR_PEERS_DIR",
                               os.path.join(os.path.dirname(REPO), "shared", "peers"))
    FLUSH_COUNT = 10000
    FLUSH_INTERVAL_MS = 1000

    @staticmethod
    def build(out_dir: str) -> tuple[Optional[str], str]:
        """(path of the binary, how it was had) or (None, why not). Rebuilt
        when build.sh or a source tarball is newer than the cached binary."""
        script = os.path.join(Peer.PEERS_DIR, "build.sh")
        if not os.path.isfile(script):
            return None, (f"peer not available: no {script} "
                          "(set CHSIDECAR_PEERS_DIR to the folder holding build.sh)")
        exe = os.path.join(out_dir, "clickhouse-bulk")
        srcs = [os.path.join(Peer.PEERS_DIR, n) for n in os.listdir(Peer.PEERS_DIR)]
        if up_to_date(exe, srcs):
            return exe, f"cached {exe}"
        os.makedirs(out_dir, exist_ok=True)
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        log(f"building the peer: {script} {exe}")
        try:
            p = subprocess.run(sudo + [script, exe], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"peer not available: {script} failed: {e}"
        if p.returncode != 0 or not os.path.exists(exe):
            tail = " | ".join(p.stdout.strip().splitlines()[-3:])
            return None, f"peer not available: {script} exited {p.returncode}: {tail}"
        return exe, f"built {exe} with {script}"

    def __init__(self, exe: str, upstream: str, cpus: Cpus, work_dir: str, log_dir: str,
                 name: str):
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        os.makedirs(work_dir, exist_ok=True)
        base = os.path.join(work_dir, f"peer-{self.port}")
        cfg = {"listen": f"{HOST}:{self.port}", "flush_count": self.FLUSH_COUNT,
               "flush_interval": self.FLUSH_INTERVAL_MS, "clean_interval": 0,
               "remove_query_id": True, "dump_check_interval": 300,
               "dump_dir": base + "-dumps",
               "clickhouse": {"down_timeout": 60, "connect_timeout": 10,
                              "servers": [upstream]}}
        with open(base + ".json", "w") as f:
            json.dump(cfg, f)
        self._start(cpus.prefix(cpus.sidecar) + [exe, "-config", base + ".json"],
                    log_dir, name)


class ReferenceProxy(Served):
    """nginx as a plain reverse proxy in front of ClickHouse, for the
    passthrough scenario: what a mature proxy costs on this machine, in the
    sidecar's place (pinned to cpus.sidecar, one worker process, keep-alive
    connections to ClickHouse, answers streamed, no access log). Debian's
    nginx-light, when installed (the bench does not install it: the package
    starts a system nginx); without it the bench says so and measures the
    rest."""

    what = "nginx"
    EXE = "/usr/sbin/nginx"

    @staticmethod
    def available() -> tuple[bool, str]:
        if os.access(ReferenceProxy.EXE, os.X_OK):
            return True, f"{ReferenceProxy.EXE} (Debian's nginx-light)"
        return False, (f"reference proxy not available: no {ReferenceProxy.EXE} "
                       "(apt-get install nginx-light to measure it)")

    def __init__(self, upstream: str, cpus: Cpus, work_dir: str, log_dir: str, name: str,
                 keepalive: int = 64):
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        prefix = os.path.join(work_dir, f"nginx-{self.port}")
        os.makedirs(prefix, exist_ok=True)
        server = upstream.split("://", 1)[-1].rstrip("/")
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream clickhouse {{ server {server}; keepalive {keepalive}; }}
  server {{
    listen {HOST}:{self.port};
    location / {{
      proxy_pass http://clickhouse;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
""")
        self._start(cpus.prefix(cpus.sidecar) + [self.EXE, "-p", prefix, "-c", conf],
                    log_dir, name)

    @property
    def worker_pid(self) -> int:
        """The one worker process (the master only supervises it)."""
        with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
            return int(f.read().split()[0])


def fetch_metrics(url: str, timeout: float = 5) -> dict[str, float]:
    """Prometheus text format -> {"name{labels}": value} (comments dropped)."""
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def metric_sum(m: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the series of `name` (exact name, any labels) whose labels
    include `labels`."""
    tot = 0.0
    for k, v in m.items():
        base, _, rest = k.partition("{")
        if base != name:
            continue
        if all(f'{lk}="{lv}"' in rest for lk, lv in labels.items()):
            tot += v
    return tot


def fs_type(path: str) -> str:
    """Filesystem type of the mount holding path (from /proc/mounts)."""
    path = os.path.realpath(path)
    best, typ = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, typ = mnt, parts[2]
    return typ


def fsync_probe(directory: str, n: int = 200, size: int = 4096) -> dict:
    """Latency of append + fdatasync of `size` bytes in `directory`, n times:
    what one spool group commit costs at least on this disk."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat = []
    try:
        buf = b"x" * size
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"n": n, "bytes": size, "fs": fs_type(directory),
            "p50_ms": round(lat[n // 2], 3), "p99_ms": round(lat[int(n * 0.99) - 1], 3),
            "mean_ms": round(sum(lat) / n, 3)}


def start_clickhouse(cpus: Cpus) -> ClickHouseServer:
    """A fresh throwaway ClickHouse (data on /dev/shm), pinned to cpus.load."""
    srv = ClickHouseServer(log_level="warning",
                           binary=cpus.prefix(cpus.load) + find_binary())
    srv.start()
    return srv


def yield_cpu(pid: int) -> str:
    """Let a process (and its threads) run only in the CPU time others leave
    on its core: nice 19 for its session's autogroup (the scheduler shares a
    core between autogroups first, whatever the nice of the tasks in them)
    and for each of its threads. Returns what was set, for the results."""
    done = []
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write("19")
        done.append("autogroup nice 19")
    except OSError:
        pass
    # Threads started meanwhile inherit their creator's nice: repeat until
    # a pass finds none left at 0.
    seen: set[str] = set()
    try:
        while new := set(os.listdir(f"/proc/{pid}/task")) - seen:
            for tid in new:
                try:
                    os.setpriority(os.PRIO_PROCESS, int(tid), 19)
                except ProcessLookupError:
                    pass  # the thread ended
            seen |= new
        done.append("threads nice 19")
    except OSError:
        pass
    return ", ".join(done) or "unchanged"


def raise_nofile(want: int = 65536) -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- statistics -----------------------------------------------------------------

def summarize(runs: list[dict]) -> dict:
    """{metric: {"median", "min", "max", "runs": [...]}} over numeric keys."""
    out: dict = {}
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))
            and not isinstance(runs[0][k], bool)]
    for k in keys:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
        if not vals:
            continue
        out[k] = {"median": round(statistics.median(vals), 3),
                  "min": round(min(vals), 3), "max": round(max(vals), 3),
                  "runs": [round(v, 3) for v in vals]}
    return out


def med(summary: dict, key: str) -> float:
    return summary[key]["median"]


# -- wrk --------------------------------------------------------------------------

class Wrk:
    def __init__(self, cpus: Cpus, tmp_dir: str):
        self.cpus = cpus
        self.tmp_dir = tmp_dir

    def script(self, *names: str) -> str:
        """Concatenate bench/<name>.lua files and wrk_report.lua."""
        text = ""
        for n in list(names) + ["wrk_report"]:
            with open(os.path.join(BENCH_DIR, n + ".lua")) as f:
                text += f.read() + "\n"
        path = os.path.join(self.tmp_dir, "-".join(list(names) + ["report"]) + ".lua")
        with open(path, "w") as f:
            f.write(text)
        return path

    def run(self, url: str, connections: int, duration: float, *,
            threads: int = 1, scripts: tuple = (), script_args: tuple = (),
            timeout: str = "10s") -> dict:
        cmd = self.cpus.prefix(self.cpus.load) + [
            "wrk", "-t", str(threads), "-c", str(connections),
            "-d", f"{duration:g}s", "--timeout", timeout, "--latency",
            "-s", self.script(*scripts), url]
        if script_args:
            cmd += ["--", *map(str, script_args)]
        t0 = os.times()
        p = subprocess.run(cmd, capture_output=True, text=True)
        t1 = os.times()
        # wrk's own CPU (it is the only child reaped in between): if it
        # nears 100 % of its core, wrk and not the target is the bottleneck
        wrk_cpu_s = (t1.children_user + t1.children_system
                     - t0.children_user - t0.children_system)
        m = re.search(r"^WRK_JSON (\{.*\})$", p.stdout, re.M)
        if p.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed ({p.returncode}): {' '.join(cmd)}\n"
                               f"{p.stdout}\n{p.stderr}")
        r = json.loads(m.group(1))
        secs = r["duration_us"] / 1e6
        errors = sum(r[k] for k in r if k.startswith("err_"))
        return {
            "rps": round(r["requests"] / secs, 1),
            "requests": r["requests"],
            "errors": errors,
            "non_2xx": r["err_status"],
            "timeouts": r["err_timeout"],
            "mean_ms": r["mean_us"] / 1000,
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "p999_ms": r["p999_us"] / 1000,
            "max_ms": r["max_us"] / 1000,
            "ok": r["requests"] - r["err_status"],
            "ok_per_s": round((r["requests"] - r["err_status"]) / secs, 1),
            "secs": round(secs, 3),
            "wrk_cpu_pct": round(100.0 * wrk_cpu_s / max(t1.elapsed - t0.elapsed, 1e-3), 1),
        }


# -- a minimal HTTP/1.1 client on asyncio -------------------------------------------

CODE_RE = re.compile(rb"Code: (\d+)")


async def read_response(reader: asyncio.StreamReader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        body = await reader.readexactly(int(hdrs["content-length"]))
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
    return status, hdrs, body


def classify(status: int, body: bytes) -> str:
    """"ok", or "http <status> code <N>" for a failure."""
    if status == 200 and not CODE_RE.search(body[:200] if body else b""):
        return "ok"
    m = CODE_RE.search(body or b"")
    return f"http {status} code {m.group(1).decode() if m else '?'}"


async def _burst(port: int, target: str, clients: int, rounds: int,
                 timeout: float) -> dict:
    req = (f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n").encode()
    outcomes: dict[str, int] = {}
    go = asyncio.Event()

    def note(k: str) -> None:
        outcomes[k] = outcomes.get(k, 0) + 1

    async def client() -> None:
        conn = None
        try:
            conn = await asyncio.open_connection(HOST, port)
        except OSError:
            pass
        await go.wait()
        for _ in range(rounds):
            try:
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                reader, writer = conn
                writer.write(req)
                status, hdrs, body = await asyncio.wait_for(read_response(reader), timeout)
                note(classify(status, body))
                if hdrs.get("connection", "").lower() == "close":
                    writer.close()
                    conn = None
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                    asyncio.LimitOverrunError, ValueError) as e:
                note(f"io {type(e).__name__}")
                if conn:
                    conn[1].close()
                conn = None
        if conn:
            conn[1].close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(0.2)  # let every client connect first
    t0 = time.monotonic()
    go.set()
    await asyncio.gather(*tasks)
    wall = time.monotonic() - t0
    return {"outcomes": outcomes, "wall_s": wall}


def session_burst(port: int, target: str, clients: int, rounds: int,
                  timeout: float = 60) -> dict:
    """`clients` connections, opened first, then released at once; each
    sends `rounds` requests one after another (keep-alive). Counts outcomes."""
    r = asyncio.run(_burst(port, target, clients, rounds, timeout))
    total = clients * rounds
    ok = r["outcomes"].get("ok", 0)
    return {"requests": total, "ok": ok, "failed": total - ok,
            "failed_pct": round(100.0 * (total - ok) / total, 2),
            "wall_s": round(r["wall_s"], 3),
            "ok_per_s": round(ok / r["wall_s"], 1),
            "outcomes": r["outcomes"]}


# -- a large response, read fast or slowly ------------------------------------------

def read_large(port: int, target: str, rate_bytes_s: Optional[float] = None,
               rcvbuf: Optional[int] = None, timeout: float = 300) -> dict:
    """GET target with Connection: close and read to EOF, as fast as possible
    or at most rate_bytes_s (token bucket on 64 KiB reads). Returns bytes
    read (headers and chunk framing included), seconds, MB/s, status and
    whether the chunked body ended properly."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.monotonic()
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
              "Connection: close\r\n\r\n".encode())
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    chunk = 65536 if rate_bytes_s else len(buf)
    total = 0
    head = b""
    tail = b""
    ttfb = None
    while True:
        n = s.recv_into(view, chunk)
        if n == 0:
            break
        if ttfb is None:
            ttfb = time.monotonic() - t0
        if len(head) < 512:
            head += bytes(view[:min(n, 512)])
        tail = (tail + bytes(view[max(0, n - 16):n]))[-16:]
        total += n
        if rate_bytes_s:
            ahead = total / rate_bytes_s - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    secs = time.monotonic() - t0
    s.close()
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return {"bytes": total, "seconds": round(secs, 3),
            "mb_s": round(total / 1e6 / secs, 1), "status": status,
            "complete": tail.endswith(b"0\r\n\r\n") and CODE_RE.search(tail) is None,
            "ttfb_ms": round((ttfb or 0) * 1000, 1)}


# -- idle connections -------------------------------------------------------------

def open_idle(port: int, n: int) -> tuple[list[socket.socket], int]:
    """n keep-alive connections, each having done one GET /ping, then idle.
    Returns (sockets, failures)."""
    socks = []
    failures = 0
    req = f"GET /ping HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    for _ in range(n):
        try:
            s = socket.create_connection((HOST, port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(req)
            data = b""
            while not data.endswith(b"Ok.\n"):
                d = s.recv(4096)
                if not d:
                    raise OSError("closed")
                data += d
            socks.append(s)
        except OSError:
            failures += 1
    return socks, failures


def count_closed(socks: list[socket.socket]) -> int:
    """How many of the idle sockets the server has closed (readable = EOF)."""
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    return len(p.poll(0))


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
