"""Streaming with bounded memory, both ways.

A ~150 MB result read slowly by the client must flow through with the
sidecar's RSS under 100 MB (backpressure: the upstream transfer pauses while
the client is behind), and arrive byte for byte as ClickHouse sends it. A
500 MB chunked INSERT must stream to ClickHouse without being held.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.parse

import httpx

import rawhttp
from rawhttp import RawConn, RssSampler, vm_hwm_kib
from rawhttp import report

# Under ASan (scripts/sanitize sets CHSIDECAR_SANITIZED) freed memory waits in
# the sanitizer's quarantine (256 MiB by default): still bounded, but larger.
RSS_LIMIT_KIB = (400 if os.environ.get("CHSIDECAR_SANITIZED") else 100) * 1024

# number \t toString(number) \n for 9.5 M rows: 149,777,780 bytes
BIG_SQL = "SELECT number, toString(number) FROM numbers(9500000) FORMAT TSV"
BIG_SIZE = 149_777_780


def direct_digest(base: str, sql: str) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with httpx.Client(timeout=120) as c:
        with c.stream("GET", base + "/", params={"query": sql},
                      headers={"Accept-Encoding": "identity"}) as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                h.update(chunk)
                n += len(chunk)
    return n, h.hexdigest()


def test_big_result_to_slow_reader_bounded_rss(clickhouse, start_sidecar, capsys):
    want = direct_digest(clickhouse.http_url, BIG_SQL)
    assert want[0] == BIG_SIZE

    sc = start_sidecar(clickhouse.http_url)
    idle_kib = sc.rss_kib()
    rate = 12e6       # bytes per second the client reads at most
    stall_at = 30e6   # then it stops reading for 2 s
    h = hashlib.sha256()
    got = 0
    target = "/?query=" + urllib.parse.quote(BIG_SQL)
    with RssSampler(sc.pid) as rss, \
            RawConn(sc.url, timeout=30, rcvbuf=64 * 1024) as c:
        t0 = time.monotonic()
        c.send(rawhttp.get(target, headers=[("Accept-Encoding", "identity")]))
        head = c.read_head()
        assert head.status == 200, head
        stalled = False
        for piece in c.iter_body(head, bufsize=16 * 1024):
            h.update(piece)
            got += len(piece)
            if not stalled and got >= stall_at:
                stalled = True
                time.sleep(2.0)
                t0 += 2.0
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        took = time.monotonic() - t0 + 2.0
    hwm = vm_hwm_kib(sc.pid)
    report(capsys, f"150 MB to a slow reader ({got / 1e6:.1f} MB in {took:.1f} s): "
                   f"sidecar RSS idle {idle_kib} KiB, sampled peak {rss.peak_kib} KiB "
                   f"({len(rss.samples)} samples), VmHWM {hwm} KiB")
    assert (got, h.hexdigest()) == want, "body differs from ClickHouse's"
    assert rss.peak_kib < RSS_LIMIT_KIB, f"sampled RSS peak {rss.peak_kib} KiB"
    assert hwm < RSS_LIMIT_KIB, f"VmHWM {hwm} KiB"
    # still serving
    with RawConn(sc.url) as c:
        r = c.request(rawhttp.get("/?query=SELECT%201"))
        assert (r.status, r.body) == (200, b"1\n")


def test_client_gone_mid_stream(clickhouse, start_sidecar):
    """A client that reads 5 MB of a 150 MB answer and hangs up: the sidecar
    stays small and keeps serving."""
    sc = start_sidecar(clickhouse.http_url)
    target = "/?query=" + urllib.parse.quote(BIG_SQL)
    for _ in range(3):
        with RawConn(sc.url, timeout=30) as c:
            c.send(rawhttp.get(target))
            head = c.read_head()
            assert head.status == 200
            n = 0
            for piece in c.iter_body(head):
                n += len(piece)
                if n > 5e6:
                    break
    time.sleep(0.5)
    with httpx.Client(timeout=30) as client:
        for i in range(20):
            r = client.get(sc.url + "/", params={"query": f"SELECT {i}"})
            assert (r.status_code, r.content) == (200, b"%d\n" % i)
    assert sc.running()
    assert vm_hwm_kib(sc.pid) < RSS_LIMIT_KIB


INSERT_BYTES = 500 * 1000 * 1000
PAD = "x" * 88


def rows_body(total: int, stats: dict):
    """TSV rows `n \t PAD \n`, generated on the fly, ~1 MB per piece."""
    n = 0
    sent = 0
    per = 10_000
    while sent < total:
        piece = "".join(f"{i}\t{PAD}\n" for i in range(n, n + per)).encode()
        n += per
        sent += len(piece)
        yield piece
    stats["rows"] = n
    stats["sum"] = n * (n - 1) // 2
    stats["bytes"] = sent


def test_500mb_chunked_insert_streams(clickhouse, start_sidecar, capsys):
    clickhouse.query("DROP TABLE IF EXISTS st_mv")
    clickhouse.query("DROP TABLE IF EXISTS st_src")
    clickhouse.query("CREATE TABLE st_src (n UInt64, s String) ENGINE = Null")
    clickhouse.query("CREATE MATERIALIZED VIEW st_mv ENGINE = MergeTree "
                     "ORDER BY tuple() AS SELECT count() AS c, sum(n) AS total, "
                     "sum(length(s)) AS l FROM st_src")
    try:
        sc = start_sidecar(clickhouse.http_url)
        stats: dict = {}
        t0 = time.monotonic()
        with RssSampler(sc.pid) as rss, httpx.Client(timeout=300) as client:
            r = client.post(sc.url + "/",
                            params={"query": "INSERT INTO st_src FORMAT TSV"},
                            content=rows_body(INSERT_BYTES, stats))
        took = time.monotonic() - t0
        hwm = vm_hwm_kib(sc.pid)
        report(capsys, f"{stats['bytes'] / 1e6:.0f} MB chunked INSERT in {took:.1f} s: "
                       f"sidecar sampled RSS peak {rss.peak_kib} KiB, VmHWM {hwm} KiB")
        assert (r.status_code, r.content) == (200, b""), r.content[:300]
        got = clickhouse.query("SELECT sum(c), sum(total), sum(l) FROM st_mv")
        assert got == b"%d\t%d\t%d\n" % (stats["rows"], stats["sum"],
                                         stats["rows"] * len(PAD))
        assert rss.peak_kib < RSS_LIMIT_KIB, f"sampled RSS peak {rss.peak_kib} KiB"
        assert hwm < RSS_LIMIT_KIB, f"VmHWM {hwm} KiB"
    finally:
        clickhouse.query("DROP TABLE IF EXISTS st_mv")
        clickhouse.query("DROP TABLE IF EXISTS st_src")


def test_large_content_length_insert(clickhouse, start_sidecar):
    """A 60 MB body with Content-Length (not chunked), sent in small writes."""
    clickhouse.query("DROP TABLE IF EXISTS st_cl")
    clickhouse.query("CREATE TABLE st_cl (n UInt64, s String) ENGINE = Null")
    clickhouse.query("DROP TABLE IF EXISTS st_cl_mv")
    clickhouse.query("CREATE MATERIALIZED VIEW st_cl_mv ENGINE = MergeTree "
                     "ORDER BY tuple() AS SELECT count() AS c FROM st_cl")
    try:
        sc = start_sidecar(clickhouse.http_url)
        stats: dict = {}
        body = b"".join(rows_body(60_000_000, stats))
        with RawConn(sc.url, timeout=120) as c:
            c.send(b"POST /?query=INSERT%20INTO%20st_cl%20FORMAT%20TSV HTTP/1.1\r\n"
                   b"Host: x\r\nContent-Length: " + str(len(body)).encode()
                   + b"\r\n\r\n")
            view = memoryview(body)
            for i in range(0, len(body), 256 * 1024):
                c.send(view[i:i + 256 * 1024])
            r = c.read_response("POST")
        assert (r.status, r.body) == (200, b""), r
        assert clickhouse.query("SELECT sum(c) FROM st_cl_mv") == b"%d\n" % stats["rows"]
        assert vm_hwm_kib(sc.pid) < RSS_LIMIT_KIB
    finally:
        clickhouse.query("DROP TABLE IF EXISTS st_cl_mv")
        clickhouse.query("DROP TABLE IF EXISTS st_cl")


def test_clients_abandoning_requests(clickhouse, start_sidecar):
    """Clients that hang up while their request is queued or running (a slow
    query, a half-sent body): no crash, no leaked slot."""
    sc = start_sidecar(clickhouse.http_url, "--pool-size", "2")
    for i in range(10):
        c = RawConn(sc.url)
        c.send(rawhttp.get("/?query=SELECT%20sleep(0.5)"))
        c.close()
        c = RawConn(sc.url)
        c.send(b"POST /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n"
               b"Content-Length: 1000\r\n\r\nSELECT")
        c.close()
    time.sleep(1.0)
    with httpx.Client(timeout=30) as client:
        t0 = time.monotonic()
        for i in range(10):
            r = client.get(sc.url + "/", params={"query": f"SELECT {i}"})
            assert (r.status_code, r.content) == (200, b"%d\n" % i)
        took = time.monotonic() - t0
    assert sc.running()
    assert took < 10, f"10 queries took {took:.1f} s after abandoned requests"
