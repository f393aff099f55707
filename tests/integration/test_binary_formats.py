"""Batching Native and RowBinaryWithNamesAndTypes INSERTs (issue 22, "Formats").

Bodies are made by the test server itself (SELECT ... FORMAT Native), one
row or a few blocks per request, for every type the sidecar walks the
server has: NULLs, empty strings and arrays, LowCardinality dictionaries
that differ from request to request. Sent concurrently through the
sidecar, they batch (batch_flush lines, parts) and the table holds what the
same requests sent straight to ClickHouse leave. What the sidecar does not
walk (an unknown type, a truncated body) goes alone and gets ClickHouse's
own answer.
"""

from __future__ import annotations

import time

import pytest

from clickhouse_server import TEST_SERVER
from rawhttp import report, uniq, wait_until
from test_batching import (assert_all_ok, count, dump, flushes, parts_created, req, send_all,
                           send_direct, start, wait_flush_lines)

MODERN = TEST_SERVER != "18.16"
# Every walked type the server has, and how to make a row of it from `number`.
COLUMNS = [
    ("id", "UInt32", "toUInt32(number)"),
    ("i8", "Int8", "toInt8(number % 100 - 50)"),
    ("u64", "UInt64", "number * 1000000007"),
    ("f32", "Float32", "toFloat32(number) / 3"),
    ("f64", "Float64", "number / 7"),
    ("d", "Date", "toDate('2024-01-01') + number"),
    ("dt", "DateTime('UTC')", "toDateTime('2024-01-01 00:00:00', 'UTC') + number"),
    ("dec", "Decimal(9, 2)", "toDecimal32(number / 4, 2)"),
    ("uid", "UUID", "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')"),
    ("e", "Enum8('a' = 1, 'b' = 2)", "if(number % 2 = 0, 'a', 'b')"),
    ("s", "String", "if(number % 5 = 0, '', concat('row ', toString(number), ' \\t\"é'))"),
    ("fs", "FixedString(3)", "toFixedString(substring(toString(number + 100), 1, 3), 3)"),
    ("ns", "Nullable(String)", "if(number % 3 = 0, NULL, toString(number))"),
    ("ni", "Nullable(Int32)", "if(number % 4 = 0, NULL, toInt32(number))"),
    ("a", "Array(Nullable(Int32))", "arrayMap(x -> if(x = 1, NULL, toInt32(x)), range(number % 4))"),
    ("as", "Array(String)", "arrayMap(x -> toString(x), range(number % 3))"),
    ("t", "Tuple(UInt8, String)", "(toUInt8(number % 200), toString(number))"),
    ("lc", "LowCardinality(String)", "toLowCardinality(concat('k', toString(number % 7)))"),
]
if MODERN:
    COLUMNS += [
        ("b", "Bool", "number % 2 = 1"),
        ("d32", "Date32", "toDate32('1950-01-01') + number"),
        ("dt64", "DateTime64(3, 'UTC')", "toDateTime64('2024-01-01 00:00:00.123', 3, 'UTC') + number"),
        ("ip4", "IPv4", "toIPv4('10.0.0.1')"),
        ("ip6", "IPv6", "toIPv6('::1')"),
        ("i128", "Int128", "toInt128(number) - 100"),
        ("u256", "UInt256", "toUInt256(number)"),
        ("dec40", "Decimal(40, 2)", "toDecimal256(number, 2)"),
        ("e16", "Enum16('x' = 1000, 'y' = 2000)", "if(number % 2 = 0, 'x', 'y')"),
        ("m", "Map(String, UInt64)", "if(number % 5 = 0, map(), map('k', number))"),
        ("nt", "Tuple(a UInt8, b Nullable(String))", "(toUInt8(1), if(number % 2 = 0, NULL, 'x'))"),
        ("lcn", "LowCardinality(Nullable(String))", "if(number % 3 = 0, NULL, toString(number % 5))"),
        ("alc", "Array(LowCardinality(String))", "arrayMap(x -> toString(x), range(1 + number % 3))"),
    ]
CREATE_SETTINGS = {} if MODERN else {"allow_experimental_low_cardinality_type": "1"}
NAMES = ", ".join(f"`{c[0]}`" for c in COLUMNS)


def make_tables(ch, n: int) -> list[str]:
    cols = ", ".join(f"`{name}` {t}" for name, t, _ in COLUMNS)
    out = []
    for _ in range(n):
        t = uniq("bin")
        ch.query(f"CREATE TABLE {t} ({cols}) ENGINE = MergeTree ORDER BY id", params=CREATE_SETTINGS)
        out.append(t)
    return out


def source(ch, rows: int) -> str:
    """A table holding `rows` rows of every column, to cut bodies from."""
    src = make_tables(ch, 1)[0]
    exprs = ", ".join(e for _, _, e in COLUMNS)
    ch.query(f"INSERT INTO {src} SELECT {exprs} FROM numbers({rows})")
    return src


def bodies(ch, src: str, fmt: str, rows: int) -> list[bytes]:
    """One body per row, in `fmt`, as the server writes it."""
    return [ch.query(f"SELECT * FROM {src} WHERE id = {i} FORMAT {fmt}") for i in range(rows)]


def compare(ch, via: str, direct: str) -> None:
    assert dump(ch, via, "TSV") == dump(ch, direct, "TSV")
    assert dump(ch, via, "TSV").count(b"\n") > 0


def test_native_single_rows_batch_and_land_as_direct(clickhouse, start_sidecar, capsys):
    n = 200
    sc = start(start_sidecar, clickhouse)
    src = source(clickhouse, n)
    via, direct = make_tables(clickhouse, 2)
    reqs = []
    for i, body in enumerate(bodies(clickhouse, src, "Native", n)):
        # Half in the URL, half as clickhouse-connect sends them: the SQL,
        # a newline, then the block, with no query parameter.
        in_body = i % 2 == 1
        reqs.append(req(f"INSERT INTO {via} ({NAMES}) FORMAT Native", body,
                        headers={"Content-Type": "application/octet-stream"}, sql_in_body=in_body))
    results = send_all(sc.url, reqs, concurrency=64)
    assert_all_ok(results, "single-row Native INSERTs")
    for r in reqs:
        r2 = dict(r)
        r2["data"] = r["data"].replace(via.encode(), direct.encode(), 1)
        if "query" in r2["params"]:
            r2["params"] = {"query": r["params"]["query"].replace(via, direct)}
        assert send_direct(clickhouse, r2)[0] == 200
    compare(clickhouse, via, direct)
    assert_batched_in_few_parts(clickhouse, sc, capsys, via, n, "Native")


def assert_batched_in_few_parts(ch, sc, capsys, via: str, n: int, fmt: str, note: str = "") -> None:
    """`n` single-row requests into `via` were all batched, in at most a
    tenth as many batches and parts."""
    fl = wait_flush_lines(sc, via, n)
    assert sum(f[0] for f in fl) == n, fl
    parts = parts_created(ch, via)
    report(capsys, f"{TEST_SERVER}: {n} single-row {fmt} INSERTs ({len(COLUMNS)} columns), "
                   f"64 writers: {len(fl)} batches, {parts} parts{note}")
    assert parts <= n / 10 and len(fl) <= n / 10, (parts, fl)


def test_native_multi_block_bodies_concatenate(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    src = source(clickhouse, 60)
    via, direct = make_tables(clickhouse, 2)
    reqs = []
    for k in range(6):  # 10 rows each, in blocks of 3
        body = clickhouse.query(f"SELECT * FROM {src} WHERE id >= {k * 10} AND id < {k * 10 + 10} "
                                "ORDER BY id FORMAT Native", params={"max_block_size": "3"})
        reqs.append(req(f"INSERT INTO {via} FORMAT Native", body))
    assert_all_ok(send_all(sc.url, reqs), "multi-block Native INSERTs")
    for r in reqs:
        assert send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT Native", r["data"]))[0] == 200
    compare(clickhouse, via, direct)
    fl = wait_flush_lines(sc, via, 6)
    assert len(fl) < 6, fl


@pytest.mark.skipif(not MODERN, reason="18.16 does not know RowBinaryWithNamesAndTypes")
def test_row_binary_with_names_and_types_batches(clickhouse, start_sidecar, capsys):
    n = 100
    sc = start(start_sidecar, clickhouse)
    src = source(clickhouse, n)
    via, direct = make_tables(clickhouse, 2)
    bs = bodies(clickhouse, src, "RowBinaryWithNamesAndTypes", n)
    reqs = [req(f"INSERT INTO {via} FORMAT RowBinaryWithNamesAndTypes", b) for b in bs]
    assert_all_ok(send_all(sc.url, reqs, concurrency=64), "RowBinaryWithNamesAndTypes INSERTs")
    for b in bs:
        assert send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT RowBinaryWithNamesAndTypes", b))[0] == 200
    compare(clickhouse, via, direct)
    fl = wait_flush_lines(sc, via, n)
    report(capsys, f"{TEST_SERVER}: {n} single-row RowBinaryWithNamesAndTypes INSERTs: {len(fl)} batches")
    assert len(fl) <= n / 10, fl


def test_row_binary_on_a_server_without_it_gets_its_answer(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    via, direct = make_tables(clickhouse, 2)
    body = b"\x01\x02id\x06UInt32\x07\x00\x00\x00"
    got = send_all(sc.url, [req(f"INSERT INTO {via} (id) FORMAT RowBinaryWithNamesAndTypes", body)])[0]
    want = send_direct(clickhouse, req(f"INSERT INTO {direct} (id) FORMAT RowBinaryWithNamesAndTypes", body))
    assert got[0] == want[0]
    assert dump(clickhouse, via) == dump(clickhouse, direct)


def unknown_type_goes_alone(ch, sc, fmt: str) -> str:
    """AggregateFunction rows in `fmt`, through the sidecar and direct:
    they land alike and are never batched. Returns the sidecar's table."""
    tables = []
    for _ in range(2):
        t = uniq("bin_agg")
        ch.query(f"CREATE TABLE {t} (id UInt32, c AggregateFunction(count)) "
                 "ENGINE = AggregatingMergeTree ORDER BY id")
        tables.append(t)
    via, direct = tables
    bs = [ch.query(f"SELECT toUInt32({i}) id, countState() c FROM numbers(3) FORMAT {fmt}")
          for i in range(5)]
    assert_all_ok(send_all(sc.url, [req(f"INSERT INTO {via} FORMAT {fmt}", b) for b in bs]))
    for b in bs:
        assert send_direct(ch, req(f"INSERT INTO {direct} FORMAT {fmt}", b))[0] == 200
    q = "SELECT id, countMerge(c) FROM {} GROUP BY id ORDER BY id FORMAT TSV"
    assert ch.query(q.format(via)) == ch.query(q.format(direct))
    assert flushes(sc, via) == []  # never batched
    return via


def test_native_unknown_type_goes_alone(clickhouse, start_sidecar):
    unknown_type_goes_alone(clickhouse, start(start_sidecar, clickhouse), "Native")


def test_native_truncated_body_gets_clickhouses_answer(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    src = source(clickhouse, 3)
    via, direct = make_tables(clickhouse, 2)
    body = clickhouse.query(f"SELECT * FROM {src} FORMAT Native")
    good = bodies(clickhouse, src, "Native", 3)
    for cut in (len(body) - 1, len(body) // 2, 3):
        reqs = [req(f"INSERT INTO {via} FORMAT Native", body[:cut])] + \
               [req(f"INSERT INTO {via} FORMAT Native", g) for g in good]
        results = send_all(sc.url, reqs)
        assert_all_ok(results[1:], "the good neighbours")
        st, headers, text = results[0]
        want_st, want_text = send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT Native", body[:cut]))
        for g in good:
            assert send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT Native", g))[0] == 200
        assert st == want_st != 200, (cut, text, want_text)
        assert text.split(b"DB::Exception")[0] == want_text.split(b"DB::Exception")[0]
    compare(clickhouse, via, direct)


def test_native_blocks_of_other_structures_are_separate_batches(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    t = uniq("bin_two")
    clickhouse.query(f"CREATE TABLE {t} (id UInt32, s String) ENGINE = MergeTree ORDER BY id")
    a = [clickhouse.query(f"SELECT toUInt32({i}) id, 'x' s FORMAT Native") for i in range(10)]
    b = [clickhouse.query(f"SELECT 'y' s, toUInt32({i + 10}) id FORMAT Native") for i in range(10)]
    c = [clickhouse.query(f"SELECT toUInt64({i + 20}) id, 'z' s FORMAT Native") for i in range(10)]
    reqs = [req(f"INSERT INTO {t} FORMAT Native", x) for trio in zip(a, b, c) for x in trio]
    results = send_all(sc.url, reqs)
    if MODERN:
        assert_all_ok(results)
        assert clickhouse.query(f"SELECT count(), uniqExact(id) FROM {t} FORMAT TSV") == b"30\t30\n"
    else:  # 18.16 does not convert UInt64 to UInt32 (368): only those requests fail
        assert [r[0] for r in results].count(200) == 20, [r[:1] for r in results]
    fl = flushes(sc, t)
    assert len(fl) >= 2


def test_clickhouse_connect_insert_shape_batched_and_spooled(clickhouse, start_sidecar, tmp_path,
                                                            capsys):
    """clickhouse-connect's INSERT, byte for byte in shape: no `query`
    parameter, `async_insert=1&wait_for_async_insert=0`, Content-Type
    application/octet-stream, Content-Encoding lz4 (an LZ4 frame), chunked,
    the body `INSERT INTO db.t (`a`, ...) FORMAT Native`, a newline and one
    Native block. 2,000 single-row inserts from 32 writers are answered
    early, land as direct, and make at most 40 parts, on every server."""
    import asyncio

    import aiohttp
    import lz4.frame

    n = 2000
    sc = start(start_sidecar, clickhouse, "--spool-dir", str(tmp_path / "spool"))
    src = source(clickhouse, 50)
    via, direct = make_tables(clickhouse, 2)
    blocks = bodies(clickhouse, src, "Native", 50)
    sql = f"INSERT INTO default.{via} ({NAMES}) FORMAT Native\n".encode()
    payloads = [lz4.frame.compress(sql + blocks[i % 50]) for i in range(n)]

    async def run():
        conn = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as s:
            async def one(body):
                async def chunks():
                    yield body[:7]
                    yield body[7:]
                async with s.post(f"{sc.url}/?async_insert=1&wait_for_async_insert=0",
                                  data=chunks(),
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Encoding": "lz4"}) as r:
                    return r.status, await r.read()
            return await asyncio.gather(*(one(b) for b in payloads))

    t0 = time.monotonic()
    answers = asyncio.run(run())
    took = time.monotonic() - t0
    assert [st for st, _ in answers] == [200] * n, [a for a in answers if a[0] != 200][:3]
    for i in range(50):  # the same rows straight to ClickHouse, 40 times each
        for _ in range(n // 50):
            clickhouse.query(f"INSERT INTO {direct} ({NAMES}) FORMAT Native", data=blocks[i])
    assert wait_until(lambda: count(clickhouse, via) == n, 20), count(clickhouse, via)
    compare(clickhouse, via, direct)
    parts = parts_created(clickhouse, via)
    report(capsys, f"{TEST_SERVER}: clickhouse-connect's shape (lz4 frame, SQL in the body, "
                   f"chunked, early answers): {n} single-row Native INSERTs from 32 writers in "
                   f"{took:.1f} s, {parts} parts")
    assert parts <= 40, parts
