"""A real client through the sidecar: @clickhouse/client (npm, 1.x) on node.

tests/integration/node/ holds package.json (the client pinned to a 1.x
version that still runs on Debian 12's node 18), its package-lock.json and
client_check.js, which runs each step and prints one JSON line per step.
The package is installed with npm into tests/integration/node/node_modules
(gitignored) on the first run and reused afterwards. The test is skipped,
saying why, only when that install is needed and npm cannot reach its
registry; a missing node/npm is a failure (scripts/install-deps installs
them).

Steps (all through the sidecar, formats explicit as 18.16 needs): ping,
query JSONEachRow, insert of many rows (one 20,000-row insert plus 50
concurrent small ones on a shared client), stream a large result, and a
client with a fixed session_id using a temporary table with concurrent
queries on it (ClickHouse alone answers those with code 373) and SET.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import uuid

import pytest

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
STREAM_ROWS = 200_000
INSERT_ROWS = 20_000

# npm's own output that means "the registry is not reachable from here".
_OFFLINE_MARKERS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT",
                    "ECONNRESET", "ENETUNREACH", "network request", "EHOSTUNREACH")


def _wanted_version() -> str:
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        return json.load(f)["dependencies"]["@clickhouse/client"]


def _installed_version() -> str | None:
    try:
        with open(os.path.join(NODE_DIR, "node_modules", "@clickhouse",
                               "client", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def node_client_dir() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed (Debian packages nodejs, npm; "
                    "scripts/install-deps installs them)", pytrace=False)
    # One installer at a time (parallel test runs share the directory).
    with open(os.path.join(NODE_DIR, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version() != _wanted_version():
            has_lock = os.path.exists(os.path.join(NODE_DIR, "package-lock.json"))
            cmd = [npm, "ci" if has_lock else "install", "--no-audit",
                   "--no-fund", "--loglevel=error"]
            try:
                r = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True,
                                   text=True, timeout=180)
            except subprocess.TimeoutExpired:
                pytest.skip("npm install timed out: npm registry unreachable? "
                            f"(run `{' '.join(cmd)}` in {NODE_DIR})")
            if r.returncode != 0:
                out = r.stdout + r.stderr
                if any(m in out for m in _OFFLINE_MARKERS):
                    pytest.skip("npm registry unreachable, cannot install "
                                f"@clickhouse/client: {out.strip()[-300:]}")
                pytest.fail(f"{' '.join(cmd)} failed:\n{out[-3000:]}", pytrace=False)
        assert _installed_version() == _wanted_version()
    return NODE_DIR


def _run_steps(url: str, table: str, stream_rows: int, insert_rows: int):
    r = subprocess.run(["node", "client_check.js", url, table,
                        str(stream_rows), str(insert_rows)],
                       cwd=NODE_DIR, capture_output=True, text=True, timeout=90)
    steps = {}
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            steps[d["step"]] = d
    return r, steps


def test_node_client_through_sidecar(node_client_dir, clickhouse, sidecar):
    table = f"default.node_{uuid.uuid4().hex[:8]}"
    clickhouse.query(f"CREATE TABLE {table} (id UInt64, name String) "
                     "ENGINE = MergeTree ORDER BY id")
    try:
        r, steps = _run_steps(sidecar.url, table, STREAM_ROWS, INSERT_ROWS)
        expected = ["ping", "query_json_each_row", "insert_many_rows",
                    "stream_large_result", "session_temp_table",
                    "session_set_setting"]
        bad = {k: v for k, v in steps.items() if not v["ok"]}
        assert not bad and r.returncode == 0 and list(steps) == expected, (
            f"node client steps failed: {json.dumps(bad, indent=1)}\n"
            f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\n"
            f"stderr:\n{r.stderr[-3000:]}\n"
            f"sidecar stderr:\n{sidecar.stderr_text()[-3000:]}")
        assert steps["stream_large_result"]["rows"] == STREAM_ROWS
        assert steps["insert_many_rows"]["rows"] == INSERT_ROWS + 500
        # Every row is in ClickHouse, asked directly.
        n = int(clickhouse.query(f"SELECT count() FROM {table}"))
        assert n == INSERT_ROWS + 500
    finally:
        clickhouse.query(f"DROP TABLE IF EXISTS {table}")


def test_node_client_session_direct_gets_373(node_client_dir, clickhouse):
    """The control: the same session steps straight to ClickHouse (18.16, 26.7) fail
    with code 373, which is what the sidecar removes."""
    table = f"default.node_{uuid.uuid4().hex[:8]}"
    clickhouse.query(f"CREATE TABLE {table} (id UInt64, name String) "
                     "ENGINE = MergeTree ORDER BY id")
    try:
        r, steps = _run_steps(clickhouse.http_url, table, 1000, 100)
        assert steps["ping"]["ok"] and steps["query_json_each_row"]["ok"]
        st = steps["session_temp_table"]
        # 18.16's message says "Code: 373"; with 26.7 the client reports the
        # code apart (from X-ClickHouse-Exception-Code) and a bare message
        assert not st["ok"] and ("373" in st["error"] or str(st.get("code")) == "373"), st
    finally:
        clickhouse.query(f"DROP TABLE IF EXISTS {table}")
