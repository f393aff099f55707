"""Tables with materialized views: a failed batch is never sent again blindly.

ClickHouse writes an INSERT's block to the table, then pushes it to each
dependent view; when a view fails, the INSERT answers an error but the
table's rows are committed. What a user checks, with the same requests
sent straight to ClickHouse (each alone) and through the sidecar (batched):
no row is ever in the table more often than direct; a request answered 200
through the sidecar was answered 200 direct and its rows are there exactly
as often; an error through the sidecar is ClickHouse's own error; a batch
that failed in a view is neither bisected nor retried; spooled rows of
such a batch go to the dead letters, with ClickHouse's error.
"""

from __future__ import annotations

import json
import time

from rawhttp import uniq
from test_batching import BISECT_RE, insert_q, req, send_all, send_direct, start

THROWING_VIEW = "SELECT x, throwIf(x = 13) AS t FROM {src}"
# For x = 13 the view needs far more memory than max_memory_usage allows:
# a 241, which ClickHouse itself calls transient, raised after the table's part.
HUNGRY_VIEW = ("SELECT x, length(arrayStringConcat(arrayMap(i -> 'aaaaaaaaaa', "
               "range(if(x = 13, 50000000, 1))))) AS t FROM {src}")
MEMORY = {"max_memory_usage": "100000000"}


def make_pair(ch, view_sql: str) -> tuple[str, str]:
    """Two identical source tables, each with its own failing view."""
    names = []
    for side in ("direct", "sidecar"):
        src = uniq(f"mv_src_{side}")
        ch.query(f"CREATE TABLE {src} (x UInt32) ENGINE = MergeTree ORDER BY x")
        ch.query(f"CREATE MATERIALIZED VIEW {src}_v ENGINE = MergeTree ORDER BY x AS "
                 + view_sql.format(src=src))
        names.append(src)
    return names[0], names[1]


def rows_per_value(ch, table: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for line in ch.query(f"SELECT x, count() FROM {table} GROUP BY x FORMAT TSV").decode().split("\n"):
        if line:
            x, n = line.split("\t")
            out[int(x)] = int(n)
    return out


def run_both(ch, sc, view_sql: str, params: dict | None = None, values=range(30)):
    direct_t, side_t = make_pair(ch, view_sql)
    direct = [send_direct(ch, req(insert_q(direct_t, "CSV"), b"%d\n" % x, params))
              for x in values]
    through = send_all(sc.url, [req(insert_q(side_t, "CSV"), b"%d\n" % x, params)
                                for x in values])
    return direct_t, side_t, direct, through


def assert_no_row_more_than_direct(ch, direct_t, side_t, values, direct, through):
    want = rows_per_value(ch, direct_t)
    got = rows_per_value(ch, side_t)
    for x, (dst, _), (st, _, body) in zip(values, direct, through):
        assert got.get(x, 0) <= want.get(x, 0), (x, got, want)
        if st == 200:
            assert dst == 200, (x, st, dst)
            assert got.get(x, 0) == want.get(x, 0), (x, got, want)
    return want, got


def test_a_view_error_is_not_bisected_and_no_row_lands_twice(clickhouse, start_sidecar):
    """Requests batched with one that a view refuses: the batch fails with
    ClickHouse's error after the table took it. Every row is in the table
    once (as direct), the refused request gets ClickHouse's status and code,
    and nothing is sent again."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "300ms", "--flush-delay-max", "300ms")
    values = list(range(30))
    direct_t, side_t, direct, through = run_both(clickhouse, sc, THROWING_VIEW, values=values)
    want, got = assert_no_row_more_than_direct(clickhouse, direct_t, side_t, values, direct, through)
    assert want == {x: 1 for x in values}, want  # direct: the table took 13 too
    assert got == want, got
    bad = values.index(13)
    dst, dbody = direct[bad]
    st, _, body = through[bad]
    assert (st, body.split(b",")[0]) == (dst, dbody.split(b",")[0]), (st, body, dst, dbody)
    assert body.startswith(b"Code: 395"), body
    # The batch holding 13 held others: they got the same error, not 200.
    failed = [x for x, (s, _, _) in zip(values, through) if s != 200]
    assert len(failed) > 1, "13 was not batched with others: the test proves nothing"
    assert not BISECT_RE.search(sc.stderr_text()), "a batch into a table with views was bisected"
    assert "dependent views" in sc.stderr_text()


def test_a_view_memory_limit_is_not_retried(clickhouse, start_sidecar):
    """A 241 (memory limit) raised in a view is transient for ClickHouse,
    but the table holds the rows already: retrying inserted them again on
    every try. Now each client gets the 241 as it would direct, and no row
    is in the table more often than direct, also a while later."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "300ms", "--flush-delay-max", "300ms",
               "--retry-backoff-min", "10ms", "--retry-backoff-max", "50ms")
    values = list(range(20))
    direct_t, side_t, direct, through = run_both(clickhouse, sc, HUNGRY_VIEW, MEMORY, values)
    bad = values.index(13)
    assert direct[bad][0] == through[bad][0] == 500, (direct[bad], through[bad][:1])
    assert through[bad][2].startswith(b"Code: 241"), through[bad]
    time.sleep(1.0)  # retries, if any, would have landed by now
    want, got = assert_no_row_more_than_direct(clickhouse, direct_t, side_t, values, direct, through)
    assert got == want == {x: 1 for x in values}, (got, want)
    assert "batch_retry " not in sc.stderr_text()


def test_spooled_rows_of_a_failed_view_batch_are_dead_lettered_once(clickhouse, start_sidecar,
                                                                    tmp_path):
    """Answered early (wait_for_async_insert=0), then the batch fails in a
    view: the rows are in the table once, never sent again, and the spooled
    rows of that batch are in dead-letter.jsonl with ClickHouse's error and
    a note that they may be in the table."""
    spool_dir = tmp_path / "spool"
    sc = start(start_sidecar, clickhouse, "--spool-dir", str(spool_dir), "--early-ack-proof", "0",
               "--flush-delay-min", "300ms", "--flush-delay-max", "300ms",
               "--retry-backoff-min", "10ms", "--retry-backoff-max", "50ms")
    values = list(range(20))
    direct_t, side_t = make_pair(clickhouse, HUNGRY_VIEW)
    for x in values:
        send_direct(clickhouse, req(insert_q(direct_t, "CSV"), b"%d\n" % x, MEMORY))
    spooled = {**MEMORY, "wait_for_async_insert": "0"}
    through = send_all(sc.url, [req(insert_q(side_t, "CSV"), b"%d\n" % x, spooled)
                                for x in values])
    assert all(st == 200 for st, _, _ in through), through
    dl = spool_dir / "dead-letter.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (dl.exists() and dl.stat().st_size):
        time.sleep(0.05)
    time.sleep(1.0)
    lines = [json.loads(line) for line in dl.read_text().splitlines() if line.strip()]
    assert lines, "no dead letter for the failed batch"
    assert any("13" in line["data"] for line in lines), lines
    for line in lines:
        assert "Code: 241" in line["error"] and "dependent views" in line["error"], line
    assert rows_per_value(clickhouse, side_t) == rows_per_value(clickhouse, direct_t) \
        == {x: 1 for x in values}
    assert "batch_retry " not in sc.stderr_text()


def test_a_table_without_views_is_still_bisected(clickhouse, start_sidecar):
    """The check finds no view: a bad row is isolated as before, and the
    other requests of its batch are committed once."""
    sc = start(start_sidecar, clickhouse, "--flush-delay-min", "300ms", "--flush-delay-max", "300ms")
    t = uniq("mv_none")
    clickhouse.query(f"CREATE TABLE {t} (x UInt32) ENGINE = MergeTree ORDER BY x")
    bodies = [b"%d\n" % x for x in range(20)]
    bodies[7] = b"abc\n"
    through = send_all(sc.url, [req(insert_q(t, "CSV"), b) for b in bodies])
    assert [st == 200 for st, _, _ in through] == [i != 7 for i in range(20)], through
    assert BISECT_RE.search(sc.stderr_text())
    assert rows_per_value(clickhouse, t) == {x: 1 for x in range(20) if x != 7}
