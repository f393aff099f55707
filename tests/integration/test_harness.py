"""Tests of the test harness itself (ClickHouse launcher, fault relay, sidecar
fixture), not of the proxy. The start_sidecar machinery is checked against a tiny
stand-in program so these pass before the real binary exists."""

import http.client
import os
import signal
import socket
import stat
import sys
import textwrap

import pytest

from clickhouse_server import ClickHouseError
from fault_relay import FaultRelay
from netutil import free_port, port_accepts


def test_select_1(clickhouse):
    assert clickhouse.query("SELECT 1") == b"1\n"
    # the server chosen by CHSIDECAR_TEST_SERVER (chdb 26.7.3 says 26.7.2.1)
    assert clickhouse.query("SELECT version()").startswith(clickhouse.kind.encode() + b".")


def get(port, path):
    """GET over a keep-alive HTTP/1.1 connection (no proxies from env)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_ping_and_keep_alive_header(clickhouse):
    status, headers, body = get(clickhouse.http_port, "/ping")
    assert (status, body) == (200, b"Ok.\n")
    # keep_alive_timeout; 26.7 adds max_keep_alive_requests (default 10000)
    # minus the one this request used
    expected = {"18.16": "timeout=3", "26.7": "timeout=3, max=9999"}[clickhouse.kind]
    assert headers.get("Keep-Alive") == expected


def test_listens_on_loopback_only(clickhouse):
    assert clickhouse.http_url == f"http://127.0.0.1:{clickhouse.http_port}"
    assert port_accepts("127.0.0.1", clickhouse.tcp_port)


def test_users(clickhouse):
    assert clickhouse.query("SELECT 1", params={"user": "alice",
                                                "password": "secret"}) == b"1\n"
    with pytest.raises(ClickHouseError) as ei:
        clickhouse.query("SELECT 1", params={"user": "alice", "password": "x"})
    # 18.16: 193 WRONG_PASSWORD; 26.7: 516 AUTHENTICATION_FAILED, status 403
    assert ei.value.code == {"18.16": 193, "26.7": 516}[clickhouse.kind]
    assert ei.value.status != 200
    with pytest.raises(ClickHouseError) as ei:
        clickhouse.query("CREATE TABLE ro_t (x UInt8) ENGINE = Memory",
                         params={"user": "readonly"})
    assert ei.value.code == 164


def test_query_with_data_and_error(clickhouse):
    clickhouse.query("CREATE TABLE IF NOT EXISTS harness_t (x UInt32) "
                     "ENGINE = MergeTree ORDER BY x")
    clickhouse.query("INSERT INTO harness_t FORMAT JSONEachRow",
                     data=b'{"x":1}\n{"x":2}\n')
    assert clickhouse.query("SELECT sum(x) FROM harness_t") == b"3\n"
    with pytest.raises(ClickHouseError) as ei:
        clickhouse.query("SELEC 1")
    assert ei.value.status == 400 and ei.value.code == 62
    assert b"Syntax error" in ei.value.body
    clickhouse.query("DROP TABLE harness_t")


def test_restart_keeps_data_and_ports(clickhouse_factory):
    srv = clickhouse_factory()
    assert srv.startup_seconds < 15, srv.startup_seconds
    assert srv.root.startswith("/dev/shm/") or not os.access("/dev/shm", os.W_OK)
    srv.query("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x")
    srv.query("INSERT INTO t VALUES", data=b"(1),(2),(3)")
    port, tcp, pid = srv.http_port, srv.tcp_port, srv.pid
    srv.restart()
    assert (srv.http_port, srv.tcp_port) == (port, tcp)
    assert srv.pid != pid
    assert srv.query("SELECT count() FROM t") == b"3\n"
    assert srv.stop() == 0
    assert not srv.ping()
    srv.start()
    assert srv.query("SELECT count() FROM t") == b"3\n"
    srv.kill()
    srv.start()
    assert srv.query("SELECT count() FROM t") == b"3\n"
    root = srv.root
    srv.close()
    assert not os.path.exists(root)


def test_caller_data_dir_survives(clickhouse_factory, tmp_path):
    data = str(tmp_path / "chdata")
    a = clickhouse_factory(data)
    a.query("CREATE TABLE keep (x UInt8) ENGINE = TinyLog")
    a.query("INSERT INTO keep VALUES", data=b"(7)")
    a.close()
    b = clickhouse_factory(data)
    assert b.query("SELECT x FROM keep") == b"7\n"


def test_free_port():
    p = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", p))


# -- the fault relay -----------------------------------------------------------

def test_relay_blackhole_stays_silent_on_a_reused_connection(clickhouse):
    """A blackholed request on a connection that carried a passed one before
    gets no answer, not even a close: ClickHouse closing the idle upstream
    leg (keep_alive_timeout 3 s) must not reach the client, or curl resends
    the request on a fresh connection, maybe after the blackhole ended."""
    ping = b"GET /ping HTTP/1.1\r\nHost: relay\r\n\r\n"
    with FaultRelay("127.0.0.1", clickhouse.http_port) as relay, \
            socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
        s.sendall(ping)
        answer = b""
        # 18.16 sends "Ok.\n" with a Content-Length, 26.7 chunked
        while not answer.endswith((b"\r\n\r\nOk.\n", b"\r\nOk.\n\r\n0\r\n\r\n")):
            data = s.recv(4096)
            assert data, answer
            answer += data
        relay.set("blackhole")
        s.sendall(ping)
        s.settimeout(4.5)  # past ClickHouse's close of the idle upstream leg
        try:
            got = s.recv(4096)
        except socket.timeout:
            got = None
        assert got is None, f"the relay ended a blackholed request: {got!r}"
        assert relay.stats["faulted_blackhole"] == 1


# -- the sidecar fixture, against a stand-in program ---------------------------

FAKE = textwrap.dedent("""\
    #!{python}
    # Stand-in for chsidecar: listens on --listen, answers every connection
    # with a fixed HTTP response, exits 0 on SIGTERM. FAKE_MODE=die exits 3
    # at once; FAKE_MODE=segv dies of SIGSEGV after listening.
    import os, signal, socket, sys
    args = sys.argv[1:]
    if os.environ.get("FAKE_MODE") == "die":
        sys.stderr.write("fatal: cannot start: " + " ".join(args) + "\\n")
        sys.exit(3)
    host, port = args[args.index("--listen") + 1].rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(16)
    sys.stderr.write("listening upstream=" + args[args.index("--upstream") + 1]
                     + " extra=" + repr(args[4:]) + "\\n"); sys.stderr.flush()
    if os.environ.get("FAKE_MODE") == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    while True:
        c, _ = s.accept(); c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\nfak\\n")
        c.close()
    """)


@pytest.fixture
def sidecar_bin(tmp_path):  # overrides conftest's for this module only
    path = tmp_path / "fake-chsidecar"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_start_sidecar_fixture(start_sidecar, clickhouse):
    sc = start_sidecar(clickhouse.http_url, "--pool-size", "4",
                       env={"CHSIDECAR_X": "1"})
    assert sc.url == f"http://127.0.0.1:{sc.port}"
    assert get(sc.port, "/")[2] == b"fak\n"
    assert sc.rss_kib() > 0
    assert f"upstream={clickhouse.http_url}" in sc.stderr_text()
    assert "'--pool-size', '4'" in sc.stderr_text()
    assert sc.stop() == 0
    assert sc.returncode == 0
    assert sc.stop() == 0  # idempotent


def test_start_sidecar_reports_early_death(start_sidecar):
    with pytest.raises(pytest.fail.Exception) as ei:
        start_sidecar("http://127.0.0.1:1", env={"FAKE_MODE": "die"})
    msg = str(ei.value)
    assert "exit code 3" in msg and "fatal: cannot start" in msg


def test_sidecar_stop_escalates_to_sigkill(start_sidecar):
    sc = start_sidecar("http://127.0.0.1:1")
    os.kill(sc.pid, signal.SIGSTOP)  # a stopped process ignores SIGTERM
    assert sc.stop(timeout=0.5) == -signal.SIGKILL
