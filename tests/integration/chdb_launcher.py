#!/usr/bin/python3
"""Run ClickHouse 26.7 as an HTTP server out of libchdb.so (clickhouse-local
as a library), for the tests. Started as its own process by chdb_server.py.

libchdb.so exports chdb_query_cmdline(argc, argv), which runs the whole
clickhouse-local program in-process. We call it with

    clickhouse --config-file=CONFIG --path=DIR --listen_host=HOST
               --http_port=P --tcp_port=Q --query_id=ID
               --query="SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP;
                        SELECT sleepEachRow(1) FROM numbers(N)
                        SETTINGS max_block_size=1 FORMAT Null"

clickhouse-local then serves ClickHouse's own HTTP (and native) handlers on
P (and Q) for as long as the last query runs: N seconds (default: about 30
years). The config file gives it the users (users_config), keep_alive_timeout
and the session limits, as for clickhouse-server.

Stopping: SIGTERM, SIGINT or SIGHUP make this process send
`KILL QUERY WHERE query_id = ID` to its own HTTP port; the keep-alive query
ends, chdb_query_cmdline returns, and the process exits 0 (1 if the call
failed for another reason, 2 if the server did not stop within --stop-grace
seconds). SIGKILL is a crash, as for clickhouse-server.

The call runs in a second thread so that the main thread stays in the
interpreter and Python's signal handlers run. Standard library only.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request

DEFAULT_LIB = os.path.join(
    os.environ.get("CHSIDECAR_CHDB_DIR", "/var/cache/chsidecar/chdb-26.7.3"),
    "node_modules", "@chdb", "lib-linux-x64-gnu", "libchdb.so")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=os.environ.get("CHSIDECAR_CHDB_LIB") or DEFAULT_LIB)
    ap.add_argument("--config-file", required=True)
    ap.add_argument("--path", required=True, help="data directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--tcp-port", type=int, required=True)
    ap.add_argument("--query-id", default="chsidecar-keepalive")
    ap.add_argument("--seconds", type=int, default=10**9,
                    help="serve for at most this long")
    ap.add_argument("--setup-sql", default="",
                    help="statements run before the listeners start")
    ap.add_argument("--log-level", default="information")
    ap.add_argument("--stop-grace", type=float, default=10.0)
    args = ap.parse_args()

    lib = ctypes.CDLL(args.lib)
    lib.chdb_query_cmdline.restype = ctypes.c_void_p
    lib.chdb_query_cmdline.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    lib.chdb_result_error.restype = ctypes.c_char_p
    lib.chdb_result_error.argtypes = [ctypes.c_void_p]

    setup = args.setup_sql.strip().rstrip(";")
    sql = ((setup + "; ") if setup else "") + (
        "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
        f"SELECT sleepEachRow(0.25) FROM numbers({args.seconds * 4}) "
        "SETTINGS max_block_size = 1 FORMAT Null")
    argv_s = ["clickhouse", f"--config-file={args.config_file}",
              f"--path={args.path}", f"--listen_host={args.host}",
              f"--http_port={args.http_port}", f"--tcp_port={args.tcp_port}",
              f"--query_id={args.query_id}", f"--log-level={args.log_level}",
              f"--query={sql}"]
    argv = (ctypes.c_char_p * (len(argv_s) + 1))(*[a.encode() for a in argv_s], None)

    outcome: dict = {}
    stopping = threading.Event()

    def run() -> None:
        res = lib.chdb_query_cmdline(len(argv_s), argv)
        err = lib.chdb_result_error(res) if res else b"chdb_query_cmdline returned NULL"
        outcome["error"] = err.decode("utf-8", "replace") if err else None

    def request_stop(signum, _frame) -> None:
        if stopping.is_set():
            return
        stopping.set()
        q = f"KILL QUERY WHERE query_id = '{args.query_id}' ASYNC"
        url = f"http://{args.host}:{args.http_port}/?" + urllib.parse.urlencode({"query": q})
        try:
            with _opener.open(urllib.request.Request(url, data=b"", method="POST"),
                              timeout=5) as r:
                r.read()
        except Exception as e:  # the thread's timeout below still applies
            print(f"chdb_launcher: KILL QUERY failed: {e}", file=sys.stderr, flush=True)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, request_stop)

    t = threading.Thread(target=run, name="chdb", daemon=True)
    t.start()
    deadline = None
    while t.is_alive():
        t.join(0.2)
        if stopping.is_set() and deadline is None:
            deadline = time.monotonic() + args.stop_grace
        if deadline is not None and time.monotonic() > deadline and t.is_alive():
            print("chdb_launcher: server did not stop in time", file=sys.stderr, flush=True)
            sys.stderr.flush()
            os._exit(2)
    err = outcome.get("error")
    sys.stdout.flush()
    if err and not (stopping.is_set() and "QUERY_WAS_CANCELLED" in err):
        print(f"chdb_launcher: {err.strip()}", file=sys.stderr, flush=True)
        os._exit(1)
    if not stopping.is_set():
        os._exit(0)  # the N seconds are over
    # Skip interpreter and library teardown: clickhouse-local has already
    # shut its server down; its static destructors need not run.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
