"""The admin listener (/metrics /live /ready /status), the access log, the
rate limit on repeated warnings, --check-config, and secrets kept out of
every output."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid

import httpx
import pytest

import rawhttp
from metrics_text import parse_metrics, value
from netutil import free_port

def start_with_admin(start_sidecar, clickhouse, *args):
    admin_port = free_port()
    sc = start_sidecar(clickhouse.http_url, "--admin-listen", f"127.0.0.1:{admin_port}", *args)
    sc.admin = f"http://127.0.0.1:{admin_port}"
    deadline = time.monotonic() + 5
    while True:  # the admin port is bound right after the main one
        try:
            httpx.get(sc.admin + "/live", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return sc


def scrape(sc) -> tuple[str, dict]:
    r = httpx.get(sc.admin + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text, parse_metrics(r.text)


def make_table(clickhouse) -> str:
    name = "admin_" + uuid.uuid4().hex[:8]
    clickhouse.query(f"CREATE TABLE {name} (id UInt64, s String) ENGINE = Memory")
    return name


def traffic(sc, table: str) -> dict:
    """Sends a known mix; returns how many of each route were sent."""
    with httpx.Client(base_url=sc.url, timeout=30) as c:
        for _ in range(5):
            assert c.get("/ping").status_code == 200
        for i in range(4):
            r = c.post("/", content=f"SELECT {i}")
            assert r.status_code == 200, r.text
        r = c.post("/", content="SELEKT nonsense")  # syntax error: code 62
        assert r.status_code >= 400
        for i in range(3):
            r = c.post("/", params={"query": f"INSERT INTO {table} FORMAT JSONEachRow"},
                       content=json.dumps({"id": i, "s": "x"}) + "\n")
            assert r.status_code == 200, r.text
        r = c.post("/", content=f"INSERT INTO {table} SELECT number, 'y' FROM system.numbers LIMIT 2")
        assert r.status_code == 200, r.text
        # a session_id on a stateless query, then state in another session
        assert c.post("/", params={"session_id": "s-stateless"}, content="SELECT 1").status_code == 200
        sid = "s-" + uuid.uuid4().hex
        r = c.post("/", params={"session_id": sid},
                   content="CREATE TEMPORARY TABLE tmp (x UInt8)")
        assert r.status_code == 200, r.text
        assert c.post("/", params={"session_id": sid}, content="SELECT count() FROM tmp").status_code == 200
    return {"ping": 5, "query": 4 + 1 + 1 + 2, "insert_batched": 3, "insert_passthrough": 1}


def test_metrics_move_with_traffic(clickhouse, start_sidecar):
    sc = start_with_admin(start_sidecar, clickhouse)
    table = make_table(clickhouse)
    _, before = scrape(sc)
    for route in ("ping", "query", "insert_batched", "insert_passthrough"):
        assert value(before, "chsidecar_requests_total", route=route) == 0
    assert value(before, "chsidecar_build_info") == 1
    assert any(n == "chsidecar_build_info" and dict(ls).get("version")
               for n, ls in before), "build_info has no version label"
    sent = traffic(sc, table)
    text, after = scrape(sc)

    for route, n in sent.items():
        got = value(after, "chsidecar_requests_total", route=route)
        assert got == n, f"route {route}: {got} != {n}\n{text}"
        # the histogram counts every request once
        assert value(after, "chsidecar_request_duration_seconds_count", route=route) == got
        assert value(after, "chsidecar_request_duration_seconds_bucket", route=route, le="+Inf") == got
    assert value(after, "chsidecar_requests_total", route="ping", status="200") == 5
    assert value(after, "chsidecar_requests_total", route="query", status="200") == sent["query"] - 1
    assert value(after, "chsidecar_requests_in_flight") == 0
    # admin requests are counted too (this scrape's own is counted after rendering)
    assert value(after, "chsidecar_request_duration_seconds_count", route="admin") == \
        value(after, "chsidecar_requests_total", route="admin") >= 2
    assert value(after, "chsidecar_connections_accepted_total") >= 1

    up = clickhouse.http_url.split("://", 1)[1]
    assert value(after, "chsidecar_upstream_requests_total", upstream=up, result="ok") >= 10
    assert value(after, "chsidecar_upstream_requests_total", result="http_error", code="62") == 1
    ups = value(after, "chsidecar_upstream_requests_total")
    assert value(after, "chsidecar_upstream_request_duration_seconds_count") == ups
    assert value(after, "chsidecar_pool_slots", upstream=up, state="busy") == 0
    assert value(after, "chsidecar_pool_slots", upstream=up, state="idle") == 8
    assert value(after, "chsidecar_queued_requests", queue="pool") == 0
    assert value(after, "chsidecar_upstream_healthy", upstream=up) == 1
    assert value(after, "chsidecar_sessions_stateful") == 1
    assert value(after, "chsidecar_session_requests_total", mode="stateless") >= 1
    assert value(after, "chsidecar_session_requests_total", mode="stateful") == 2
    assert value(after, "chsidecar_batch_buffer_max_bytes") == 256 * 1024 * 1024

    # names follow the conventions; no session id or query text in labels
    for name, labels in after:
        assert name.startswith("chsidecar_"), name
        for k, v in labels:
            assert "s-stateless" not in v and "SELECT" not in v.upper(), (name, k, v)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, kind in types.items():
        assert kind in ("counter", "gauge", "histogram"), (name, kind)
        if kind == "counter":
            assert name.endswith("_total"), name
        if name.endswith("_total"):
            assert kind == "counter", name


def test_promtool_check_metrics(clickhouse, start_sidecar):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus); "
                    "the exposition format is not checked by promtool here")
    sc = start_with_admin(start_sidecar, clickhouse)
    traffic(sc, make_table(clickhouse))
    text, _ = scrape(sc)
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0 and not out.strip(), out


def test_live_ready_status_and_errors(clickhouse, start_sidecar):
    sc = start_with_admin(start_sidecar, clickhouse)
    r = httpx.get(sc.admin + "/live")
    assert (r.status_code, r.text) == (200, "ok\n")
    r = httpx.get(sc.admin + "/ready")
    assert r.status_code == 200
    assert httpx.head(sc.admin + "/ready").status_code == 200
    assert httpx.get(sc.admin + "/nope").status_code == 404
    assert httpx.post(sc.admin + "/metrics", content="x").status_code == 405
    # the admin port does not proxy, and the proxy port does not serve admin
    r = httpx.get(sc.url + "/metrics")
    assert "chsidecar_requests_total" not in r.text

    r = httpx.get(sc.admin + "/status")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    st = r.json()
    assert st["version"]
    assert st["uptime_seconds"] >= 0
    assert st["ready"] is True and st["draining"] is False
    (u,) = st["upstreams"]
    assert u["name"] == clickhouse.http_url.split("://", 1)[1]
    assert u["healthy"] is True
    assert u["pool"] == {"busy": 0, "size": 8, "queued": 0, "queue_max": 1024}
    assert st["sessions"]["stateful"] == 0
    assert st["batch"]["buffered_bytes"] == 0
    assert st["batch"]["buffer_max_bytes"] == 256 * 1024 * 1024
    assert st["connections"]["clients"] == 0
    assert set(st["spool"]) >= {"enabled", "bytes", "max_bytes"}


def test_started_line_names_the_admin_port(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url)  # the fixture's default: port 0
    deadline = time.monotonic() + 5
    while "started" not in sc.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    m = re.search(r"admin=127\.0\.0\.1:(\d+)", sc.stderr_text())
    assert m and int(m.group(1)) != 0, sc.stderr_text()
    assert httpx.get(f"http://127.0.0.1:{m.group(1)}/live").status_code == 200


def test_batch_and_spool_metrics_follow_the_rows(clickhouse, start_sidecar):
    """Rows in, rows acknowledged, rows committed, rows dead-lettered,
    fsyncs: the batch and spool metrics count what happened to the rows."""
    sc = start_with_admin(start_sidecar, clickhouse)
    table = make_table(clickhouse)
    _, before = scrape(sc)
    q = {"query": f"INSERT INTO {table} FORMAT JSONEachRow"}
    with httpx.Client(base_url=sc.url, timeout=30) as c:
        for i in range(10):  # the first 6 answered on commit, the rest once spooled
            params = q if i < 6 else {**q, "wait_for_async_insert": "0"}
            r = c.post("/", params=params, content=f'{{"id":{i},"s":"ok"}}\n')
            assert r.status_code == 200, r.text
        # acknowledged from the spool, then refused by ClickHouse: dead-lettered
        r = c.post("/", params={**q, "wait_for_async_insert": "0"}, content='{"id":"x","s":"bad"}\n')
        assert r.status_code == 200, r.text

    def settled():
        m = scrape(sc)[1]
        return value(m, "chsidecar_batch_rows_dead_lettered_total", table=table) == 1 and \
            value(m, "chsidecar_batch_buffered_bytes") == 0
    assert rawhttp.wait_until(settled, 10), scrape(sc)[0]
    _, after = scrape(sc)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert clickhouse.query(f"SELECT count() FROM {table}").strip() == b"10"
    assert grew("chsidecar_batch_rows_received_total", table=table) == 11
    assert grew("chsidecar_batch_rows_acknowledged_total", table=table) == 11
    assert grew("chsidecar_batch_rows_flushed_total", table=table) == 10
    assert grew("chsidecar_batch_flushes_total", result="ok") >= 1
    assert grew("chsidecar_batch_flushes_total", result="data_error") >= 1
    assert grew("chsidecar_spool_fsyncs_total") >= 1
    assert grew("chsidecar_spool_fsync_duration_seconds_count") == grew("chsidecar_spool_fsyncs_total")
    assert value(after, "chsidecar_batch_oldest_row_age_seconds") == 0


def test_json_log_lines_are_json(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--log-format", "json", "--access-log")
    with httpx.Client(base_url=sc.url, timeout=10) as c:
        assert c.get("/", params={"query": "SELECT 'a \"quoted\" = value'"}).status_code == 200
        assert c.get("/no/such/path?x=\"").status_code == 404
    sc.stop(signal.SIGTERM, timeout=10)
    lines = [json.loads(line) for line in sc.stderr_text().splitlines() if line]
    assert all({"ts", "level", "event"} <= set(line) for line in lines), lines
    events = [line["event"] for line in lines]
    assert "started" in events and events.count("access") == 2, events


def test_started_line_shows_every_setting(clickhouse, start_sidecar, sidecar_bin):
    """The start-up line names every upstream (credentials removed) and the
    value in effect of every flag, so a log shows what the process ran with."""
    sc = start_sidecar(clickhouse.http_url, "--upstream", "http://bob:Pw-START@127.0.0.1:1",
                       "--max-header-bytes", "32KiB", "--retry-limit", "7")
    assert rawhttp.wait_until(lambda: " started " in sc.stderr_text(), 5), sc.stderr_text()
    line = next(ln for ln in sc.stderr_text().splitlines() if " started " in ln)
    assert f" upstream={clickhouse.http_url},http://127.0.0.1:1 " in line, line
    assert "Pw-START" not in sc.stderr_text() and "bob" not in line
    assert " max_header_bytes=32KiB " in line and " retry_limit=7 " in line, line
    help_text = subprocess.run([sidecar_bin, "--help"], capture_output=True, timeout=10).stdout.decode()
    flags = re.findall(r"^  --([a-z-]+)", help_text, re.M)
    shown = {f.replace("-", "_") for f in flags} - {"check_config", "help", "version", "admin_listen"}
    missing = [name for name in shown if f" {name}=" not in line]
    assert len(shown) > 40 and not missing, missing


def test_ready_503_while_draining(clickhouse, start_sidecar):
    sc = start_with_admin(start_sidecar, clickhouse, "--shutdown-grace", "20s")
    out = {}

    def slow():
        try:
            r = httpx.get(sc.url + "/", params={"query": "SELECT sleep(2), 'done'"}, timeout=30)
            out["r"] = (r.status_code, r.text)
        except Exception as e:  # noqa: BLE001
            out["r"] = e

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    _, m = scrape(sc)
    assert value(m, "chsidecar_requests_in_flight") == 1
    assert value(m, "chsidecar_pool_slots", state="busy") == 1
    assert httpx.get(sc.admin + "/status").json()["upstreams"][0]["pool"]["busy"] == 1
    sc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    r = httpx.get(sc.admin + "/ready", timeout=2)
    assert r.status_code == 503 and "draining" in r.text, r.text
    assert httpx.get(sc.admin + "/live", timeout=2).status_code == 200
    st = httpx.get(sc.admin + "/status", timeout=2).json()
    assert st["draining"] is True and st["ready"] is False
    t.join(15)
    assert out.get("r") == (200, "0\tdone\n"), out
    assert sc.proc.wait(15) == 0, sc.stderr_text()[-2000:]


def test_admin_port_in_use_fails_clearly(clickhouse, sidecar_bin, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        p = subprocess.run([sidecar_bin, "--upstream", clickhouse.http_url,
                            "--listen", f"127.0.0.1:{free_port()}",
                            "--admin-listen", f"127.0.0.1:{busy}"],
                           capture_output=True, timeout=10, stdin=subprocess.DEVNULL,
                           cwd=tmp_path)  # its default spool directory goes there
    assert p.returncode == 1
    assert b"admin_listen_failed" in p.stderr


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHSIDECAR_")}
    env.update(extra)
    return env


def test_check_config(sidecar_bin):
    ok = subprocess.run([sidecar_bin, "--upstream", "http://u:pw-CHECK@127.0.0.1:8123",
                         "--admin-listen", "127.0.0.1:9999", "--access-log", "--check-config"],
                        capture_output=True, timeout=10, env=clean_env())
    assert ok.returncode == 0, ok.stderr
    assert b"configuration ok" in ok.stdout
    assert b"pw-CHECK" not in ok.stdout + ok.stderr
    for args, flag in [
        (["--upstream", "http://h:1", "--pool-size", "0"], b"--pool-size"),
        (["--upstream", "http://h:1", "--admin-listen", "nowhere"], b"--admin-listen"),
        (["--upstream", "http://h:1", "--admin-listen", "localhost:9124"], b"--admin-listen"),
        (["--upstream", "http://h:1", "--access-log=maybe"], b"--access-log"),
        (["--pool-size", "4"], b"--upstream"),
        # an unencoded '/' in the password: refused, and no part of it shown
        (["--upstream", "http://u:pw/CHECK@127.0.0.1:8123"], b"percent-encoded"),
    ]:
        p = subprocess.run([sidecar_bin, *args, "--check-config"], capture_output=True,
                           timeout=10, env=clean_env())
        assert p.returncode == 2, (args, p)
        lines = p.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and flag.decode() in lines[0], (args, lines)
        assert p.stdout == b"" and b"CHECK" not in p.stderr
    p = subprocess.run([sidecar_bin, "--check-config"], capture_output=True, timeout=10,
                       env=clean_env(CHSIDECAR_UPSTREAM="http://h:1",
                                     CHSIDECAR_ADMIN_LISTEN="bad"))
    assert p.returncode == 2 and b"CHSIDECAR_ADMIN_LISTEN" in p.stderr, p


def test_help_lists_the_new_flags(sidecar_bin):
    text = subprocess.run([sidecar_bin, "--help"], capture_output=True, timeout=10).stdout.decode()
    for flag, env in [("--admin-listen", "CHSIDECAR_ADMIN_LISTEN"),
                      ("--access-log", "CHSIDECAR_ACCESS_LOG")]:
        m = re.search(r"^\s*" + flag + r"\b(.*?)(?=\n\s*--[a-z]|\Z)", text, re.S | re.M)
        assert m and env in m.group(1) and "default" in m.group(1), text
    assert "--check-config" in text
    assert "127.0.0.1:9124" in text


def test_access_log_one_line_per_request(clickhouse, start_sidecar):
    sc = start_with_admin(start_sidecar, clickhouse, "--access-log")
    with httpx.Client(base_url=sc.url, timeout=10) as c:
        c.get("/ping")
        c.get("/", params={"query": "SELECT 1", "password": ""})
        c.post("/", content="SELEKT 1")
    deadline = time.monotonic() + 3
    while sc.stderr_text().count(" access ") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [l for l in sc.stderr_text().splitlines() if " access " in l]
    assert len(lines) == 3, lines
    assert "method=GET path=/ping status=200" in lines[0] and "route=ping" in lines[0]
    assert "path=/ " in lines[1] and "SELECT" not in lines[1] and "route=query" in lines[1]
    assert re.search(r"status=(400|500) ", lines[2]), lines[2]
    for l in lines:
        assert re.search(r"duration_ms=\d+\.\d{3} bytes_in=\d+ bytes_out=[1-9]\d*", l), l


def test_warning_storm_is_rate_limited(start_sidecar):
    dead = free_port()  # nothing listens there
    sc = start_sidecar(f"http://127.0.0.1:{dead}", "--connect-timeout", "100ms")
    with httpx.Client(base_url=sc.url, timeout=10) as c:
        for _ in range(40):
            assert c.get("/", params={"query": "SELECT 1"}).status_code == 502
    deadline = time.monotonic() + 3
    while "log_suppressed" not in sc.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = sc.stderr_text()
    warns = [l for l in text.splitlines() if " upstream_unreachable " in l]
    assert 1 <= len(warns) <= 30, len(warns)  # 10 per second at most
    m = re.findall(r"log_suppressed event=upstream_unreachable count=(\d+)", text)
    assert m and sum(map(int, m)) + len(warns) == 40, text[-3000:]


SECRET_PW = "secret"                      # alice's password in the test server
WRONG_PW = "Wr0ngPa55-x9q"                 # a password that fails
KEY_PW = "K3yPa55-v7m"                     # sent in X-ClickHouse-Key (fails too)
URL_PW = "Ur1Pa55-z3w"                     # in the upstream URL's userinfo
SECRETS = [SECRET_PW, WRONG_PW, KEY_PW, URL_PW,
           base64.b64encode(b"alice:secret").decode(),
           base64.b64encode(f"alice:{WRONG_PW}".encode()).decode()]


def test_secrets_never_leave(clickhouse, start_sidecar):
    sc = start_with_admin(start_sidecar, clickhouse, "--access-log", "--log-level", "debug")
    table = make_table(clickhouse)
    basic_ok = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}
    basic_bad = {"Authorization": "Basic " + base64.b64encode(f"alice:{WRONG_PW}".encode()).decode()}
    key_ok = {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": SECRET_PW}
    key_bad = {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": KEY_PW}
    url_ok = {"user": "alice", "password": SECRET_PW}
    url_bad = {"user": "alice", "password": WRONG_PW}
    bodies = []
    with httpx.Client(base_url=sc.url, timeout=30) as c:
        for params, headers, good in [(url_ok, {}, True), ({}, basic_ok, True), ({}, key_ok, True),
                                      (url_bad, {}, False), ({}, basic_bad, False),
                                      ({}, key_bad, False)]:
            # a query
            r = c.post("/", params=params, headers=headers, content="SELECT 1")
            assert (r.status_code == 200) == good, r.text
            bodies.append(r.text)
            # a batched insert
            r = c.post("/", params={**params, "query": f"INSERT INTO {table} FORMAT JSONEachRow"},
                       headers=headers, content='{"id":1,"s":"a"}\n')
            assert (r.status_code == 200) == good, r.text
            bodies.append(r.text)
            # a passthrough insert
            r = c.post("/", params=params, headers=headers,
                       content=f"INSERT INTO {table} SELECT 2, 'b'")
            bodies.append(r.text)
            # a stateful session
            sid = "sec-" + uuid.uuid4().hex
            r = c.post("/", params={**params, "session_id": sid}, headers=headers,
                       content="CREATE TEMPORARY TABLE t1 (x UInt8)")
            bodies.append(r.text)
            r = c.post("/", params={**params, "session_id": sid}, headers=headers,
                       content="SELECT count() FROM t1")
            bodies.append(r.text)
            # an error from ClickHouse, and one from the sidecar itself
            r = c.post("/", params=params, headers=headers, content="SELECT * FROM no_such_table")
            assert r.status_code >= 400
            bodies.append(r.text)
            r = c.get("/" + "x" * 20000, params=params, headers=headers)  # 414 from the proxy
            bodies.append(r.text)
    # the upstream's own credentials: a second sidecar whose upstream URL holds them
    host = clickhouse.http_url.split("://", 1)[1]
    sc2 = start_with_admin(start_sidecar, clickhouse, "--log-level", "debug",
                           "--upstream", f"http://nobody:{URL_PW}@{host}")
    bodies.append(httpx.post(sc2.url + "/", content="SELECT 1").text)

    time.sleep(1.2)  # let the housekeeping write any pending lines
    outputs = {"stderr": sc.stderr_text(), "stderr2": sc2.stderr_text()}
    for s, name in [(sc, ""), (sc2, "2")]:
        outputs["metrics" + name] = httpx.get(s.admin + "/metrics").text
        outputs["status" + name] = httpx.get(s.admin + "/status").text
    outputs["bodies"] = "\n".join(bodies)
    assert " access " in outputs["stderr"] and "client_rejected" in outputs["stderr"]
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} found in {where}"


def test_status_names_tables_whose_retries_are_not_deduplicated(clickhouse, start_sidecar):
    """Where batches carry a dedup token (a server with
    insert_deduplication_token), /status and the log name each batched-into
    table that will not honour it (plain MergeTree without
    non_replicated_deduplication_window); a table that does is not named.
    On a server without the token nothing deduplicates: dedup_token false."""
    sc = start_with_admin(start_sidecar, clickhouse)
    plain, windowed = "nodedup_" + uuid.uuid4().hex[:8], "dedup_" + uuid.uuid4().hex[:8]
    clickhouse.query(f"CREATE TABLE {plain} (id UInt64) ENGINE = MergeTree ORDER BY id")
    settings = "" if clickhouse.kind == "18.16" else " SETTINGS non_replicated_deduplication_window = 100"
    clickhouse.query(f"CREATE TABLE {windowed} (id UInt64) ENGINE = MergeTree ORDER BY id{settings}")
    status = lambda: httpx.get(sc.admin + "/status", timeout=5).json()
    assert rawhttp.wait_until(lambda: status()["batch"]["upstream_version"] != "", 10)
    with httpx.Client(timeout=10) as c:
        for table in (plain, windowed):
            r = c.post(sc.url + "/", params={"query": f"INSERT INTO {table} FORMAT CSV"}, content=b"1\n")
            assert r.status_code == 200, r.text
    batch = status()["batch"]
    if clickhouse.kind == "18.16":
        assert batch["dedup_token"] is False and batch["tables_without_dedup"] == []
        return
    assert batch["dedup_token"] is True
    assert rawhttp.wait_until(lambda: plain in status()["batch"]["tables_without_dedup"], 5), status()
    assert windowed not in status()["batch"]["tables_without_dedup"]
    assert f"table_without_dedup table={plain}" in sc.stderr_text()
