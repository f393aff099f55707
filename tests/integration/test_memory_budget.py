"""One memory budget (issue 20): --max-memory bounds request bodies,
answers queued to clients, batch buffers and decoded bodies together.

Two loads against a small budget (64 MiB), each from a separate process:
- 200 connections dribbling 1 MiB INSERT bodies slowly (64 KiB every
  0.2 s): before the budget they held 223-367 MB.
- 4,096 connections sending a 128 KiB INSERT each, all at once
  (--max-connections 4096).
Every request gets an answer, 200 or 503 with Retry-After (code 202, in
ClickHouse's format), never a hang or a reset, each within 30 s; the
sidecar's peak RSS (VmHWM) stays under the budget plus a fixed overhead.
A request admitted keeps its share: every 200 is a complete INSERT.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import urllib.request

import rawhttp
from rawhttp import RawConn, report

MiB = 1024 * 1024
BUDGET = 64 * MiB
# Not in the budget: the process itself (code, curl, the loop, metrics:
# about 12 MiB idle), the copy a growing batch makes of itself for an
# instant (up to half of --flush-bytes, 8 MiB), each connection's own state
# and request head (a few KiB; up to --max-header-bytes for a client sending
# large heads), and one small read (8 KiB) per connection whose request
# waits for admission.
FIXED_OVERHEAD = 32 * MiB
PER_CONNECTION_OVERHEAD = 12 * 1024

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

LOAD = r"""
import asyncio, json, sys, time
port, conns, body_bytes, piece, pause, table = (int(sys.argv[1]), int(sys.argv[2]),
    int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
LINE = b"x" * 2047 + b"\n"   # 2 KiB rows: fewer than --passthrough-rows, so batched
BODY = (LINE * (body_bytes // len(LINE) + 1))[:body_bytes - 1] + b"\n"
HEAD = (f"POST /?query=INSERT%20INTO%20{table}%20FORMAT%20TSV HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n").encode()
results = []

async def read_answer(r):
    head = await r.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await r.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body.decode("latin-1", "replace")

async def one(i, start):
    await start.wait()
    t0 = time.monotonic()
    out = {"i": i}
    try:
        for attempt in range(50):
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            out["error"] = "connect"
            results.append(out)
            return
        answer = asyncio.ensure_future(read_answer(r))
        w.write(HEAD)
        sent = 0
        while sent < len(BODY) and not answer.done():
            w.write(BODY[sent:sent + piece])
            sent += piece
            try:
                await w.drain()
            except OSError:
                break
            if pause > 0:
                await asyncio.wait([answer], timeout=pause)
        status, headers, body = await asyncio.wait_for(answer, 60)
        out.update(status=status, retry_after=headers.get("retry-after"),
                   code=headers.get("x-clickhouse-exception-code"), body=body[:300],
                   sent_all=sent >= len(BODY))
        w.close()
    except Exception as e:
        out["error"] = type(e).__name__ + ": " + str(e)[:200]
    out["seconds"] = time.monotonic() - t0
    results.append(out)

async def main():
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(one(i, start)) for i in range(conns)]
    await asyncio.sleep(0)
    start.set()
    await asyncio.gather(*tasks)

asyncio.run(main())
print(json.dumps(results))
"""


def vm_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


def raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def run_load(port, conns, body_bytes, piece, pause, table, timeout):
    p = subprocess.run([sys.executable, "-c", LOAD, str(port), str(conns), str(body_bytes),
                        str(piece), str(pause), table],
                       capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    return json.loads(p.stdout)


def check_answers(results, conns):
    assert len(results) == conns
    errors = [r for r in results if "error" in r]
    assert not errors, f"{len(errors)} requests without an answer: {errors[:5]}"
    other = [r for r in results if r["status"] not in (200, 503)]
    assert not other, f"answers neither 200 nor 503: {other[:5]}"
    slow = [r for r in results if r["seconds"] > 30]
    assert not slow, f"{len(slow)} answers took over 30 s: {slow[:3]}"
    for r in results:
        if r["status"] == 503:
            assert r["code"] == "202", r
            assert r["retry_after"] is not None and int(r["retry_after"]) >= 1, r
            assert r["body"].startswith("Code: 202. DB::Exception: "), r
            assert "--max-memory" in r["body"], r
        else:
            assert r["sent_all"], r
    ok = sum(1 for r in results if r["status"] == 200)
    return ok, conns - ok


def memory_metrics(sc) -> str:
    admin = [a for a in sc.args if a.startswith("127.0.0.1:") and a != f"127.0.0.1:{sc.port}"]
    with _opener.open(f"http://{admin[0]}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name}")


def start(start_sidecar, clickhouse, *extra):
    sc = start_sidecar(clickhouse.http_url, "--max-memory", "64MiB", *extra)
    time.sleep(0.3)
    return sc


def load_within_budget(clickhouse, sc, table: str, what: str, conns: int, body_bytes: int,
                       piece: int, pause: float, timeout: float, capsys) -> None:
    """Runs the load; checks every request got 200 or a proper 503, peak RSS
    under the stated bound, the rows of every 200 landed, and the budget was
    all given back."""
    base = vm_status(sc.pid)
    t0 = time.monotonic()
    results = run_load(sc.port, conns, body_bytes, piece, pause, table, timeout=timeout)
    wall = time.monotonic() - t0
    vm = vm_status(sc.pid)
    peak = metric(memory_metrics(sc), "chsidecar_memory_peak_bytes")
    ok, shed = check_answers(results, conns)
    bound = BUDGET + FIXED_OVERHEAD + conns * PER_CONNECTION_OVERHEAD
    report(capsys, f"{what}, --max-memory 64MiB: {ok} x 200, {shed} x 503; "
                   f"RSS idle {base['VmRSS'] / 1024:.1f} MiB, peak (VmHWM) "
                   f"{vm['VmHWM'] / 1024:.1f} MiB, after {vm['VmRSS'] / 1024:.1f} MiB "
                   f"(bound {bound / MiB:.1f} MiB); budget peak {peak / MiB:.1f} MiB; slowest answer "
                   f"{max(r['seconds'] for r in results):.1f} s; load took {wall:.1f} s")
    assert ok > 0, "no request was served"
    assert vm["VmHWM"] * 1024 < bound, f"peak RSS {vm['VmHWM']} KiB over {bound // 1024} KiB"
    rows = int(clickhouse.query(f"SELECT count() FROM {table}").decode())
    assert rows == ok * (body_bytes // 2048), (rows, ok)
    # The budget is all given back.
    text = memory_metrics(sc)
    assert "chsidecar_memory_used_bytes 0" in text, [l for l in text.splitlines() if "memory" in l]


def test_dribbling_bodies_stay_within_budget(clickhouse, start_sidecar, capsys):
    table = "membudget_dribble"
    clickhouse.query(f"DROP TABLE IF EXISTS {table}")
    clickhouse.query(f"CREATE TABLE {table} (s String) ENGINE = MergeTree ORDER BY tuple()")
    raise_nofile(4096)
    sc = start(start_sidecar, clickhouse)
    # 200 clients, 1 MiB each, 64 KiB every 0.2 s: about 3.2 s per body.
    load_within_budget(clickhouse, sc, table, "200 dribblers x 1 MiB", 200, MiB, 64 * 1024, 0.2,
                       120, capsys)


def test_4096_connections_at_once_stay_within_budget(clickhouse, start_sidecar, capsys):
    table = "membudget_burst"
    clickhouse.query(f"DROP TABLE IF EXISTS {table}")
    clickhouse.query(f"CREATE TABLE {table} (s String) ENGINE = MergeTree ORDER BY tuple()")
    raise_nofile(16384)
    conns = 4096
    sc = start(start_sidecar, clickhouse, "--max-connections", str(conns))
    load_within_budget(clickhouse, sc, table, f"{conns} connections x 128 KiB at once", conns,
                       128 * 1024, 128 * 1024, 0, 180, capsys)


def test_no_wait_answers_503_at_once_and_serves_after(clickhouse, start_sidecar):
    """--memory-wait 0: a request that finds the budget used up (here by
    one connection's held body) gets 503 at once; once the budget frees,
    requests are served again."""
    sc = start(start_sidecar, clickhouse, "--max-memory", "2MiB", "--memory-wait", "0")
    with RawConn(sc.url) as holder:
        # 1.5 MiB declared and a first piece sent: its share (--body-buffer
        # and one read, 1088 KiB) is held, and 1 MiB more does not fit.
        holder.sock.sendall(b"POST /?query=SELECT%20length(%27x%27) HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 1572864\r\n\r\n" + b"x" * 1000)
        time.sleep(0.2)
        with RawConn(sc.url) as second:
            second.sock.sendall(b"POST /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 1048576\r\n\r\n")
            r = second.read_response()
            rawhttp.assert_sidecar_error(r.status, r.headers, r.body, 503)
            assert r.header("retry-after") == "1", r.headers
            assert r.header("x-clickhouse-exception-code") == "202", r.headers
            assert r.wants_close, r.headers  # its body was left unread
            assert b"--max-memory" in r.body, r.body
    time.sleep(0.3)  # the holder's connection is gone: its share is given back
    with RawConn(sc.url) as c:
        r = c.request(rawhttp.get("/?query=SELECT%201"))
        assert (r.status, r.body) == (200, b"1\n"), r
