"""The seed's app (examples/seed-app/) under concurrent load, straight to
ClickHouse and through the sidecar.

The app is FastAPI under Uvicorn with ONE shared httpx.AsyncClient and ONE
session_id for all coroutines (clickhouse-connect's default), inserting one
JSONEachRow row per request. Straight to ClickHouse 18.16 concurrent
requests on that session fail with code 373 and every INSERT is a part;
pointed at chsidecar, with the app unchanged, no request fails, every row is
in the table exactly once, and the rows arrive in fewer parts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
import uuid

import pytest

from netutil import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_DIR = os.path.join(REPO, "examples", "seed-app")
REQUESTS = 300
CONCURRENCY = 50


def _load_module():
    spec = importlib.util.spec_from_file_location("seed_load", os.path.join(APP_DIR, "load.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def seed_load():
    for m in ("fastapi", "uvicorn", "httpx"):
        if importlib.util.find_spec(m) is None:
            pytest.fail(f"python module {m} missing: Debian packages python3-fastapi, "
                        "python3-uvicorn, python3-httpx (scripts/install-deps)", pytrace=False)
    return _load_module()


@pytest.fixture
def start_app(tmp_path):
    procs = []

    def start(clickhouse_url: str, table: str) -> str:
        port = free_port()
        env = dict(os.environ, CLICKHOUSE_URL=clickhouse_url, SEED_TABLE=table,
                   SEED_SESSION_ID=f"seed-{uuid.uuid4()}")
        log = open(tmp_path / f"app{len(procs)}.log", "wb")
        # Keep-alive longer than the load can leave a connection idle while
        # the single event loop is busy, so the load's own connections to the
        # app do not race uvicorn's idle close.
        p = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                              "--port", str(port), "--log-level", "warning",
                              "--timeout-keep-alive", "120"],
                             cwd=APP_DIR, env=env, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
        procs.append((p, log))
        url = f"http://127.0.0.1:{port}"
        import httpx
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if p.poll() is not None:
                pytest.fail(f"seed app exited {p.returncode}:\n"
                            f"{(tmp_path / f'app{len(procs) - 1}.log').read_text()[-3000:]}",
                            pytrace=False)
            try:
                if httpx.get(url + "/stats", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail("seed app did not answer /stats within 20 s", pytrace=False)

    yield start
    for p, log in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def _run(seed_load, app_url: str, ch_url: str, table: str) -> dict:
    res = asyncio.run(seed_load.run_load(app_url, REQUESTS, CONCURRENCY))
    res.update(seed_load.table_counts(ch_url, table))
    return res


def test_seed_app_direct_vs_sidecar(seed_load, start_app, clickhouse, start_sidecar, capsys):
    suffix = uuid.uuid4().hex[:8]
    direct_table = f"default.seed_direct_{suffix}"
    side_table = f"default.seed_sidecar_{suffix}"
    try:
        # 1. Straight to ClickHouse: the shared session gets 373s.
        app = start_app(clickhouse.http_url, direct_table)
        direct = _run(seed_load, app, clickhouse.http_url, direct_table)

        # 2. The same app, unchanged, pointed at the sidecar.
        sc = start_sidecar(clickhouse.http_url)
        app = start_app(sc.url, side_table)
        side = _run(seed_load, app, clickhouse.http_url, side_table)

        with capsys.disabled():
            print(f"\nseed app direct : {direct}\nseed app sidecar: {side}")

        assert direct["failed"] > 0 and direct["failures_by_code"].get("373", 0) > 0, direct
        assert direct["rows"] == direct["ok"], direct
        assert direct["parts_created"] == direct["ok"], direct  # one part per INSERT

        assert side["failed"] == 0, (side, sc.stderr_text()[-3000:])
        assert side["ok"] == REQUESTS
        assert side["rows"] == REQUESTS and side["distinct_seq"] == REQUESTS, side
        assert side["parts_created"] < direct["parts_created"], (direct, side)
        assert side["parts_created"] <= REQUESTS // 3, side  # batched, not row by row
    finally:
        for t in (direct_table, side_table):
            clickhouse.query(f"DROP TABLE IF EXISTS {t}")
