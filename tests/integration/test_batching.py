"""Batching small INSERTs (issue 3), against a real ClickHouse 18.16.

What a user checks: many tiny INSERTs through the sidecar land exactly once
and unchanged, in every batchable format and both SQL placements; far fewer
upstream INSERTs (batch_flush log lines) and parts than requests; a bad
request is refused or isolated without hurting its neighbours; settings and
column lists that differ are never merged; what cannot be batched passes
through as if the sidecar were not there; the buffer is bounded.

Every test uses its own tables (unique names) on the shared server, and
compares through-the-sidecar results with the same data sent straight to
ClickHouse where that is meaningful.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
import pytest

import rawhttp
from clickhouse_server import TEST_SERVER
from fault_relay import FaultRelay
from netutil import free_port
from rawhttp import RawConn, assert_sidecar_error
from rawhttp import report, uniq

FLUSH_RE = re.compile(r"\bbatch_flush table=(\S+) rows=(\d+) requests=(\d+) bytes=(\d+)"
                      r"(?: attempt=(\d+))?")
BISECT_RE = re.compile(r"\bbatch_bisect table=(\S+)")
# The status of a bad row's parse error (code 27): 18.16 answers 500, 26.7 400.
PARSE_ERROR_STATUS = {"18.16": 500, "26.7": 400}[TEST_SERVER]


# -- helpers ---------------------------------------------------------------------

def make_table(ch, name: str, columns: str = "id UInt32, s String, n Int32",
               order: str = "id") -> str:
    ch.query(f"CREATE TABLE {name} ({columns}) ENGINE = MergeTree ORDER BY {order}")
    return name


def dump(ch, table: str, fmt: str = "TSV", order: str = "id") -> bytes:
    return ch.query(f"SELECT * FROM {table} ORDER BY {order} FORMAT {fmt}")


def scalar(ch, sql: str) -> str:
    return ch.query(sql).decode().strip()


def count(ch, table: str) -> int:
    return int(scalar(ch, f"SELECT count() FROM {table}"))


def start(start_sidecar, clickhouse, *args):
    return start_sidecar(clickhouse.http_url, "--log-level", "debug", *args)


def flushes(sc, table: str) -> list[tuple[int, int, int]]:
    """(rows, requests, bytes) of each batch_flush line for `table` (first
    tries only: a transient error's retry logs the same batch again)."""
    out = []
    for m in FLUSH_RE.finditer(sc.stderr_text()):
        if m.group(1) == table and m.group(5) in (None, "1"):
            out.append((int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return out


def wait_flush_lines(sc, table: str, requests: int, timeout: float = 5.0):
    """The flush lines of `table` once they account for `requests` requests
    (the log line is written before the upstream answer, so it is there by
    the time every client got its answer; the wait is only for the file)."""
    rawhttp.wait_until(lambda: sum(f[1] for f in flushes(sc, table)) >= requests, timeout)
    return flushes(sc, table)


def insert_q(table: str, fmt: str = "JSONEachRow", columns: str = "") -> str:
    cols = f" {columns}" if columns else ""
    if fmt == "Values":
        return f"INSERT INTO {table}{cols} VALUES"
    return f"INSERT INTO {table}{cols} FORMAT {fmt}"


def req(sql: str, data: bytes, params: dict | None = None,
        headers: dict | None = None, sql_in_body: bool = False) -> dict:
    """One request: SQL in the `query` parameter (default) or at the start of
    the body, followed by the data."""
    p = dict(params or {})
    if sql_in_body:
        body = sql.encode() + b"\n" + data
    else:
        p["query"] = sql
        body = data
    return {"params": p, "data": body, "headers": dict(headers or {})}


async def _send_all(url: str, reqs: list[dict], concurrency: int):
    conn = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=80)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        async def one(r):
            qs = urllib.parse.urlencode(r["params"])
            async with s.post(f"{url}/?{qs}", data=r["data"], headers=r["headers"]) as resp:
                return resp.status, dict(resp.headers), await resp.read()
        return await asyncio.gather(*(one(r) for r in reqs))


def send_all(url: str, reqs: list[dict], concurrency: int = 200):
    """Send every request at once (at most `concurrency` connections);
    [(status, headers, body)] in the order of `reqs`."""
    return asyncio.run(_send_all(url, reqs, concurrency))


def send_direct(ch, r: dict) -> tuple[int, bytes]:
    """The same request straight to ClickHouse: (status, body)."""
    url = ch.http_url + "/?" + urllib.parse.urlencode(r["params"])  # a dict, or pairs
    rq = urllib.request.Request(url, data=r["data"], method="POST", headers=r["headers"])
    try:
        with urllib.request.urlopen(rq, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def assert_all_ok(results, what: str = ""):
    bad = [(i, st, body[:300]) for i, (st, _, body) in enumerate(results)
           if st != 200 or body != b""]
    assert not bad, f"{what}: {len(bad)} requests not answered 200 with an empty body, e.g. {bad[:3]}"


def json_rows(ch, table: str, columns: str = "*") -> list[dict]:
    out = ch.query(f"SELECT {columns} FROM {table} ORDER BY id FORMAT JSONEachRow")
    return [json.loads(line) for line in out.decode().splitlines() if line]


def parts_created(ch, table: str) -> int:
    """Parts the table's INSERTs have created so far.

    18.16 merges parts in the background and has no system.part_log here, so
    counting active parts undercounts. But a plain MergeTree numbers every
    inserted part with the next value of a per-table block counter, and a
    merged part keeps the max block number of its sources: the largest
    max_block_number of the table's parts (active or not) is the number of
    parts ever inserted into it (one per INSERT block; a single partition
    here, no mutations)."""
    v = scalar(ch, f"SELECT max(max_block_number) FROM system.parts "
                   f"WHERE database = currentDatabase() AND table = '{table}'")
    return int(v or 0)


# -- correctness under concurrency ----------------------------------------------------

def test_concurrent_single_row_inserts_three_tables(clickhouse, start_sidecar, capsys):
    sc = start(start_sidecar, clickhouse)
    tables = [make_table(clickhouse, uniq("bt_many")) for _ in range(3)]
    per_table = 1000
    expected = {t: [] for t in tables}
    reqs = []
    for i in range(per_table):
        for k, t in enumerate(tables):
            row = {"id": i, "s": f"row {i} of {k}: \"quoted\", tab\t, é ✓", "n": -i * (k + 1)}
            expected[t].append(row)
            reqs.append(req(insert_q(t), json.dumps(row, ensure_ascii=False).encode()))
    t0 = time.monotonic()
    results = send_all(sc.url, reqs, concurrency=200)
    elapsed = time.monotonic() - t0
    assert_all_ok(results, "single-row JSONEachRow INSERTs")

    total_flushes = 0
    for t in tables:
        assert count(clickhouse, t) == per_table
        assert scalar(clickhouse, f"SELECT uniqExact(id) FROM {t}") == str(per_table)
        assert json_rows(clickhouse, t) == expected[t]  # sorted by id; nothing twice
        fl = wait_flush_lines(sc, t, per_table)
        assert sum(f[0] for f in fl) == per_table, fl  # every row flushed once, no retry
        assert sum(f[1] for f in fl) == per_table, fl
        total_flushes += len(fl)
    report(capsys, f"{len(reqs)} single-row INSERTs into 3 tables, concurrency 200: "
                   f"{total_flushes} flushes in {elapsed:.2f} s "
                   f"({len(reqs) / elapsed:.0f} rows/s)")
    assert total_flushes < len(reqs) / 10, total_flushes
    assert not BISECT_RE.search(sc.stderr_text())


# -- every batchable format, both SQL placements ---------------------------------------

FMT_COLUMNS = "id UInt32, s String, a Array(String)"


def _fmt_bodies(fmt: str) -> list[bytes]:
    """12 request bodies of 1-3 rows each, with the awkward characters of
    each format (quoted delimiters and newlines, escapes, nested brackets)."""
    bodies = []
    for r in range(12):
        ids = [r * 10 + j for j in range(1 + r % 3)]
        if fmt == "JSONEachRow":
            b = "".join(json.dumps({"id": i, "s": f"line1\nline2 \"q\" \\ {i}",
                                    "a": ["x", f"y,{i}", "(z]"]}) + ("\n" if j % 2 else "")
                        for j, i in enumerate(ids))
        elif fmt in ("CSV", "CSVWithNames"):
            rows = [f'{i},"a,b ""quoted"" {i}\nsecond line","[\'x\',\'y,{i}\']"' for i in ids]
            b = ("id,s,a\n" if fmt == "CSVWithNames" else "") + "\n".join(rows)
            if r % 2 == 0:
                b += "\n"  # every other request without the last newline
        elif fmt in ("TSV", "TabSeparated", "TSVWithNames"):
            rows = [f"{i}\ttab\\there\\nnewline \\\\ back {i}\t['x','y\\t{i}']" for i in ids]
            b = ("id\ts\ta\n" if fmt == "TSVWithNames" else "") + "\n".join(rows)
            if r % 2 == 0:
                b += "\n"
        elif fmt == "Values":
            b = ", ".join(f"({i}, 'it\\'s (a), {i}', ['x', 'y)]{i}'])" for i in ids)
            b = " \n" + b + [";", "; \n", "\n\t ", ""][r % 4]
        else:
            raise AssertionError(fmt)
        bodies.append(b.encode())
    return bodies


@pytest.mark.parametrize("sql_in_body", [False, True], ids=["sql_in_query", "sql_in_body"])
@pytest.mark.parametrize("fmt", ["JSONEachRow", "CSV", "CSVWithNames", "TSV", "TabSeparated",
                                 "TSVWithNames", "Values"])
def test_format_lands_as_if_direct(clickhouse, start_sidecar, fmt, sql_in_body):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_fmt"), FMT_COLUMNS)
    twin = make_table(clickhouse, uniq("bt_twin"), FMT_COLUMNS)
    bodies = _fmt_bodies(fmt)
    reqs = [req(insert_q(t, fmt), b, sql_in_body=sql_in_body) for b in bodies]
    results = send_all(sc.url, reqs)
    assert_all_ok(results, fmt)
    for b in bodies:
        st, body = send_direct(clickhouse, req(insert_q(twin, fmt), b, sql_in_body=sql_in_body))
        assert st == 200, body
    direct = dump(clickhouse, twin)
    assert count(clickhouse, twin) == sum(1 + r % 3 for r in range(12))
    assert dump(clickhouse, t) == direct
    fl = wait_flush_lines(sc, t, len(reqs))
    assert sum(f[1] for f in fl) == len(reqs), f"not every request was batched: {fl}"
    assert len(fl) < len(reqs), f"nothing was merged: {fl}"


def test_inline_data_in_query_param_and_body(clickhouse, start_sidecar):
    """ClickHouse reads the `query` parameter, then the body continues it: data
    that starts in the parameter (after FORMAT) belongs to the INSERT too."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_inline"))
    twin = make_table(clickhouse, uniq("bt_inline_twin"))
    for table, url in ((t, sc.url), (twin, clickhouse.http_url)):
        qs = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT CSV 1,a,1"})
        with RawConn(url) as c:
            r = c.request(rawhttp.post(f"/?{qs}", b"2,b,2\n"))
            assert (r.status, r.body) == (200, b""), r
    assert dump(clickhouse, twin) == b"1\ta\t1\n2\tb\t2\n"
    assert dump(clickhouse, t) == dump(clickhouse, twin), \
        "the row inside the query parameter was dropped"


# -- compressed bodies ----------------------------------------------------------------------

def test_gzip_body_batched(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_gz"))
    rows = [{"id": i, "s": f"gz {i} " + "abc" * (i % 7), "n": i} for i in range(60)]
    reqs = [req(insert_q(t), gzip.compress(json.dumps(r).encode()),
                headers={"Content-Encoding": "gzip"}) for r in rows]
    assert_all_ok(send_all(sc.url, reqs), "gzip")
    assert json_rows(clickhouse, t) == rows
    fl = wait_flush_lines(sc, t, len(reqs))
    assert sum(f[1] for f in fl) == len(reqs), fl
    assert len(fl) < len(reqs), fl


def test_gzip_bomb_goes_alone(clickhouse, start_sidecar):
    """A body that expands more than --max-compression-ratio: the sidecar
    stops decoding it (its memory stays bounded) and sends it on as it is,
    alone; ClickHouse, which takes it, inserts it, as direct."""
    sc = start(start_sidecar, clickhouse, "--max-compression-ratio", "100")
    t = make_table(clickhouse, uniq("bt_bomb"))
    twin = make_table(clickhouse, uniq("bt_bomb_twin"))
    plain = b'{"id":1,"s":"x","n":1}\n' * 400_000  # 9.2 MB, compresses > 300x
    bomb = gzip.compress(plain, 9)
    assert len(plain) / len(bomb) > 200
    headers = {"Content-Encoding": "gzip"}
    direct = send_direct(clickhouse, req(insert_q(twin), bomb, headers=headers))
    ((st, _, body),) = send_all(sc.url, [req(insert_q(t), bomb, headers=headers)])
    assert (st, body) == direct == (200, b""), (st, body, direct)
    assert count(clickhouse, t) == count(clickhouse, twin) == 400_000
    assert flushes(sc, t) == []  # not batched


# -- what must not be merged ------------------------------------------------------------------

def test_different_settings_are_separate_batches(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_set"))
    # An unknown field is accepted only with input_format_skip_unknown_fields=1:
    # merged into a batch without the setting, these rows would be refused.
    # 18.16's default is 0; 26.7's is 1, so there the plain rows say 0.
    plain = {} if clickhouse.kind == "18.16" else {"input_format_skip_unknown_fields": "0"}
    probe = req(insert_q(t), b'{"id":999999,"s":"p","n":0,"extra":1}', plain)
    st, body = send_direct(clickhouse, probe)
    assert st != 200 and body.startswith(b"Code: "), (st, body)
    reqs, expected = [], []
    for i in range(200):
        if i % 2:
            row = {"id": i, "s": "skip", "n": i}
            reqs.append(req(insert_q(t), json.dumps({**row, "extra": [1, 2]}).encode(),
                            params={"input_format_skip_unknown_fields": "1"}))
        else:
            row = {"id": i, "s": "plain", "n": i}
            reqs.append(req(insert_q(t), json.dumps(row).encode(), plain))
        expected.append(row)
    assert_all_ok(send_all(sc.url, reqs), "mixed settings")
    assert json_rows(clickhouse, t) == expected
    fl = wait_flush_lines(sc, t, len(reqs))
    assert sum(f[1] for f in fl) == len(reqs) and len(fl) >= 2, fl
    assert not BISECT_RE.search(sc.stderr_text())


def test_different_column_lists_are_separate_batches(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_cols"))
    reqs, expected = [], []
    for i in range(200):
        if i % 2:  # merged under the other list, "7*i" would land in s
            reqs.append(req(insert_q(t, "CSV", "(id, n)"), f"{i},{7 * i}\n".encode()))
            expected.append({"id": i, "s": "", "n": 7 * i})
        else:
            reqs.append(req(insert_q(t, "CSV", "(id, s)"), f"{i},c{i}\n".encode()))
            expected.append({"id": i, "s": f"c{i}", "n": 0})
    assert_all_ok(send_all(sc.url, reqs), "mixed column lists")
    assert json_rows(clickhouse, t) == expected


# -- poison and whole-table failures -----------------------------------------------------------

def test_poison_request_isolated(clickhouse, start_sidecar, capsys):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_poison"))
    reqs = [req(insert_q(t), json.dumps({"id": i, "s": "good", "n": i}).encode())
            for i in range(1000)]
    bad = req(insert_q(t), b'{"id":5000,"s":"bad","n":"not a number"}')
    reqs.insert(500, bad)
    results = send_all(sc.url, reqs, concurrency=200)
    st, hdrs, body = results[500]
    good = results[:500] + results[501:]
    assert_all_ok(good, "good neighbours of the poison request")
    assert st == PARSE_ERROR_STATUS and body.startswith(b"Code: 27"), (st, body[:300])
    direct_twin = make_table(clickhouse, uniq("bt_poison_twin"))
    dst, dbody = send_direct(clickhouse, req(insert_q(direct_twin), bad["data"]))
    assert (st, body) == (dst, dbody), "the poison request's answer differs from ClickHouse's"
    assert count(clickhouse, t) == 1000
    assert scalar(clickhouse, f"SELECT uniqExact(id), min(id), max(id), countIf(s != 'good') "
                              f"FROM {t} FORMAT TSV") == "1000\t0\t999\t0"
    fl = wait_flush_lines(sc, t, 1)
    bisects = len([m for m in BISECT_RE.finditer(sc.stderr_text()) if m.group(1) == t])
    report(capsys, f"poison: 1001 requests, {len(fl)} upstream INSERTs, {bisects} bisections")


@pytest.mark.parametrize("flags,params,limit", [
    (["--flush-rows", "100"], {}, 100),
    ([], {"max_insert_block_size": "30", "min_insert_block_size_rows": "30"}, 30),
], ids=["flush_rows", "client_block_size"])
def test_rows_queued_behind_a_slow_flush_keep_the_batch_limit(clickhouse, start_sidecar, capsys,
                                                               flags, params, limit):
    """Rows that pile up while the only flush slot is busy (a slow link)
    form batches of at most --flush-rows, or of the INSERT's own smaller
    max_insert_block_size. ClickHouse commits a larger INSERT block by
    block, so a bad row in a later block would leave the earlier blocks in
    while the bisection sent them again: rows twice."""
    with FaultRelay("127.0.0.1", clickhouse.http_port).start() as relay:
        sc = start_sidecar(relay.url, "--log-level", "debug", "--max-inflight-flushes", "1",
                           *flags)
        t = make_table(clickhouse, uniq("bt_queued"))
        relay.set("trickle", chunk=512, delay=0.05)
        reqs = [req(insert_q(t), b"".join(
                    json.dumps({"id": i * 10 + j, "s": "good", "n": j}).encode() + b"\n"
                    for j in range(10)), params) for i in range(50)]
        bad = req(insert_q(t), b'{"id":9999,"s":"bad","n":"not a number"}\n', params)
        reqs.insert(40, bad)
        results = send_all(sc.url, reqs, concurrency=64)
    st, _, body = results[40]
    assert_all_ok(results[:40] + results[41:], "good neighbours of the bad request")
    assert st == PARSE_ERROR_STATUS and body.startswith(b"Code: 27"), (st, body[:300])
    assert scalar(clickhouse, f"SELECT count(), uniqExact(id), countIf(s != 'good') FROM {t} "
                              f"FORMAT TSV") == "500\t500\t0"
    sizes = [rows for rows, _, _ in wait_flush_lines(sc, t, 51)]
    report(capsys, f"51 requests behind a slow flush: batches of {sizes} rows")
    assert max(sizes) <= limit, sizes
    assert len(sizes) < 51  # they were still batched


def test_pipelined_insert_behind_an_expired_one_is_answered(start_sidecar, tmp_path):
    """A commit-mode INSERT whose --upstream-timeout passes while its rows
    wait gets its 503; the request its client pipelined behind it is read
    in that moment and joins the same table's buffer. It must get its own
    answer, not be dropped with the expired rows."""
    dead = free_port()
    sc = start_sidecar(f"http://127.0.0.1:{dead}", "--upstream-timeout", "1s", "--flush-rows", "3",
                       "--max-inflight-flushes", "1", "--spool-dir", str(tmp_path / "spool"),
                       "--early-ack-proof", "0")  # an early answer with no upstream at all
    q = urllib.parse.quote("INSERT INTO t FORMAT JSONEachRow")
    # a spooled row holds the table's only flush slot (the upstream refuses)
    with RawConn(sc.url, timeout=10) as c:
        r = c.request(rawhttp.post(f"/?query={q}&wait_for_async_insert=0", b'{"id":0}\n'), "POST")
        assert r.status == 200, r.body
    time.sleep(0.3)  # its flush is out (and failing): the rows below wait in the buffer
    two = b'{"id":1}\n{"id":2}\n'
    with RawConn(sc.url, timeout=10) as c:
        c.send(rawhttp.post(f"/?query={q}", two) + rawhttp.post(f"/?query={q}", two))
        answers = [c.read_response("POST") for _ in range(2)]
    for r in answers:
        assert r.status == 503 and r.body.startswith(b"Code: 159"), (r.status, r.body)


@pytest.mark.parametrize("fmt,good,bad", [
    ("JSONEachRow", '{{"id":{i},"e":"a"}}', '{"id":5000,"e":"zzz"}'),  # unknown Enum element
    ("Values", "({i},'b')", "(5000,no_such_identifier)"),
    ("Values", "({i},'a')", "(5000,no_such_function(1))"),
], ids=["json_enum", "values_identifier", "values_function"])
def test_row_errors_with_other_codes_isolated(clickhouse, start_sidecar, fmt, good, bad):
    """ClickHouse reports some bad rows with codes that are not parse
    errors (an unknown Enum element, an identifier or a function in a Values
    row): the batch is split all the same, and only the bad request fails,
    with ClickHouse's own answer."""
    sc = start(start_sidecar, clickhouse)
    cols = "id UInt32, e Enum8('a' = 1, 'b' = 2)"
    t = make_table(clickhouse, uniq("bt_rowcode"), cols)
    reqs = [req(insert_q(t, fmt), good.format(i=i).encode()) for i in range(60)]
    reqs.insert(30, req(insert_q(t, fmt), bad.encode()))
    results = send_all(sc.url, reqs, concurrency=61)
    assert_all_ok(results[:30] + results[31:], "good neighbours of the bad request")
    twin = make_table(clickhouse, uniq("bt_rowcode_twin"), cols)
    dst, dbody = send_direct(clickhouse, req(insert_q(twin, fmt), bad.encode()))
    assert dst != 200 and not dbody.startswith((b"Code: 27", b"Code: 26")), (dst, dbody[:200])
    assert results[30][0] == dst and results[30][2] == dbody
    assert count(clickhouse, t) == 60
    assert any(m.group(1) == t for m in BISECT_RE.finditer(sc.stderr_text())), \
        "the bad request was not in a batch with others"


def test_unknown_table_every_request_gets_clickhouse_error(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = uniq("bt_missing")
    reqs = [req(insert_q(t), json.dumps({"id": i}).encode()) for i in range(50)]
    dst, dbody = send_direct(clickhouse, reqs[0])
    assert dst == 404 and dbody.startswith(b"Code: 60"), (dst, dbody)
    results = send_all(sc.url, reqs)
    assert [(st, body) for st, _, body in results] == [(dst, dbody)] * len(reqs)
    assert not BISECT_RE.search(sc.stderr_text()), "a whole-table error must not be bisected"


# -- malformed requests: ClickHouse's own answer, alone -------------------------------------------

@pytest.mark.parametrize("fmt,body", [
    ("JSONEachRow", b'{"id":1,"s":"a","n":1}\n{"id":2 "s":"b"}\n{"id":3}\n'),
    ("JSONEachRow", b'{"id":1,"s":"a","n":1}\n{"id":2,"s":'),
    ("JSONEachRow", b'{"id":1,"s":"a","n":1}\n[2,"b",2]\n'),
    ("Values", b"(1,'a',1),(2,'b',2"),
], ids=["json_syntax", "json_truncated", "json_not_object", "values_parens"])
def test_malformed_body_gets_clickhouses_answer(clickhouse, start_sidecar, fmt, body):
    """A body the sidecar cannot split goes to ClickHouse alone: the client
    gets ClickHouse's own status and error, the same rows land as direct,
    and the connection goes on."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_bad"))
    twin = make_table(clickhouse, uniq("bt_bad_twin"))
    dst, dbody = send_direct(clickhouse, req(insert_q(twin, fmt), body))
    qs = urllib.parse.urlencode({"query": insert_q(t, fmt)})
    with RawConn(sc.url) as c:
        r = c.request(rawhttp.post(f"/?{qs}", body))
        assert r.status == dst >= 400, (r.status, dst)
        assert r.body.split(b",")[0] == dbody.split(b",")[0], (r.body, dbody)  # "Code: N"
        # same connection, a good one
        r = c.request(rawhttp.post(f"/?{qs}", _good_row(fmt, 7)))
        assert (r.status, r.body) == (200, b""), r
    assert dump(clickhouse, t) == dump(clickhouse, twin) + b"7\tok\t7\n"
    assert sum(f[0] for f in flushes(sc, t)) == 1  # only the good one was batched


@pytest.mark.parametrize("columns,body", [
    ("", b'1,a,1\n2,"unterminated,2\n3,c,3\n'),  # 18.16: 500, code 27
    ("(id, s)", b'3,"a\n4,b\n'),                  # 18.16: one row, s = 'a\n4,b\n'
], ids=["refused", "taken"])
def test_csv_open_quote_gets_clickhouses_own_answer(clickhouse, start_sidecar, columns, body):
    """A CSV quote left open to the end of the body: ClickHouse refuses it
    or reads it as one value, depending on the columns. It is sent on alone
    (in a batch it would swallow the next request's rows), and the client
    gets what ClickHouse says, with the same rows landing."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_quote"))
    twin = make_table(clickhouse, uniq("bt_quote_twin"))
    direct = send_direct(clickhouse, req(insert_q(twin, "CSV", columns), body))
    st, _, rbody = send_all(sc.url, [req(insert_q(t, "CSV", columns), body)])[0]
    assert (st, rbody) == direct
    assert dump(clickhouse, t) == dump(clickhouse, twin)


def test_csv_quote_after_a_blank_does_not_swallow_other_requests(clickhouse, start_sidecar):
    """`1, "hello`: ClickHouse skips the blank and opens a quote that runs to
    the end of the data. Batched, it swallowed the rows of the requests
    after it (answered 200, rows gone). Each request now gets what it gets
    alone, and the same rows land as direct."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "200ms", "--flush-delay-max", "200ms")
    t = make_table(clickhouse, uniq("bt_blankq"), "id UInt32, s String")
    twin = make_table(clickhouse, uniq("bt_blankq_twin"), "id UInt32, s String")
    bodies = [b'1,a\n', b'2, "hello', b'3,b\n', b'4,\t"c,d"\n', b'5,e\n']
    direct = [send_direct(clickhouse, req(insert_q(twin, "CSV"), b)) for b in bodies]
    through = send_all(sc.url, [req(insert_q(t, "CSV"), b) for b in bodies])
    assert [(st, body.split(b",")[0]) for st, _, body in through] == \
        [(st, body.split(b",")[0]) for st, body in direct]
    assert dump(clickhouse, t) == dump(clickhouse, twin)
    assert count(clickhouse, t) >= 4


def test_repeated_parameters_resolved_as_clickhouse_does(clickhouse, start_sidecar):
    """A repeated user, database or setting: ClickHouse takes the first user
    and database and applies settings in order. Such requests go alone, so
    each lands where, and as whom, ClickHouse puts it direct (a readonly
    user stays refused)."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "200ms", "--flush-delay-max", "200ms")
    db_a, db_b = uniq("rp_a"), uniq("rp_b")
    for side in ("d", "s"):
        for db in (db_a, db_b):
            clickhouse.query(f"CREATE DATABASE {db}_{side}")
            make_table(clickhouse, f"{db}_{side}.t")
    cases = [
        [("user", "readonly"), ("user", "default")],
        [("database", "{a}"), ("database", "{b}")],
        [("database", "{b}"), ("database", "{a}")],
        [("max_insert_block_size", "1"), ("max_insert_block_size", "1000")],
    ]

    def build(side: str, pairs, i: int) -> dict:
        params = [(k, v.format(a=f"{db_a}_{side}", b=f"{db_b}_{side}")) for k, v in pairs]
        if not any(k == "database" for k, _ in params):
            params.append(("database", f"{db_a}_{side}"))
        params.append(("query", "INSERT INTO t FORMAT CSV"))
        return {"params": params, "data": f"{i},r,{i}\n".encode(), "headers": {}}

    direct = [send_direct(clickhouse, build("d", c, i)) for i, c in enumerate(cases)]
    through = send_all(sc.url, [build("s", c, i) for i, c in enumerate(cases)])
    assert [st for st, _, _ in through] == [st for st, _ in direct], (through, direct)
    assert direct[0][0] != 200  # readonly refused, direct and through the sidecar
    for db in (db_a, db_b):
        assert dump(clickhouse, f"{db}_s.t") == dump(clickhouse, f"{db}_d.t"), db


def _good_row(fmt: str, i: int) -> bytes:
    if fmt == "JSONEachRow":
        return json.dumps({"id": i, "s": "ok", "n": i}).encode()
    if fmt == "CSV":
        return f"{i},ok,{i}\n".encode()
    return f"({i},'ok',{i})".encode()


# -- parts ---------------------------------------------------------------------------------------

def test_few_parts_while_single_rows_stream_in(clickhouse, start_sidecar, capsys):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_parts"))
    n = 2000
    reqs = [req(insert_q(t), json.dumps({"id": i, "s": "p", "n": i}).encode()) for i in range(n)]
    active_samples: list[int] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            active_samples.append(int(scalar(
                clickhouse, f"SELECT count() FROM system.parts WHERE database = "
                            f"currentDatabase() AND table = '{t}' AND active")))
            stop.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.monotonic()
    try:
        results = send_all(sc.url, reqs, concurrency=64)
    finally:
        stop.set()
        th.join()
    elapsed = time.monotonic() - t0
    assert_all_ok(results, "streamed single-row INSERTs")
    assert count(clickhouse, t) == n
    created = parts_created(clickhouse, t)
    fl = wait_flush_lines(sc, t, n)
    report(capsys, f"{n} single-row INSERTs, 64 writers, {elapsed:.2f} s "
                   f"({n / elapsed:.0f} rows/s): {len(fl)} flushes, {created} parts created "
                   f"({created / elapsed:.1f}/s), max {max(active_samples, default=0)} "
                   f"active parts sampled")
    assert created == len(fl)  # one part per flush: each batch is one block
    assert created < n / 20, created


# -- what is not batched -----------------------------------------------------------------------------

def test_batch_off_passes_through(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse, "--batch", "off")
    t = make_table(clickhouse, uniq("bt_off"))
    rows = [{"id": i, "s": "off", "n": i} for i in range(20)]
    assert_all_ok(send_all(sc.url, [req(insert_q(t), json.dumps(r).encode()) for r in rows]))
    assert json_rows(clickhouse, t) == rows
    assert not FLUSH_RE.search(sc.stderr_text())
    assert parts_created(clickhouse, t) == 20  # one INSERT each


def test_async_insert_0_passes_through_unbatched(clickhouse, start_sidecar):
    """async_insert=0 opts out of batching: each request goes upstream on its
    own. A server that does not know the setting (18.16 answers code 115
    directly) gets the request without it, so the opt-out works on any
    server version."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_sync"))
    reqs = [req(insert_q(t), json.dumps({"id": i, "s": "sync", "n": i}).encode(),
                params={"async_insert": "0"}) for i in range(10)]
    # The sidecar learns what the server supports at start-up.
    rawhttp.wait_until(lambda: "upstream_" in sc.stderr_text(), 5)
    direct = send_direct(clickhouse, reqs[0])
    results = send_all(sc.url, reqs)
    assert [(st, body) for st, _, body in results] == [(200, b"")] * len(reqs)
    assert not FLUSH_RE.search(sc.stderr_text())
    assert count(clickhouse, t) == 10 + (1 if direct[0] == 200 else 0)
    assert parts_created(clickhouse, t) == 10 + (1 if direct[0] == 200 else 0)  # one INSERT each


def test_async_insert_settings_consumed(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_async"))
    params = {"async_insert": "1", "wait_for_async_insert": "1", "query_id": "ignored"}
    rows = [{"id": i, "s": "async", "n": i} for i in range(30)]
    reqs = [req(insert_q(t), json.dumps(r).encode(), params=dict(params, query_id=f"q{i}"))
            for i, r in enumerate(rows)]
    # Straight to the server (into a twin, so that t gets the batched rows only):
    # 18.16 does not know the settings (115); 26.7 takes them.
    twin = make_table(clickhouse, uniq("bt_async_twin"))
    st, body = send_direct(clickhouse, dict(reqs[0], params=dict(reqs[0]["params"],
                                                                   query=insert_q(twin))))
    if clickhouse.kind == "18.16":
        assert st == 404 and body.startswith(b"Code: 115"), (st, body)
    else:
        assert (st, body) == (200, b"") and count(clickhouse, twin) == 1
    assert_all_ok(send_all(sc.url, reqs), "async_insert=1")
    assert json_rows(clickhouse, t) == rows
    fl = wait_flush_lines(sc, t, len(reqs))
    assert sum(f[1] for f in fl) == len(reqs)


def test_insert_select_passes_through_and_rowbinary_is_walked(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_pass"))
    twin = make_table(clickhouse, uniq("bt_pass_twin"))

    def rowbinary(i: int, s: str, n: int) -> bytes:
        b = s.encode()
        return struct.pack("<I", i) + bytes([len(b)]) + b + struct.pack("<i", n)

    rb = b"".join(rowbinary(i, f"rb{i}", -i) for i in range(100, 110))
    for table, url in ((t, sc.url), (twin, clickhouse.http_url)):
        with RawConn(url) as c:
            sel = f"INSERT INTO {table} SELECT number, toString(number), -number FROM numbers(10)"
            r = c.request(rawhttp.post("/", sel.encode()))  # SQL in the body
            assert (r.status, r.body) == (200, b""), r
            qs = urllib.parse.urlencode({"query": sel.replace("numbers(10)", "numbers(20, 5)")})
            r = c.request(rawhttp.post(f"/?{qs}", b"", ))
            assert (r.status, r.body) == (200, b""), r
            qs = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT RowBinary"})
            r = c.request(rawhttp.post(f"/?{qs}", rb))
            assert (r.status, r.body) == (200, b""), r
            # a wrong-length RowBinary body: ClickHouse's own error, unchanged
            r = c.request(rawhttp.post(f"/?{qs}", rb[:-1]))
            if table == t:
                through = (r.status, r.body)
            else:
                assert through == (r.status, r.body)
                assert r.status != 200
    assert count(clickhouse, twin) == 25
    assert dump(clickhouse, t) == dump(clickhouse, twin)
    # Only the whole RowBinary body was batched (walked by the table's
    # columns: test_row_binary.py); the cut one went alone.
    assert [f[1] for f in flushes(sc, t)] == [1]


# -- the buffer bound ------------------------------------------------------------------------------

def test_buffer_full_503_and_acked_rows_only(clickhouse, start_sidecar, capsys):
    sc = start(start_sidecar, clickhouse, "--buffer-max-bytes", "64KiB",
               "--flush-delay-min", "2s", "--flush-delay-max", "2s")
    t = make_table(clickhouse, uniq("bt_full"))
    reqs = [req(insert_q(t), json.dumps({"id": i, "s": "x" * 1000, "n": i}).encode())
            for i in range(300)]
    results = send_all(sc.url, reqs, concurrency=200)
    ok_ids = {i for i, (st, _, _) in enumerate(results) if st == 200}
    full_ids = {i for i, (st, _, _) in enumerate(results) if st == 503}
    assert ok_ids | full_ids == set(range(len(reqs))), \
        {st for st, _, _ in results} - {200, 503}
    assert ok_ids and full_ids, (len(ok_ids), len(full_ids))
    for i in full_ids:
        st, hdrs, body = results[i]
        assert_sidecar_error(st, hdrs, body, 503)
        assert int({k.lower(): v for k, v in hdrs.items()}["retry-after"]) >= 1
    for i in ok_ids:
        assert results[i][2] == b""
    got = {int(x) for x in clickhouse.query(f"SELECT id FROM {t}").split()}
    assert got == ok_ids
    assert count(clickhouse, t) == len(ok_ids)
    report(capsys, f"--buffer-max-bytes 64KiB, 300 x 1 KiB INSERTs: "
                   f"{len(ok_ids)} accepted, {len(full_ids)} got 503")
    # drained: accepted again
    assert_all_ok(send_all(sc.url, [req(insert_q(t), b'{"id":100000,"s":"after","n":0}')]))
    assert count(clickhouse, t) == len(ok_ids) + 1


# -- bodies ClickHouse accepts must not be refused ------------------------------------------------

@pytest.mark.parametrize("fmt,columns,params,body", [
    ("JSONEachRow", None, {}, b'{"id":1,"s":"a","n":1},{"id":2,"s":"b","n":2}'),
    ("JSONEachRow", None, {}, b'{"id":1,"s":"a","n":1},\n{"id":2,"s":"b","n":2}\n'),
    ("JSONEachRow", None, {}, b'\xef\xbb\xbf{"id":1,"s":"a","n":1}\n{"id":2,"s":"b","n":2}\n'),
    ("JSONEachRow", None, {}, b'{"id":1,"s":"caf\xe9","n":1}\n{"id":2,"s":"\xff\xfe","n":2}\n'),
    ("JSONEachRow", "id UInt32, f Float64", {},
     b'{"id":1,"f":123456789012345678901234567890}\n{"id":2,"f":-1e30}\n'),
    ("CSV", None, {"format_csv_delimiter": ";"}, b'1;x,"y;1\n2;b;2\n'),
], ids=["json_comma_separated", "json_comma_newline", "json_utf8_bom", "json_not_utf8",
        "json_big_integer", "csv_other_delimiter"])
def test_bodies_clickhouse_accepts(clickhouse, start_sidecar, fmt, columns, params, body):
    """Bodies 18.16 takes (JSONEachRow rows separated by commas, a UTF-8 BOM,
    bytes that are not UTF-8 in a String, integers beyond 64 bits into a
    Float64; CSV with another delimiter and a quote inside a field): through
    the sidecar they must land the same way, not be refused as malformed."""
    sc = start(start_sidecar, clickhouse)
    cols = columns or "id UInt32, s String, n Int32"
    t = make_table(clickhouse, uniq("bt_ok"), cols)
    twin = make_table(clickhouse, uniq("bt_ok_twin"), cols)
    assert send_direct(clickhouse, req(insert_q(twin, fmt), body, params)) == (200, b"")
    st, _, rbody = send_all(sc.url, [req(insert_q(t, fmt), body, params)])[0]
    assert (st, rbody) == (200, b""), f"refused what ClickHouse takes: {rbody[:300]!r}"
    assert count(clickhouse, twin) == 2
    assert dump(clickhouse, t) == dump(clickhouse, twin)


@pytest.mark.parametrize("fmt", ["CSV", "TSV", "JSONEachRow"])
def test_byte_order_mark_handled_as_clickhouse_does_inside_a_batch(clickhouse, start_sidecar,
                                                                  fmt):
    """Each body starts with a UTF-8 byte order mark. Every ClickHouse drops
    it from JSONEachRow data, so those requests are batched and land as
    direct. In CSV and TSV versions differ (18.16 drops it from CSV and
    keeps it in TSV; 26.x keeps it when the first column is a String), so
    such bodies go alone, and land as direct too."""
    sc = start(start_sidecar, clickhouse)
    cols = "s String, id UInt32, n Int32"  # the mark, if kept, lands in a String
    t = make_table(clickhouse, uniq("bt_bom"), cols)
    twin = make_table(clickhouse, uniq("bt_bom_twin"), cols)
    row = {"CSV": "s{i},{i},1\n", "TSV": "s{i}\t{i}\t1\n",
           "JSONEachRow": '{{"s":"s{i}","id":{i},"n":1}}\n'}[fmt]
    bodies = [b"\xef\xbb\xbf" + row.format(i=i).encode() for i in range(1, 21)]
    for b in bodies:
        assert send_direct(clickhouse, req(insert_q(twin, fmt), b)) == (200, b"")
    assert_all_ok(send_all(sc.url, [req(insert_q(t, fmt), b) for b in bodies], concurrency=20))
    assert dump(clickhouse, t, "TSV", "id") == dump(clickhouse, twin, "TSV", "id")
    if fmt == "JSONEachRow":
        assert parts_created(clickhouse, t) < 20, "the requests were not batched"
    else:
        assert flushes(sc, t) == [], "a body starting with a byte order mark was batched"


def test_credentials_are_separate_batches(clickhouse, start_sidecar):
    """alice (headers), default (no credentials) and alice with a wrong
    password interleaved: the first two land, the third gets ClickHouse's own
    answer, as it would straight."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_cred"))
    groups = [{"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "secret"}, {},
              {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "wrong"}]
    reqs = [req(insert_q(t), json.dumps({"id": i, "s": f"g{i % 3}", "n": i}).encode(),
                headers=groups[i % 3]) for i in range(150)]
    direct_wrong = send_direct(clickhouse, reqs[2])
    assert direct_wrong[0] != 200 and direct_wrong[1].startswith(b"Code: "), direct_wrong
    results = send_all(sc.url, reqs)
    assert_all_ok([r for i, r in enumerate(results) if i % 3 != 2], "right credentials")
    assert {(st, body) for i, (st, _, body) in enumerate(results) if i % 3 == 2} == {direct_wrong}
    assert json_rows(clickhouse, t) == [{"id": i, "s": f"g{i % 3}", "n": i}
                                        for i in range(150) if i % 3 != 2]
    assert not BISECT_RE.search(sc.stderr_text())


def test_one_connection_same_url_other_headers(clickhouse, start_sidecar):
    """One keep-alive connection repeats one INSERT URL while its headers
    change (credentials, Content-Encoding): each request is read and sent
    as its own headers say, and a wrong password gets ClickHouse's own
    answer, even right after the same URL succeeded."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_headers"))
    target = "/?" + urllib.parse.urlencode({"query": insert_q(t)})
    wrong = [("X-ClickHouse-User", "alice"), ("X-ClickHouse-Key", "wrong")]
    direct = rawhttp.RawConn(clickhouse.http_url)
    direct.send(rawhttp.post(target, b'{"id":0,"s":"x","n":0}\n', headers=wrong))
    want_wrong = direct.read_response("POST")
    assert want_wrong.status != 200 and want_wrong.body.startswith(b"Code: ")
    kinds = ["plain", "gzip", "alice", "wrong"]
    conn = rawhttp.RawConn(sc.url)
    sent = []
    for i in range(48):
        kind = kinds[(i // 3) % 4]  # runs of three, so the same headers repeat too
        row = {"id": i, "s": kind, "n": -i}
        body = json.dumps(row).encode() + b"\n"
        headers = {"plain": [], "gzip": [("Content-Encoding", "gzip")],
                   "alice": [("X-ClickHouse-User", "alice"), ("X-ClickHouse-Key", "secret")],
                   "wrong": wrong}[kind]
        if kind == "gzip":
            body = gzip.compress(body)
        conn.send(rawhttp.post(target, body, headers=headers))
        r = conn.read_response("POST")
        if kind == "wrong":
            assert (r.status, r.body) == (want_wrong.status, want_wrong.body), i
        else:
            assert (r.status, r.body) == (200, b""), (i, r.status, r.body[:200])
            sent.append(row)
    assert json_rows(clickhouse, t) == sent


def test_empty_insert_into_missing_table_answers_like_clickhouse(clickhouse, start_sidecar):
    """An INSERT with no rows still names its table: ClickHouse says 404
    (code 60) for a table that does not exist; the sidecar must not say 200."""
    sc = start(start_sidecar, clickhouse)
    t = uniq("bt_missing_empty")
    r = req(insert_q(t), b"\n", sql_in_body=True)
    direct = send_direct(clickhouse, r)
    assert direct[0] == 404 and direct[1].startswith(b"Code: 60"), direct
    st, _, body = send_all(sc.url, [r])[0]
    assert (st, body) == direct


# -- large and odd bodies pass through ------------------------------------------------------------

@pytest.mark.parametrize("sql_in_body", [False, True], ids=["sql_in_query", "sql_in_body"])
def test_large_insert_streams_through_unbatched(clickhouse, start_sidecar, sql_in_body):
    """A body beyond --body-buffer (1 MiB) is not held for batching: it goes
    upstream as one INSERT, unchanged."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_large"))
    rows = [{"id": i, "s": "L" * 40, "n": i} for i in range(50_000)]  # ~2.6 MB
    data = "\n".join(json.dumps(r) for r in rows).encode()
    assert_all_ok(send_all(sc.url, [req(insert_q(t), data, sql_in_body=sql_in_body)]))
    assert count(clickhouse, t) == len(rows)
    assert scalar(clickhouse, f"SELECT sum(id), uniqExact(id) FROM {t} FORMAT TSV") == \
        f"{sum(range(50_000))}\t50000"
    assert not FLUSH_RE.search(sc.stderr_text())


def test_gzip_beyond_max_decompressed_passes_through(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse, "--max-decompressed-bytes", "64KiB")
    t = make_table(clickhouse, uniq("bt_gzbig"))
    rows = [{"id": i, "s": f"v{i * 7919 % 10007}", "n": i} for i in range(5000)]  # ~150 KB
    data = gzip.compress("\n".join(json.dumps(r) for r in rows).encode())
    assert_all_ok(send_all(sc.url, [req(insert_q(t), data, headers={"Content-Encoding": "gzip"})]))
    assert json_rows(clickhouse, t) == rows
    assert not FLUSH_RE.search(sc.stderr_text())


# -- acknowledgement ------------------------------------------------------------------------------

def test_client_gone_rows_still_inserted(clickhouse, start_sidecar):
    """A client that hangs up while its rows wait in a batch: the rows were
    accepted and are inserted once; the others of the batch are answered."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "500ms", "--flush-delay-max", "500ms")
    t = make_table(clickhouse, uniq("bt_gone"))
    qs = urllib.parse.urlencode({"query": insert_q(t)})
    c = RawConn(sc.url)
    c.send(rawhttp.post(f"/?{qs}", b'{"id":1,"s":"gone","n":1}'))
    time.sleep(0.1)
    c.close()
    with RawConn(sc.url) as c2:
        r = c2.request(rawhttp.post(f"/?{qs}", b'{"id":2,"s":"stays","n":2}'))
        assert (r.status, r.body) == (200, b""), r
    assert rawhttp.wait_until(lambda: count(clickhouse, t) == 2, 3)
    assert dump(clickhouse, t) == b"1\tgone\t1\n2\tstays\t2\n"


def test_sigterm_flushes_buffered_rows(clickhouse, start_sidecar):
    """On shutdown the buffers are flushed at once and the waiting clients
    get their 200; nothing is lost, nothing answered without a commit."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "5s", "--flush-delay-max", "5s")
    t = make_table(clickhouse, uniq("bt_term"))
    reqs = [req(insert_q(t), json.dumps({"id": i, "s": "t", "n": i}).encode()) for i in range(40)]
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", send_all(sc.url, reqs)))
    th.start()
    time.sleep(1.0)
    assert count(clickhouse, t) == 0  # still buffered
    t0 = time.monotonic()
    rc = sc.stop()
    th.join(10)
    assert rc == 0
    assert time.monotonic() - t0 < 4, "shutdown waited for the flush delay"
    assert_all_ok(out["r"], "answers on shutdown")
    assert count(clickhouse, t) == 40


@pytest.mark.parametrize("fmt,header", [("CSVWithNames", b"id,s,n,extra\n"),
                                        ("TSVWithNames", b"id\ts\n")])
def test_header_mismatch_goes_alone(clickhouse, start_sidecar, fmt, header):
    """A *WithNames header naming another number of columns than the INSERT
    is not batched: ClickHouse reads it alone and answers, as direct."""
    sc = start(start_sidecar, clickhouse)
    t = make_table(clickhouse, uniq("bt_hdr"))
    twin = make_table(clickhouse, uniq("bt_hdr_twin"))
    row = b"1,ok,1\n" if fmt.startswith("CSV") else b"1\tok\t1\n"
    direct = send_direct(clickhouse, req(f"INSERT INTO {twin} (id, s, n) FORMAT {fmt}", header + row))
    ((st, _, body),) = send_all(sc.url, [req(f"INSERT INTO {t} (id, s, n) FORMAT {fmt}", header + row)])
    assert (st, body.split(b",")[0]) == (direct[0], direct[1].split(b",")[0]), (st, body, direct)
    assert dump(clickhouse, t) == dump(clickhouse, twin)
    assert flushes(sc, t) == []


def test_large_requests_are_sent_as_they_are(clickhouse, start_sidecar):
    """An INSERT of --passthrough-rows rows or more is a batch already: it is
    not held back for others, and each lands as its own INSERT."""
    sc = start(start_sidecar, clickhouse, "--passthrough-rows", "100")
    t = make_table(clickhouse, uniq("bt_big"))
    body = "\n".join(json.dumps({"id": i, "s": "big", "n": i}) for i in range(100)).encode()
    small = json.dumps({"id": 1000, "s": "small", "n": 0}).encode()
    results = send_all(sc.url, [req(insert_q(t), body), req(insert_q(t), small)])
    assert [(st, b) for st, _, b in results] == [(200, b"")] * 2
    assert count(clickhouse, t) == 101
    assert [f[0] for f in flushes(sc, t)] == [1]  # only the small one was batched


def test_large_request_with_a_bad_row_gets_clickhouses_answer(clickhouse, start_sidecar):
    """A request of --passthrough-rows lines or more goes to ClickHouse as it
    is, unchecked: a bad row in it is refused the way ClickHouse refuses it
    direct (same status and error code), and nothing of it is inserted."""
    sc = start(start_sidecar, clickhouse, "--passthrough-rows", "100")
    t = make_table(clickhouse, uniq("bt_big_bad"))
    rows = [json.dumps({"id": i, "s": "big", "n": i}) for i in range(150)]
    rows[120] = '{"id": 120, "s": "big", "n": 12'  # not even JSON
    r = req(insert_q(t), "\n".join(rows).encode())
    direct_status, direct_body = send_direct(clickhouse, r)
    ((status, _, body),) = send_all(sc.url, [r])
    assert direct_status >= 400 and status == direct_status, (status, direct_status, body)
    code = re.match(rb"Code: \d+", direct_body)
    assert code and body.startswith(code.group(0)), (body, direct_body)
    assert b"chsidecar" not in body, body  # ClickHouse's own words, not the sidecar's
    assert count(clickhouse, t) == 0
    assert flushes(sc, t) == []
