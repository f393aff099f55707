"""Upstream failures: ClickHouse down, unreachable, or too slow.

The sidecar answers quickly with a ClickHouse-format error (502 when the
upstream cannot be reached, 504 when it stops sending) that names the
upstream host:port and never a credential, and it recovers by itself when
ClickHouse is back.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

import rawhttp
from netutil import free_port
from rawhttp import assert_sidecar_error


def get(client: httpx.Client, url: str, sql: str, **params):
    t0 = time.monotonic()
    r = client.get(url + "/", params={"query": sql, **params})
    return r, time.monotonic() - t0


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def test_clickhouse_stopped_then_back(clickhouse_factory, start_sidecar, client):
    ch = clickhouse_factory()
    hostport = f"127.0.0.1:{ch.http_port}"
    sc = start_sidecar(ch.http_url)
    r, _ = get(client, sc.url, "SELECT 1")
    assert (r.status_code, r.content) == (200, b"1\n")

    ch.stop()
    for i in range(3):  # the pooled connection is dead, then the connects fail
        r, took = get(client, sc.url, "SELECT 1", user="alice", password="secret")
        assert_sidecar_error(r.status_code, r.headers, r.content, 502)
        assert took < 2.0, f"502 took {took:.2f} s"
        assert hostport.encode() in r.content, r.content
        assert b"secret" not in r.content
        assert b"secret" not in b"".join(v.encode() for v in r.headers.values())
    # a POST with a body, too
    r = client.post(sc.url + "/", content=b"SELECT 2")
    assert_sidecar_error(r.status_code, r.headers, r.content, 502)
    # answered locally, whatever the upstream
    r = client.get(sc.url + "/ping")
    assert (r.status_code, r.content) == (200, b"Ok.\n")

    ch.start()
    r, _ = get(client, sc.url, "SELECT 'back'")
    assert (r.status_code, r.content) == (200, b"back\n"), r.content
    for i in range(20):
        r, _ = get(client, sc.url, f"SELECT {i}")
        assert (r.status_code, r.content) == (200, b"%d\n" % i)
    assert "secret" not in sc.stderr_text()


def test_clickhouse_killed_then_restarted(clickhouse_factory, start_sidecar, client):
    """A crash (SIGKILL) with pooled connections open, then a restart."""
    ch = clickhouse_factory()
    sc = start_sidecar(ch.http_url, "--pool-size", "4")
    for i in range(8):
        r, _ = get(client, sc.url, f"SELECT {i}")
        assert r.status_code == 200
    ch.kill()
    r, took = get(client, sc.url, "SELECT 1")
    assert_sidecar_error(r.status_code, r.headers, r.content, 502)
    assert took < 2.0
    ch.start()
    r, _ = get(client, sc.url, "SELECT 'back'")
    assert (r.status_code, r.content) == (200, b"back\n")


def test_upstream_closed_port(start_sidecar, client):
    port = free_port()
    sc = start_sidecar(f"http://127.0.0.1:{port}")
    r, took = get(client, sc.url, "SELECT 1")
    assert_sidecar_error(r.status_code, r.headers, r.content, 502)
    assert took < 2.0, f"502 took {took:.2f} s"
    assert f"127.0.0.1:{port}".encode() in r.content
    r = client.get(sc.url + "/ping")
    assert (r.status_code, r.content) == (200, b"Ok.\n")
    assert sc.running()


def test_upstream_url_credentials_not_leaked(start_sidecar, client):
    """An upstream URL with user:password: neither the error body nor the
    log shows the password."""
    port = free_port()
    sc = start_sidecar(f"http://alice:secret@127.0.0.1:{port}")
    r, _ = get(client, sc.url, "SELECT 1")
    assert_sidecar_error(r.status_code, r.headers, r.content, 502)
    assert f"127.0.0.1:{port}".encode() in r.content
    assert b"secret" not in r.content
    sc.stop()
    assert "secret" not in sc.stderr_text()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_upstream_timeout_504(clickhouse, start_sidecar, client, method):
    """A POST's body bytes once counted as upstream activity: 504 came
    seconds late."""
    sc = start_sidecar(clickhouse.http_url, "--upstream-timeout", "1s")
    if method == "GET":
        r, took = get(client, sc.url, "SELECT sleep(3)")
    else:
        t0 = time.monotonic()
        r = client.post(sc.url + "/", content=b"SELECT sleep(3) FROM numbers(2) "
                                              b"SETTINGS max_block_size = 1")
        took = time.monotonic() - t0
    assert_sidecar_error(r.status_code, r.headers, r.content, 504)
    assert 0.9 <= took < 2.5, f"504 after {took:.2f} s with --upstream-timeout 1s"
    assert f"127.0.0.1:{clickhouse.http_port}".encode() in r.content
    # queries under the timeout still work, and the sidecar goes on
    r, _ = get(client, sc.url, "SELECT sleep(0.5)")
    assert (r.status_code, r.content) == (200, b"0\n")
    for i in range(10):
        r, _ = get(client, sc.url, f"SELECT {i}")
        assert (r.status_code, r.content) == (200, b"%d\n" % i)


def test_upstream_paused_504(clickhouse_factory, start_sidecar, client):
    """A hung server (SIGSTOP: connections accepted, never answered)."""
    ch = clickhouse_factory()
    sc = start_sidecar(ch.http_url, "--upstream-timeout", "1s",
                       "--connect-timeout", "1s")
    r, _ = get(client, sc.url, "SELECT 1")
    assert r.status_code == 200
    ch.pause()

    def stopped():  # every thread of the server in state T
        tasks = os.listdir(f"/proc/{ch.pid}/task")
        return all(open(f"/proc/{ch.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0]
                   in ("T", "t") for t in tasks)
    assert rawhttp.wait_until(stopped, 5), "SIGSTOP did not take"
    try:
        r, took = get(client, sc.url, "SELECT 1")
        assert r.status_code in (502, 504), r.content
        assert_sidecar_error(r.status_code, r.headers, r.content, r.status_code)
        assert took < 3.0, f"answer after {took:.2f} s"
    finally:
        ch.resume()
    r, _ = get(client, sc.url, "SELECT 'resumed'")
    assert (r.status_code, r.content) == (200, b"resumed\n")


def test_upstream_dies_mid_response_client_sees_truncation(clickhouse_factory,
                                                           start_sidecar):
    """If ClickHouse dies in the middle of a streamed answer, the client must
    see a broken response (no final chunk), never a clean end that looks
    like a complete, shorter result."""
    ch = clickhouse_factory()
    sc = start_sidecar(ch.http_url)
    from rawhttp import RawConn
    with RawConn(sc.url, timeout=20, rcvbuf=64 * 1024) as c:
        c.send(rawhttp.get("/?query=SELECT%20number%20FROM%20numbers(500000000)"))
        head = c.read_head()
        assert head.status == 200
        got = 0
        outcome = "complete"
        try:
            for piece in c.iter_body(head, bufsize=16 * 1024):
                got += len(piece)
                if got > 2_000_000 and ch.running():
                    ch.kill()
        except (rawhttp.Closed, ValueError, ConnectionError):
            outcome = "truncated"
        assert outcome == "truncated", \
            f"the body ended cleanly after {got} bytes although ClickHouse died"
    assert sc.running()
    r = httpx.get(sc.url + "/", params={"query": "SELECT 1"}, timeout=10)
    assert_sidecar_error(r.status_code, r.headers, r.content, 502)
    ch.start()
    r = httpx.get(sc.url + "/", params={"query": "SELECT 1"}, timeout=10)
    assert (r.status_code, r.content) == (200, b"1\n")
