"""Batching RowBinary, RowBinaryWithNames and RowBinaryWithDefaults INSERTs
(issue 22): rows walked by the table's columns, learnt with DESCRIBE.

Bodies are made by the test server itself (SELECT ... FORMAT RowBinary),
one row per request, for every type the sidecar walks the server has
(test_binary_formats.COLUMNS). Sent concurrently through the sidecar they
wait for the table's DESCRIBE, batch, and the table holds what the same
requests sent straight to ClickHouse leave. What the sidecar cannot judge
(a type it does not walk, a table DESCRIBE does not find, a format the
server lacks) goes alone and gets ClickHouse's own answer. After ALTER
TABLE ... ADD COLUMN the columns are asked again.
"""

from __future__ import annotations

import re
import struct
import time

import pytest

from fault_relay import FaultRelay
from rawhttp import uniq, wait_until
from test_batching import (assert_all_ok, count, flushes, make_table, req, send_all, send_direct,
                           start, wait_flush_lines)
from test_binary_formats import (COLUMNS, MODERN, assert_batched_in_few_parts, bodies, compare,
                                 make_tables, source, unknown_type_goes_alone)

# 18.16 knows plain RowBinary only (RowBinaryWithNames: code 73);
# RowBinaryWithDefaults came in 23.7.
FORMATS = ["RowBinary"] + (["RowBinaryWithNames", "RowBinaryWithDefaults"] if MODERN else [])


def learnt(sc, table: str) -> int:
    """How often the sidecar has learnt `table`'s columns."""
    return len(re.findall(rf"table_structure_learnt table={table} ", sc.stderr_text()))


DEFAULTED = {"i8", "f64", "s", "ns", "a", "lc", "b", "m", "lcn", "ip6"}


def with_defaults_body(ch, src: str, i: int) -> bytes:
    """Row `i` in RowBinaryWithDefaults (an input-only format): each value
    preceded by 0, or only the byte 1 (the column's default) for some
    columns whose type's default is a value (not an Enum's 0)."""
    out = b""
    for k, (name, _, _) in enumerate(COLUMNS):
        if name in DEFAULTED and (k + i) % 3 == 0:
            out += b"\x01"
        else:
            out += b"\x00" + ch.query(f"SELECT `{name}` FROM {src} WHERE id = {i} FORMAT RowBinary")
    return out


def format_bodies(ch, src: str, fmt: str, n: int) -> list[bytes]:
    if fmt == "RowBinaryWithDefaults":
        return [with_defaults_body(ch, src, i) for i in range(n)]
    return bodies(ch, src, fmt, n)


@pytest.mark.parametrize("fmt", FORMATS)
def test_single_rows_batch_and_land_as_direct(clickhouse, start_sidecar, capsys, fmt):
    n = 40 if fmt == "RowBinaryWithDefaults" else 120
    sc = start(start_sidecar, clickhouse)
    src = source(clickhouse, n)
    via, direct = make_tables(clickhouse, 2)
    bs = format_bodies(clickhouse, src, fmt, n)
    # All at once, the table's columns not known yet: they wait for its DESCRIBE.
    results = send_all(sc.url, [req(f"INSERT INTO {via} FORMAT {fmt}", b) for b in bs], concurrency=64)
    assert_all_ok(results, f"single-row {fmt} INSERTs")
    for b in bs:
        assert send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT {fmt}", b))[0] == 200
    compare(clickhouse, via, direct)
    assert_batched_in_few_parts(clickhouse, sc, capsys, via, n, fmt, f", DESCRIBE {learnt(sc, via)}x")
    assert learnt(sc, via) == 1


@pytest.mark.parametrize("fmt", ["Native"] + FORMATS)
def test_spooled_early_answers_land_as_direct(clickhouse, start_sidecar, tmp_path, fmt):
    """Native and RowBinary bodies answered early from the spool: batched,
    and the table holds what the same requests leave direct."""
    n = 30 if fmt == "RowBinaryWithDefaults" else 60
    sc = start(start_sidecar, clickhouse, "--spool-dir", str(tmp_path / "spool"))
    src = source(clickhouse, n)
    via, direct = make_tables(clickhouse, 2)
    bs = format_bodies(clickhouse, src, fmt, n)
    params = {"wait_for_async_insert": "0"}
    # The first request proves the key (its answer waits for the commit).
    assert_all_ok(send_all(sc.url, [req(f"INSERT INTO {via} FORMAT {fmt}", bs[0], params=params)]))
    rest = [req(f"INSERT INTO {via} FORMAT {fmt}", b, params=params) for b in bs[1:]]
    assert_all_ok(send_all(sc.url, rest, concurrency=32), f"spooled {fmt} INSERTs")
    for b in bs:
        assert send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT {fmt}", b))[0] == 200
    fl = wait_flush_lines(sc, via, n)
    assert sum(f[1] for f in fl) == n and len(fl) < n / 3, fl
    assert wait_until(lambda: count(clickhouse, via) == n, 10), count(clickhouse, via)
    compare(clickhouse, via, direct)


def defaults_tables(ch) -> list[str]:
    """Tables with DEFAULT, MATERIALIZED and ALIAS columns (and EPHEMERAL on 26.7)."""
    eph = ", e UInt8 EPHEMERAL" if MODERN else ""
    d = "e * 10" if MODERN else "7"
    columns = (f"id UInt32, s String DEFAULT 'dflt', m UInt64 MATERIALIZED id * 2, "
               f"al UInt32 ALIAS id + 1, d UInt32 DEFAULT {d}{eph}")
    return [make_table(ch, uniq("rb_def"), columns) for _ in range(2)]


def test_column_lists_and_default_columns(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    via, direct = defaults_tables(clickhouse)
    cases = [  # (column list, the SELECT making row i in those columns)
        ("", "toUInt32({i}) id, toString({i}) s, toUInt32({i} + 100) d"),  # ordinary and DEFAULT
        ("(id)", "toUInt32({i} + 1000) id"),
        ("(`d`, id)", "toUInt32({i}) d, toUInt32({i} + 2000) id"),
    ]
    if MODERN:
        cases.append(("(id, e)", "toUInt32({i} + 3000) id, toUInt8({i}) e"))
    reqs = []
    for cols, select in cases:
        for i in range(20):
            body = clickhouse.query("SELECT " + select.format(i=i) + " FORMAT RowBinary")
            reqs.append(req(f"INSERT INTO {via} {cols} FORMAT RowBinary", body))
    assert_all_ok(send_all(sc.url, reqs, concurrency=32), "RowBinary with column lists")
    for r in reqs:
        q = r["params"]["query"].replace(via, direct)
        assert send_direct(clickhouse, req(q, r["data"]))[0] == 200
    cols = "id, s, m, al, d"
    q = "SELECT {} FROM {} ORDER BY id FORMAT TSV"
    assert clickhouse.query(q.format(cols, via)) == clickhouse.query(q.format(cols, direct))
    assert count(clickhouse, via) == len(reqs)
    fl = wait_flush_lines(sc, via, len(reqs))
    assert sum(f[1] for f in fl) == len(reqs), fl
    assert len(fl) <= 3 * len(cases), fl  # each column list is its own key
    if MODERN:  # RowBinaryWithNames: a header naming some of the columns
        names = [clickhouse.query(f"SELECT toUInt32({i} + 4000) id, toUInt32({i}) d FORMAT RowBinaryWithNames")
                 for i in range(10)]
        assert_all_ok(send_all(sc.url, [req(f"INSERT INTO {via} FORMAT RowBinaryWithNames", b) for b in names]))
        for b in names:
            assert send_direct(clickhouse, req(f"INSERT INTO {direct} FORMAT RowBinaryWithNames", b))[0] == 200
        assert clickhouse.query(q.format(cols, via)) == clickhouse.query(q.format(cols, direct))


def test_unknown_type_goes_alone(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    via = unknown_type_goes_alone(clickhouse, sc, "RowBinary")
    # Listing only walked columns batches (the other takes its default).
    bs = [struct.pack("<I", i + 10) for i in range(10)]
    assert_all_ok(send_all(sc.url, [req(f"INSERT INTO {via} (id) FORMAT RowBinary", b) for b in bs]))
    assert sum(f[1] for f in wait_flush_lines(sc, via, 10)) == 10


def answers_alike(got, want):
    """Status, exception code and text as ClickHouse answers it alone."""
    st, headers, body = got
    want_st, want_headers, want_body = want
    assert st == want_st != 200, (got, want)
    assert headers.get("X-ClickHouse-Exception-Code") == want_headers.get("X-ClickHouse-Exception-Code")
    assert body == want_body


def test_missing_table_and_unknown_format_get_clickhouses_answer(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    missing = uniq("rb_missing")
    body = b"\x01\x00\x00\x00"
    cases = [req(f"INSERT INTO {missing} FORMAT RowBinary", body)]
    if not MODERN:  # formats 18.16 does not know: code 73, as direct
        t = make_tables(clickhouse, 1)[0]
        cases += [req(f"INSERT INTO {t} FORMAT RowBinaryWithNames", b"\x01\x02id" + body),
                  req(f"INSERT INTO {t} FORMAT RowBinaryWithDefaults", b"\x00" + body)]
    for r in cases:
        answers_alike(send_all(sc.url, [r])[0], send_all(clickhouse.http_url, [r])[0])
    # A table made later is learnt at a later request (a second on).
    clickhouse.query(f"CREATE TABLE {missing} (id UInt32) ENGINE = MergeTree ORDER BY id")
    time.sleep(1.1)
    assert_all_ok(send_all(sc.url, [req(f"INSERT INTO {missing} FORMAT RowBinary", body)] * 5))
    assert count(clickhouse, missing) == 5
    assert wait_until(lambda: learnt(sc, missing) == 1, 5)


def test_columns_asked_again_after_add_column(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse)
    tables = [make_table(clickhouse, uniq("rb_alter"), "id UInt32, s String") for _ in range(2)]
    via, direct = tables

    def rows(select: str, ids) -> list[dict]:
        return [req("INSERT INTO {t} FORMAT RowBinary",
                    clickhouse.query(select.format(i=i) + " FORMAT RowBinary")) for i in ids]

    def send(reqs):
        assert_all_ok(send_all(sc.url, [dict(r, params={"query": r["params"]["query"].format(t=via)})
                                        for r in reqs], concurrency=32))
        for r in reqs:
            assert send_direct(clickhouse, dict(r, params={"query": r["params"]["query"].format(t=direct)}))[0] == 200

    send(rows("SELECT toUInt32({i}) id, toString({i}) s", range(20)))
    assert learnt(sc, via) == 1
    for t in tables:
        clickhouse.query(f"ALTER TABLE {t} ADD COLUMN x String")
    # The first row of three columns does not walk by two: it goes alone
    # (and lands), and the columns are asked again.
    send(rows("SELECT toUInt32({i}) id, toString({i}) s, 'abc' x", [100]))
    assert wait_until(lambda: learnt(sc, via) == 2, 5), sc.stderr_text()[-2000:]
    batched_before = sum(f[1] for f in flushes(sc, via))
    send(rows("SELECT toUInt32({i}) id, toString({i}) s, concat('x', toString({i})) x", range(200, 230)))
    fl = wait_flush_lines(sc, via, batched_before + 30)
    assert sum(f[1] for f in fl) - batched_before == 30, fl
    q = "SELECT id, s, x FROM {} ORDER BY id FORMAT TSV"
    assert clickhouse.query(q.format(via)) == clickhouse.query(q.format(direct))
    assert count(clickhouse, via) == 51


def id_rows(table: str, ids) -> list[dict]:
    """One RowBinary request per id: a UInt32, little-endian."""
    return [req(f"INSERT INTO {table} FORMAT RowBinary", struct.pack("<I", i)) for i in ids]


def id_table(ch) -> str:
    return make_table(ch, uniq("rb_id"), "id UInt32")


def test_table_structure_timeout_sends_alone(clickhouse, start_sidecar):
    """A DESCRIBE that never answers holds the INSERTs only
    --table-structure-timeout; then they go alone, and land."""
    with FaultRelay("127.0.0.1", clickhouse.http_port).start() as relay:
        sc = start_sidecar(relay.url, "--log-level", "debug", "--table-structure-timeout", "300ms")
        t = id_table(clickhouse)
        relay.set("blackhole", only=b"DESCRIBE")
        t0 = time.monotonic()
        assert_all_ok(send_all(sc.url, id_rows(t, range(5))))
        took = time.monotonic() - t0
    assert 0.3 <= took < 5, took
    assert count(clickhouse, t) == 5
    assert flushes(sc, t) == []
    assert "table_structure_unknown table=" + t in sc.stderr_text()


def test_table_structure_ttl_and_max_table_structures(clickhouse, start_sidecar):
    sc = start(start_sidecar, clickhouse, "--table-structure-ttl", "1s", "--max-table-structures", "1")
    a, b = id_table(clickhouse), id_table(clickhouse)
    assert_all_ok(send_all(sc.url, id_rows(a, range(10))))
    assert learnt(sc, a) == 1
    # A second table: the first one's columns are forgotten (one kept) ...
    assert_all_ok(send_all(sc.url, id_rows(b, range(10))))
    assert_all_ok(send_all(sc.url, id_rows(a, range(10, 20))))
    assert learnt(sc, a) == 2 and learnt(sc, b) == 1
    # ... and after the TTL they are asked again, while still used.
    time.sleep(1.1)
    assert_all_ok(send_all(sc.url, id_rows(a, range(20, 30))))
    assert wait_until(lambda: learnt(sc, a) == 3, 5)
    assert count(clickhouse, a) == 30 and count(clickhouse, b) == 10
    assert sum(f[1] for f in wait_flush_lines(sc, a, 30)) == 30
