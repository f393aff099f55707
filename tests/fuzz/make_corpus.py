#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/<target>/ (seed-*.bin files).

Deterministic; run again after changing it. Files named crash-* or
regress-* (saved findings) are left alone. Spool segments use the framing of
proxy/spool_record.h: "CHSR" | u32 length | u32 CRC-32C | payload (LE).
"""
import gzip
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "corpus")
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from spool_format import crc32c  # noqa: E402


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1")
    for other in os.listdir(d):  # already kept as a finding (crash-*): not again as a seed
        if not other.startswith("seed-") and open(os.path.join(d, other), "rb").read() == data:
            return
    with open(os.path.join(d, "seed-" + name + ".bin"), "wb") as f:
        f.write(data)


# ---- http_frontend: real requests and smuggling attempts --------------------
R = "\r\n"
http = {
    "get-ping": "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "head-ping": "HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "get-select": "GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\r\n",
    "post-select-cl": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nSELECT 1",
    "post-chunked": "POST /?query=INSERT%20INTO%20t%20FORMAT%20CSV HTTP/1.1\r\nHost: x\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n4\r\n1,2\n\r\n0\r\n\r\n",
    "post-insert-json": "POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
                        "Host: x\r\nContent-Length: 14\r\n\r\n{\"a\":1}\n{\"a\":2}",
    "post-insert-body": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\n"
                        "INSERT INTO t VALUES (1,'a'),(2,'b')",
    "pipelined": "GET /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\nSELECT 2",
    "http10": "GET /ping HTTP/1.0\r\n\r\n",
    "keepalive-10": "GET /?query=SELECT%201 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "session-set": "POST /?session_id=s1&query=SET%20max_threads%3D1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "session-stateless": "GET /?session_id=s2&session_timeout=60&query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\r\n",
    "session-check": "GET /?session_id=s3&session_check=1&query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\r\n",
    "basic-auth": "GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n",
    "ch-user-header": "GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nX-ClickHouse-User: u\r\nX-ClickHouse-Key: k\r\n\r\n",
    "expect-continue": "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 8\r\n\r\nSELECT 1",
    "gzip-body": b"POST /?query=INSERT%20INTO%20t%20FORMAT%20CSV HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                 + b"Content-Length: " + str(len(gzip.compress(b"1,2\n3,4\n", mtime=0))).encode() + b"\r\n\r\n"
                 + gzip.compress(b"1,2\n3,4\n", mtime=0),
    "async-insert-0": "POST /?async_insert=0&query=INSERT%20INTO%20t%20FORMAT%20TSV HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n1\t2\n",
    "chunk-ext-trailer": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "8;ext=1\r\nSELECT 1\r\n0\r\nX-Trailer: v\r\n\r\n",
    "half-body": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nSELECT",
    "half-head": "GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nX-A",
    # Smuggling and malformed framing (each must get 400 and a close).
    "smuggle-cl-te": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "0\r\n\r\nGET /?query=SELECT%20666 HTTP/1.1\r\nHost: x\r\n\r\n",
    "smuggle-te-cl": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                     "5c\r\nGET /?query=SELECT%20666 HTTP/1.1\r\n\r\n0\r\n\r\n",
    "smuggle-dup-cl": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nContent-Length: 30\r\n\r\nSELECT 1",
    "smuggle-cl-list": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8, 8\r\n\r\nSELECT 1",
    "smuggle-cl-plus": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +8\r\n\r\nSELECT 1",
    "smuggle-cl-neg": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nSELECT 1",
    "smuggle-cl-huge": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nSELECT 1",
    "smuggle-te-xchunked": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "smuggle-te-space": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "smuggle-te-double": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "smuggle-te-chunked-gzip": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "smuggle-te-http10": "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-chunk-size-hex": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nSELECT 1\r\n0\r\n\r\n",
    "bad-chunk-size-overflow": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n0\r\n\r\n",
    "bad-chunk-size-space": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8 \r\nSELECT 1\r\n0\r\n\r\n",
    "bad-chunk-no-crlf": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nSELECT 1\r\n0\r\n\r\n",
    "bad-chunk-negative": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
    "obs-fold": "GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "obs-fold-te": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "bare-lf": "GET /?query=SELECT%201 HTTP/1.1\nHost: x\n\n",
    "bare-lf-header": "GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare-cr": "GET /?query=SELECT%201 HTTP/1.1\rHost: x\r\n\r\n",
    "lf-in-chunk": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\nSELECT 1\n0\n\n",
    "invalid-method": "GETT /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "invalid-method-lower": "get /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "method-connect": "CONNECT 127.0.0.1:8123 HTTP/1.1\r\nHost: x\r\n\r\n",
    "invalid-version": "GET /ping HTTP/1.2\r\nHost: x\r\n\r\n",
    "invalid-version-2": "GET /ping HTTP/2.0\r\nHost: x\r\n\r\n",
    "invalid-version-junk": "GET /ping HTTX/1.1\r\nHost: x\r\n\r\n",
    "http09": "GET /ping\r\n\r\n",
    "space-in-header-name": "GET /ping HTTP/1.1\r\nHo st: x\r\n\r\n",
    "nul-in-header": "GET /ping HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    "ctl-in-url": "GET /?query=SELECT\x011 HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute-uri": "GET http://evil/?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\r\n",
    "upgrade": "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "crlf-leading": "\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "many-headers": "GET /ping HTTP/1.1\r\n" + "".join("X-H%d: v\r\n" % i for i in range(30)) + "\r\n",
    "long-header": "GET /ping HTTP/1.1\r\nX-Long: " + "a" * 5000 + "\r\n\r\n",
    "long-url": "GET /?query=" + "A" * 1200 + " HTTP/1.1\r\nHost: x\r\n\r\n",
    "garbage": "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
}
for name, req in http.items():
    write("http_frontend", name, req)

# ---- url_query -----------------------------------------------------------
for i, q in enumerate([
    "/?query=SELECT%201&session_id=abc&session_timeout=60",
    "/?session_id=a&session_id=b&&user=u&password=p&",
    "/path/to?query=INSERT+INTO+t+FORMAT+CSV&session_check=1&database=db",
    "/?%zz=%4&a=%41%42%43&+=+&=&&&",
    "/?user=&session_id=%00%ff&query=%E2%82%AC",
    "/?a=1?b=2#frag&session_timeout=x",
    "no-query-at-all",
    "/?dXNlcjpwYXNz",
    "/?session_id",
    "Code: 60. DB::Exception: Table default.t does not exist. (UNKNOWN_TABLE)",
]):
    write("url_query", "q%02d" % i, q)

# ---- row_splitters: first byte picks the format ----------------------------
formats = ["JSONEachRow", "CSV", "CSVWithNames", "CSVWithNamesAndTypes", "TSV", "TSVWithNames",
           "TSVWithNamesAndTypes", "Values"]
rows = {
    0: ['{"a":1}\n{"a":2}\n', '{"a":1}{"b":[1,2,{"c":null}]}', '  \n{"a":"\\u00e9"}\r\n', '[1,2]\n',
        '{"a":1}\n{"a":', '{"a":1}\n\n\n', '"str"', '{"a":1e999}', '{}' * 50],
    1: ['1,2\n3,4\n', '1,"a\nb",3\n4,5,6', '"unterminated\n1,2', "'x,y',2\n", '""""\n', '\n\n\n', 'a,b\r\nc,d\r\n'],
    2: ['a,b\n1,2\n', 'a,b', 'a,b\n', '"a\nb",c\n1,2\n'],
    3: ['a,b\nInt8,String\n1,x\n', 'a,b\nInt8,String'],
    4: ['1\t2\n3\t4\n', 'a\\\nb\t2\n', 'x\\', '\\N\t\\t\n', '1\t2'],
    5: ['a\tb\n1\t2\n', 'a\tb', 'a\\\tb\n1\n'],
    6: ['a\tb\nInt8\tString\n1\tx\n', 'a\n'],
    7: ["(1,'a'),(2,'b')", "(1,'a\\'b')", "(1,[1,2],{'k':(3)}) , (2,'x');", "(1,'x'", "((1)", "1,2",
        "(1),", "  (1)  ;; ", "(1)(2)", "(')')", "(1)),(2)", "(\"a\\\\\"),(`b`)"],
}
for f, samples in rows.items():
    for i, s in enumerate(samples):
        write("row_splitters", "%s-%02d" % (formats[f], i), bytes([f]) + s.encode())


# ---- spool_reader: framed records ------------------------------------------
def frame(payload):
    return b"CHSR" + struct.pack("<II", len(payload), crc32c(payload)) + payload


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


def data_payload(rec_id, rows, count, fmt=1, newline=0, headers=(("X-ClickHouse-User", "u"),),
                 header_lines=b""):
    p = bytes([1]) + struct.pack("<QIBB", rec_id, count, newline, fmt)
    p += s("default\x00t\x00CSV") + s("t") + s("/?query=INSERT%20INTO%20t%20FORMAT%20CSV")
    p += struct.pack("<I", len(headers))
    for k, v in headers:
        p += s(k) + s(v)
    return p + s(header_lines) + s(rows)


def commit_payload(ids):
    return bytes([2]) + struct.pack("<I", len(ids)) + b"".join(struct.pack("<Q", i) for i in ids)


def batch_payload(target, ids):
    return bytes([3]) + s(target) + commit_payload(ids)[1:]


SEP = b"\xff\xfeREC"
d1 = data_payload(1, b"1,2\n3,4\n", 2)
d2 = data_payload(2, b'{"a":1}', 1, fmt=0, newline=0, headers=())
d3 = data_payload(3, b"x\ty", 1, fmt=5, newline=1, header_lines=b"a\tb\n")
c1 = commit_payload([1, 2])
valid = frame(d1) + frame(d2) + frame(c1) + frame(d3)
spool = {
    "valid": b"\x00" + valid,
    "valid-commit-only": b"\x00" + frame(commit_payload([7])),
    "empty-commit": b"\x00" + frame(commit_payload([])),
    "torn-tail": b"\x00" + valid[:-5],
    "torn-header": b"\x00" + valid + b"CHSR\x10",
    "bad-crc": b"\x00" + frame(d1)[:8] + b"\x00\x00\x00\x00" + d1,
    "bad-magic": b"\x00" + b"CHSX" + frame(d1)[4:],
    "zero-length": b"\x00" + b"CHSR" + struct.pack("<II", 0, 0),
    "huge-length": b"\x00" + b"CHSR" + struct.pack("<II", 0xFFFFFFFF, 0) + b"x" * 16,
    "trailing-zeros": b"\x00" + valid + b"\x00" * 64,
    "bad-format": b"\x00" + frame(data_payload(9, b"1", 1, fmt=8)),
    "unknown-type": b"\x00" + frame(b"\x07abc"),
    # Mode 1: payloads separated by SEP, framed by the target with a correct CRC.
    "framed-valid": b"\x01" + SEP.join([d1, d2, c1, d3]),
    "framed-batch": b"\x01" + SEP.join([d1, d2, batch_payload("/?query=INSERT%20INTO%20t", [2, 1]), c1]),
    "framed-batch-count-short": b"\x01" + batch_payload("/", [1, 2])[:-3],
    "framed-short-data": b"\x01" + d1[:20],
    "framed-extra-bytes": b"\x01" + d1 + b"zz",
    "framed-string-overrun": b"\x01" + d1[:14] + b"\xff\xff\xff\x7f" + b"abc",
    "framed-commit-count-short": b"\x01" + bytes([2]) + struct.pack("<I", 3) + struct.pack("<Q", 1),
    "framed-many-headers": b"\x01" + bytes([1]) + struct.pack("<QIBB", 1, 1, 0, 1) + s("k") + s("t") + s("/") +
                           struct.pack("<I", 0x7FFFFFFF),
}
for name, blob in spool.items():
    write("spool_reader", name, blob)

# ---- config_flags: one argument per line ----------------------------------
flag_lists = [
    "--upstream\nhttp://127.0.0.1:8123",
    "--upstream=http://a:1\n--upstream=https://b:2/\n--listen\n[::1]:8124\n--admin-listen=off",
    "--upstream=http://a:1,http://b:2\n--max-header-bytes=64KiB\n--body-buffer=1MiB\n--flush-delay-min=50ms\n--flush-delay-max=10ms",
    "--check-config\n--upstream=http://x:1\n--batch=off\n--ack=spool\n--spool-dir=/tmp/s\n--spool-max-bytes=18446744073709551615B",
    "CHSIDECAR_UPSTREAM=http://127.0.0.1:8123\nCHSIDECAR_LISTEN=0.0.0.0:0\n--idle-timeout=2s",
    "CHSIDECAR_UPSTREAM=ftp://x\n--upstream=http://y:1",
    "--help", "--version", "positional", "--no-such-flag=1", "--upstream",
    "--upstream=http://a:1\n--max-connections=0\n--listen=localhost:1",
    "--upstream=http://a:1\n--header-timeout=18446744073709551615h\n--pool-size=4096\n--queue-max=1000001",
    "--upstream=http://a:1\n--access-log\n--log-level=debug\n--log-format=json\n--session-mode=pin",
    "--upstream=http://a:1\n--listen=127.0.0.1:9124\n--admin-listen=127.0.0.1:9124",
    "--upstream=http://a:1\n--max-decompressed-bytes=16MiB\n--max-compression-ratio=1000\n--shutdown-grace=25s\n--health-interval=100ms\n--eject-after=3",
]
for i, fl in enumerate(flag_lists):
    write("config_flags", "flags%02d" % i, fl)

# ---- insert_query -----------------------------------------------------------
for i, sql in enumerate([
    "INSERT INTO t FORMAT CSV\n1,2\n",
    "insert into db.t (a, b) format JSONEachRow {\"a\":1}",
    "INSERT INTO TABLE `my table` ( a ,b ) VALUES (1,2)",
    "INSERT INTO \"q\\\"t\".x VALUES",
    "/* c */ -- line\nINSERT INTO t FORMAT TSV  \r\n1\t2",
    "INSERT INTO FUNCTION remote('h', t) VALUES (1)",
    "INSERT INTO t SELECT 1",
    "INSERT INTO t SETTINGS async_insert=1 VALUES (1)",
    "INSERT INTO t (a",
    "INSERT INTO t FORMAT",
    "INSERT INTO t VALU",
    "SET max_threads = 1", "USE db", "CREATE TEMPORARY TABLE x (a Int8)", "SELECT 1", "  /* unterminated",
    "WITH 1 AS x SELECT x", "DROP TEMPORARY TABLE x", "create temporary table",
]):
    write("insert_query", "sql%02d" % i, sql)

# ---- body_decoder: first byte picks encoding and limits ---------------------
# bits 0-2 encoding (0 gzip, 1 deflate, 2 identity, 3 "", 4 GZIP, 5 x-gzip, 6 br, 7 Deflate),
# bits 3-4 max_out 64KiB<<n, bit 5 ratio 1000 (else 2), bit 7 the target compresses the rest.
plain = b"1,2\n3,4\n" * 20
bodies = {
    "gzip": bytes([0x20]) + gzip.compress(plain, mtime=0),
    "zlib": bytes([0x21]) + zlib.compress(plain),
    "raw-deflate": bytes([0x21]) + zlib.compress(plain)[2:-4],
    "gzip-trailing": bytes([0x20]) + gzip.compress(plain, mtime=0) + b"junk",
    "gzip-truncated": bytes([0x20]) + gzip.compress(plain, mtime=0)[:-6],
    "gzip-two-members": bytes([0x20]) + gzip.compress(b"a", mtime=0) + gzip.compress(b"b", mtime=0),
    "bomb-ratio": bytes([0x00]) + gzip.compress(b"\x00" * 200000, mtime=0),
    "bomb-size": bytes([0x20]) + gzip.compress(b"\x00" * 2000000, mtime=0),
    "identity": bytes([0x02]) + plain,
    "empty-encoding": bytes([0x03]) + plain,
    "unsupported": bytes([0x06]) + plain,
    "self-compress-gzip": bytes([0xa0]) + plain,
    "self-compress-zlib": bytes([0xa1]) + b"hello",
    "garbage": bytes([0x00]) + b"\x1f\x8b\x08\x00garbage",
}
for name, b in bodies.items():
    write("body_decoder", name, b)
