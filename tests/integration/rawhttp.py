"""HTTP/1.x on a bare socket, for tests where a client library would hide
the framing (pipelining, Expect: 100-continue, HTTP/1.0, malformed input),
and helpers to compare an answer from ClickHouse with the same answer
through the sidecar.

Python standard library only, plus httpx for the comparison helpers.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Optional
from urllib.parse import urlsplit

# Response headers that describe the hop, not the answer: they may differ
# between ClickHouse and the sidecar without breaking transparency.
HOP_HEADERS = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "date",
    "proxy-connection", "te", "trailer", "upgrade",
}
# X-ClickHouse-* headers that legitimately differ per request (modern servers).
PER_REQUEST_HEADERS = {"x-clickhouse-query-id", "x-clickhouse-summary",
                       "x-clickhouse-progress"}
# 26.x: a random tag per response (it also marks an exception written into a
# body mid-stream); compared by presence, its value replaced by this.
EXCEPTION_TAG_HEADER = "x-clickhouse-exception-tag"
TAG_PLACEHOLDER = "<tag>"

ERROR_BODY_RE = re.compile(rb"^Code: (\d+)\. DB::Exception: .+", re.S)


def host_port(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    return u.hostname, u.port


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False
    interim: list["Response"] = field(default_factory=list)  # 1xx answers

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def wants_close(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if "close" in conn:
            return True
        return self.version == "HTTP/1.0" and "keep-alive" not in conn


class Closed(Exception):
    """The peer closed the connection before a complete response."""


class RawConn:
    """One client TCP connection speaking raw bytes."""

    def __init__(self, url_or_host, port: Optional[int] = None,
                 timeout: float = 10.0, rcvbuf: Optional[int] = None):
        if port is None:
            host, port = host_port(url_or_host)
        else:
            host = url_or_host
        self.host, self.port = host, port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    # -- low level ------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def _fill(self, n: int = 65536) -> bool:
        """Read more into the buffer; False on EOF (or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(n)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit:
                raise ValueError(f"no {sep!r} within {limit} bytes")
            if not self._fill():
                raise Closed(f"closed while waiting for {sep!r}; "
                             f"have {self.buf[:200]!r}")

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill(max(65536, n - len(self.buf))):
                raise Closed(f"closed with {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_all(self) -> bytes:
        """Everything until the peer closes."""
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    # -- responses --------------------------------------------------------------

    def read_head(self) -> Response:
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {lines[0]!r}")
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        return Response(parts[0], int(parts[1]),
                        parts[2] if len(parts) > 2 else "", headers)

    def read_response(self, method: str = "GET",
                      skip_interim: bool = True) -> Response:
        """Read one response (1xx interim answers are collected in
        .interim and skipped when skip_interim)."""
        interim = []
        while True:
            r = self.read_head()
            if 100 <= r.status < 200 and skip_interim:
                interim.append(r)
                continue
            break
        r.interim = interim
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            return r
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if "chunked" in te:
            r.chunked = True
            chunks = []
            while True:
                size_line = self._read_until(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until an empty line
                    while self._read_until(b"\r\n"):
                        pass
                    break
                chunks.append(self._read_exact(size))
                if self._read_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            r.body = b"".join(chunks)
        elif cl is not None:
            r.body = self._read_exact(int(cl))
        else:
            r.body = self.read_all()
        return r

    def iter_body(self, r: Response, bufsize: int = 65536):
        """Yield the body of the response whose head was just read with
        read_head(), piece by piece as it arrives (at most `bufsize` bytes
        asked of the socket per recv): chunked, Content-Length or to EOF."""
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")

        def take(n):  # up to n bytes, at least 1; b"" at EOF
            if not self.buf and not self._fill(bufsize):
                return b""
            out, self.buf = self.buf[:n], self.buf[n:]
            return out

        if "chunked" in te:
            r.chunked = True
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_until(b"\r\n"):
                        pass
                    return
                left = size
                while left:
                    piece = take(min(left, bufsize))
                    if not piece:
                        raise Closed(f"closed inside a chunk, {left} bytes short")
                    left -= len(piece)
                    yield piece
                if self._read_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
        elif cl is not None:
            left = int(cl)
            while left:
                piece = take(min(left, bufsize))
                if not piece:
                    raise Closed(f"closed {left} bytes short of Content-Length")
                left -= len(piece)
                yield piece
        else:
            while True:
                piece = take(bufsize)
                if not piece:
                    return
                yield piece

    def request(self, raw: bytes, method: str = "GET") -> Response:
        self.send(raw)
        return self.read_response(method)

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """True if the peer closes (EOF or reset) within `timeout` seconds and
        sends nothing more before that."""
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
            return data == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get(target: str, host: str = "127.0.0.1", version: str = "HTTP/1.1",
        headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"GET {target} {version}", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(target: str, body: bytes, host: str = "127.0.0.1",
         version: str = "HTTP/1.1",
         headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"POST {target} {version}", f"Host: {host}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(parts: Iterable[bytes]) -> bytes:
    out = b""
    for p in parts:
        if p:
            out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


# -- comparison -------------------------------------------------------------------

def answer_headers(headers) -> list[tuple[str, str]]:
    """The headers that belong to the answer (not to the hop), lower-cased
    names, sorted, per-request X-ClickHouse-* dropped (the exception tag's
    value replaced by TAG_PLACEHOLDER)."""
    items = headers.items() if hasattr(headers, "items") else headers
    out = []
    for k, v in items:
        k = k.lower()
        if k in HOP_HEADERS or k in PER_REQUEST_HEADERS:
            continue
        if k == EXCEPTION_TAG_HEADER:
            v = TAG_PLACEHOLDER
        out.append((k, v))
    return sorted(out)


def exception_tag(headers) -> str | None:
    """The X-ClickHouse-Exception-Tag value (26.x), or None."""
    items = headers.items() if hasattr(headers, "items") else headers
    for k, v in items:
        if k.lower() == EXCEPTION_TAG_HEADER:
            return v
    return None


def untag(body: bytes, headers) -> bytes:
    """body with its response's exception tag (if any) replaced by
    TAG_PLACEHOLDER, so that two answers' bodies compare."""
    tag = exception_tag(headers)
    return body.replace(tag.encode(), TAG_PLACEHOLDER.encode()) if tag else body


def assert_sidecar_error(status: int, headers, body: bytes, want_status: int):
    """An answer the sidecar made itself: ClickHouse's modern error format."""
    assert status == want_status, (status, body[:300])
    m = ERROR_BODY_RE.match(body)
    assert m, f"not a ClickHouse-format error body: {body[:300]!r}"
    hdr = None
    items = headers.items() if hasattr(headers, "items") else headers
    for k, v in items:
        if k.lower() == "x-clickhouse-exception-code":
            hdr = v
    assert hdr is not None, f"no X-ClickHouse-Exception-Code in {list(items)}"
    assert hdr.strip() == m.group(1).decode(), (hdr, body[:100])
    return int(m.group(1))


class RssSampler:
    """Samples a process's VmRSS (KiB) every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> Optional[int]:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def _run(self):
        while not self._stop.is_set():
            v = self._read()
            if v is not None:
                self.samples.append(v)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def peak_kib(self) -> int:
        return max(self.samples) if self.samples else 0


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of the process so far (VmHWM), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def wait_until(pred, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def report(capsys, text: str) -> None:
    """Prints a measured figure even under pytest -q (lines start with [measured])."""
    with capsys.disabled():
        print(f"\n[measured] {text}")


def uniq(prefix: str) -> str:
    """A name no other test uses: prefix_ and ten hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
