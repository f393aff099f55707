"""Compressed request bodies (issue 22, "Bodies"), against a real ClickHouse.

What a user checks: the same small INSERTs (JSONEachRow, CSV, and the
binary formats Native, RowBinary and RowBinaryWithNamesAndTypes made by
ClickHouse itself) sent
concurrently in each Content-Encoding (gzip, deflate, lz4, zstd) and in
ClickHouse's own checksummed blocks (decompress=1) are batched by the
sidecar and land as they do direct, where the server takes the encoding;
on 18.16, which refuses lz4 and zstd (code 89), they land through the
sidecar anyway; a corrupt body goes alone and gets ClickHouse's own
answer; clickhouse-connect's shape (no query parameter, the SQL inside an
lz4 body, chunked) is batched; batches go upstream compressed when asked
(--upstream-compression); spooled early answers work for encoded bodies.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import signal
import subprocess
import urllib.parse
import zlib

import aiohttp
import httpx
import lz4.frame
import pytest
import zstandard

from clickhouse_server import TEST_SERVER
from rawhttp import uniq, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CH_BLOCKS = os.path.join(REPO, "build", "tests", "unit", "ch_blocks")
FLUSH_RE = re.compile(r"\bbatch_flush table=(\S+) rows=(\d+) requests=(\d+) bytes=(\d+)"
                      r"(?: attempt=(\d+))?(?: wire_bytes=(\d+))?")
MODERN = TEST_SERVER != "18.16"
COLUMNS = "id UInt32, s String, n Int32"


def ch_blocks(data: bytes, method: str = "lz4") -> bytes:
    return subprocess.run([CH_BLOCKS, method], input=data, capture_output=True, check=True).stdout


def encode(encoding: str, data: bytes) -> bytes:
    return {"gzip": gzip.compress, "deflate": zlib.compress, "lz4": lz4.frame.compress,
            "zstd": zstandard.ZstdCompressor().compress, "blocks": ch_blocks}[encoding](data)


def server_takes(encoding: str) -> bool:
    return encoding in ("gzip", "deflate", "blocks") or MODERN


# The binary formats each server writes (18.16: Native and RowBinary only).
BINARY_FORMATS = ["Native", "RowBinary"] + (["RowBinaryWithNamesAndTypes"] if MODERN else [])


def rows(fmt: str, start: int, n: int, ch=None) -> bytes:
    """Rows id start.., the same values in every format; binary ones are
    written by ClickHouse `ch` (SELECT ... FORMAT fmt)."""
    if fmt in BINARY_FORMATS:
        return ch.query(f"SELECT toUInt32(number) AS id, concat('s', toString(number), ' \"q\"') AS s, "
                        f"CAST(-toInt64(number) AS Int32) AS n FROM numbers({start + n}) "
                        f"WHERE number >= {start} FORMAT {fmt}")
    if fmt == "CSV":
        return "".join(f'{i},"s{i}, with ""quotes""",{-i}\n' for i in range(start, start + n)).encode()
    return "".join(f'{{"id":{i},"s":"s{i} \\"q\\"","n":{-i}}}\n' for i in range(start, start + n)).encode()


def flushes(sc, table: str) -> list[tuple[int, int, int, int]]:
    """(rows, requests, bytes, wire bytes) of each first try to flush `table`."""
    out = []
    for m in FLUSH_RE.finditer(sc.stderr_text()):
        if m.group(1) == table and m.group(5) in (None, "1"):
            wire = int(m.group(6)) if m.group(6) else int(m.group(4))
            out.append((int(m.group(2)), int(m.group(3)), int(m.group(4)), wire))
    return out


def dump(ch, table: str) -> bytes:
    return ch.query(f"SELECT * FROM {table} ORDER BY id FORMAT TSV")


def target(sql: str, extra: str = "") -> str:
    return "/?query=" + urllib.parse.quote(sql) + extra


async def post_all(base: str, requests: list[tuple[str, bytes, dict]]) -> list[tuple[int, bytes]]:
    async with aiohttp.ClientSession() as session:
        async def one(path, body, headers):
            async with session.post(base + path, data=body, headers=headers) as r:
                return r.status, await r.read()
        return await asyncio.gather(*(one(*req) for req in requests))


def row_bodies(fmt: str, n: int, per: int, ch=None) -> list[bytes]:
    """`n` bodies of `per` rows each (ids 0.. in order)."""
    return [rows(fmt, k * per, per, ch) for k in range(n)]


def requests_for(table: str, fmt: str, encoding: str, bodies: list[bytes], *, sql_in_body=False,
                 extra: str = "") -> list[tuple[str, bytes, dict]]:
    sql = f"INSERT INTO {table} FORMAT {fmt}"
    out = []
    for data in bodies:
        if sql_in_body:
            path, plain = "/?" + extra.lstrip("&"), (sql + "\n").encode() + data
        else:
            path, plain = target(sql, extra), data
        headers = {}
        if encoding == "blocks":
            path += ("&" if "?" in path and not path.endswith("?") else "") + "decompress=1"
        else:
            headers["Content-Encoding"] = encoding
        out.append((path, encode(encoding, plain), headers))
    return out


@pytest.fixture
def codec_sidecar(start_sidecar, clickhouse):
    return start_sidecar(clickhouse.http_url, "--log-level", "debug", "--flush-delay-min", "50ms")


@pytest.mark.parametrize("fmt", ["JSONEachRow", "CSV"] + BINARY_FORMATS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "lz4", "zstd", "blocks"])
@pytest.mark.parametrize("sql_in_body", [False, True], ids=["sql_in_query", "sql_in_body"])
def test_encoded_inserts_batch_and_equal_direct(clickhouse, codec_sidecar, fmt, encoding, sql_in_body):
    sc = codec_sidecar
    via, direct = uniq("codec_via"), uniq("codec_direct")
    for t in (via, direct):
        clickhouse.query(f"CREATE TABLE {t} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    n, per = 16, 3
    bodies = row_bodies(fmt, n, per, clickhouse)
    answers = asyncio.run(post_all(sc.url, requests_for(via, fmt, encoding, bodies, sql_in_body=sql_in_body)))
    assert all(status == 200 for status, _ in answers), answers[:3]
    got = flushes(sc, via)
    assert sum(r for r, _, _, _ in got) == n * per
    assert sum(q for _, q, _, _ in got) == n, got
    assert max(q for _, q, _, _ in got) > 1, f"never batched: {got}"
    direct_answers = asyncio.run(post_all(clickhouse.http_url, requests_for(direct, fmt, encoding, bodies,
                                                                           sql_in_body=sql_in_body)))
    if server_takes(encoding):
        assert all(status == 200 for status, _ in direct_answers), direct_answers[:3]
        assert dump(clickhouse, via) == dump(clickhouse, direct)
    else:
        # 18.16 does not know lz4 or zstd: direct gets code 89; through the
        # sidecar the rows land as the plain rows do direct.
        assert all(b"Code: 89" in body for _, body in direct_answers), direct_answers[:1]
        clickhouse.query(f"INSERT INTO {direct} FORMAT {fmt}", b"".join(bodies))
        assert dump(clickhouse, via) == dump(clickhouse, direct)


def test_clickhouse_connect_shape_is_batched(clickhouse, codec_sidecar):
    """No query parameter, the SQL with a database and quoted columns inside an
    lz4 frame, chunked, settings in the URL, as clickhouse-connect sends it."""
    sc = codec_sidecar
    table = uniq("codec_cc")
    clickhouse.query(f"CREATE TABLE {table} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    n = 24

    async def run():
        async with aiohttp.ClientSession() as session:
            async def one(i):
                body = lz4.frame.compress(
                    f"INSERT INTO default.{table} (`a`, `b`) FORMAT JSONEachRow\n".encode() +
                    f'{{"a":{i},"b":"v{i}"}}\n'.encode())

                async def chunks():
                    for k in range(0, len(body), 7):
                        yield body[k:k + 7]
                async with session.post(sc.url + "/?wait_for_async_insert=1", data=chunks(),
                                        headers={"Content-Type": "application/octet-stream",
                                                 "Content-Encoding": "lz4"}) as r:
                    return r.status, await r.read()
            return await asyncio.gather(*(one(i) for i in range(n)))
    answers = asyncio.run(run())
    assert all(status == 200 for status, _ in answers), answers[:3]
    got = flushes(sc, f"default.{table}")
    assert sum(q for _, q, _, _ in got) == n and max(q for _, q, _, _ in got) > 1, got
    assert clickhouse.query(f"SELECT count(), sum(a) FROM {table} FORMAT TSV") == f"{n}\t{sum(range(n))}\n".encode()


def test_one_connection_changing_its_insert_lands_each_where_it_says(clickhouse, codec_sidecar):
    """One keep-alive connection whose lz4 bodies switch between two tables,
    column lists, formats and data that begins right after the format name
    (the connection remembers the last INSERT's plan): every row lands in
    the table its own SQL names, as direct."""
    sc = codec_sidecar
    t1, t2 = uniq("codec_memo1"), uniq("codec_memo2")
    for t in (t1, t2):
        clickhouse.query(f"CREATE TABLE {t} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    sqls = [f"INSERT INTO {t1} FORMAT JSONEachRow\n", f"INSERT INTO {t1} FORMAT JSONEachRow\n",
            f"INSERT INTO {t2} FORMAT JSONEachRow\n", f"INSERT INTO {t1} (a) FORMAT JSONEachRow\n",
            f"INSERT INTO {t2} FORMAT JSONEachRow ", f"INSERT INTO {t2} FORMAT CSV\n",
            f"INSERT INTO {t1} FORMAT JSONEachRow\n"]
    expected = {t1: [], t2: []}
    with httpx.Client(timeout=30) as c:
        for i, sql in enumerate(sqls):
            table = t2 if t2 in sql else t1
            row = f"{i},v{i}\n" if "CSV" in sql else (
                f'{{"a":{i}}}\n' if "(a)" in sql else f'{{"a":{i},"b":"v{i}"}}\n')
            expected[table].append(f"{i}\t{'' if '(a)' in sql else f'v{i}'}")
            r = c.post(sc.url + "/?wait_for_async_insert=1",
                       content=lz4.frame.compress((sql + row).encode()),
                       headers={"Content-Type": "application/octet-stream", "Content-Encoding": "lz4"})
            assert r.status_code == 200, (sql, r.text)
    for t in (t1, t2):
        got = clickhouse.query(f"SELECT a, b FROM {t} ORDER BY a FORMAT TSV").decode().splitlines()
        assert got == expected[t], t


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "blocks"])
def test_corrupt_body_goes_alone_with_clickhouses_answer(clickhouse, codec_sidecar, encoding):
    """A truncated frame (a wrong checksum for blocks) goes alone, as sent:
    the client gets what ClickHouse makes of it (18.16: code 89 for lz4 and
    zstd; 26.7 reads a truncated lz4 or zstd frame as far as it goes)."""
    sc = codec_sidecar
    via, direct = uniq("codec_bad_via"), uniq("codec_bad_direct")
    good = encode(encoding, rows("CSV", 0, 5))
    bad = good[: len(good) // 2]  # truncated
    if encoding == "blocks":
        bad = good[:3] + bytes([good[3] ^ 1]) + good[4:]  # a wrong checksum
    headers = {} if encoding == "blocks" else {"Content-Encoding": encoding}
    answers = []
    for table, base in ((via, sc.url), (direct, clickhouse.http_url)):
        clickhouse.query(f"CREATE TABLE {table} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
        path = target(f"INSERT INTO {table} FORMAT CSV") + ("&decompress=1" if encoding == "blocks" else "")
        answers += asyncio.run(post_all(base, [(path, bad, headers)]))
    (via_status, via_body), (direct_status, direct_body) = answers
    assert via_status == direct_status
    if direct_status != 200:
        code = re.match(rb"Code: (\d+)", direct_body).group(1)
        assert via_body.startswith(b"Code: " + code), (via_body, direct_body)
    assert flushes(sc, via) == []
    assert dump(clickhouse, via) == dump(clickhouse, direct)


def test_encoding_the_server_refuses_goes_alone(clickhouse, codec_sidecar):
    """GZIP: 26.7 decodes it, 18.16 refuses it (89). Through the sidecar,
    what direct does."""
    sc = codec_sidecar
    table = uniq("codec_case")
    clickhouse.query(f"CREATE TABLE {table} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    reqs = [(target(f"INSERT INTO {table} FORMAT CSV"), gzip.compress(rows("CSV", 0, 2)), {"Content-Encoding": "GZIP"}),
            (target(f"INSERT INTO {table} FORMAT CSV"), b"1,a,1\n", {"Content-Encoding": "identity"})]
    via = asyncio.run(post_all(sc.url, reqs))
    if MODERN:
        assert via[0][0] == 200 and via[1][0] == 501 and b"Code: 48" in via[1][1]
    else:
        assert all(b"Code: 89" in body for _, body in via), via
        assert flushes(sc, table) == []


def test_bomb_goes_alone(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--log-level", "debug", "--max-compression-ratio", "50")
    table = uniq("codec_bomb")
    clickhouse.query(f"CREATE TABLE {table} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    data = b"1,a,1\n" * 20000  # compresses far more than 50 times
    reqs = [(target(f"INSERT INTO {table} FORMAT CSV"), lz4.frame.compress(data), {"Content-Encoding": "lz4"}),
            ("/", zstandard.ZstdCompressor().compress(f"INSERT INTO {table} FORMAT CSV\n".encode() + data),
             {"Content-Encoding": "zstd"})]
    via = asyncio.run(post_all(sc.url, reqs))
    assert flushes(sc, table) == []  # alone, as sent
    if MODERN:
        assert [s for s, _ in via] == [200, 200]
        assert clickhouse.query(f"SELECT count() FROM {table} FORMAT TSV") == b"40000\n"
    else:
        assert all(b"Code: 89" in body for _, body in via)


@pytest.mark.parametrize("coding", ["gzip", "zstd", "lz4", "none"])
def test_upstream_compression(clickhouse, start_sidecar, coding):
    sc = start_sidecar(clickhouse.http_url, "--log-level", "debug", "--flush-delay-min", "50ms",
                       "--upstream-compression", coding)
    assert wait_until(lambda: "upstream_compression coding=" in sc.stderr_text(), 10)
    effective = coding if coding in ("gzip", "none") or MODERN else "none"
    assert f"upstream_compression coding={effective}" in sc.stderr_text()
    table = uniq("codec_up")
    clickhouse.query(f"CREATE TABLE {table} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    answers = asyncio.run(post_all(sc.url, requests_for(table, "JSONEachRow", "lz4", row_bodies("JSONEachRow", 20, 50))))
    assert all(s == 200 for s, _ in answers), answers[:2]
    got = flushes(sc, table)
    assert sum(r for r, _, _, _ in got) == 1000
    plain, wire = sum(b for _, _, b, _ in got), sum(w for _, _, _, w in got)
    if effective == "none":
        assert wire == plain
    else:
        assert wire * 3 < plain, (wire, plain)
    assert clickhouse.query(f"SELECT count(), sum(n) FROM {table} FORMAT TSV") == f"1000\t{-sum(range(1000))}\n".encode()


def test_auto_compression_is_none_on_loopback(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url, "--log-level", "debug")
    assert wait_until(lambda: "upstream_compression coding=" in sc.stderr_text(), 10)
    assert "upstream_compression coding=none" in sc.stderr_text()


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "blocks"])
def test_spooled_encoded_bodies(clickhouse, start_sidecar, tmp_path, encoding):
    """Early answers for encoded bodies: the spool holds decoded rows, which
    reach the table."""
    spool = tmp_path / "spool"
    sc = start_sidecar(clickhouse.http_url, "--log-level", "debug", "--spool-dir", str(spool),
                       "--flush-delay-min", "50ms", "--early-ack-proof", "0")
    table = uniq("codec_spool")
    clickhouse.query(f"CREATE TABLE {table} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    reqs = requests_for(table, "JSONEachRow", encoding, row_bodies("JSONEachRow", 12, 2),
                        sql_in_body=True, extra="&wait_for_async_insert=0")
    answers = asyncio.run(post_all(sc.url, reqs))
    assert all(s == 200 for s, _ in answers), answers[:2]
    assert wait_until(lambda: clickhouse.query(f"SELECT count() FROM {table} FORMAT TSV") == b"24\n", 10)
    spooled = b"".join(p.read_bytes() for p in spool.rglob("*") if p.is_file())
    assert b'"s":"s5 \\"q\\""' in spooled  # decoded rows, as JSON


def test_spooled_batches_replay_as_the_same_compressed_bytes(clickhouse, start_sidecar, tmp_path):
    """lz4 bodies with the SQL inside, answered from the spool, batches sent
    gzip-compressed (every server takes gzip): batches in flight at a kill -9
    go out again after the restart as the very same requests, byte for byte,
    and every row lands once. The spool holds the decoded rows."""
    from fault_relay import FaultRelay
    from spool_load import spool_opened, wait_present
    table = uniq("codec_replay")
    clickhouse.query(f"CREATE TABLE {table} (id UInt64, r UInt32) ENGINE = MergeTree ORDER BY id")
    spool = tmp_path / "spool"
    args = ("--spool-dir", str(spool), "--early-ack-proof", "0", "--upstream-compression", "gzip",
            "--flush-delay-min", "200ms", "--flush-delay-max", "200ms", "--max-parts-per-second", "1000",
            "--max-inflight-flushes", "8", "--log-level", "debug")

    def send(url, ids, burst):
        body = lz4.frame.compress(f"INSERT INTO {table} FORMAT JSONEachRow\n".encode() +
                                  b"".join(b'{"id":%d,"r":%d}\n' % (i, burst) for i in ids))
        return asyncio.run(post_all(url, [("/?wait_for_async_insert=0", body, {"Content-Encoding": "lz4"})]))[0]

    def inserts(relay):
        return [(head.split(b"\r\n", 1)[0], body) for head, body in list(relay.captured) if b"INSERT" in head]

    with FaultRelay("127.0.0.1", clickhouse.http_port, capture=True) as relay:
        relay.set("blackhole", only=b"INSERT")
        sc = start_sidecar(relay.url, *args)
        assert wait_until(lambda: "upstream_compression coding=gzip" in sc.stderr_text(), 10)
        next_id = 1
        for burst, n in enumerate((2, 3)):
            for _ in range(n):
                status, text = send(sc.url, [next_id], burst)
                assert status == 200, text
                next_id += 1
            assert wait_until(lambda: len(inserts(relay)) >= burst + 1, 10), inserts(relay)
        sc.stop(signal.SIGKILL)
        segments = b"".join(p.read_bytes() for p in spool.rglob("*") if p.is_file())
        assert b'{"id":1,"r":0}' in segments  # the spool holds decoded rows
        sent = inserts(relay)
        relay.captured.clear()
        relay.set("pass")
        sc2 = start_sidecar(relay.url, *args)
        missing, counts = wait_present(clickhouse, table, range(1, next_id), 15)
        opened = spool_opened(sc2.stderr_text())
        resent = inserts(relay)
        sc2.stop()
    assert not missing, missing
    assert all(n == 1 for n in counts.values()), counts
    assert len(sent) >= 2 and all(body[:2] == b"\x1f\x8b" for _, body in sent), sent
    for request in sent:
        assert request in resent, (request, resent)
    assert opened is not None and opened["replay_batches"] >= len(sent), opened
