"""Overload flood (issue 5): a small --max-connections and --queue-max, slow
queries, and many more clients than that. Excess connections get a fast 503
with Retry-After and Connection: close; excess requests on admitted
connections get a fast 503 with Retry-After; admitted requests finish; RSS
stays bounded; afterwards normal requests succeed.
"""

from __future__ import annotations

import asyncio
import time

import rawhttp
from rawhttp import RawConn, RssSampler
from rawhttp import report

FLOOD = 400
MAX_CONN = 50
POOL = 4
QUEUE = 8
RSS_BOUND_KIB = 64 * 1024


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


async def one(port: int, i: int):
    """(status, headers, body, seconds from send to answer, closed after)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except (OSError, asyncio.TimeoutError) as e:
        return ("connect", repr(e))
    t0 = time.monotonic()
    try:
        writer.write(f"GET /?query=SELECT%20sleep(0.5)%2C%20{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
    except OSError:
        pass
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        took = time.monotonic() - t0
        lines = head.decode("latin-1").split("\r\n")
        st = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:  # chunked: read to the terminating chunk
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += await reader.readexactly(size + 2)
        closed = False
        try:
            closed = await asyncio.wait_for(reader.read(1), 3 if st == 503 else 0.05) == b""
        except asyncio.TimeoutError:
            pass
        return (st, headers, body, took, closed)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
        return ("error", repr(e))
    finally:
        writer.close()


def test_flood_sheds_fast_and_recovers(clickhouse, start_sidecar, capsys):
    sc = start_sidecar(clickhouse.http_url, "--max-connections", str(MAX_CONN),
                       "--pool-size", str(POOL), "--queue-max", str(QUEUE))
    time.sleep(0.3)  # the harness's readiness probe has gone
    base_rss = sc.rss_kib()

    async def flood():
        return await asyncio.gather(*[one(sc.port, i) for i in range(FLOOD)])

    t0 = time.monotonic()
    with RssSampler(sc.pid, 0.02) as rss:
        res = asyncio.run(flood())
    wall = time.monotonic() - t0

    ok = [r for r in res if r[0] == 200]
    shed = [r for r in res if r[0] == 503]
    other = [r for r in res if r[0] not in (200, 503)]
    conn_shed = [r for r in shed if "connections" in r[2].decode()]
    queue_shed = [r for r in shed if "queue-max" in r[2].decode()]
    lat = [r[3] for r in shed]
    report(capsys, f"flood {FLOOD} conns (max-connections {MAX_CONN}, pool {POOL}, queue {QUEUE}): "
                   f"{len(ok)} x 200, {len(conn_shed)} x 503 connection cap, {len(queue_shed)} "
                   f"x 503 queue full, {len(other)} other; 503 latency p50 "
                   f"{pct(lat, .5) * 1000:.1f} ms p99 {pct(lat, .99) * 1000:.1f} ms max "
                   f"{max(lat) * 1000 if lat else 0:.1f} ms; RSS {base_rss} KiB idle, peak "
                   f"{rss.peak_kib} KiB; flood took {wall:.1f} s")
    assert not other, f"{len(other)} answers neither 200 nor 503: {other[:5]}"
    # admitted requests finish: the pool runs POOL, the queue holds QUEUE
    assert POOL <= len(ok) <= POOL + QUEUE + 2, f"{len(ok)} answered 200"
    for r in ok:
        assert r[2].endswith(b"\n") and r[2].startswith(b"0\t"), r[2][:100]
    assert conn_shed, "no connection was shed by --max-connections"
    assert queue_shed, "no request was shed by --queue-max"
    for st, headers, body, took, closed in shed:
        rawhttp.assert_sidecar_error(st, headers, body, 503)
        assert int(headers.get("retry-after", "0")) >= 1, headers
    for st, headers, body, took, closed in conn_shed:
        assert headers.get("connection", "").lower() == "close", headers
        assert closed, "connection not closed after a connection-cap 503"
    assert pct(lat, .99) < 0.25, f"503 p99 {pct(lat, .99):.3f} s: shedding is not fast"
    assert rss.peak_kib < RSS_BOUND_KIB, f"RSS peak {rss.peak_kib} KiB"

    # after the flood: normal service
    time.sleep(0.5)
    for i in range(5):
        with RawConn(sc.url) as c:
            r = c.request(rawhttp.get(f"/?query=SELECT%20{i}"))
            assert (r.status, r.body) == (200, b"%d\n" % i), r
