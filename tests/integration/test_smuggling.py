"""Request smuggling and malformed framing (issue 5): each input of the
corpus gets 400 (501 for an unsupported Transfer-Encoding, 505 for an
unsupported HTTP version would be as good) and a closed connection, and is
never forwarded.

"Never forwarded" is checked on the wire: the sidecar's upstream is a
FaultRelay in pass mode in front of the shared ClickHouse, and every request
head the relay sees is recorded (fault_relay._body_framing is wrapped for
the test, it is called once per request head). Health pings (GET /ping) and
the start-up version probe are not counted. Each input also carries a
second, "smuggled" request after it; neither may reach ClickHouse.
"""

from __future__ import annotations

import time

import pytest

import fault_relay
import rawhttp
from fault_relay import FaultRelay
from rawhttp import RawConn

SMUGGLED = b"GET /?query=SELECT%20'smuggled' HTTP/1.1\r\nHost: x\r\n\r\n"
H = b"Host: x\r\n"

# name -> raw bytes of the malformed request (the smuggled one is appended).
CORPUS = {
    # -- Content-Length ----------------------------------------------------
    "cl_conflicting": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 8\r\nContent-Length: 9\r\n\r\nSELECT 1 ",
    "cl_duplicate_equal": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 8\r\nContent-Length: 8\r\n\r\nSELECT 1",
    "cl_list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 8, 8\r\n\r\nSELECT 1",
    "cl_plus_sign": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +8\r\n\r\nSELECT 1",
    "cl_hex": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x8\r\n\r\nSELECT 1",
    "cl_negative": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -8\r\n\r\nSELECT 1",
    "cl_overflow": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nSELECT 1",
    "cl_space_inside": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\nSELECT 1 0",
    # -- Content-Length + Transfer-Encoding -----------------------------------
    "cl_then_te": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"8\r\nSELECT 5\r\n0\r\n\r\n",
    "te_then_cl": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                  b"8\r\nSELECT 5\r\n0\r\n\r\n",
    # -- Transfer-Encoding values ------------------------------------------
    "te_xchunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_chunked_x": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, x\r\n\r\n8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_chunked_then_identity": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                                b"Transfer-Encoding: identity\r\n\r\n8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_duplicated_chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_chunked_chunked_list": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n"
                               b"8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_vertical_tab": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_space_before_colon": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n"
                             b"8\r\nSELECT 1\r\n0\r\n\r\n",
    "te_on_http10": b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                    b"8\r\nSELECT 1\r\n0\r\n\r\n",
    # -- chunk framing ------------------------------------------------------
    "chunk_size_not_hex": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_size_negative": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-8\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_size_overflow": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"10000000000000008\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_size_0x_prefix": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x8\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_data_too_long": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_size_bare_lf": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n8\nSELECT 1\n0\n\n",
    "chunk_ext_nul": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n8;a\x00b\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_ext_unterminated_quote": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                                    b"8;a=\"x\r\nSELECT 1\r\n0\r\n\r\n",
    "chunk_ext_bare_lf": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                         b"8;a=b\nSELECT 1\r\n0\r\n\r\n",
    "chunk_ext_control_char": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"8;\x01\r\nSELECT 1\r\n0\r\n\r\n",
    # -- header syntax ------------------------------------------------------
    "obs_fold": b"GET /?query=SELECT%201 HTTP/1.1\r\n" + H + b"X-Folded: a\r\n b\r\n\r\n",
    "obs_fold_first_line": b"GET /?query=SELECT%201 HTTP/1.1\r\n Host: x\r\n\r\n",
    "obs_fold_content_length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 8\r\n 0\r\n\r\nSELECT 1",
    "bare_lf_everywhere": b"GET /?query=SELECT%201 HTTP/1.1\nHost: x\n\n",
    "bare_lf_in_headers": b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare_lf_end_of_head": b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\n",
    "bare_cr_in_headers": b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "space_before_colon": b"GET /?query=SELECT%201 HTTP/1.1\r\nHost : x\r\n\r\n",
    "tab_before_colon": b"GET /?query=SELECT%201 HTTP/1.1\r\nHost\t: x\r\n\r\n",
    "nul_in_header_value": b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    "nul_in_header_name": b"GET /?query=SELECT%201 HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
    "invalid_char_in_header_name": b"GET /?query=SELECT%201 HTTP/1.1\r\nX(y): z\r\n" + H + b"\r\n",
    "empty_header_name": b"GET /?query=SELECT%201 HTTP/1.1\r\n: z\r\n" + H + b"\r\n",
    "del_in_header_value": b"GET /?query=SELECT%201 HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n",
    # -- request line ---------------------------------------------------------
    "invalid_method": b"FOO /?query=SELECT%201 HTTP/1.1\r\n" + H + b"\r\n",
    "lowercase_method": b"get /?query=SELECT%201 HTTP/1.1\r\n" + H + b"\r\n",
    "method_with_space": b"G ET /?query=SELECT%201 HTTP/1.1\r\n" + H + b"\r\n",
    "two_spaces_after_method": b"GET  /?query=SELECT%201 HTTP/1.1\r\n" + H + b"\r\n",
    "version_http_1_2": b"GET /?query=SELECT%201 HTTP/1.2\r\n" + H + b"\r\n",
    "version_http_2_0": b"GET /?query=SELECT%201 HTTP/2.0\r\n" + H + b"\r\n",
    "version_http_3_0": b"GET /?query=SELECT%201 HTTP/3.0\r\n" + H + b"\r\n",
    "version_http_0_9": b"GET /?query=SELECT%201 HTTP/0.9\r\n" + H + b"\r\n",
    "version_garbage": b"GET /?query=SELECT%201 HTTP/1.1x\r\n" + H + b"\r\n",
    "version_lowercase": b"GET /?query=SELECT%201 http/1.1\r\n" + H + b"\r\n",
    "version_missing": b"GET /?query=SELECT%201\r\n" + H + b"\r\n",
    "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}

# An unsupported encoding or version may be told apart from plain bad syntax.
ALLOWED = {
    "te_xchunked": {400, 501}, "te_chunked_x": {400, 501}, "te_chunked_then_identity": {400, 501},
    "te_vertical_tab": {400, 501},
    "version_http_1_2": {400, 505}, "version_http_2_0": {400, 505},
    "version_http_3_0": {400, 505}, "version_http_0_9": {400, 505},
    "http2_preface": {400, 505}, "invalid_method": {400, 501},
}


@pytest.fixture
def recorded(monkeypatch):
    """Every request head the relay sees, in order."""
    heads: list[bytes] = []
    orig = fault_relay._body_framing

    def recording(head: bytes):
        heads.append(head)
        return orig(head)

    monkeypatch.setattr(fault_relay, "_body_framing", recording)
    return heads


def is_probe(request_line: bytes) -> bool:
    """The sidecar's start-up probe: SELECT version(), ... (URL-encoded)."""
    return b"SELECT%20version%28%29" in request_line or b"SELECT%20version()" in request_line


def queries(heads: list[bytes]) -> list[bytes]:
    """The heads that are not health pings or the version probe."""
    out = []
    for h in heads:
        line = h.split(b"\r\n", 1)[0]
        if line.startswith(b"GET /ping ") or is_probe(line):
            continue
        out.append(line)
    return out


@pytest.fixture
def relayed(clickhouse, start_sidecar, recorded):
    relay = FaultRelay("127.0.0.1", clickhouse.http_port).start()
    relay.set("pass")
    sc = start_sidecar(relay.url, "--header-timeout", "2s", "--body-timeout", "2s")
    # the start-up probe has gone through before the corpus runs
    assert rawhttp.wait_until(lambda: any(is_probe(h.split(b"\r\n", 1)[0]) for h in recorded), 5)
    try:
        yield sc, recorded
    finally:
        relay.stop()


def test_relay_sees_a_good_request(relayed):
    """Control: the recording works (a valid request is seen upstream)."""
    sc, heads = relayed
    with RawConn(sc.url) as c:
        r = c.request(rawhttp.post("/", b"SELECT 'control'"))
        assert (r.status, r.body) == (200, b"control\n")
    assert len(queries(heads)) == 1, queries(heads)


@pytest.mark.parametrize("name", list(CORPUS))
def test_malformed_is_rejected_and_not_forwarded(relayed, name):
    sc, heads = relayed
    before = len(queries(heads))
    raw = CORPUS[name] + SMUGGLED
    with RawConn(sc.url, timeout=5) as c:
        t0 = time.monotonic()
        try:
            c.send(raw)
        except OSError:
            pass
        try:
            r = c.read_response()
        except (rawhttp.Closed, OSError) as e:
            r = e
        took = time.monotonic() - t0
        closed = c.closed_by_peer(timeout=3) if not isinstance(r, Exception) else True
    time.sleep(0.2)  # anything forwarded has reached the relay by now
    forwarded = queries(heads)[before:]
    want = ALLOWED.get(name, {400})
    problems = []
    if isinstance(r, Exception):
        problems.append(f"no answer: {r}")
    else:
        if r.status not in want:
            problems.append(f"status {r.status} (want {sorted(want)}), body {r.body[:160]!r}")
        if not closed:
            problems.append("connection left open")
        if r.status in want and r.status >= 400:
            rawhttp.assert_sidecar_error(r.status, r.headers, r.body, r.status)
    if took > 1.5 and not isinstance(r, Exception) and r.status == 408:
        problems.append(f"answered only by the header/body timeout after {took:.1f} s")
    if forwarded:
        problems.append(f"FORWARDED upstream: {forwarded}")
    assert not problems, f"{name}: " + "; ".join(problems)
    # the sidecar still serves
    with RawConn(sc.url) as c:
        r = c.request(rawhttp.get("/?query=SELECT%20'after'"))
        assert (r.status, r.body) == (200, b"after\n")


def test_invalid_transfer_encoding_does_not_run_the_query(clickhouse, start_sidecar):
    """The worst case of a forwarded malformed request: the SQL is in the URL,
    so forwarding the head alone runs it. `Transfer-Encoding: xchunked` must
    be refused before anything goes upstream; the table must not appear."""
    import uuid
    table = f"smuggled_{uuid.uuid4().hex[:8]}"
    sc = start_sidecar(clickhouse.http_url)
    target = f"/?query=CREATE%20TABLE%20{table}%20(a%20UInt8)%20ENGINE%20%3D%20Memory"
    raw = (f"POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
           "1\r\nx\r\n0\r\n\r\n").encode()
    with RawConn(sc.url) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status in (400, 501), r
    time.sleep(0.3)
    exists = clickhouse.query(f"EXISTS TABLE {table}").strip()
    if exists == b"1":
        clickhouse.query(f"DROP TABLE {table}")
    assert exists == b"0", (f"a request refused with {r.status} was forwarded and ran: "
                            f"table {table} was created")
