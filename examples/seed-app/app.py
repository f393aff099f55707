"""The seed's app, rebuilt: a FastAPI service that writes one row to
ClickHouse on every request.

It does what clickhouse-connect does by default, which is what hurt the seed:
ONE shared HTTP client (httpx.AsyncClient, keep-alive pool) and ONE
session_id for the whole process, used by every coroutine at once. Straight
to ClickHouse, concurrent requests on that session get code 373 ("Session is
locked by a concurrent client"), and every successful single-row INSERT
makes a new part. Pointed at chsidecar (CLICKHOUSE_URL=http://127.0.0.1:8124)
nothing in the app changes: the sidecar runs the stateless session's
requests concurrently and folds the single-row INSERTs into batches.

Run:  CLICKHOUSE_URL=http://127.0.0.1:8124 python3 -m uvicorn app:app --port 8000
      (from examples/seed-app/; Debian packages python3-fastapi,
      python3-uvicorn, python3-httpx)

Environment:
  CLICKHOUSE_URL    ClickHouse or chsidecar base URL (default http://127.0.0.1:8124)
  SEED_TABLE        table to insert into (default default.seed_events)
  SEED_SESSION_ID   the one session_id (default seed-app-<random>)
  SEED_CREATE_TABLE create the table at start-up if missing (default 1)

Endpoints:
  POST /event  {"user_id": 1, "kind": "click", "seq": 17, "payload": "..."}
               -> 200 {"ok": true}; on a ClickHouse error 500 with its text
  GET  /stats  requests, failures by ClickHouse error code
"""

from __future__ import annotations

import collections
import json
import os
import re
import time
import uuid

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

CLICKHOUSE_URL = os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:8124")
TABLE = os.environ.get("SEED_TABLE", "default.seed_events")
SESSION_ID = os.environ.get("SEED_SESSION_ID") or f"seed-app-{uuid.uuid4()}"
CREATE_TABLE = os.environ.get("SEED_CREATE_TABLE", "1") not in ("0", "false", "no")

if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", TABLE):
    raise SystemExit(f"SEED_TABLE: not a table name: {TABLE!r}")

app = FastAPI(title="seed-app")
# One client and one session for every coroutine, as clickhouse-connect's
# default client (autogenerate_session_id=True) shared by an async app.
client: httpx.AsyncClient | None = None
stats = {"requests": 0, "ok": 0, "failed": 0, "codes": collections.Counter()}


class Event(BaseModel):
    user_id: int
    kind: str
    seq: int = 0
    payload: str = ""


async def clickhouse(sql: str, body: bytes = b"") -> httpx.Response:
    assert client is not None
    return await client.post("/", params={"query": sql, "session_id": SESSION_ID},
                             content=body)


@app.on_event("startup")
async def startup() -> None:
    global client
    client = httpx.AsyncClient(
        base_url=CLICKHOUSE_URL, timeout=60.0,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))
    if CREATE_TABLE:
        r = await clickhouse(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (ts DateTime, user_id UInt64, "
            f"kind String, seq UInt64, payload String) "
            f"ENGINE = MergeTree ORDER BY (kind, ts)")
        r.raise_for_status()


@app.on_event("shutdown")
async def shutdown() -> None:
    if client is not None:
        await client.aclose()


@app.post("/event")
async def event(ev: Event) -> dict:
    stats["requests"] += 1
    row = json.dumps({"ts": time.strftime("%Y-%m-%d %H:%M:%S"), "user_id": ev.user_id, "kind": ev.kind,
                      "seq": ev.seq, "payload": ev.payload})
    try:
        r = await clickhouse(f"INSERT INTO {TABLE} FORMAT JSONEachRow", row.encode())
    except httpx.HTTPError as e:
        stats["failed"] += 1
        stats["codes"]["network"] += 1
        raise HTTPException(status_code=502, detail=f"ClickHouse unreachable: {e!r}")
    if r.status_code != 200:
        m = re.search(r"Code: (\d+)", r.text)
        stats["failed"] += 1
        stats["codes"][m.group(1) if m else f"http_{r.status_code}"] += 1
        raise HTTPException(status_code=500, detail=r.text.strip())
    stats["ok"] += 1
    return {"ok": True}


@app.get("/stats")
async def get_stats() -> dict:
    return {"clickhouse_url": CLICKHOUSE_URL, "table": TABLE,
            "requests": stats["requests"], "ok": stats["ok"],
            "failed": stats["failed"], "failures_by_code": dict(stats["codes"])}
