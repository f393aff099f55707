"""Sessions: many coroutines sharing one session_id, as an async app does.

Straight to ClickHouse, concurrent requests on one session get
`Code: 373 Session is locked by a concurrent client`. Through the sidecar
they must all succeed: a session without state fans out over the pool, a
session with state (SET, temporary table) runs its requests one at a time in
arrival order, and neither loses a request.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid

import aiohttp
import httpx
import pytest

from metrics_text import fetch_metrics, value
from netutil import free_port
from rawhttp import assert_sidecar_error
from rawhttp import report

# Enough room in the sidecar for 200 concurrent client connections.
ROOMY = ("--max-connections", "1000", "--queue-max", "1000",
         "--session-queue-max", "1000")

SETTING_SQL = "SELECT value FROM system.settings WHERE name = 'max_threads'"


def new_session() -> str:
    return "s-" + uuid.uuid4().hex


async def _post(s: aiohttp.ClientSession, base: str, sql: str, params=None,
                data: bytes | None = None):
    p = dict(params or {})
    if data is None:
        body = sql.encode()
    else:
        p["query"] = sql
        body = data
    async with s.post(base + "/", params=p, data=body) as r:
        return r.status, await r.read(), dict(r.headers)


def client_session() -> aiohttp.ClientSession:
    # Raw bodies, compared byte for byte. aiohttp asks for gzip by default,
    # which 26.7 honours (enable_http_compression=1 there, 0 on 18.16): ask
    # for none, so both servers answer plain text. Compression through the
    # sidecar is test_transparency's.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=120),
        headers={"Accept-Encoding": "identity"},
        auto_decompress=False)


async def _post_or_error(s, base, sql, params):
    """Like _post, but a transport error becomes (0, repr, {})."""
    try:
        return await _post(s, base, sql, params)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
        return 0, repr(e).encode(), {}


async def _burst(base: str, n: int, sql: str, params) -> list:
    async with client_session() as s:
        return await asyncio.gather(*[_post_or_error(s, base, sql, params)
                                      for _ in range(n)])


def burst(base: str, n: int, sql: str, params) -> list:
    return asyncio.run(_burst(base, n, sql, params))


def codes(results) -> list:
    out = []
    for status, body, _ in results:
        if status != 200:
            out.append(body[:60])
    return out


# -- one session_id, no state ------------------------------------------------------

def test_200_concurrent_on_one_session(clickhouse, start_sidecar, capsys):
    sid = new_session()
    sql = "SELECT sleep(0.05)"
    direct = burst(clickhouse.http_url, 200, sql, {"session_id": sid})
    locked = sum(1 for st, body, _ in direct if b"Code: 373" in body)
    other = [b[:80] for st, b, _ in direct if st != 200 and b"Code: 373" not in b]
    report(capsys, f"200 concurrent on one session_id straight to ClickHouse: "
                   f"{locked} x 373, {len(other)} other failures")
    assert locked > 0, "ClickHouse did not lock the session: the test proves nothing"

    sc = start_sidecar(clickhouse.http_url, *ROOMY)
    sid = new_session()
    t0 = time.monotonic()
    through = burst(sc.url, 200, sql, {"session_id": sid})
    took = time.monotonic() - t0
    failed = [(st, b[:120]) for st, b, _ in through if (st, b) != (200, b"0\n")]
    report(capsys, f"same through the sidecar: {200 - len(failed)}/200 ok "
                   f"in {took:.2f} s")
    assert not failed, f"{len(failed)} of 200 failed, e.g. {failed[:3]}"


def test_stateless_session_runs_concurrently(clickhouse, start_sidecar):
    """A session without state must not be serialized: 16 x sleep(0.5) on a
    pool of 8 take two rounds, not sixteen."""
    sc = start_sidecar(clickhouse.http_url, "--pool-size", "8", *ROOMY)
    t0 = time.monotonic()
    res = burst(sc.url, 16, "SELECT sleep(0.5)", {"session_id": new_session()})
    took = time.monotonic() - t0
    assert [r[:2] for r in res] == [(200, b"0\n")] * 16, codes(res)
    assert took < 3.5, f"16 x sleep(0.5) on one stateless session took {took:.1f} s"


def test_session_check_unknown_session_same_as_direct(clickhouse, sidecar):
    sid, sid2 = new_session(), new_session()
    d = burst(clickhouse.http_url, 1, "SELECT 1", {"session_id": sid,
                                                   "session_check": "1"})[0]
    s = burst(sidecar.url, 1, "SELECT 1", {"session_id": sid2,
                                           "session_check": "1"})[0]
    assert d[0] != 200 and b"Code: 372" in d[1], d
    # 26.7 names the session in the message; 18.16 does not
    assert (s[0], s[1].replace(sid2.encode(), sid.encode())) == d[:2]


@pytest.mark.parametrize("timeout", ["abc", "-5", "100000", "", "30", "3600"])
def test_session_timeout_judged_as_clickhouse_does(clickhouse, sidecar, timeout):
    """A stateless session's session_timeout never reaches ClickHouse when
    the sidecar drops the session; one ClickHouse would refuse (374) must
    still get ClickHouse's answer, and a good one must still work."""
    params = {"session_timeout": timeout}
    d = burst(clickhouse.http_url, 1, "SELECT 1", {**params, "session_id": new_session()})[0]
    s = burst(sidecar.url, 1, "SELECT 1", {**params, "session_id": new_session()})[0]
    assert s[:2] == d[:2], (s, d)
    assert (d[0] == 200) == (timeout in ("30", "3600")), d


def test_sessions_clickhouse_refused_hold_no_slot(clickhouse, start_sidecar):
    """A session request ClickHouse refuses before opening the session (374
    for a bad session_timeout, 372 for session_check=1 on an unknown one)
    leaves nothing tracked: --max-sessions is not used up by them."""
    admin = f"127.0.0.1:{free_port()}"
    sc = start_sidecar(clickhouse.http_url, "--max-sessions", "2", "--admin-listen", admin)
    with httpx.Client(timeout=10) as c:
        for params in ({"session_timeout": "100000"}, {"session_timeout": "abc"},
                       {"session_check": "1"}):
            r = c.post(sc.url + "/", params={**params, "session_id": new_session()},
                       content=b"SET max_threads = 1")
            assert r.status_code == 500 and r.text.startswith(("Code: 374", "Code: 372")), r.text
        m = fetch_metrics("http://" + admin)
        assert value(m, "chsidecar_sessions_stateful") == 0
        sid = new_session()
        for sql in (b"CREATE TEMPORARY TABLE tt (x UInt8)", b"INSERT INTO tt VALUES (1)",
                    b"SELECT count() FROM tt"):
            r = c.post(sc.url + "/", params={"session_id": sid}, content=sql)
            assert r.status_code == 200, r.text
        assert r.text == "1\n"


# -- a session with state ---------------------------------------------------------

MODES = [pytest.param((), id="auto"),
         pytest.param(("--session-mode", "pin"), id="pin")]


@pytest.mark.parametrize("mode", MODES)
def test_stateful_session_temporary_table(clickhouse, start_sidecar, mode):
    """CREATE TEMPORARY TABLE, then numbered INSERTs (each awaited) while
    readers hammer SELECT count() on the same session: nothing fails, each
    reader sees the count never go back, the final table has every row in
    insertion order."""
    sc = start_sidecar(clickhouse.http_url, *ROOMY, *mode)
    sid = new_session()
    p = {"session_id": sid}
    n_inserts, readers, reads_each = 60, 6, 25

    async def main():
        async with client_session() as s:
            st, body, _ = await _post(s, sc.url, "CREATE TEMPORARY TABLE tt "
                                      "(n UInt32) ENGINE = Memory", p)
            assert (st, body) == (200, b""), body

            async def inserter():
                for i in range(n_inserts):
                    st, body, _ = await _post(s, sc.url, "INSERT INTO tt FORMAT TSV",
                                              p, data=b"%d\n" % i)
                    assert (st, body) == (200, b""), (i, st, body)
                    # read-your-writes on the same session
                    st, body, _ = await _post(s, sc.url, "SELECT count() FROM tt", p)
                    assert (st, body) == (200, b"%d\n" % (i + 1)), (i, st, body)

            async def reader():
                seen = []
                for _ in range(reads_each):
                    st, body, _ = await _post(s, sc.url, "SELECT count() FROM tt", p)
                    assert st == 200, body
                    seen.append(int(body))
                    await asyncio.sleep(0.005)
                assert seen == sorted(seen), f"count went back: {seen}"
                assert all(0 <= v <= n_inserts for v in seen)
                return seen

            await asyncio.gather(inserter(), *[reader() for _ in range(readers)])
            st, body, _ = await _post(
                s, sc.url, "SELECT count(), groupArray(n) FROM tt", p | {"max_threads": "1"})
            want = "%d\t[%s]\n" % (n_inserts, ",".join(map(str, range(n_inserts))))
            assert (st, body) == (200, want.encode())

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_stateful_session_arrival_order_kept(clickhouse, start_sidecar, mode):
    """A slow INSERT holds the session; ten INSERTs sent meanwhile, each on
    its own connection 30 ms apart, must run in the order they arrived."""
    sc = start_sidecar(clickhouse.http_url, *ROOMY, *mode)
    p = {"session_id": new_session()}

    async def main():
        async with client_session() as s:
            st, body, _ = await _post(s, sc.url, "CREATE TEMPORARY TABLE tt "
                                      "(n UInt32) ENGINE = Memory", p)
            assert st == 200, body
            tasks = [asyncio.create_task(_post(
                s, sc.url, "INSERT INTO tt SELECT toUInt32(sleep(0.6))", p))]
            for i in range(1, 11):
                await asyncio.sleep(0.03)
                tasks.append(asyncio.create_task(
                    _post(s, sc.url, "INSERT INTO tt FORMAT TSV", p, data=b"%d\n" % i)))
            res = await asyncio.gather(*tasks)
            assert [r[:2] for r in res] == [(200, b"")] * 11, [r[:2] for r in res]
            st, body, _ = await _post(s, sc.url, "SELECT groupArray(n) FROM tt",
                                      p | {"max_threads": "1"})
            assert (st, body) == (200, b"[0,1,2,3,4,5,6,7,8,9,10]\n")

    asyncio.run(main())


def test_stateful_session_direct_would_fail(clickhouse, capsys):
    """The same kind of concurrent use straight to ClickHouse: 373s (the
    reason the sidecar exists; reported, asserted only to be non-zero)."""
    p = {"session_id": new_session()}

    async def main():
        async with client_session() as s:
            await _post(s, clickhouse.http_url, "CREATE TEMPORARY TABLE tt (n UInt32)", p)
            res = await asyncio.gather(*[
                _post(s, clickhouse.http_url, "INSERT INTO tt SELECT toUInt32(sleep(0.01))", p)
                for _ in range(50)])
            return sum(1 for r in res if b"Code: 373" in r[1])

    locked = asyncio.run(main())
    report(capsys, f"50 concurrent INSERTs into a temporary table straight to "
                   f"ClickHouse: {locked} x 373")
    assert locked > 0


@pytest.mark.parametrize("mode", MODES)
def test_set_is_kept_for_the_session(clickhouse, start_sidecar, mode):
    sc = start_sidecar(clickhouse.http_url, *ROOMY, *mode)
    default = clickhouse.query(SETTING_SQL)
    assert default != b"1\n"
    sid = new_session()

    async def main():
        async with client_session() as s:
            st, body, _ = await _post(s, sc.url, "SET max_threads = 1", {"session_id": sid})
            assert (st, body) == (200, b""), body
            # 50 concurrent reads on the session: all see the SET, none fails
            res = await asyncio.gather(*[
                _post(s, sc.url, SETTING_SQL, {"session_id": sid}) for _ in range(50)])
            assert [r[:2] for r in res] == [(200, b"1\n")] * 50, codes(res)
            # neither another session nor a request without one sees it
            other = await _post(s, sc.url, SETTING_SQL, {"session_id": new_session()})
            none = await asyncio.gather(*[_post(s, sc.url, SETTING_SQL) for _ in range(20)])
            assert other[:2] == (200, default)
            assert [r[:2] for r in none] == [(200, default)] * 20
            # a second SET on the same session wins
            st, _, _ = await _post(s, sc.url, "SET max_threads = 3", {"session_id": sid})
            assert st == 200
            again = await _post(s, sc.url, SETTING_SQL, {"session_id": sid})
            assert again[:2] == (200, b"3\n")

    asyncio.run(main())


def test_insert_after_set_runs_in_the_session_on_one_connection(clickhouse, sidecar):
    """The same INSERT repeated on one connection in a session, its SQL in a
    gzip body as drivers send it: once a SET gives the session state, the
    next INSERT runs in it (sees the setting), as direct, although the
    connection had batched the same INSERT before."""
    table = "memo_" + uuid.uuid4().hex[:8]
    clickhouse.query(f"CREATE TABLE {table} (a UInt32) ENGINE = MergeTree ORDER BY a")
    insert = f"INSERT INTO {table} FORMAT JSONEachRow\n"
    gz = {"Content-Encoding": "gzip"}
    steps = [(insert + '{"a":1}\n', gz), (insert + '{"a":2}\n', gz),
             ("SET input_format_skip_unknown_fields = 1", {}),
             (insert + '{"a":3,"unknown":9}\n', gz)]
    answers = {}
    for name, base in (("direct", clickhouse.http_url), ("sidecar", sidecar.url)):
        sid = new_session()
        with httpx.Client(timeout=30) as c:
            answers[name] = [
                c.post(base + "/", params={"session_id": sid}, headers=headers,
                       content=gzip.compress(body.encode()) if headers else body.encode()).status_code
                for body, headers in steps]
    assert answers["sidecar"] == answers["direct"] == [200] * 4
    assert clickhouse.query(f"SELECT a, count() FROM {table} GROUP BY a ORDER BY a FORMAT TSV") \
        == b"1\t2\n2\t2\n3\t2\n"


def test_pin_mode_200_concurrent(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--session-mode", "pin", *ROOMY)
    res = burst(sc.url, 200, "SELECT count() FROM numbers(1000)",
                {"session_id": new_session()})
    failed = [(st, b[:120]) for st, b, _ in res if (st, b) != (200, b"1000\n")]
    assert not failed, f"{len(failed)} of 200 failed, e.g. {failed[:3]}"


def test_two_users_same_session_id_are_two_sessions(clickhouse, start_sidecar):
    """Sessions are keyed by (user, session_id)."""
    sc = start_sidecar(clickhouse.http_url, *ROOMY)
    sid = new_session()

    async def main():
        async with client_session() as s:
            st, _, _ = await _post(s, sc.url, "SET max_threads = 1", {"session_id": sid})
            assert st == 200
            alice = {"session_id": sid, "user": "alice", "password": "secret"}
            st, _, _ = await _post(s, sc.url, "SET max_threads = 3", alice)
            assert st == 200
            a = await _post(s, sc.url, SETTING_SQL, {"session_id": sid})
            b = await _post(s, sc.url, SETTING_SQL, alice)
            assert (a[:2], b[:2]) == ((200, b"1\n"), (200, b"3\n"))

    asyncio.run(main())


# -- bounds ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_session_queue_limit(clickhouse, start_sidecar, mode):
    """Beyond --session-queue-max waiting requests of one stateful session:
    503 with Retry-After; the session keeps working and keeps its state."""
    qmax = 2
    sc = start_sidecar(clickhouse.http_url, "--session-queue-max", str(qmax),
                       "--queue-max", "1000", "--max-connections", "1000", *mode)
    sid = new_session()

    async def main():
        async with client_session() as s:
            st, _, _ = await _post(s, sc.url, "SET max_threads = 1", {"session_id": sid})
            assert st == 200
            res = await asyncio.gather(*[
                _post(s, sc.url, "SELECT sleep(0.3)", {"session_id": sid})
                for _ in range(10)])
            after = await _post(s, sc.url, SETTING_SQL, {"session_id": sid})
            return res, after

    res, after = asyncio.run(main())
    ok = [r for r in res if r[:2] == (200, b"0\n")]
    rejected = [r for r in res if r[0] == 503]
    assert len(ok) + len(rejected) == 10, [r[:2] for r in res]
    assert qmax <= len(ok) <= qmax + 1, f"{len(ok)} ok with --session-queue-max {qmax}"
    for st, body, headers in rejected:
        assert_sidecar_error(st, headers, body, 503)
        assert "Retry-After" in headers, headers
    assert after[:2] == (200, b"1\n")


def test_max_sessions_limit(clickhouse, start_sidecar):
    """Beyond --max-sessions tracked stateful sessions: 503 with
    Retry-After; the tracked ones keep working, requests without a session
    too."""
    sc = start_sidecar(clickhouse.http_url, "--max-sessions", "2")
    s1, s2, s3 = new_session(), new_session(), new_session()

    async def main():
        async with client_session() as s:
            for sid in (s1, s2):
                st, body, _ = await _post(s, sc.url, "SET max_threads = 1",
                                          {"session_id": sid})
                assert st == 200, body
            third = await _post(s, sc.url, "SET max_threads = 1", {"session_id": s3})
            old = [await _post(s, sc.url, SETTING_SQL, {"session_id": sid})
                   for sid in (s1, s2)]
            plain = await _post(s, sc.url, "SELECT 1")
            return third, old, plain

    third, old, plain = asyncio.run(main())
    assert_sidecar_error(third[0], third[2], third[1], 503)
    assert "Retry-After" in third[2]
    assert [o[:2] for o in old] == [(200, b"1\n")] * 2
    assert plain[:2] == (200, b"1\n")


def test_errors_in_a_stateful_session_same_as_direct(clickhouse, sidecar):
    """An error inside a stateful session comes back as ClickHouse sent it,
    and the session goes on with its state."""
    steps = [("SET max_threads = 1", 200), ("SELEC 1", 400),
             ("SELECT * FROM no_such_table_s", 404), (SETTING_SQL, 200),
             ("CREATE TEMPORARY TABLE tt (n UInt8)", 200),
             ("CREATE TEMPORARY TABLE tt (n UInt8)", 500),
             ("SELECT count() FROM tt", 200)]

    async def run(base):
        p = {"session_id": new_session()}
        async with client_session() as s:
            return [(await _post(s, base, sql, p))[:2] for sql, _ in steps]

    want = asyncio.run(run(clickhouse.http_url))
    got = asyncio.run(run(sidecar.url))
    assert [w[0] for w in want] == [st for _, st in steps], want
    assert want[3][1] == b"1\n"
    assert got == want


@pytest.mark.parametrize("lock_wait,want", [("60s", (200, b"1\n")), ("300ms", (500, b"373"))])
def test_query_left_running_by_an_upstream_timeout_holds_the_session(
        clickhouse, start_sidecar, lock_wait, want):
    """The sidecar answers 504 when ClickHouse sends nothing for
    --upstream-timeout, but the server runs the query on and keeps the
    session locked. The session's next request waits for it (retrying the
    373) up to --session-lock-wait; beyond that ClickHouse's 373 is passed on."""
    sc = start_sidecar(clickhouse.http_url, "--upstream-timeout", "1s",
                       "--session-lock-wait", lock_wait)
    p = {"session_id": new_session()}

    async def run():
        async with client_session() as s:
            assert (await _post(s, sc.url, "SET max_threads = 1", p))[0] == 200
            slow = await _post(s, sc.url, "SELECT sleep(3) FROM numbers(2) "
                                          "SETTINGS max_block_size = 1", p)
            t0 = time.monotonic()
            after = await _post(s, sc.url, "SELECT 1", p)
            return slow, after, time.monotonic() - t0

    slow, after, took = asyncio.run(run())
    assert slow[0] == 504 and slow[2].get("X-ClickHouse-Exception-Code") == "159", slow[:2]
    if want[0] == 200:
        assert after[:2] == want and took > 1.0, (after[:2], took)  # waited for the query's end
    else:
        # as ClickHouse sends it: 18.16 "Code: 373, e.displayText() = ...",
        # 26.7 "Code: 373. DB::Exception: ..."
        prefix = {"18.16": b"Code: 373,", "26.7": b"Code: 373. "}[clickhouse.kind]
        assert after[0] == 500 and after[1].startswith(prefix), after[:2]
        assert took < 2.0, took


# -- the statement ClickHouse runs, not the one the parameter shows ------------------

@pytest.mark.parametrize("param,body,check,want", [
    ("-- set below\n", b"SET max_threads = 1", SETTING_SQL, b"1\n"),
    (" ", b"SET max_threads = 1", SETTING_SQL, b"1\n"),
    ("CREATE", b" TEMPORARY TABLE tt (x UInt8) ENGINE = Memory",
     "SELECT count() FROM tt", b"0\n"),
], ids=["comment_param", "blank_param", "create_param_temporary_body"])
def test_statement_split_between_parameter_and_body_keeps_state(clickhouse, sidecar, param,
                                                                body, check, want):
    """ClickHouse runs the query parameter, a newline and the body as one
    statement: the state it leaves is kept for the session, as direct."""
    for base in (clickhouse.http_url, sidecar.url):
        sid = new_session()
        r = httpx.post(base + "/", params={"session_id": sid, "query": param}, content=body)
        assert r.status_code == 200, (base, r.text)
        # Through the sidecar, concurrent reads on the session all see the
        # state (they would run without the session if it were missed).
        res = burst(base, 10 if base == sidecar.url else 1, check, {"session_id": sid})
        assert {(st, b) for st, b, _ in res} == {(200, want)}, (base, codes(res))


def test_set_in_a_multipart_query_field_keeps_state(clickhouse, sidecar):
    """curl -F 'query=SET ...': ClickHouse reads the query from the form."""
    for base in (clickhouse.http_url, sidecar.url):
        sid = new_session()
        r = httpx.post(base + "/", params={"session_id": sid},
                       files={"query": (None, "SET max_threads = 1")})
        assert r.status_code == 200, (base, r.text)
        res = burst(base, 10 if base == sidecar.url else 1, SETTING_SQL, {"session_id": sid})
        assert {(st, b) for st, b, _ in res} == {(200, b"1\n")}, (base, codes(res))


def test_failed_logins_hold_no_session_slot(clickhouse, start_sidecar):
    """SETs that ClickHouse refuses at login (unknown user, wrong password)
    open no session there, and hold no slot of --max-sessions here: a
    legitimate user's SET still gets its session."""
    admin = f"127.0.0.1:{free_port()}"
    sc = start_sidecar(clickhouse.http_url, "--max-sessions", "5", "--admin-listen", admin)
    with httpx.Client(timeout=10) as c:
        for i in range(20):
            creds = {"user": "nobody"} if i % 2 else {"user": "alice", "password": "wrong"}
            r = c.post(sc.url + "/", params={**creds, "session_id": new_session()},
                       content=b"SET max_threads = 1")
            assert r.status_code != 200 and r.text.startswith(
                ("Code: 192", "Code: 193", "Code: 194", "Code: 516")), (r.status_code, r.text)
        assert value(fetch_metrics("http://" + admin), "chsidecar_sessions_stateful") == 0
        sid = new_session()
        r = c.post(sc.url + "/", params={"session_id": sid}, content=b"SET max_threads = 1")
        assert r.status_code == 200, r.text
        r = c.post(sc.url + "/", params={"session_id": sid}, content=SETTING_SQL.encode())
        assert r.text == "1\n"
