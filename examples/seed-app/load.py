#!/usr/bin/env python3
"""Load for the seed app: N POST /event requests, C at a time (asyncio +
httpx), then the table's rows and parts, asked of ClickHouse directly.

  python3 load.py --app http://127.0.0.1:8000 --clickhouse http://127.0.0.1:8123 \
      --table default.seed_events --requests 2000 --concurrency 100 [--json]

Prints a summary (and with --json one JSON object as the last line):
requests, ok, failed, failures by ClickHouse code (from the app's error
text), wall time, rows in the table, distinct seq values, active parts, and
parts created (the table's highest block number: every INSERT that reached
ClickHouse allocated one, merges do not).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import time

import httpx


async def run_load(app: str, requests: int, concurrency: int, seq0: int = 0) -> dict:
    codes: collections.Counter = collections.Counter()
    ok = failed = 0
    next_seq = iter(range(seq0, seq0 + requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=app, timeout=120.0, limits=limits) as c:
        async def worker() -> None:
            nonlocal ok, failed
            for seq in next_seq:
                ev = {"user_id": seq % 97, "kind": "click", "seq": seq, "payload": f"event {seq}"}
                try:
                    r = await c.post("/event", json=ev)
                except httpx.HTTPError as e:
                    failed += 1
                    codes[type(e).__name__] += 1
                    continue
                if r.status_code == 200:
                    ok += 1
                else:
                    failed += 1
                    m = re.search(r"Code: (\d+)", r.text)
                    codes[m.group(1) if m else f"http_{r.status_code}"] += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.monotonic() - t0
    return {"requests": requests, "concurrency": concurrency, "ok": ok, "failed": failed,
            "failures_by_code": dict(codes), "wall_seconds": round(wall, 3),
            "requests_per_second": round(requests / wall, 1) if wall else None}


def table_counts(clickhouse: str, table: str) -> dict:
    db, _, name = table.rpartition(".")
    db = db or "default"
    with httpx.Client(base_url=clickhouse, timeout=30.0) as c:
        def q(sql: str) -> str:
            r = c.post("/", content=sql.encode())
            r.raise_for_status()
            return r.text.strip()
        rows, distinct = q(f"SELECT count(), uniqExact(seq) FROM {table}").split("\t")
        active, created = q(
            f"SELECT countIf(active), max(max_block_number) FROM system.parts "
            f"WHERE database = '{db}' AND table = '{name}'").split("\t")
    return {"rows": int(rows), "distinct_seq": int(distinct),
            "active_parts": int(active), "parts_created": int(created or 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--app", required=True, help="seed app base URL")
    ap.add_argument("--clickhouse", required=True, help="ClickHouse base URL (for counting)")
    ap.add_argument("--table", default="default.seed_events")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds to wait before counting (lets batches land)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON too")
    a = ap.parse_args()
    res = asyncio.run(run_load(a.app, a.requests, a.concurrency))
    time.sleep(a.settle)
    res.update(table_counts(a.clickhouse, a.table))
    print(f"{a.app}: {res['requests']} requests, concurrency {res['concurrency']}: "
          f"ok {res['ok']}, failed {res['failed']} {res['failures_by_code']}, "
          f"{res['wall_seconds']} s ({res['requests_per_second']} req/s); table {a.table}: "
          f"rows {res['rows']} (distinct seq {res['distinct_seq']}), "
          f"parts created {res['parts_created']}, active parts {res['active_parts']}")
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
