"""Limits: everything the sidecar holds is bounded, and at a bound it answers
with a clear ClickHouse-format error (and closes the connection where the
stream cannot be resynchronized), never by growing or crashing. After each,
the sidecar keeps serving other clients.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.parse

import aiohttp
import pytest

import rawhttp
from rawhttp import RawConn, assert_sidecar_error


def ok(url: str) -> None:
    """A normal query on a fresh connection still works."""
    with RawConn(url) as c:
        r = c.request(rawhttp.get("/?query=SELECT%20'still%20serving'"))
        assert (r.status, r.body) == (200, b"still serving\n"), r


class Bystander:
    """A slow query on its own connection that must complete untouched while
    the test misbehaves on other connections."""

    def __init__(self, url: str, seconds: float = 1.5):
        self.url, self.seconds = url, seconds
        self.result = None
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with RawConn(self.url, timeout=30) as c:
                r = c.request(rawhttp.get(
                    f"/?query=SELECT%20sleep({self.seconds})%2C%20'bystander'"))
                self.result = (r.status, r.body)
        except Exception as e:  # reported by check()
            self.result = e

    def __enter__(self):
        self.t.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.t.join(30)

    def check(self):
        assert self.result == (200, b"0\tbystander\n"), self.result


def expect_error(c: RawConn, status: int, close: bool = True) -> rawhttp.Response:
    r = c.read_response()
    assert_sidecar_error(r.status, r.headers, r.body, status)
    if close:
        assert c.closed_by_peer(timeout=3), f"connection not closed after {status}"
    return r


# -- header and URL size ---------------------------------------------------------

def test_oversized_header_default_limit(sidecar):
    with Bystander(sidecar.url) as b, RawConn(sidecar.url) as keep:
        r = keep.request(rawhttp.get("/?query=SELECT%201"))
        assert r.status == 200
        with RawConn(sidecar.url) as c:
            c.send(rawhttp.get("/?query=SELECT%201",
                               headers=[("X-Big", "a" * 100_000)]))
            expect_error(c, 431)
        # an established keep-alive connection goes on
        r = keep.request(rawhttp.get("/?query=SELECT%202"))
        assert (r.status, r.body) == (200, b"2\n")
    b.check()
    ok(sidecar.url)


def test_header_bytes_limit_flag(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--max-header-bytes", "8KiB")
    with RawConn(sc.url) as c:  # under the limit: forwarded
        r = c.request(rawhttp.get("/?query=SELECT%201", headers=[("X-Pad", "p" * 4000)]))
        assert (r.status, r.body) == (200, b"1\n")
    with RawConn(sc.url) as c:  # many medium headers adding up past it
        c.send(rawhttp.get("/?query=SELECT%201",
                           headers=[(f"X-Pad-{i}", "p" * 1000) for i in range(12)]))
        expect_error(c, 431)
    with RawConn(sc.url) as c:
        c.send(rawhttp.get("/?query=SELECT%201", headers=[("X-Pad", "p" * 10_000)]))
        expect_error(c, 431)
    ok(sc.url)


def test_too_many_headers(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--max-headers", "10")
    with RawConn(sc.url) as c:
        r = c.request(rawhttp.get("/?query=SELECT%201",
                                  headers=[(f"X-H{i}", "v") for i in range(5)]))
        assert (r.status, r.body) == (200, b"1\n")
    with Bystander(sc.url) as b, RawConn(sc.url) as c:
        c.send(rawhttp.get("/?query=SELECT%201",
                           headers=[(f"X-H{i}", "v") for i in range(50)]))
        expect_error(c, 431)
    b.check()
    ok(sc.url)


def test_too_many_headers_default(sidecar):
    with RawConn(sidecar.url) as c:
        c.send(rawhttp.get("/?query=SELECT%201",
                           headers=[(f"X-H{i}", "v") for i in range(1000)]))
        expect_error(c, 431)
    ok(sidecar.url)


def long_target(n: int) -> str:
    """A valid query URL about n bytes long."""
    pad = "x" * max(0, n - 40)
    return "/?query=" + urllib.parse.quote(f"SELECT length('{pad}')")


def test_url_too_long(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--max-url-bytes", "4KiB")
    with RawConn(sc.url) as c:  # under the limit: forwarded, same answer
        r = c.request(rawhttp.get(long_target(3000)))
        assert r.status == 200 and int(r.body) > 2900
    with Bystander(sc.url) as b, RawConn(sc.url) as c:
        c.send(rawhttp.get(long_target(10_000)))
        expect_error(c, 414)
    b.check()
    ok(sc.url)


def test_url_too_long_default(sidecar):
    with RawConn(sidecar.url) as c:
        c.send(rawhttp.get(long_target(100_000)))
        expect_error(c, 414)
    ok(sidecar.url)


# -- malformed HTTP ----------------------------------------------------------------

MALFORMED = {
    "garbage_request_line": b"GARBAGE\r\n\r\n",
    "space_in_target": b"GET /?query=SELECT 1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "header_without_colon": b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
    "nul_in_header": b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\nzz\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_without_crlf": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          b"\r\n8\r\nSELECT 1XX0\r\n\r\n",
    "conflicting_content_length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n"
                                  b"Content-Length: 9\r\n\r\nSELECT 1 ",
    "negative_content_length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n"
                                b"\r\nSELECT 1",
    "non_numeric_content_length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n"
                                  b"\r\nSELECT 1",
    "unknown_transfer_encoding": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                 b"gzip\r\n\r\nSELECT 1",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_400_and_close(sidecar, name):
    with Bystander(sidecar.url, 1.0) as b, RawConn(sidecar.url) as c:
        c.send(MALFORMED[name])
        expect_error(c, 400)
    b.check()
    ok(sidecar.url)


def test_malformed_after_a_good_request_on_same_connection(sidecar):
    with RawConn(sidecar.url) as c:
        c.send(rawhttp.get("/?query=SELECT%201") + b"BAD REQUEST LINE\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"1\n")
        expect_error(c, 400)
    ok(sidecar.url)


def test_content_length_with_transfer_encoding_closes(sidecar):
    """Both framings at once (request smuggling): the server may reject it or
    go by Transfer-Encoding alone, but must close the connection after."""
    raw = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + rawhttp.chunked([b"SELECT 5"])
           + rawhttp.get("/?query=SELECT%20'smuggled'"))
    with RawConn(sidecar.url) as c:
        c.send(raw)
        r = c.read_response()
        if r.status == 400:
            assert_sidecar_error(r.status, r.headers, r.body, 400)
        else:
            assert (r.status, r.body) == (200, b"5\n"), r
        assert c.closed_by_peer(timeout=3), "connection kept open after CL + TE"
    ok(sidecar.url)


# -- time limits -----------------------------------------------------------------

def test_header_timeout_partial_request(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--header-timeout", "1s")
    with Bystander(sc.url, 2.0) as b, RawConn(sc.url, timeout=10) as c:
        t0 = time.monotonic()
        c.send(b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n")  # no end
        expect_error(c, 408)
        took = time.monotonic() - t0
    assert 0.8 <= took <= 3.0, f"408 after {took:.2f} s with --header-timeout 1s"
    b.check()  # a 2 s query is not cut by a 1 s header timeout
    ok(sc.url)


def test_header_timeout_is_a_deadline_not_per_read(clickhouse, start_sidecar):
    """Slowloris: one byte every 200 ms must not keep the connection alive."""
    sc = start_sidecar(clickhouse.http_url, "--header-timeout", "1s")
    head = b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
    with RawConn(sc.url, timeout=10) as c:
        t0 = time.monotonic()
        got_408 = False
        for byte in head:
            try:
                c.send(bytes([byte]))
            except OSError:
                break
            c.settimeout(0.2)
            try:
                if c._fill():
                    got_408 = True
                    break
                else:
                    break  # closed without an answer
            except TimeoutError:
                pass
            if time.monotonic() - t0 > 6:
                break
        took = time.monotonic() - t0
        c.settimeout(5)
        assert got_408, f"no answer after trickling for {took:.1f} s"
        r = c.read_response()
        assert_sidecar_error(r.status, r.headers, r.body, 408)
    assert took <= 3.0, f"408 after {took:.2f} s with --header-timeout 1s"
    ok(sc.url)


# -- counts ------------------------------------------------------------------------

def test_max_connections(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--max-connections", "5")
    # The harness's readiness probe connected and hung up; give the sidecar
    # a moment to see that, so it does not count in the five.
    time.sleep(0.3)
    conns = []
    try:
        for i in range(5):
            c = RawConn(sc.url)
            conns.append(c)
            r = c.request(rawhttp.get(f"/?query=SELECT%20{i}"))
            assert (r.status, r.body) == (200, b"%d\n" % i)
        with RawConn(sc.url) as sixth:
            try:
                sixth.send(rawhttp.get("/?query=SELECT%206"))
            except OSError:
                pass
            expect_error(sixth, 503)
        # the five still work
        for i, c in enumerate(conns):
            r = c.request(rawhttp.get(f"/?query=SELECT%20{i + 10}"))
            assert (r.status, r.body) == (200, b"%d\n" % (i + 10))
        # one leaves: there is room again
        conns.pop().close()

        def room():
            try:
                with RawConn(sc.url, timeout=2) as c:
                    r = c.request(rawhttp.get("/?query=SELECT%207"))
                    return (r.status, r.body) == (200, b"7\n")
            except (OSError, rawhttp.Closed):
                return False
        assert rawhttp.wait_until(room, 3), "no room after a connection closed"
    finally:
        for c in conns:
            c.close()


def test_queue_limit_503_with_retry_after(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--pool-size", "1", "--queue-max", "2")

    async def main():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            async def one():
                async with s.post(sc.url + "/", data=b"SELECT sleep(0.5)") as r:
                    return r.status, await r.read(), dict(r.headers)
            return await asyncio.gather(*[one() for _ in range(8)])

    res = asyncio.run(main())
    good = [r for r in res if r[:2] == (200, b"0\n")]
    rejected = [r for r in res if r[0] == 503]
    assert len(good) + len(rejected) == 8, [r[:2] for r in res]
    assert 2 <= len(good) <= 3, f"{len(good)} ok with pool 1 + queue 2"
    for st, body, headers in rejected:
        assert_sidecar_error(st, headers, body, 503)
        assert int(headers["Retry-After"]) >= 1, headers
    ok(sc.url)
