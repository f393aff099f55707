"""The answer's bytes: the sidecar's equal ClickHouse's own.

A client must not be able to tell the sidecar from ClickHouse. Each raw
request goes over a bare keep-alive socket straight to ClickHouse and
through the sidecar; the raw answers (status line, every header in order,
framing, body) must be equal byte for byte, except the values that differ
per response on the server itself (Date, a modern server's query id,
summary and exception tag). Runs on every server of the suite.
"""

from __future__ import annotations

import re

import pytest

import rawhttp
from rawhttp import RawConn

H = b"Host: 127.0.0.1\r\n"
REQUESTS = {
    "get_select": (b"GET /?query=SELECT%20number%20FROM%20numbers(3) HTTP/1.1\r\n" + H + b"\r\n",
                   "GET"),
    "post_select": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 8\r\n\r\nSELECT 1", "POST"),
    "head_select": (b"HEAD /?query=SELECT%201 HTTP/1.1\r\n" + H + b"\r\n", "HEAD"),
    "error": (b"GET /?query=SELECT%20nosuch HTTP/1.1\r\n" + H + b"\r\n", "GET"),
    "syntax_error": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n\r\nSELEKT", "POST"),
    "gzip_answer": (b"GET /?query=SELECT%20number%20FROM%20numbers(100)&enable_http_compression=1"
                    b" HTTP/1.1\r\n" + H + b"Accept-Encoding: gzip\r\n\r\n", "GET"),
    "json_format": (b"GET /?query=SELECT%201%20AS%20x%20FORMAT%20JSONEachRow HTTP/1.1\r\n" + H
                    + b"\r\n", "GET"),
    "http10": (b"GET /?query=SELECT%201 HTTP/1.0\r\n" + H + b"\r\n", "GET"),
    "ping": (b"GET /ping HTTP/1.1\r\n" + H + b"\r\n", "GET"),
    "head_ping": (b"HEAD /ping HTTP/1.1\r\n" + H + b"\r\n", "HEAD"),
}
# Values that differ from one answer to the next on the server itself.
PER_RESPONSE = re.compile(rb"^(Date|X-ClickHouse-Query-Id|X-ClickHouse-Summary|"
                          rb"X-ClickHouse-Exception-Tag): [^\r\n]*", re.M | re.I)


def read_raw(conn: RawConn, method: str) -> bytes:
    """One answer's bytes as they came: the head, then the body in its own
    framing (chunk lines included), or to the end of the connection."""
    head = conn._read_until(b"\r\n\r\n") + b"\r\n\r\n"
    lines = head.decode("latin-1").lower().split("\r\n")
    status = int(lines[0].split(" ")[1])
    if method == "HEAD" or status in (204, 304):
        return head
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if "chunked" in fields.get("transfer-encoding", ""):
        out = head
        while True:
            size_line = conn._read_until(b"\r\n")
            out += size_line + b"\r\n"
            size = int(size_line.split(b";")[0], 16)
            out += conn._read_exact(size + 2)
            if size == 0:
                return out
    if "content-length" in fields:
        return head + conn._read_exact(int(fields["content-length"]))
    return head + conn.read_all()


def normalized(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    tags = re.findall(rb"^X-ClickHouse-Exception-Tag: (\S+)", head, re.M | re.I)
    for tag in tags:
        body = body.replace(tag, b"<tag>")
    return PER_RESPONSE.sub(lambda m: m.group(1) + b": <varies>", head) + b"\r\n\r\n" + body


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_answer_bytes_equal_clickhouses(clickhouse, sidecar, name):
    raw, method = REQUESTS[name]
    # The sidecar learns the server's own /ping answer at its start-up probe.
    assert rawhttp.wait_until(lambda: "upstream_version" in sidecar.stderr_text()
                              or "upstream_without_dedup_token" in sidecar.stderr_text(), 10)
    answers = []
    for url in (clickhouse.http_url, sidecar.url):
        with RawConn(url, timeout=10) as c:
            c.send(raw)
            first = read_raw(c, method)
            if b"HTTP/1.0" in raw:
                answers.append(normalized(first))
                continue
            c.send(raw)  # the same again on the kept connection
            answers.append(normalized(first) + b"||" + normalized(read_raw(c, method)))
    direct, through = answers
    assert through == direct, f"\ndirect:  {direct!r}\nsidecar: {through!r}"
