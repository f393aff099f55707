#!/usr/bin/env python3
"""Both runs of the seed app, each against its own fresh ClickHouse (data on
/dev/shm, see PROTOCOL.md on benchmarks): straight to ClickHouse, then
through chsidecar. Prints a Markdown table of the results.

  /usr/bin/python3 examples/seed-app/compare.py [--requests 2000] [--concurrency 100]

Needs the built sidecar (build/proxy/chsidecar or $CHSIDECAR_BIN),
clickhouse-server, python3-fastapi, python3-uvicorn, python3-httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

from clickhouse_server import ClickHouseServer  # noqa: E402
import load  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def start_app(clickhouse_url: str, table: str, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, CLICKHOUSE_URL=clickhouse_url, SEED_TABLE=table)
    p = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                          "--port", str(port), "--log-level", "warning",
                          "--timeout-keep-alive", "120"],
                         cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/stats")
    return p, url


def one_side(name: str, via_sidecar: bool, a, tmp: str) -> dict:
    table = "default.seed_events"
    procs = []
    with ClickHouseServer() as ch:
        try:
            target = ch.http_url
            if via_sidecar:
                bin_ = os.environ.get("CHSIDECAR_BIN") or os.path.join(REPO, "build", "proxy", "chsidecar")
                port, admin = free_port(), free_port()
                sc = subprocess.Popen([bin_, "--upstream", ch.http_url, "--listen", f"127.0.0.1:{port}",
                                       "--admin-listen", f"127.0.0.1:{admin}",
                                       "--spool-dir", os.path.join(tmp, "spool")],
                                      stderr=open(os.path.join(tmp, "sidecar.log"), "wb"))
                procs.append(sc)
                target = f"http://127.0.0.1:{port}"
                wait_http(f"http://127.0.0.1:{admin}/ready")
            app, app_url = start_app(target, table, open(os.path.join(tmp, f"{name}.log"), "wb"))
            procs.insert(0, app)
            res = asyncio.run(load.run_load(app_url, a.requests, a.concurrency))
            time.sleep(0.5)
            res.update(load.table_counts(ch.http_url, table))
            return res
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="seed-compare-") as tmp:
        runs = [("direct to ClickHouse", one_side("direct", False, a, tmp)),
                ("through chsidecar", one_side("sidecar", True, a, tmp))]
    print(f"\n{a.requests} POST /event, {a.concurrency} concurrent, one shared httpx client "
          f"and session_id\n")
    print("| run | ok | failed | failures by code | rows in table | parts created "
          "| active parts | wall s | req/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in runs:
        print(f"| {name} | {r['ok']} | {r['failed']} | {r['failures_by_code'] or '-'} | "
              f"{r['rows']} | {r['parts_created']} | {r['active_parts']} | "
              f"{r['wall_seconds']} | {r['requests_per_second']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
