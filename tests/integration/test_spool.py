"""The disk spool (issue 4), against a real ClickHouse 18.16.

What a user checks: an INSERT answered 200 from the spool
(wait_for_async_insert=0) reaches ClickHouse after a kill -9 of the sidecar,
a torn or corrupt spool, a ClickHouse outage, a TOO_MANY_PARTS storm; a row
ClickHouse refuses on its own goes to dead-letter.jsonl and does not block
its table; a spool directory that cannot take writes is refused clearly.
Faults on the wire (a TCP relay between the sidecar and ClickHouse) are in
test_faults.py.

18.16 has no insert_deduplication_token: delivery after a crash is
at-least-once, so duplicates are counted and reported ([measured] lines),
never asserted to be zero; a missing acknowledged row always fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
import httpx
import pytest

from fault_relay import FaultRelay
from metrics_text import fetch_metrics, value
from netutil import free_port
import rawhttp
from rawhttp import RawConn, report, uniq
from spool_format import crc32c
from spool_load import (RETRY_RE, Load, duplicates, id_counts, kill_rounds,
                        spool_opened, wait_present)

KILL_ROUNDS = int(os.environ.get("CHSIDECAR_KILL_ROUNDS", "20"))
SPOOLED = {"wait_for_async_insert": "0"}
MAGIC = b"CHSR"


# -- helpers ---------------------------------------------------------------------

# These tests are about the spool itself: their first spooled INSERTs are
# answered early although no batch of them committed yet (some while
# ClickHouse is unreachable from the start). Proof before an early answer
# (--early-ack-proof) has tests of its own.
TRUSTED = ("--early-ack-proof", "0")


def make_table(ch, name: str, columns: str = "id UInt64, r UInt32",
               settings: str = "") -> str:
    ch.query(f"CREATE TABLE {name} ({columns}) ENGINE = MergeTree ORDER BY id {settings}")
    return name


def count(ch, table: str) -> int:
    return int(ch.query(f"SELECT count() FROM {table}").decode())


def post(url: str, table: str, body: bytes, params=None, timeout: float = 10.0):
    """One INSERT; returns (status, headers, body)."""
    qs = {"query": f"INSERT INTO {table} FORMAT JSONEachRow", **(params or {})}
    req = urllib.request.Request(url + "/?" + urllib.parse.urlencode(qs), data=body,
                                 method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for(pred, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


END_MARK = 12  # zeros after each write of records


DATA_RECORD = 1  # the payload's first byte; commit and batch records name ids


def parse_records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, total length, type) of each valid framed record of a segment
    (magic "CHSR", u32 payload length, u32 CRC-32C, payload)."""
    out, pos = [], 0
    while pos + 13 <= len(data) and data[pos:pos + 4] == MAGIC:
        (n,) = struct.unpack_from("<I", data, pos + 4)
        if pos + 12 + n > len(data):
            break
        out.append((pos, 12 + n, data[pos + 12]))
        pos += 12 + n
    return out


def segments(spool_dir) -> list[str]:
    return sorted(p for p in os.listdir(spool_dir) if p.startswith("segment-"))


# -- answer order on one connection -------------------------------------------------

def test_pipelined_spooled_and_committed_inserts_answered_in_order(clickhouse, sidecar):
    """One write carrying spooled and committed INSERTs, a bad one and
    queries between them: every answer comes back in request order (a
    batched answer goes out the moment it is ready, so the order is the
    connection's to keep), and the good rows land once."""
    table = make_table(clickhouse, uniq("pipe"))

    def insert(rows: bytes, params: dict) -> bytes:
        qs = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT JSONEachRow",
                                     **params})
        return rawhttp.post("/?" + qs, rows)

    reqs = [
        insert(b'{"id":1,"r":1}\n', SPOOLED),
        rawhttp.get("/?query=SELECT%20'a'"),
        insert(b'{"id":2,"r":2}\n', {}),                    # ack after commit
        insert(b'{"id":3 "r":3}\n', SPOOLED),  # not JSON: ClickHouse's answer, alone
        rawhttp.get("/ping"),
        insert(b'{"id":4,"r":4}\n{"id":5,"r":5}\n', SPOOLED),
        rawhttp.get("/?query=SELECT%20'b'"),
    ]
    with RawConn(sidecar.url, timeout=30) as c:
        c.send(b"".join(reqs))
        got = [c.read_response() for _ in reqs]
    assert [r.status for r in got] == [200, 200, 200, got[3].status, 200, 200, 200] \
        and got[3].status in (400, 500), \
        [(r.status, r.body[:200]) for r in got]
    assert [got[i].body for i in (0, 1, 2, 4, 5, 6)] == \
        [b"", b"a\n", b"", b"Ok.\n", b"", b"b\n"]
    assert got[3].body.startswith(b"Code: "), got[3].body  # ClickHouse's own error
    assert wait_for(lambda: count(clickhouse, table) >= 4, 10)
    time.sleep(0.3)  # nothing more arrives
    assert clickhouse.query(f"SELECT id FROM {table} ORDER BY id FORMAT TSV") == b"1\n2\n4\n5\n"


# -- an early answer asked for, on an INSERT that is not batched ----------------------

def test_unbatched_early_ack_insert_is_committed_not_refused(clickhouse, start_sidecar,
                                                              tmp_path):
    """An INSERT asking for an early answer that the sidecar sends on as it
    is (here: as many rows as --passthrough-rows, a batch already) goes to
    a server without async inserts without those settings, which it would
    refuse (code 115): it is answered once committed, whatever its size,
    also when the connection's previous INSERT was batched."""
    sc = start_sidecar(clickhouse.http_url, "--passthrough-rows", "10",
                       "--spool-dir", str(tmp_path / "spool"))
    table = make_table(clickhouse, uniq("unbatched"))
    rows = lambda first, n: b"".join(b'{"id":%d,"r":1}\n' % i for i in range(first, first + n))
    early = [SPOOLED, {"async_insert": "1", "wait_for_async_insert": "0",
                       "async_insert_busy_timeout_ms": "100"}]
    for i, params in enumerate(early):
        status, _, body = post(sc.url, table, rows(100 * i, 20), params)
        assert (status, body) == (200, b""), body[:300]
        assert count(clickhouse, table) == 20 * (i + 1)  # committed before the answer
    # One connection: a batched INSERT, then the same URL with a batch's worth
    # of rows (the connection's remembered plan passes it on).
    qs = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT JSONEachRow", **SPOOLED})
    with RawConn(sc.url, timeout=30) as c:
        for body in (rows(1000, 1), rows(2000, 20)):
            r = c.request(rawhttp.post("/?" + qs, body), "POST")
            assert (r.status, r.body) == (200, b""), r.body[:300]
    assert wait_for(lambda: count(clickhouse, table) == 61, 10)


# -- kill -9 in the middle of a spooled load ----------------------------------------

def test_ack_spool_flag_and_wait_for_async_insert_1(clickhouse, start_sidecar, tmp_path):
    """--ack spool answers a plain INSERT once its rows are on disk (here
    while ClickHouse cannot be reached at all, once a batch of that INSERT
    committed before); a request that asks for wait_for_async_insert=1
    still waits for the commit, and gets an error when there is none. Both
    kinds land once ClickHouse is back."""
    table = make_table(clickhouse, uniq("spool_flag"))
    spool_dir = tmp_path / "spool"
    relay = FaultRelay("127.0.0.1", clickhouse.http_port).start()
    try:
        sc = start_sidecar(relay.url, "--ack", "spool", "--spool-dir", str(spool_dir),
                           "--upstream-timeout", "1s")
        st, _, body = post(sc.url, table, b'{"id":0,"r":1}\n')  # proves the INSERT
        assert st == 200, body
        relay.set("refuse")
        st, _, body = post(sc.url, table, b'{"id":1,"r":1}\n')
        assert st == 200, body
        st, _, body = post(sc.url, table, b'{"id":2,"r":1}\n', {"wait_for_async_insert": "1"})
        assert st in (503, 504) and body.startswith(b"Code: "), (st, body)
        sc.stop()
    finally:
        relay.stop()
    sc2 = start_sidecar(clickhouse.http_url, "--spool-dir", str(spool_dir))
    assert wait_for(lambda: id_counts(clickhouse, table) == {0: 1, 1: 1}, 10), \
        id_counts(clickhouse, table)
    sc2.stop()


def test_early_answer_only_for_an_insert_clickhouse_takes(clickhouse, start_sidecar, tmp_path):
    """With wait_for_async_insert=0, an INSERT ClickHouse refuses as a whole
    (wrong password, unknown user, readonly user, a user without access to
    the table, no such table) gets
    ClickHouse's own error, never an early 200, and nothing is dead-lettered;
    the same INSERT with good credentials is answered early from its second
    request on (the first one's commit proves it)."""
    table = make_table(clickhouse, uniq("spool_proof"))
    spool_dir = tmp_path / "spool"
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(spool_dir))
    refused = [({"user": "alice", "password": "wrong"}, table),
               ({"user": "nobody"}, table),
               ({"user": "readonly"}, table),
               ({"user": "noinsert"}, table),  # no access to the table's database
               ({}, uniq("no_such_table"))]
    for i, (creds, target) in enumerate(refused):
        for attempt in range(3):
            direct = post(clickhouse.http_url, target, b'{"id":%d,"r":1}\n' % (100 + i), creds)
            st, _, body = post(sc.url, target, b'{"id":%d,"r":1}\n' % (100 + i), {**creds, **SPOOLED})
            assert (st, body.split(b",")[0].split(b".")[0]) == \
                (direct[0], direct[2].split(b",")[0].split(b".")[0]), (creds, st, body, direct)
            assert st != 200
    for i in range(5):
        st, _, body = post(sc.url, table, b'{"id":%d,"r":1}\n' % i, SPOOLED)
        assert st == 200, body
    assert wait_for(lambda: id_counts(clickhouse, table) == {i: 1 for i in range(5)}, 10), \
        id_counts(clickhouse, table)
    assert not (spool_dir / "dead-letter.jsonl").exists()
    m = fetch_metrics(sc.admin_url)
    assert value(m, "chsidecar_rows_dead_lettered_total") == 0


def steady_load_fsyncs(clickhouse, sc, table: str, writers: int, seconds: float):
    """(requests acknowledged, spool fsyncs) under `writers` steady spooled
    writers for `seconds`; every acknowledged row is checked in ClickHouse."""
    before = fetch_metrics(sc.admin_url)
    load = Load(sc.url, table, first_id=1, concurrency=writers, params=SPOOLED).run(seconds)
    assert wait_for(lambda: count(clickhouse, table) == len(load.acked), 10)
    fsyncs = (value(fetch_metrics(sc.admin_url), "chsidecar_spool_fsyncs_total")
              - value(before, "chsidecar_spool_fsyncs_total"))
    return len(load.acked), fsyncs


def test_group_commit_and_private_files(clickhouse, start_sidecar, tmp_path):
    """Concurrent spooled INSERTs share fsyncs; the spool directory is the
    sidecar's alone (0700, files 0600); the start-up line says whether the
    server deduplicates retries by token (18.16 does not)."""
    table = make_table(clickhouse, uniq("spool_group"))
    spool_dir = tmp_path / "spool"
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(spool_dir))
    acked, fsyncs = steady_load_fsyncs(clickhouse, sc, table, 32, 2.0)
    assert acked > 200 and 0 < fsyncs < acked / 2, (acked, fsyncs)
    assert os.stat(spool_dir).st_mode & 0o777 == 0o700
    assert all(os.stat(spool_dir / f).st_mode & 0o777 == 0o600 for f in os.listdir(spool_dir))
    version = clickhouse.query("SELECT version()").decode().strip()
    if clickhouse.kind == "18.16":
        assert re.search(rf"upstream_without_dedup_token upstream=\S+ version={re.escape(version)} ",
                         sc.stderr_text())
    else:  # 26.7 has insert_deduplication_token
        assert re.search(rf"upstream_version upstream=\S+ version={re.escape(version)} "
                         rf"insert_deduplication_token=yes\b", sc.stderr_text())
    sc.stop()


def test_group_wait_gathers_steady_writers_into_fewer_fsyncs(clickhouse, start_sidecar, tmp_path,
                                                             capsys):
    """Steady concurrent writers share fsyncs: the next group waits (up to
    --spool-group-wait) for half as many requests as the spool held when the
    last group was durable, so its groups are larger than with 0, where each
    group is written at once, as small as the arrivals during one fsync.
    (With these slow Python writers the groups hold about 5 of the 16, not
    the 8 that fast ones reach: the unit tests pin the rule itself.)"""
    writers = 16
    per_fsync = {}
    for wait in ("0", "500ms"):
        table = make_table(clickhouse, uniq("spool_group_wait"))
        sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(tmp_path / f"spool-{wait}"),
                           "--spool-group-wait", wait)
        acked, fsyncs = steady_load_fsyncs(clickhouse, sc, table, writers, 2.0)
        assert acked and fsyncs, (acked, fsyncs)
        per_fsync[wait] = acked / fsyncs
        sc.stop()
    report(capsys, f"{writers} writers: requests per fsync "
                   f"{per_fsync['0']:.1f} without the group wait, {per_fsync['500ms']:.1f} with it")
    assert per_fsync["500ms"] > per_fsync["0"], per_fsync


def test_writers_that_leave_hold_the_group_only_for_the_wait(clickhouse, start_sidecar,
                                                              tmp_path):
    """A lone writer is never held by the group wait (it is the whole group);
    when steady writers leave, the one that stays waits at most once for
    them, for --spool-group-wait, and then no more."""
    table = make_table(clickhouse, uniq("spool_group_leave"))
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(tmp_path / "spool"),
                       "--spool-group-wait", "2s")

    def answer_times(first_id: int, n: int) -> list[float]:
        times = []
        for i in range(first_id, first_id + n):
            t0 = time.monotonic()
            status, _, body = post(sc.url, table, b'{"id":%d,"r":0}\n' % i, SPOOLED)
            assert status == 200, body
            times.append(time.monotonic() - t0)
        return times

    alone = answer_times(1_000_000, 10)
    assert max(alone) < 1.0, alone  # a 2 s group wait would show
    load = Load(sc.url, table, first_id=1, concurrency=16, params=SPOOLED).run(1.0)
    after = answer_times(2_000_000, 10)
    assert max(after) < 5.0 and sum(after[1:]) < 1.0, after
    assert wait_for(lambda: count(clickhouse, table) == len(load.acked) + 20, 10)
    sc.stop()


def test_kill9_during_spooled_load(clickhouse, start_sidecar, tmp_path, capsys):
    """KILL_ROUNDS times: ~0.3-1 s of 32 concurrent single-row spooled
    writers, then SIGKILL; each restart replays on the same --spool-dir.
    Every id answered 200 must be in ClickHouse at the end. Small segments,
    so that kills land around rotations and reused segment files."""
    table = make_table(clickhouse, uniq("spool_kill"))
    spool_dir = tmp_path / "spool"
    seed = random.randrange(1 << 30)

    def launch():
        return start_sidecar(clickhouse.http_url, "--spool-dir", str(spool_dir),
                             "--spool-segment-bytes", "64KiB")

    s = kill_rounds(clickhouse, table, launch, KILL_ROUNDS, seed=seed)
    report(capsys, f"kill -9 x{s['rounds']} (seed {seed}): acked={s['acked']} "
                   f"missing={len(s['missing'])} duplicates={s['duplicates']} "
                   f"rows={s['rows']} unanswered={s['unanswered']} "
                   f"(of which landed: {s['unanswered_present']}) other answers={s['errors']}")
    report(capsys, f"duplicates per round: {s['dup_by_round']}")
    report(capsys, f"replay_records at each start: {s['replays'][1:]} "
                   f"final start: {s['final_replay']}")
    assert s["acked"] > 0
    assert not s["missing"], (f"{len(s['missing'])} acknowledged ids are not in ClickHouse, "
                              f"e.g. {s['missing'][:10]}")
    assert not s["unexpected_ids"], ("rows whose request got an HTTP error landed: "
                                     f"{s['unexpected_ids']}")
    assert s["final_rc"] == 0, "the last sidecar did not drain and exit 0 on SIGTERM"
    # After a clean drain every record is known committed: nothing to replay.
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(spool_dir))
    opened = wait_for(lambda: spool_opened(sc.stderr_text()), 5)
    before = count(clickhouse, table)
    time.sleep(1.0)
    sc.stop()
    report(capsys, f"start after the clean drain: {opened}; segments left: "
                   f"{segments(spool_dir)}")
    assert opened is not None and opened["replay_records"] == 0, opened
    assert count(clickhouse, table) == before


def test_kill9_inserts_nothing_twice_where_the_server_deduplicates(clickhouse, start_sidecar,
                                                                    tmp_path, capsys):
    """On a server with insert_deduplication_token, into a table that
    deduplicates (non_replicated_deduplication_window > 0): kill -9 rounds
    under spooled load, and no acknowledged row lands twice (a batch in
    flight at a kill is replayed as the same request, with the same token)."""
    if clickhouse.kind == "18.16":
        pytest.skip("18.16 has no insert_deduplication_token: a replay is at-least-once there")
    table = uniq("spool_kill_dedup")
    clickhouse.query(f"CREATE TABLE {table} (id UInt64, r UInt32) ENGINE = MergeTree ORDER BY id "
                     f"SETTINGS non_replicated_deduplication_window = 1000")
    spool_dir = tmp_path / "spool"
    seed = random.randrange(1 << 30)

    def launch():
        return start_sidecar(clickhouse.http_url, "--spool-dir", str(spool_dir),
                             "--spool-segment-bytes", "64KiB")

    s = kill_rounds(clickhouse, table, launch, 8, seed=seed)
    report(capsys, f"kill -9 x{s['rounds']} on {clickhouse.kind} (seed {seed}), dedup window set: "
                   f"acked={s['acked']} missing={len(s['missing'])} duplicates={s['duplicates']} "
                   f"rows={s['rows']}")
    assert s["acked"] > 0
    assert not s["missing"], s["missing"][:10]
    assert s["duplicates"] == 0, s["dup_by_round"]


def _inserts(relay: FaultRelay) -> list[tuple[bytes, bytes]]:
    """(request line, body) of each INSERT the relay saw, in order."""
    return [(head.split(b"\r\n", 1)[0], body) for head, body in list(relay.captured)
            if b"INSERT" in head]


def test_batches_in_flight_at_a_kill_are_sent_again_as_they_were(clickhouse, start_sidecar,
                                                                  tmp_path, capsys):
    """Batches sent but never answered when the sidecar is killed go out
    again after the restart as the very same requests (request line and
    body), not regrouped (three bursts of 2, 3 and 4 rows, a batch each):
    where the server deduplicates (the token, or a replicated table's block
    hash) a batch in flight at a crash is inserted once. Rows that were in no batch yet are batched anew. A relay records
    what reaches ClickHouse's port and swallows the INSERTs before the kill."""
    table = make_table(clickhouse, uniq("spool_resend"))
    spool_dir = tmp_path / "spool"
    args = ("--spool-dir", str(spool_dir), "--flush-delay-min", "200ms", "--flush-delay-max",
            "200ms", "--max-parts-per-second", "1000", "--max-inflight-flushes", "8")
    with FaultRelay("127.0.0.1", clickhouse.http_port, capture=True) as relay:
        relay.set("blackhole", only=b"INSERT")
        sc = start_sidecar(relay.url, *TRUSTED, *args)
        next_id = 1
        for burst, rows in enumerate((2, 3, 4)):  # a batch each, flushed by the delay
            for _ in range(rows):
                st, _, text = post(sc.url, table, b'{"id":%d,"r":%d}\n' % (next_id, burst),
                                   SPOOLED)
                assert st == 200, (st, text)
                next_id += 1
            assert wait_for(lambda: len(_inserts(relay)) >= burst + 1, 10), _inserts(relay)
        # Two rows in no batch yet: the kill comes within their flush delay.
        for _ in range(2):
            st, _, text = post(sc.url, table, b'{"id":%d,"r":9}\n' % next_id, SPOOLED)
            assert st == 200, (st, text)
            next_id += 1
        sc.stop(signal.SIGKILL)
        sent = _inserts(relay)
        relay.captured.clear()
        relay.set("pass")
        sc2 = start_sidecar(relay.url, *TRUSTED, *args)
        missing, counts = wait_present(clickhouse, table, range(1, next_id), 15)
        opened = spool_opened(sc2.stderr_text())
        resent = _inserts(relay)
        sc2.stop()
    report(capsys, f"kill with batches in flight: {len(sent)} sent before it, {len(resent)} "
                   f"after the restart; start-up: {opened}")
    assert not missing, missing
    assert all(n == 1 for n in counts.values()), counts
    assert len(sent) >= 3, sent  # one per burst at least (a slow machine may split one)
    # Every batch that went out before the kill goes out again, byte for byte;
    # the other requests carry only rows that were in none of them (batched anew).
    rest = list(resent)
    for request in sent:
        assert request in rest, (request, resent)
        rest.remove(request)
    ids_of = lambda requests: sorted(int(i) for _, body in requests
                                     for i in re.findall(rb'"id":(\d+)', body))
    assert sorted(ids_of(sent) + ids_of(rest)) == list(range(1, next_id)), (sent, resent)
    # (one more if a batch was on its way through the relay at the kill)
    assert opened is not None and opened["replay_batches"] >= len(sent), opened


def _segments_started(sc, how: str) -> float:
    return value(fetch_metrics(sc.admin_url), "chsidecar_spool_segments_total", how=how)


def test_done_segments_are_reused_and_replayed_right(clickhouse, start_sidecar, tmp_path,
                                                     capsys):
    """Small segments under a spooled load with ClickHouse up: done segments
    are renamed and written over (spool_segments_total{how="reused"}), the
    directory stays small, and after a kill -9 the restart replays only what
    was written for each segment's current number: every acked row is
    present. After a clean stop nothing is replayed: the segment kept for
    reuse (spare.log) never brings committed rows back."""
    table = make_table(clickhouse, uniq("spool_reuse"))
    spool_dir = tmp_path / "spool"
    args = ("--spool-dir", str(spool_dir), "--spool-segment-bytes", "64KiB")
    sc = start_sidecar(clickhouse.http_url, *args)
    load = Load(sc.url, table, first_id=1, concurrency=16, params=SPOOLED).start()
    wait_for(lambda: _segments_started(sc, "reused") >= 5, 20)
    reused = _segments_started(sc, "reused")
    created = _segments_started(sc, "new")
    files = segments(spool_dir)
    sc.stop(signal.SIGKILL)
    load.stop()
    sc2 = start_sidecar(clickhouse.http_url, *args)
    opened = wait_for(lambda: spool_opened(sc2.stderr_text()), 5)
    missing, counts = wait_present(clickhouse, table, load.acked, 20)
    time.sleep(0.5)
    counts = id_counts(clickhouse, table)
    rc = sc2.stop()
    sc3 = start_sidecar(clickhouse.http_url, *args)
    reopened = wait_for(lambda: spool_opened(sc3.stderr_text()), 5)
    time.sleep(0.5)
    after_clean_stop = count(clickhouse, table)
    sc3.stop()
    report(capsys, f"segment reuse (64 KiB segments): {reused:.0f} reused, {created:.0f} new, "
                   f"files at the kill: {len(files)}; acked={len(load.acked)} "
                   f"missing={len(missing)} duplicates={duplicates(counts)}; restart: {opened}; "
                   f"after a clean stop: {reopened}, spare kept: "
                   f"{(spool_dir / 'spare.log').exists()}")
    assert reused >= 5, (reused, created)
    assert len(files) <= 4, files  # done segments are reused or deleted, not kept
    assert opened is not None and opened["damaged_segments"] == 0, opened
    assert not missing, f"{len(missing)} acked rows missing"
    assert set(counts) <= set(range(1, load.next_id)), "rows that were never sent"
    assert rc == 0
    assert reopened is not None and reopened["replay_records"] == 0, reopened
    assert after_clean_stop == sum(counts.values())


# -- torn tail ------------------------------------------------------------------------

def _spool_records_offline(start_sidecar, spool_dir, table: str, n: int) -> list[list[int]]:
    """Writes n spooled requests (3 rows each) through a sidecar whose upstream
    refuses connections, so nothing commits; SIGKILL. Returns the ids of
    each request in spool order."""
    dead = f"http://127.0.0.1:{free_port()}"
    sc = start_sidecar(dead, *TRUSTED, "--spool-dir", str(spool_dir))
    ids = []
    for k in range(n):
        rows = [k * 10 + j for j in range(3)]
        body = b"".join(b'{"id":%d,"r":%d}\n' % (i, k) for i in rows)
        st, _, text = post(sc.url, table, body, SPOOLED)
        assert st == 200, (st, text)
        ids.append(rows)
    sc.stop(signal.SIGKILL)
    return ids


def test_torn_tail_and_damaged_records(clickhouse, start_sidecar, tmp_path, capsys):
    table = uniq("spool_torn")
    n = 12
    base = tmp_path / "base"
    req_ids = _spool_records_offline(start_sidecar, base, table, n)
    segs = [s for s in segments(base) if os.path.getsize(base / s) > 0]
    assert len(segs) == 1, segments(base)
    seg = segs[0]
    data = (base / seg).read_bytes()
    every_record = parse_records(data)
    recs = [(off, ln) for off, ln, kind in every_record if kind == DATA_RECORD]
    # the records, then the end mark: a frame's worth of zeros
    assert len(recs) == n, every_record
    assert sum(ln for _, ln, _ in every_record) + END_MARK == len(data), (every_record, len(data))
    assert data[-END_MARK:] == b"\0" * END_MARK

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    every = list(range(n))
    cases = []  # (name, new bytes, the records that must be replayed, damaged)
    for _ in range(3):  # truncate inside a record (header or payload)
        j = rng.randrange(1, n)
        off, ln = recs[j]
        cut = off + rng.randrange(1, ln)
        cases.append((f"truncate@{cut} (record {j})", data[:cut], every[:j], True))
    for _ in range(3):  # flip a bit of a record's checksum or payload: only that record is lost
        j = rng.randrange(0, n)
        off, ln = recs[j]
        at = off + rng.randrange(8, ln)
        b = bytearray(data)
        b[at] ^= 1 << rng.randrange(8)
        cases.append((f"flip@{at} (record {j})", bytes(b), every[:j] + every[j + 1:], True))
    # A bit of its magic or length: where the next record starts is unknown
    # (the scan does not search inside payloads, which hold client data and
    # could imitate a frame), so the segment ends there.
    for field, at in (("magic", 2), ("length", 4)):
        j = rng.randrange(0, n)
        b = bytearray(data)
        b[recs[j][0] + at] ^= 1
        cases.append((f"{field} flipped (record {j})", bytes(b), every[:j], True))
    j = n - 1  # a huge length field must not make start-up wait or allocate
    b = bytearray(data)
    struct.pack_into("<I", b, recs[j][0] + 4, 0xFFFFFFF0)
    cases.append((f"length=0xfffffff0 (record {j})", bytes(b), every[:j], True))
    garbage = bytes(rng.randrange(1, 256) for _ in range(777))
    cases.append(("garbage instead of the end mark", data[:-END_MARK] + garbage, every, True))
    cases.append(("end mark cut short", data[:-5], every, False))
    # what follows the end mark is not read: a reused segment's old bytes
    cases.append(("old bytes after the end mark", data + garbage, every, False))
    cases.append(("zeroed tail", data + b"\0" * 4096, every, False))

    results = []
    for name, content, kept, damaged in cases:
        clickhouse.query(f"DROP TABLE IF EXISTS {table}")
        make_table(clickhouse, table)
        d = tmp_path / f"case{len(results)}"
        shutil.copytree(base, d)
        (d / seg).write_bytes(content)
        t0 = time.monotonic()
        sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(d), ready_timeout=10)
        started = time.monotonic() - t0
        opened = wait_for(lambda: spool_opened(sc.stderr_text()), 5)
        want = sorted(i for j in kept for i in req_ids[j])
        missing, counts = wait_present(clickhouse, table, want, 10)
        time.sleep(0.3)  # anything beyond the valid prefix would land by now
        rc = sc.stop()
        counts = id_counts(clickhouse, table)
        err = sc.stderr_text()
        results.append((name, len(kept), opened and opened["replay_records"], started))
        assert opened is not None, f"{name}: no spool_opened line\n{err[-3000:]}"
        assert opened["replay_records"] == len(kept), (name, opened)
        assert ("spool_tail_truncated" in err) == damaged, (name, err[-2000:])
        assert not missing, f"{name}: rows of intact records missing: {sorted(missing)}"
        assert sorted(counts) == want, f"{name}: rows of damaged or cut records landed"
        assert duplicates(counts) == 0, name
        assert rc == 0, f"{name}: exit {rc}"
        # Once replayed and committed, the old segment is recycled.
        assert not (d / seg).exists() or os.path.getsize(d / seg) <= len(content)
    report(capsys, f"torn tail (seed {seed}): " + "; ".join(
        f"{name}: intact={intact} replayed={rep} start={st:.2f}s"
        for name, intact, rep, st in results))


def test_a_record_of_a_newer_version_is_refused_not_cut(clickhouse, start_sidecar, sidecar_bin,
                                                        tmp_path):
    """A whole record (its checksum right) of a type this version does not
    know was written by a newer one: start-up refuses the spool with a clear
    error and leaves the file as it is, instead of cutting it there as a torn
    tail (which would drop the rows after it)."""
    table = uniq("spool_newer")
    base = tmp_path / "spool"
    _spool_records_offline(start_sidecar, base, table, 3)
    seg = [p for p in segments(base) if os.path.getsize(base / p) > 0][-1]
    seq = int(seg[len("segment-"):-len(".log")])
    data = (base / seg).read_bytes()
    payload = bytes([9]) + b"from a later version"
    crc = crc32c(struct.pack("<Q", seq) + payload)
    newer = (data[:-END_MARK] + MAGIC + struct.pack("<II", len(payload), crc) + payload +
             b"\0" * END_MARK)
    (base / seg).write_bytes(newer)
    r = _run_sidecar(sidecar_bin, clickhouse.http_url, base)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "record of type 9, written by a newer chsidecar" in r.stderr, r.stderr[-2000:]
    assert (base / seg).read_bytes() == newer


# -- ClickHouse outage ------------------------------------------------------------------

def test_clickhouse_stopped_during_spooled_load(clickhouse_factory, start_sidecar, tmp_path,
                                                capsys):
    """ClickHouse stopped for 15 s under a spooled load: spooled writes keep
    getting 200 (no 5xx below the cap); commit-mode writes get 503/504 after
    --upstream-timeout and their rows are not inserted; every acked row is
    present once ClickHouse is back."""
    ch = clickhouse_factory()
    table = make_table(ch, uniq("spool_outage"))
    sc = start_sidecar(ch.http_url, "--spool-dir", str(tmp_path / "spool"),
                       "--upstream-timeout", "3s", "--retry-backoff-max", "1s",
                       "--log-level", "debug")
    spooled = Load(sc.url, table, first_id=1, concurrency=16, params=SPOOLED,
                   pause=0.005).start()
    time.sleep(1.0)
    ch.stop()
    t_down = time.monotonic()
    time.sleep(2.0)
    commit = Load(sc.url, table, first_id=50_000_000, concurrency=4, timeout=10).start()
    time.sleep(13.0)
    commit.stop(timeout=0)  # its answers are collected until ClickHouse is back
    outage = time.monotonic() - t_down
    ch.start()
    time.sleep(1.5)
    spooled.stop()
    commit.stop()
    missing, counts = wait_present(ch, table, spooled.acked, 60)
    sc.stop()
    counts = id_counts(ch, table)
    st = spooled.statuses()
    report(capsys, f"outage {outage:.1f}s: spooled answers {dict(st)}; acked={len(spooled.acked)} "
                   f"missing={len(missing)} duplicates={duplicates(counts)}; commit-mode answers "
                   f"during outage {dict(commit.statuses())}; "
                   f"retries logged={len(RETRY_RE.findall(sc.stderr_text()))}")
    fivexx = {s: n for s, n in st.items() if isinstance(s, int) and s >= 500}
    assert not fivexx, f"spooled writes got 5xx below the cap: {fivexx} " \
                       f"{list(spooled.bodies.values())[:3]}"
    assert not missing, f"{len(missing)} acked rows missing, e.g. {sorted(missing)[:10]}"
    assert len(spooled.acked) > 1000
    # Commit mode: answered within --upstream-timeout (3 s) plus backoff, well
    # before the client's 10 s timeout; an error means "not inserted".
    assert not commit.unanswered, (
        f"{len(commit.unanswered)} commit-mode INSERTs sent while ClickHouse was down got no "
        f"answer within 10 s (--upstream-timeout 3s): {dict(commit.statuses())}")
    bad = [i for i in commit.errored if counts.get(i, 0)]
    assert not bad, f"commit-mode requests answered with an error were inserted: {bad[:10]}"
    assert all(s in (200, 503, 504) for s in commit.statuses() if isinstance(s, int)), \
        commit.statuses()
    assert not [i for i in commit.acked if not counts.get(i, 0)]


def test_spool_cap_during_outage(clickhouse_factory, start_sidecar, tmp_path, capsys):
    """A small --spool-max-bytes and ClickHouse hung (SIGSTOP) for 8 s: once
    the spool is full, spooled writes get 503 with Retry-After (never any
    other 5xx, never a silent drop); nothing acked is lost; once ClickHouse
    is back and the backlog committed, spooled writes get 200 again."""
    ch = clickhouse_factory()
    table = make_table(ch, uniq("spool_cap"))
    sc = start_sidecar(ch.http_url, "--spool-dir", str(tmp_path / "spool"),
                       "--spool-max-bytes", "1MiB", "--upstream-timeout", "2s",
                       "--retry-backoff-max", "500ms")
    load = Load(sc.url, table, first_id=1, concurrency=16, params=SPOOLED, pause=0.002).start()
    time.sleep(0.5)
    ch.pause()
    t_pause = time.monotonic()
    time.sleep(8.0)
    ch.resume()
    t_resume = time.monotonic()
    time.sleep(6.0)
    load.stop()
    acked = load.acked
    missing, counts = wait_present(ch, table, acked, 60)
    # After the backlog committed: does a spooled write get 200 again?
    after = [post(sc.url, table, b'{"id":%d,"r":9}\n' % (90_000_000 + k), SPOOLED)[0]
             for k in range(5)]
    sc.stop()
    counts = id_counts(ch, table)
    st = load.statuses()
    full = [i for i, s in load.results.items() if s == 503]
    late_503 = [i for i in full if load.answered_at[i] > t_resume + 4.0]
    report(capsys, f"cap 1MiB, paused {t_resume - t_pause:.1f}s: answers {dict(st)}; "
                   f"Retry-After values {sorted(set(load.retry_after))}; acked={len(acked)} "
                   f"missing={len(missing)} duplicates={duplicates(counts)}; "
                   f"503s more than 4 s after resume: {len(late_503)}; "
                   f"spooled writes after the drain: {after}")
    other5xx = {s: n for s, n in st.items() if isinstance(s, int) and s >= 500 and s != 503}
    assert full, "the spool never reported full"
    assert len(load.retry_after) == len(full), "a 503 without Retry-After"
    assert not other5xx, other5xx
    assert not missing, f"{len(missing)} acked rows missing, e.g. {sorted(missing)[:10]}"
    assert not [i for i in full if counts.get(i, 0)], "rows of a 503'd request landed"
    assert after == [200] * 5, (
        "the spool stays full after ClickHouse came back and the backlog committed: "
        f"spooled writes get {after}")


# -- TOO_MANY_PARTS storm ------------------------------------------------------------------

def test_too_many_parts_storm(clickhouse, start_sidecar, tmp_path, capsys):
    """parts_to_throw_insert=6 (18.16 merges 5+ small parts at once) and a sidecar allowed 1000 parts/s: ClickHouse
    answers 252 again and again; the sidecar backs off and retries; in the
    end every acked row is present exactly once."""
    table = make_table(clickhouse, uniq("spool_parts"),
                       settings="SETTINGS parts_to_throw_insert = 6, parts_to_delay_insert = 6")
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(tmp_path / "spool"),
                       "--max-parts-per-second", "1000", "--flush-delay-min", "1ms",
                       "--flush-delay-max", "2ms", "--max-inflight-flushes", "8",
                       "--retry-backoff-min", "50ms",
                       "--retry-backoff-max", "1s", "--log-level", "debug")
    load = Load(sc.url, table, first_id=1, concurrency=16, params=SPOOLED, pause=0.005).run(3.0)
    acked = load.acked
    missing, counts = wait_present(clickhouse, table, acked, 90)
    time.sleep(0.5)
    counts = id_counts(clickhouse, table)
    err = sc.stderr_text()
    codes = [int(c) for c in RETRY_RE.findall(err)]
    sc.stop()
    report(capsys, f"252 storm: acked={len(acked)} answers={dict(load.statuses())} "
                   f"retries={len(codes)} (252: {codes.count(252)}) rows={sum(counts.values())} "
                   f"missing={len(missing)} duplicates={duplicates(counts)}")
    assert codes.count(252) > 0, "no batch_retry with code=252: the storm did not happen"
    assert not missing, f"{len(missing)} acked rows missing"
    assert sum(counts.values()) == len(acked) and duplicates(counts) == 0, \
        "a 252 is a definite refusal: a retry must not duplicate"
    assert load.statuses()[200] == sum(load.statuses().values())


# -- poisoned spooled rows -> dead letter ----------------------------------------------------

def test_poisoned_spooled_row_is_dead_lettered(clickhouse, start_sidecar, tmp_path, capsys):
    table = make_table(clickhouse, uniq("spool_poison"), "id UInt64, r UInt32")
    spool_dir = tmp_path / "spool"
    sc = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir),
                       "--flush-delay-min", "200ms", "--flush-delay-max", "200ms",
                       "--log-level", "debug")
    bad = b'{"id":999,"r":"not a number"}\n'

    async def burst():
        async with aiohttp.ClientSession() as s:
            async def one(body):
                qs = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT JSONEachRow",
                                             **SPOOLED})
                async with s.post(f"{sc.url}/?{qs}", data=body) as r:
                    return r.status, await r.read()
            bodies = [b'{"id":%d,"r":1}\n' % i for i in range(1, 31)]
            bodies.insert(15, bad)
            return await asyncio.gather(*(one(b) for b in bodies))

    answers = asyncio.run(burst())
    assert all(st == 200 for st, _ in answers), answers
    missing, counts = wait_present(clickhouse, table, range(1, 31), 15)
    dl = spool_dir / "dead-letter.jsonl"
    wait_for(lambda: dl.exists() and dl.stat().st_size > 0, 10)
    assert not missing, f"good rows of the poisoned batch missing: {sorted(missing)}"
    assert dl.exists(), f"no dead-letter.jsonl in {os.listdir(spool_dir)}"
    lines = [json.loads(l) for l in dl.read_text().splitlines() if l.strip()]
    report(capsys, f"dead letters: {lines}")
    assert len(lines) == 1, lines
    entry = lines[0]
    assert "not a number" in entry.get("data", ""), entry
    assert re.search(r"Code: \d+", entry.get("error", "")), entry
    assert entry.get("rows") == 1 and entry.get("table", "").endswith(table), entry
    assert "rows_dead_lettered" in sc.stderr_text()
    # The table is not blocked: later spooled and commit-mode rows land.
    assert post(sc.url, table, b'{"id":1001,"r":2}\n', SPOOLED)[0] == 200
    assert post(sc.url, table, b'{"id":1002,"r":2}\n')[0] == 200
    missing, counts = wait_present(clickhouse, table, [1001, 1002], 10)
    assert not missing
    assert 999 not in counts
    # Not retried forever: a restart replays nothing.
    assert sc.stop() == 0
    sc2 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    opened = wait_for(lambda: spool_opened(sc2.stderr_text()), 5)
    sc2.stop()
    assert opened is not None and opened["replay_records"] == 0, opened
    assert len([l for l in dl.read_text().splitlines() if l.strip()]) == 1


def test_transient_error_of_one_request_does_not_hold_the_spool(clickhouse, start_sidecar,
                                                                tmp_path):
    """A spooled INSERT whose own setting makes ClickHouse answer 241
    (memory limit) on every try. While nothing else commits it is retried,
    as in an outage; once other batches commit, it is given up after
    --retry-limit tries: dead-lettered with the error, so its record stops
    holding the spool's segments."""
    stuck = make_table(clickhouse, uniq("spool_stuck"), "id UInt64, r UInt32")
    healthy = make_table(clickhouse, uniq("spool_healthy"), "id UInt64, r UInt32")
    spool_dir = tmp_path / "spool"
    sc = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir), "--retry-limit", "3",
                       "--retry-backoff-min", "10ms", "--retry-backoff-max", "50ms")
    params = {**SPOOLED, "max_memory_usage": "1"}
    if clickhouse.kind != "18.16":
        # 26.7 leaves a thread's first 4 MiB untracked, so a one-row INSERT
        # fits in "1 byte"; 18.16 does not know this setting
        params["max_untracked_memory"] = "0"
    assert post(sc.url, stuck, b'{"id":7,"r":1}\n', params)[0] == 200
    retries = lambda: sc.stderr_text().count("batch_retry ")
    assert wait_for(lambda: retries() >= 6, 10), sc.stderr_text()[-2000:]
    dl = spool_dir / "dead-letter.jsonl"
    assert not dl.exists(), "given up while nothing else committed"
    for i in range(20):
        assert post(sc.url, healthy, b'{"id":%d,"r":1}\n' % i, SPOOLED)[0] == 200
    assert wait_for(lambda: dl.exists() and b"Code: 241" in dl.read_bytes(), 10), \
        sc.stderr_text()[-2000:]
    assert "batch_retry_limit" in sc.stderr_text()
    line = json.loads(dl.read_text().splitlines()[0])
    assert line["table"] == stuck and '"id":7' in line["data"], line
    missing, _ = wait_present(clickhouse, healthy, range(20), 10)
    assert not missing
    assert count(clickhouse, stuck) == 0
    assert sc.stop() == 0
    sc2 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    opened = wait_for(lambda: spool_opened(sc2.stderr_text()), 5)
    assert opened is not None and opened["replay_records"] == 0, opened


def test_dead_letter_not_written_keeps_the_rows(clickhouse, start_sidecar, tmp_path):
    """A row refused after its early answer whose dead-letter line cannot be
    written (here the file is /dev/full) stays in the spool: it is written
    once it can be, after a restart at the latest, and never vanishes."""
    table = make_table(clickhouse, uniq("spool_dlfull"), "id UInt64, r UInt32")
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    dl = spool_dir / "dead-letter.jsonl"
    dl.symlink_to("/dev/full")
    sc = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    assert post(sc.url, table, b'{"id":999,"r":"not a number"}\n', SPOOLED)[0] == 200
    assert wait_for(lambda: "dead_letter_write_failed" in sc.stderr_text(), 10), sc.stderr_text()
    sc.stop(signal.SIGKILL)
    dl.unlink()
    sc2 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    opened = wait_for(lambda: spool_opened(sc2.stderr_text()), 5)
    assert opened is not None and opened["replay_records"] == 1, opened
    assert wait_for(lambda: dl.exists() and b"not a number" in dl.read_bytes(), 10)
    assert sc2.stop() == 0
    sc3 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    opened = wait_for(lambda: spool_opened(sc3.stderr_text()), 5)
    assert opened is not None and opened["replay_records"] == 0, opened  # written: committed
    assert len(dl.read_text().splitlines()) == 1


# -- unusable spool directory ----------------------------------------------------------------

def _mount_tmpfs(path, opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): "
                    f"{r.stderr.strip()}")


def _fill(path, limit: int = 1 << 30) -> None:
    """Writes to `path` until the filesystem is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        written = 0
        while written < limit:
            written += os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _bin(sc) -> str:
    return sc.args[0]


def _run_sidecar(sidecar_bin, upstream: str, spool_dir, timeout: float = 10.0,
                 expect_exit: bool = True):
    args = [sidecar_bin, "--listen", f"127.0.0.1:{free_port()}", "--upstream", upstream,
            "--admin-listen", "127.0.0.1:0", "--spool-dir", str(spool_dir)]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        if not expect_exit:
            return None
        pytest.fail(f"chsidecar kept running with an unusable --spool-dir {spool_dir}: "
                    f"{(e.stderr or b'')[-2000:]!r}")


def test_unusable_spool_dir_at_start(clickhouse, sidecar_bin, tmp_path, capsys):
    ro = tmp_path / "ro"
    full = tmp_path / "full"
    _mount_tmpfs(ro, "size=64k,ro")
    try:
        _mount_tmpfs(full, "size=64k")
        try:
            _fill(full / "filler")
            # A full filesystem is not refused: it may get room (see
            # test_spool_disk_full_frees_and_kill9_while_full).
            cases = [("read-only fs, dir to create", ro / "spool", "Read-only"),
                     ("read-only fs, existing dir", ro, "Read-only")]
            seen = []
            for name, d, why in cases:
                r = _run_sidecar(sidecar_bin, clickhouse.http_url, d)
                seen.append((name, r.returncode, r.stderr.strip().splitlines()[-1:]))
                assert r.returncode not in (0, None) and r.returncode > 0, (name, r.returncode)
                assert "spool" in r.stderr and str(d) in r.stderr and why in r.stderr, \
                    (name, r.stderr[-2000:])
            report(capsys, f"unusable spool dir: {seen}")
        finally:
            _umount(full)
    finally:
        _umount(ro)


# Delays rename("spare.log" -> "segment-*"), the last step of opening the next
# segment from the spare, by SLOW_RENAME_MS (default 300).
SLOW_SPARE_RENAME_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int rename(const char *from, const char *to) {
  static int (*real)(const char *, const char *);
  if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
  const char *f = strrchr(from, '/'), *t = strrchr(to, '/');
  if (f && t && strcmp(f, "/spare.log") == 0 && strncmp(t, "/segment-", 9) == 0) {
    const char *ms = getenv("SLOW_RENAME_MS");
    usleep((ms ? atoi(ms) : 300) * 1000);
  }
  return real(from, to);
}
"""


# Fails the FAIL_NTH fsync() of a directory with EIO, once.
FAIL_DIRECTORY_SYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
int fsync(int fd) {
  static int (*real)(int);
  static int n;
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  struct stat st;
  const char *nth = getenv("FAIL_NTH");
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && nth && ++n == atoi(nth)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
"""


def test_a_failed_start_keeps_the_spool_for_the_next(clickhouse, start_sidecar, sidecar_bin,
                                                     tmp_path):
    """A restart that cannot listen (its port taken) while the spool holds
    rows to replay exits 1 with listen_failed, not a crash, and sends none
    of them; the next start delivers every row once."""
    table = make_table(clickhouse, uniq("spool_failstart"))
    spool_dir = tmp_path / "spool"
    dead = f"http://127.0.0.1:{free_port()}"
    sc = start_sidecar(dead, *TRUSTED, "--spool-dir", str(spool_dir), "--flush-rows", "1")
    for i in range(1, 21):
        st, _, text = post(sc.url, table, b'{"id":%d,"r":0}\n' % i, SPOOLED)
        assert st == 200, (st, text)
    sc.stop(signal.SIGKILL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sidecar_bin, "--listen", f"127.0.0.1:{port}", "--upstream",
                            clickhouse.http_url, "--admin-listen", "127.0.0.1:0", "--spool-dir",
                            str(spool_dir), "--flush-rows", "1", "--max-inflight-flushes", "50"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "listen_failed" in r.stderr, r.stderr[-2000:]
    assert count(clickhouse, table) == 0
    sc2 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    missing, counts = wait_present(clickhouse, table, range(1, 21), 15)
    sc2.stop()
    assert not missing, missing
    assert all(n == 1 for n in counts.values()), counts


def _preload_shim(tmp_path, name: str, source: str) -> str:
    """Compiles `source` into an LD_PRELOAD library; its path."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the LD_PRELOAD shim")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    so = tmp_path / f"{name}.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(src), "-ldl"], check=True)
    return str(so)


def _deleted_spool_files(pid: int, spool_dir) -> list[str]:
    """Files of the spool directory the process holds open after their unlink."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(spool_dir)) and target.endswith("(deleted)"):
            out.append(target)
    return out


def test_spare_segment_keeps_its_name_while_it_is_reused(clickhouse_factory, start_sidecar,
                                                         tmp_path, capsys):
    """The next segment is opened from spare.log (its rename slowed down
    here) while a backlog of committed segments drains after a ClickHouse
    stall. No other segment may take the name spare.log meanwhile: that one
    was renamed to the new segment's name, the new segment's file was
    deleted under the open descriptor, and rows acknowledged from it were
    gone after a kill -9."""
    shim = _preload_shim(tmp_path, "slow_rename", SLOW_SPARE_RENAME_C)
    ch = clickhouse_factory()
    table = make_table(ch, uniq("spool_spare"))
    spool_dir = tmp_path / "spool"
    args = ("--spool-dir", str(spool_dir), "--spool-segment-bytes", "64KiB",
            "--flush-rows", "100", "--flush-delay-max", "20ms")
    sc = start_sidecar(ch.http_url, *args, "--log-level", "debug", env={"LD_PRELOAD": shim})
    load = Load(sc.url, table, first_id=1, concurrency=8, params=SPOOLED, pause=0.002).start()
    time.sleep(1.5)
    os.kill(ch.pid, signal.SIGSTOP)  # a stall: a backlog of segments forms
    time.sleep(3)
    os.kill(ch.pid, signal.SIGCONT)
    deleted: list[str] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6 and not deleted:
        deleted = _deleted_spool_files(sc.proc.pid, spool_dir)
        time.sleep(0.005)
    load.stop()
    sc.stop(signal.SIGKILL)
    sc2 = start_sidecar(ch.http_url, *args)
    missing, _ = wait_present(ch, table, load.acked, 30)
    reused = sc.stderr_text().count("spool_segment_started") - \
        sc.stderr_text().count("reused=false")
    report(capsys, f"spare reuse during a drain: {len(load.acked)} acked, "
                   f"{sc.stderr_text().count('spool_segment_started')} segments started "
                   f"({reused} from the spare), "
                   f"deleted spool files held open: {deleted}, missing after kill -9: {len(missing)}")
    assert reused > 0, "no segment was opened from the spare: the test did not get there"
    assert not deleted, deleted
    assert not missing, f"{len(missing)} acked rows missing, e.g. {sorted(missing)[:10]}"
    sc2.stop()


def test_failed_directory_sync_does_not_stop_rotation(clickhouse, start_sidecar, tmp_path):
    """The directory sync that makes a new segment's name durable fails once
    (EIO): that segment is given up and tried again later. Before, its file
    stayed behind, every later try found the name taken, the active segment
    grew to the cap and every spooled write got 503."""
    shim = _preload_shim(tmp_path, "fail_dir_sync", FAIL_DIRECTORY_SYNC_C)
    table = make_table(clickhouse, uniq("spool_dirsync"), "id UInt64, r UInt32, s String")
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", str(tmp_path / "spool"),
                       "--spool-max-bytes", "1MiB", env={"LD_PRELOAD": shim, "FAIL_NTH": "2"})
    pad = "x" * 1000
    statuses = []
    for k in range(50):  # 50 KB each: about ten segments of 256 KiB
        body = "".join(f'{{"id":{k * 100 + j},"r":1,"s":"{pad}"}}\n' for j in range(50)).encode()
        statuses.append(post(sc.url, table, body, SPOOLED)[0])
        time.sleep(0.1)
    assert "spool_rotate_failed" in sc.stderr_text(), "the shim did not fail a directory sync"
    assert statuses == [200] * 50, statuses
    assert wait_for(lambda: count(clickhouse, table) == 2500, 10)
    sc.stop()


def test_file_error_of_one_table_does_not_hold_the_spool(clickhouse_factory, start_sidecar,
                                                         tmp_path):
    """A File table whose directory is gone answers 107 to every INSERT: a
    file error, retried like a full disk while nothing commits, but given up
    after --retry-limit tries while other tables commit. The row is
    dead-lettered instead of pinning the spool."""
    ch = clickhouse_factory()
    stuck = uniq("file_stuck")
    ch.query(f"CREATE TABLE {stuck} (id UInt64, r UInt32) ENGINE = File(JSONEachRow)")
    ch.query(f"INSERT INTO {stuck} FORMAT JSONEachRow", b'{"id":0,"r":1}\n')
    if ch.kind == "18.16":
        shutil.rmtree(os.path.join(ch.data_dir, "data", "default", stuck))
    else:
        # 26.7 makes a missing directory again; a data file that is a
        # dangling symlink gets the same 107 on every INSERT
        data_file = os.path.normpath(ch.query(
            f"SELECT data_paths[1] FROM system.tables WHERE database = currentDatabase() "
            f"AND name = '{stuck}'").decode().strip())
        os.unlink(data_file)
        os.symlink(os.path.join(str(tmp_path), "no-such-dir", "data"), data_file)
    healthy = make_table(ch, uniq("file_healthy"))
    spool_dir = tmp_path / "spool"
    sc = start_sidecar(ch.http_url, *TRUSTED, "--spool-dir", str(spool_dir), "--retry-limit", "3",
                       "--retry-backoff-min", "10ms", "--retry-backoff-max", "50ms")
    assert post(sc.url, stuck, b'{"id":7,"r":1}\n', SPOOLED)[0] == 200
    for i in range(20):
        assert post(sc.url, healthy, b'{"id":%d,"r":1}\n' % i, SPOOLED)[0] == 200
        time.sleep(0.05)
    dl = spool_dir / "dead-letter.jsonl"
    assert wait_for(dl.exists, 10), sc.stderr_text()[-2000:]
    assert b"Code: 107" in dl.read_bytes() or b"Code: 76" in dl.read_bytes(), dl.read_bytes()[:300]
    assert wait_for(lambda: count(ch, healthy) == 20, 10)
    sc.stop()


def test_clickhouse_disk_full_is_waited_out(clickhouse_factory, start_sidecar, tmp_path, capsys):
    """ClickHouse's own data disk is full: its refusal (code 75 on 18.16,
    "No space left on device") is the server's state, not the rows'. Rows
    acknowledged from the spool are retried until the disk has room, never
    dead-lettered."""
    data = tmp_path / "chdata"
    _mount_tmpfs(data, "size=64m")
    try:
        ch = clickhouse_factory(str(data))
        table = make_table(ch, uniq("ch_full"))
        sc = start_sidecar(ch.http_url, *TRUSTED, "--spool-dir", str(tmp_path / "spool"),
                           "--retry-backoff-max", "300ms", "--log-level", "debug")
        _fill(data / "filler")
        with httpx.Client(timeout=10) as c:
            for i in range(3):
                r = c.post(sc.url + "/", params={**SPOOLED, "query": f"INSERT INTO {table} FORMAT JSONEachRow"},
                           content=f'{{"id":{i},"r":1}}\n')
                assert r.status_code == 200, r.text
        assert wait_for(lambda: "batch_retry" in sc.stderr_text(), 10), sc.stderr_text()[-2000:]
        refusal = next(ln for ln in sc.stderr_text().splitlines() if "batch_retry" in ln)
        time.sleep(1.0)  # a few more tries against the full disk
        os.unlink(data / "filler")
        assert wait_for(lambda: id_counts(ch, table) == {0: 1, 1: 1, 2: 1}, 20), id_counts(ch, table)
        report(capsys, f"ClickHouse's disk full: {refusal.split(' batch_retry ')[-1][:160]}")
        assert not (tmp_path / "spool" / "dead-letter.jsonl").exists()
        assert "rows_dead_lettered" not in sc.stderr_text() and "batch_bisect" not in sc.stderr_text()
        sc.stop()
    finally:
        _umount(data)


def test_disk_fills_at_run_time(clickhouse, start_sidecar, tmp_path, capsys):
    """The spool's filesystem fills up while ClickHouse is unreachable:
    spooled writes get 503 (never a crash, never 200 without the rows on
    disk); after a restart against ClickHouse every acked row lands, and no
    row of a 503'd request does ("nothing was inserted")."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=256k")
    try:
        table = make_table(clickhouse, uniq("spool_enospc"))
        dead = f"http://127.0.0.1:{free_port()}"
        spool_dir = mnt / "spool"
        with open(mnt / "reserve", "wb") as f:  # freed later, as an operator would
            f.write(b"r" * 64 * 1024)
        sc = start_sidecar(dead, *TRUSTED, "--spool-dir", str(spool_dir), "--spool-segment-bytes", "64KiB")
        load = Load(sc.url, table, first_id=1, concurrency=8, params=SPOOLED).start()
        wait_for(lambda: load.errored, 15)
        time.sleep(0.5)
        load.stop()
        alive = sc.running()
        sc.stop(signal.SIGKILL)
        st = load.statuses()
        # Restart on the still-full disk: can it replay what it acked?
        r = _run_sidecar(_bin(sc), clickhouse.http_url,
                         spool_dir, timeout=3, expect_exit=False)
        full_restart = ("exited %s: %s" % (r.returncode, r.stderr.strip().splitlines()[-1:])
                        if r is not None and r.returncode is not None else "kept running")
        os.unlink(mnt / "reserve")
        sc2 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
        missing, counts = wait_present(clickhouse, table, load.acked, 20)
        time.sleep(0.5)
        counts = id_counts(clickhouse, table)
        opened = spool_opened(sc2.stderr_text())
        refused_landed = sorted(i for i in load.errored if counts.get(i, 0))
        report(capsys, f"disk full at run time: answers {dict(st)}; acked={len(load.acked)}; "
                       f"restart on the full disk: {full_restart}; "
                       f"replay {opened}; missing={len(missing)}; rows of 503'd requests "
                       f"that landed: {len(refused_landed)} {refused_landed[:10]}; "
                       f"503s with Retry-After: {len(load.retry_after)}; "
                       f"503 body: {next(iter(load.bodies.values()), b'')[:160]!r}")
        assert alive, "the sidecar died when its spool filesystem filled up"
        assert {s for s in st if s != 200} <= {503}, st
        assert not missing, f"{len(missing)} acked rows missing"
        assert not refused_landed, "rows of requests answered 503 (nothing inserted) landed"
        sc2.stop()
    finally:
        _umount(mnt)


# -- a full spool disk, and the dead-letter cap ------------------------------------------

def _spooled(url: str, table: str, body: bytes, timeout: float = 10.0):
    return post(url, table, body, SPOOLED, timeout=timeout)


def _until(pred, timeout: float, step: float = 0.05):
    """Seconds until pred() held, or None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def test_spool_that_fills_its_disk_recovers_when_the_backlog_drains(clickhouse, start_sidecar,
                                                                   tmp_path, capsys):
    """Issue 20: the spool alone fills a 1 MiB filesystem (its segment limit
    is larger) while ClickHouse commits every row. Early answers get 503;
    once the backlog has committed, the segment that filled the disk is
    retired and deleted, and early answers return by themselves, without
    anything freed by hand. (Before: 503 for good, the active segment held
    the disk.)"""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=1m")
    try:
        table = make_table(clickhouse, uniq("spool_drain"), "id UInt64, r UInt32, s String")
        sc = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(mnt / "spool"))
        pad = "x" * 8000
        acked, refused, first_503 = [], [], None
        for i in range(1, 400):
            st, hdrs, body = _spooled(sc.url, table, b'{"id":%d,"r":1,"s":"%s"}\n' % (i, pad.encode()))
            (acked if st == 200 else refused).append(i)
            if st != 200:
                assert st == 503 and hdrs.get("Retry-After"), (st, hdrs, body)
                first_503 = body
                break
        assert first_503 is not None, "the spool never filled its 1 MiB disk"
        assert b"No space left on device" in first_503 and b"--spool-dir" in first_503, first_503
        ok_after = []

        def early_answer_again():
            i = 1000 + len(ok_after) + len(refused)
            st, _, _ = _spooled(sc.url, table, b'{"id":%d,"r":2,"s":""}\n' % i)
            (ok_after if st == 200 else refused).append(i)
            return st == 200
        took = _until(early_answer_again, 15, step=0.1)
        report(capsys, f"spool filled its disk after {len(acked)} early answers; early answers "
                       f"again {took and round(took, 2)} s after the first 503")
        assert took is not None, sc.stderr_text()[-3000:]
        assert "spool_writable_again" in sc.stderr_text()
        missing, counts = wait_present(clickhouse, table, acked + ok_after, 15)
        assert not missing, sorted(missing)[:10]
        assert not [i for i in refused if counts.get(i)], "rows of 503'd requests landed"
        # Still good for more than one request.
        for i in range(5000, 5020):
            assert _spooled(sc.url, table, b'{"id":%d,"r":3,"s":""}\n' % i)[0] == 200
    finally:
        _umount(mnt)


def test_spool_disk_full_frees_and_kill9_while_full(clickhouse, start_sidecar, tmp_path, capsys):
    """Issue 20: the spool's filesystem is full (a filler file and the spool,
    ClickHouse unreachable). Early answers get 503 with Retry-After; once
    the filler shrinks they are back within about a second (measured).
    Filled again, then kill -9: a start on the full disk serves (no refusal
    of --spool-dir), answers early INSERTs 503 while there is no room, and
    against ClickHouse replays every acknowledged row, serves queries and
    commit-mode INSERTs, and answers early again once the replay drained."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=2m")
    try:
        table = make_table(clickhouse, uniq("spool_diskfull"))
        spool_dir = mnt / "spool"
        dead = f"http://127.0.0.1:{free_port()}"
        filler = mnt / "filler"
        _fill(filler)
        os.truncate(filler, os.path.getsize(filler) - 256 * 1024)
        sc = start_sidecar(dead, *TRUSTED, "--spool-dir", str(spool_dir))
        load = Load(sc.url, table, first_id=1, concurrency=8, params=SPOOLED).start()
        assert wait_for(lambda: load.errored, 20), "never 503 on a full disk"
        load.stop()
        st, hdrs, body = _spooled(sc.url, table, b'{"id":900000,"r":9}\n')
        assert st == 503 and hdrs.get("Retry-After") == "1", (st, hdrs, body)
        assert b"No space left on device" in body and b"Code: 202" in body, body
        assert value(fetch_metrics(sc.admin_url), "chsidecar_spool_writable") == 0
        refused = {900000} | load.errored
        # Space returns: early answers resume by themselves.
        os.truncate(filler, 0)
        tries = iter(range(900001, 999999))

        def early_ok():
            i = next(tries)
            ok = _spooled(sc.url, table, b'{"id":%d,"r":9}\n' % i)[0] == 200
            (acked_extra if ok else refused).add(i)
            return ok
        acked_extra: set[int] = set()
        recovered = _until(early_ok, 10, step=0.02)
        assert recovered is not None, sc.stderr_text()[-3000:]
        assert value(fetch_metrics(sc.admin_url), "chsidecar_spool_writable") == 1
        # Full again (the filler takes what the spool left), then kill -9.
        _fill(filler)
        load2 = Load(sc.url, table, first_id=100_000, concurrency=8, params=SPOOLED).start()
        assert wait_for(lambda: load2.errored, 20), "never 503 on the disk full again"
        load2.stop()
        sc.stop(signal.SIGKILL)
        acked = load.acked | load2.acked | acked_extra
        refused |= load2.errored
        # A start on the full disk, ClickHouse still unreachable: it serves.
        sc2 = start_sidecar(dead, *TRUSTED, "--spool-dir", str(spool_dir))
        assert wait_for(lambda: "spool_disk_full_at_start" in sc2.stderr_text(), 5), \
            sc2.stderr_text()[-2000:]
        with httpx.Client(timeout=5) as c:
            assert c.get(sc2.url + "/ping").status_code == 200
        st, hdrs, body = _spooled(sc2.url, table, b'{"id":990000,"r":9}\n')
        assert st == 503 and hdrs.get("Retry-After") and b"No space left" in body, (st, body)
        refused.add(990000)
        sc2.stop(signal.SIGKILL)
        # And against ClickHouse, still on the full disk.
        t0 = time.monotonic()
        sc3 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
        with httpx.Client(timeout=10) as c:
            r = c.get(sc3.url + "/", params={"query": "SELECT 1"})
            assert r.status_code == 200 and r.text.strip() == "1", r.text
            r = c.post(sc3.url + "/", params={"query": f"INSERT INTO {table} FORMAT JSONEachRow"},
                       content=b'{"id":995000,"r":7}\n')
            assert r.status_code == 200, r.text
        missing, counts = wait_present(clickhouse, table, acked | {995000}, 20)
        assert not missing, f"{len(missing)} acked rows missing: {sorted(missing)[:10]}"
        again = _until(lambda: _spooled(sc3.url, table, b'{"id":996000,"r":7}\n')[0] == 200, 10)
        assert again is not None, sc3.stderr_text()[-3000:]
        assert wait_for(lambda: id_counts(clickhouse, table).get(996000) == 1, 10)
        counts = id_counts(clickhouse, table)
        landed_refused = sorted(i for i in refused if counts.get(i))
        report(capsys, f"full spool disk: acked={len(acked)}, 503s={len(refused)}; early answers "
                       f"back {recovered:.2f} s after space returned; start on the full disk "
                       f"after kill -9: replayed, early answers back {again:.2f} s after the first "
                       f"query ({time.monotonic() - t0:.1f} s since start); duplicates "
                       f"{duplicates(counts)}")
        assert not landed_refused, landed_refused[:10]
        assert recovered < 3.0, recovered
        sc3.stop()
    finally:
        _umount(mnt)


def test_dead_letter_cap(clickhouse, start_sidecar, tmp_path, capsys):
    """Issue 20: dead letters are bounded by --dead-letter-max-bytes.
    dead-letter.jsonl is renamed dead-letter-<n>.jsonl at a quarter of the
    cap; at the cap, refused rows wait in the spool, early answers get 503
    naming the flag, other INSERTs are served; once the files are moved
    away, the waiting rows are written and early answers return. No row is
    ever dropped: every refused row answered 200 is in some file, once."""
    table = make_table(clickhouse, uniq("spool_dlcap"))
    spool_dir = tmp_path / "spool"
    cap = 64 * 1024
    sc = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir),
                       "--dead-letter-max-bytes", "64KiB", "--log-level", "debug")
    pad = b"z" * 4000
    bad_acked, body_503 = [], None
    for i in range(1, 80):
        st, hdrs, body = _spooled(sc.url, table, b'{"id":%d,"r":"bad %s"}\n' % (i, pad))
        if st == 200:
            bad_acked.append(i)
            time.sleep(0.05)  # let it be refused and dead-lettered
            continue
        assert st == 503 and hdrs.get("Retry-After"), (st, hdrs, body)
        body_503 = body
        break
    assert body_503 is not None, "the dead-letter cap was never reached"
    assert b"--dead-letter-max-bytes" in body_503 and b"Code: 202" in body_503, body_503
    files = lambda d: sorted(p for p in os.listdir(d) if p.startswith("dead-letter"))
    total = sum((spool_dir / f).stat().st_size for f in files(spool_dir))
    assert total <= cap, (total, files(spool_dir))
    assert any(re.fullmatch(r"dead-letter-\d+\.jsonl", f) for f in files(spool_dir)), files(spool_dir)
    assert "dead_letter_cap_reached" in sc.stderr_text()
    m = fetch_metrics(sc.admin_url)
    assert value(m, "chsidecar_dead_letter_max_bytes") == cap
    assert 0 < value(m, "chsidecar_dead_letter_bytes") <= cap
    # Everything else is served; good rows committed after the cap still land.
    assert post(sc.url, table, b'{"id":5000,"r":1}\n')[0] == 200
    assert _spooled(sc.url, table, b'{"id":5001,"r":1}\n')[0] == 503
    # An operator moves the files away: room again, re-measured on the retry.
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in files(spool_dir):
        os.rename(spool_dir / f, moved / f)
    took = _until(lambda: _spooled(sc.url, table, b'{"id":5002,"r":1}\n')[0] == 200, 12, 0.2)
    assert took is not None, sc.stderr_text()[-3000:]

    def lettered():
        ids = []
        for d in (moved, spool_dir):
            for f in files(d):
                ids += [json.loads(l)["data"] for l in (d / f).read_text().splitlines() if l]
        return sorted(int(re.search(r'"id":(\d+)', x).group(1)) for x in ids)
    assert wait_for(lambda: lettered() == sorted(bad_acked), 10), (lettered(), bad_acked)
    missing, _ = wait_present(clickhouse, table, [5000, 5002], 10)
    assert not missing
    report(capsys, f"dead-letter cap 64KiB: {len(bad_acked)} refused rows answered early, files "
                   f"{files(moved)} at the cap; early answers back {took:.1f} s after the move")
    assert sc.stop() == 0
    sc2 = start_sidecar(clickhouse.http_url, *TRUSTED, "--spool-dir", str(spool_dir))
    opened = wait_for(lambda: spool_opened(sc2.stderr_text()), 5)
    assert opened is not None and opened["replay_records"] == 0, opened


def test_password_changed_while_running_withdraws_early_answers(clickhouse_factory,
                                                                start_sidecar, tmp_path):
    """alice's INSERT is proven (early answers); then her password changes
    on the server. Requests with the old password may still be answered
    early until the first batch with it fails, which withdraws the proof:
    from then on they get ClickHouse's own error. No early-answered row is
    lost silently: each is in the table or in dead-letter.jsonl."""
    ch = clickhouse_factory()
    table = make_table(ch, uniq("spool_pw"))
    spool_dir = tmp_path / "spool"
    sc = start_sidecar(ch.http_url, "--spool-dir", str(spool_dir))
    creds = {"user": "alice", "password": "secret"}
    for i in range(3):
        assert post(sc.url, table, b'{"id":%d,"r":1}\n' % i, {**creds, **SPOOLED})[0] == 200
    with open(ch.users_path) as f:
        users = f.read()
    with open(ch.users_path, "w") as f:
        f.write(users.replace("<password>secret</password>", "<password>changed</password>"))
    future = time.time() + 5  # the server looks at the mtime, in whole seconds
    os.utime(ch.users_path, (future, future))
    # The server reads users.xml again within a few seconds.
    if not wait_for(lambda: post(ch.http_url, table, b"", creds)[0] != 200, 15):
        pytest.skip(f"{ch.kind}: users.xml is not reloaded while running")
    answers = []
    for i in range(100, 140):
        answers.append((i, post(sc.url, table, b'{"id":%d,"r":1}\n' % i, {**creds, **SPOOLED})))
        time.sleep(0.05)
    refused = [i for i, (st, _, _) in answers if st != 200]
    early = [i for i, (st, _, _) in answers if st == 200]
    assert refused, "every request with the old password was answered early"
    assert answers[-1][1][0] != 200 and answers[-1][1][2].startswith(b"Code: "), answers[-1]
    # Once refused, no later request is answered early again.
    assert early == [i for i in early if i < refused[0]], (early, refused)
    dl = spool_dir / "dead-letter.jsonl"
    assert wait_for(lambda: dl.exists(), 10) or not early
    dead = [json.loads(line) for line in dl.read_text().splitlines()] if dl.exists() else []
    dead_ids = {json.loads(d["data"])["id"] for d in dead}
    assert all("dependent views" not in d["error"] for d in dead), dead  # nothing was written
    landed = id_counts(ch, table)
    for i in early:
        assert landed.get(i) == 1 or i in dead_ids, (i, landed, dead)
