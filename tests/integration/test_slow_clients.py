"""Slow clients (issue 5): slowloris, a stalled request body, a reader that
stops reading a large answer.

- 1,000 slowloris connections (headers one byte every 2 s, reconnecting
  after each 408, for ~10 s, from a separate process) while a legitimate
  client runs SELECT 1 on a keep-alive connection: its p99 stays within 2x
  of a calm run measured just before (plus 2 ms of slack for timer noise at
  sub-millisecond latencies); each slowloris connection gets 408 about
  --header-timeout after it began.
- Headers and part of a body, then a stall: 408 after --body-timeout, and
  the connection closes.
- A reader that stops reading a large result: the connection is closed after
  --write-timeout, the upstream slot is freed (/status pool busy 0) and the
  next request succeeds on a pool of one.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import urllib.request

import rawhttp
from rawhttp import RawConn
from rawhttp import report

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SLOWLORIS = r"""
import asyncio, json, sys, time
port, conns, duration, step = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
HEAD = b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 400
stats = {"408": [], "other": {}, "connect_errors": 0, "open_max": 0}
open_now = 0
async def one(deadline):
    global open_now
    while time.monotonic() < deadline:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.2)
            continue
        open_now += 1
        stats["open_max"] = max(stats["open_max"], open_now)
        t0 = time.monotonic()
        try:
            for i in range(len(HEAD)):
                w.write(HEAD[i:i + 1])
                try:
                    data = await asyncio.wait_for(r.read(200), step)
                except asyncio.TimeoutError:
                    if time.monotonic() >= deadline:
                        return
                    continue
                key = data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"
                if key.startswith("HTTP/1.1 408"):
                    stats["408"].append(time.monotonic() - t0)
                else:
                    stats["other"][key] = stats["other"].get(key, 0) + 1
                break
        except OSError as e:
            stats["other"][type(e).__name__] = stats["other"].get(type(e).__name__, 0) + 1
        finally:
            open_now -= 1
            w.close()
async def main():
    deadline = time.monotonic() + duration
    await asyncio.gather(*[one(deadline) for _ in range(conns)])
asyncio.run(main())
print(json.dumps(stats))
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def legit_latencies(url: str, seconds: float) -> list[float]:
    out = []
    with RawConn(url, timeout=10) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = c.request(rawhttp.get("/?query=SELECT%201"))
            out.append(time.monotonic() - t0)
            assert (r.status, r.body) == (200, b"1\n"), r
            time.sleep(0.005)
    return out


def test_slowloris_does_not_starve_legit_clients(clickhouse, start_sidecar, capsys):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    sc = start_sidecar(clickhouse.http_url, "--header-timeout", "3s")
    legit_latencies(sc.url, 0.5)  # warm the pool
    calm = legit_latencies(sc.url, 3.0)
    attack = subprocess.Popen([sys.executable, "-c", SLOWLORIS, str(sc.port), "1000", "11", "2.0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # all 1,000 connected and trickling
        under = legit_latencies(sc.url, 8.0)
        out, err = attack.communicate(timeout=30)
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.wait()
    stats = json.loads(out)
    t408 = stats["408"]
    p99_calm, p99_attack = pct(calm, .99), pct(under, .99)
    report(capsys, f"slowloris: legit SELECT 1 p99 calm {p99_calm * 1000:.2f} ms ({len(calm)} req), "
                   f"under 1,000 slowloris {p99_attack * 1000:.2f} ms ({len(under)} req), "
                   f"p50 {pct(calm, .5) * 1000:.2f} / {pct(under, .5) * 1000:.2f} ms; attacker: "
                   f"{len(t408)} x 408 after {min(t408):.2f}-{max(t408):.2f} s (median "
                   f"{pct(t408, .5):.2f}), max open {stats['open_max']}, other {stats['other']}, "
                   f"connect errors {stats['connect_errors']}")
    assert stats["open_max"] >= 900, stats["open_max"]
    assert len(t408) >= 1000, f"only {len(t408)} slowloris connections got 408"
    assert not stats["other"], f"slowloris connections ended other than by 408: {stats['other']}"
    assert 2.5 <= pct(t408, .5) <= 4.5 and max(t408) <= 6.0, \
        f"408 after {min(t408):.2f}..{max(t408):.2f} s with --header-timeout 3s"
    assert p99_attack <= 2 * p99_calm + 0.002, \
        f"legit p99 {p99_attack * 1000:.2f} ms under attack vs {p99_calm * 1000:.2f} ms calm"


def test_stalled_body_gets_408(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--body-timeout", "1s")
    with RawConn(sc.url, timeout=10) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nSELECT 1 ")
        t0 = time.monotonic()
        r = c.read_response()
        took = time.monotonic() - t0
        rawhttp.assert_sidecar_error(r.status, r.headers, r.body, 408)
        assert c.closed_by_peer(3), "connection not closed after 408"
    assert 0.8 <= took <= 2.5, f"408 after {took:.2f} s with --body-timeout 1s"
    # a body trickling a byte at a time within the timeout is not cut
    with RawConn(sc.url, timeout=10) as c:
        body = b"SELECT 'trickled'"
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(len(body)):
            c.send(body[i:i + 1])
            time.sleep(0.1)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"trickled\n"), r


def status(sc) -> dict:
    with _opener.open(sc.admin_url + "/status", timeout=5) as r:
        return json.loads(r.read())


def test_reader_that_stops_is_dropped_and_slot_freed(clickhouse, start_sidecar, capsys):
    sc = start_sidecar(clickhouse.http_url, "--write-timeout", "2s", "--pool-size", "1",
                       "--response-buffer", "64KiB")
    c = RawConn(sc.url, timeout=10, rcvbuf=4096)
    try:
        c.send(rawhttp.get("/?query=SELECT%20number%20FROM%20numbers(200000000)"))
        r = c.read_head()
        assert r.status == 200, r
        got = 0
        for piece in c.iter_body(r, 4096):
            got += len(piece)
            if got > 200_000:
                break
        t0 = time.monotonic()  # stop reading from here on
        assert status(sc)["upstreams"][0]["pool"]["busy"] == 1
        freed = rawhttp.wait_until(lambda: status(sc)["upstreams"][0]["pool"]["busy"] == 0, 10, 0.1)
        took = time.monotonic() - t0
        assert freed, f"upstream slot still busy 10 s after the client stopped reading: {status(sc)}"
        # the connection is closed: what is buffered drains, then EOF before the end
        c.settimeout(5)
        rest = 0
        complete = False
        try:
            for piece in c.iter_body(r, 65536):
                rest += len(piece)
            complete = True
        except (rawhttp.Closed, OSError, ValueError):
            pass
        assert not complete, "the whole 1.7 GB answer arrived: the connection was not dropped"
    finally:
        c.close()
    report(capsys, f"slow reader: slot freed {took:.2f} s after the client stopped reading "
                   f"(--write-timeout 2s), {got + rest} bytes reached the client before the close")
    assert 1.5 <= took <= 5.0, took
    with RawConn(sc.url) as c2:  # pool of one: needs the freed slot
        r = c2.request(rawhttp.get("/?query=SELECT%20'next'"))
        assert (r.status, r.body) == (200, b"next\n"), r
