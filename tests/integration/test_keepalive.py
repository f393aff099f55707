"""Keep-alive on both sides.

ClickHouse 18.16 closes a connection idle for 3 s (keep_alive_timeout). The
sidecar's pooled connections go stale that way; a request that meets a stale
one before any response byte arrived must be retried on a fresh connection,
so the client never sees it. And the client's own keep-alive connection to the
sidecar must live at least as long as ClickHouse's would.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

import rawhttp
from fault_relay import FaultRelay
from metrics_text import fetch_metrics, value
from rawhttp import RawConn


@pytest.fixture
def table(clickhouse):
    clickhouse.query("DROP TABLE IF EXISTS ka_t")
    clickhouse.query("CREATE TABLE ka_t (n UInt32) ENGINE = Memory")
    yield "ka_t"
    clickhouse.query("DROP TABLE IF EXISTS ka_t")


def insert_req(n: int, chunked: bool = False) -> bytes:
    target = "/?query=INSERT%20INTO%20ka_t%20FORMAT%20TSV"
    body = b"".join(b"%d\n" % i for i in range(n, n + 1000))
    if chunked:
        return (f"POST {target} HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode() + \
            rawhttp.chunked([body[:10], body[10:3000], body[3000:]])
    return rawhttp.post(target, body)


async def _concurrent(url: str, n: int, sql: str):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def one(i):
            async with s.post(url + "/", data=sql.encode()) as r:
                return r.status, await r.read()
        return await asyncio.gather(*[one(i) for i in range(n)])


def test_requests_after_upstream_keepalive_expired(clickhouse, start_sidecar, table):
    sc = start_sidecar(clickhouse.http_url, "--pool-size", "4")
    # open all four upstream connections
    warm = asyncio.run(_concurrent(sc.url, 4, "SELECT sleep(0.3)"))
    assert warm == [(200, b"0\n")] * 4
    time.sleep(4)  # every pooled connection is now closed by ClickHouse
    again = asyncio.run(_concurrent(sc.url, 4, "SELECT 'after idle'"))
    assert again == [(200, b"after idle\n")] * 4

    # one client connection kept open across the idle periods, too
    with RawConn(sc.url, timeout=30) as c:
        r = c.request(rawhttp.get("/?query=SELECT%201"))
        assert (r.status, r.body) == (200, b"1\n")
        # a stateful session, idle as long: its state is still there after
        r = c.request(rawhttp.post("/?session_id=ka-session", b"SET max_threads = 1"))
        assert (r.status, r.body) == (200, b""), r
        time.sleep(4)
        r = c.request(rawhttp.post(
            "/?session_id=ka-session",
            b"SELECT value FROM system.settings WHERE name = 'max_threads'"))
        assert (r.status, r.body) == (200, b"1\n"), r
        r = c.request(rawhttp.get("/?query=SELECT%202"))  # GET
        assert (r.status, r.body) == (200, b"2\n"), r
        time.sleep(4)
        r = c.request(insert_req(0))  # POST with Content-Length
        assert (r.status, r.body) == (200, b""), r
        time.sleep(4)
        r = c.request(insert_req(1000, chunked=True))  # chunked POST
        assert (r.status, r.body) == (200, b""), r
        time.sleep(4)
        # a body far bigger than --body-buffer: it cannot be held for a
        # retry, so it must not go out on a stale connection; and it must
        # arrive exactly once
        big = b"".join(b"%d\n" % i for i in range(2000, 1_002_000))  # ~6.9 MB
        c.send(b"POST /?query=INSERT%20INTO%20ka_t%20FORMAT%20TSV HTTP/1.1\r\n"
               b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(big), 1 << 20):
            c.send(rawhttp.chunked([big[i:i + (1 << 20)]])[:-5])
        c.send(b"0\r\n\r\n")
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, b""), r
    assert clickhouse.query("SELECT count(), uniqExact(n) FROM ka_t") == \
        b"1002000\t1002000\n"


def test_reuse_right_at_the_servers_timeout(clickhouse, start_sidecar, table):
    """Sleep right around ClickHouse's 3 s, where the server may close the
    connection just as the request goes out on it."""
    sc = start_sidecar(clickhouse.http_url, "--pool-size", "1")
    failures = []
    n = 0
    for delay in (2.95, 3.0, 3.03, 3.06):
        with RawConn(sc.url, timeout=30) as c:
            r = c.request(rawhttp.get("/?query=SELECT%201"))
            assert r.status == 200
            time.sleep(delay)
            r = c.request(insert_req(n))
            if (r.status, r.body) != (200, b""):
                failures.append((delay, r.status, r.body[:200]))
            n += 1000
    assert not failures, failures
    assert clickhouse.query("SELECT count(), uniqExact(n) FROM ka_t") == b"%d\t%d\n" % (n, n)


@pytest.mark.parametrize("fault", ["refuse", "hangup"])
def test_a_reused_connection_closed_under_a_request_is_retried_and_counted(
        clickhouse, start_sidecar, table, fault):
    """The pooled connection dies as a request goes out on it, before any
    answer byte (a reset, or a plain close: curl resends on its own after
    the latter, the pool after the former): the request is sent again on a
    fresh connection, the client sees only the answer, and the retry is
    counted once."""
    with FaultRelay("127.0.0.1", clickhouse.http_port) as relay:
        sc = start_sidecar(relay.url, "--pool-size", "1")
        with RawConn(sc.url, timeout=30) as c:
            r = c.request(rawhttp.get("/?query=SELECT%201"))
            assert (r.status, r.body) == (200, b"1\n")
            relay.set(fault, times=1)
            r = c.request(insert_req(0))
            assert (r.status, r.body) == (200, b""), r
        assert relay.stats[f"faulted_{fault}"] == 1
        assert relay.stats["connections"] == 2
        retries = value(fetch_metrics(sc.admin_url), "chsidecar_upstream_retries_total",
                        reason="stale_connection")
        assert retries == 1
    assert clickhouse.query("SELECT count(), uniqExact(n) FROM ka_t") == b"1000\t1000\n"


def test_client_keepalive_outlives_clickhouses(sidecar):
    """A client idle for longer than ClickHouse's 3 s still has its
    connection to the sidecar (default --idle-timeout)."""
    with RawConn(sidecar.url, timeout=10) as c:
        for i in range(2):
            r = c.request(rawhttp.get(f"/?query=SELECT%20{i}"))
            assert (r.status, r.body) == (200, b"%d\n" % i)
            assert not r.wants_close
            time.sleep(3.5)
        r = c.request(rawhttp.get("/?query=SELECT%209"))
        assert (r.status, r.body) == (200, b"9\n")


def test_idle_timeout_closes_client_connection(clickhouse, start_sidecar):
    """--idle-timeout: an idle client connection is closed cleanly, between
    requests, not during one."""
    sc = start_sidecar(clickhouse.http_url, "--idle-timeout", "3s")
    with RawConn(sc.url, timeout=10) as c:
        r = c.request(rawhttp.get("/?query=SELECT%201"))
        assert r.status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(timeout=8), "idle connection not closed within 8 s"
        took = time.monotonic() - t0
    assert took >= 2.5, f"closed after {took:.1f} s with --idle-timeout 3s"
    # a slow query is not idleness
    with RawConn(sc.url, timeout=15) as c:
        r = c.request(rawhttp.get("/?query=SELECT%20sleep(3)%2C%20sleep(1.5)"))
        assert (r.status, r.body) == (200, b"0\t0\n")
