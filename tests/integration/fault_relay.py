"""A small TCP relay with switchable faults, between the sidecar and ClickHouse.

    relay = FaultRelay("127.0.0.1", clickhouse.http_port).start()
    start_sidecar(relay.url, ...)
    relay.set("reset_body", after=300, times=3)   # next 3 requests are cut
    ...
    relay.stop()           # or use it as a context manager

The relay runs an asyncio loop in a daemon thread of the test process, on a
free port of 127.0.0.1. It understands just enough HTTP/1.1 to see where
each request starts, where its head ends and how long its body is
(Content-Length; a chunked request switches that connection to raw
forwarding), because faults are decided per request: the mode in force when
a request's first byte arrives applies to that request and its response.

Modes (set(mode, times=None, **params)):
  pass              forward both ways unchanged
  refuse            close the client connection at once with a reset (new
                    connections and the next request of open ones)
  reset_body        forward the head and `after` bytes of the body (default
                    64), then reset both sides: the request never completed,
                    so ClickHouse cannot have committed it. A body shorter
                    than `after` passes untouched.
  blackhole         read and discard the request, never answer, not even with
                    a close (no upstream connection is made; an open one is
                    left idle): the request never reached ClickHouse.
                    With `only` (bytes), just requests whose head holds them;
                    the others pass
  hangup            read the request, then close the client connection (a
                    FIN, no answer byte), as a server closing an idle
                    keep-alive connection just as a request arrives would
                    (a chunked body is not read, so the close may be a reset)
  trickle           forward in pieces of `chunk` bytes (default 256) with
                    `delay` seconds (default 0.02) before each, both ways
  close_after_head  forward the request; forward the response head only,
                    then close both sides (ClickHouse's INSERT answers are
                    chunked, so the client sees a 200 head and a cut body)

capture=True keeps the head and body of every request with a
Content-Length body that was read whole (passed or blackholed), in
.captured, a list of (head, body) bytes pairs.

`times`: how many requests the fault applies to; after that the relay
passes traffic again (None: until the next set()). Counters: .stats
(connections, requests, faulted per mode). Bounded: at most `max_conns`
client connections at once (beyond it new ones are reset); stop() closes
everything and joins the thread.

Python standard library only.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter
from typing import Optional

MODES = ("pass", "refuse", "reset_body", "blackhole", "hangup", "trickle", "close_after_head")
_MAX_HEAD = 64 * 1024


def _rst(writer: Optional[asyncio.StreamWriter]) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def _close(writer: Optional[asyncio.StreamWriter]) -> None:
    if writer is not None:
        writer.transport.close()


class FaultRelay:
    def __init__(self, upstream_host: str, upstream_port: int, *,
                 host: str = "127.0.0.1", max_conns: int = 256, capture: bool = False):
        self.upstream = (upstream_host, upstream_port)
        self.capture = capture
        self.captured: list[tuple[bytes, bytes]] = []
        self.host = host
        self.port: Optional[int] = None
        self.max_conns = max_conns
        self.stats: Counter = Counter()
        self._mode = "pass"
        self._params: dict = {}
        self._times: Optional[int] = None
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: set = set()
        self._ready = threading.Event()
        self._stopped = False

    # -- control (any thread) -------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set(self, mode: str, times: Optional[int] = None, **params) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {MODES}")
        with self._lock:
            self._mode, self._times, self._params = mode, times, dict(params)

    def mode(self) -> str:
        with self._lock:
            return self._mode

    def drop_connections(self) -> None:
        """Reset every open connection (the sidecar's pooled ones too)."""
        if self._loop is not None:
            fut = asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop)
            fut.result(5)

    def start(self) -> "FaultRelay":
        self._thread = threading.Thread(target=self._run, name="fault-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self.port is None:
            raise RuntimeError("fault relay did not start")
        return self

    def stop(self) -> None:
        if self._stopped or self._loop is None:
            return
        self._stopped = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "FaultRelay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the loop thread --------------------------------------------------------

    def _take_fault(self) -> tuple[str, dict]:
        """The fault for a request that starts now (consumes one of `times`)."""
        with self._lock:
            mode, params = self._mode, self._params
            if mode != "pass" and self._times is not None:
                if self._times <= 0:
                    return "pass", {}
                self._times -= 1
                if self._times == 0:
                    self._mode, self._params, self._times = "pass", {}, None
            return mode, params

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot():
            self._server = await asyncio.start_server(self._handle, self.host, 0,
                                                      limit=_MAX_HEAD)
            self.port = self._server.sockets[0].getsockname()[1]

        try:
            loop.run_until_complete(boot())
        finally:
            self._ready.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            try:
                loop.run_until_complete(asyncio.sleep(0))
            except Exception:
                pass
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop_all()

    async def _drop_all(self) -> None:
        for w in list(self._writers):
            _rst(w)
        self._writers.clear()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        if len(self._writers) >= self.max_conns * 2 or self._stopped:
            _rst(cwriter)
            return
        self._writers.add(cwriter)
        conn = _Conn(self, creader, cwriter)
        try:
            await conn.run()
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            conn.close()


class _Conn:
    """One client connection and its (lazy) upstream connection."""

    def __init__(self, relay: FaultRelay, creader, cwriter):
        self.relay = relay
        self.creader = creader
        self.cwriter = cwriter
        self.ureader: Optional[asyncio.StreamReader] = None
        self.uwriter: Optional[asyncio.StreamWriter] = None
        self.pump: Optional[asyncio.Task] = None
        self.fault: tuple[str, dict] = ("pass", {})
        self.dead = False

    def close(self) -> None:
        self.dead = True
        if self.pump is not None:
            self.pump.cancel()
        _close(self.uwriter)
        _close(self.cwriter)
        self.relay._writers.discard(self.cwriter)
        self.relay._writers.discard(self.uwriter)

    def reset_both(self) -> None:
        self.dead = True
        _rst(self.uwriter)
        _rst(self.cwriter)

    async def _send_up(self, data: bytes) -> None:
        mode, params = self.fault
        if mode == "trickle":
            await self._trickle(self.uwriter, data, params)
        else:
            self.uwriter.write(data)
            await self.uwriter.drain()

    @staticmethod
    async def _trickle(writer, data: bytes, params: dict) -> None:
        chunk = int(params.get("chunk", 256))
        delay = float(params.get("delay", 0.02))
        for i in range(0, len(data), chunk):
            await asyncio.sleep(delay)
            writer.write(data[i:i + chunk])
            await writer.drain()

    async def _ensure_upstream(self) -> None:
        if self.uwriter is not None:
            return
        self.ureader, self.uwriter = await asyncio.open_connection(*self.relay.upstream)
        self.relay._writers.add(self.uwriter)
        self.pump = asyncio.ensure_future(self._pump_down())

    async def _pump_down(self) -> None:
        """Upstream -> client, shaped by the fault of the current request."""
        buf = b""
        try:
            while True:
                data = await self.ureader.read(65536)
                if not data:
                    break
                mode, params = self.fault
                if mode == "close_after_head":
                    buf += data
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    self.cwriter.write(buf[:end + 4])
                    await self.cwriter.drain()
                    self.relay.stats["faulted_close_after_head"] += 1
                    self.dead = True
                    _close(self.cwriter)
                    _close(self.uwriter)
                    return
                if mode == "trickle":
                    await self._trickle(self.cwriter, data, params)
                else:
                    self.cwriter.write(data)
                    await self.cwriter.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            # ClickHouse closes an idle upstream leg after keep_alive_timeout;
            # a blackholed request on this connection must still get no answer
            # (a close would make curl resend it on a fresh connection).
            if not self.dead and self.fault[0] != "blackhole":
                _close(self.cwriter)

    async def run(self) -> None:
        raw = False  # after a chunked request: no more framing, plain bytes
        while not self.dead:
            if raw:
                data = await self.creader.read(65536)
                if not data:
                    return
                await self._send_up(data)
                continue
            try:
                head = await self.creader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError:
                _rst(self.cwriter)
                return
            self.relay.stats["requests"] += 1
            self.fault = self.relay._take_fault()
            mode, params = self.fault
            if mode == "blackhole" and params.get("only", head) not in head:
                self.fault = mode, params = "pass", {}
            if mode != "pass":
                self.relay.stats[f"requests_{mode}"] += 1
            length, chunked = _body_framing(head)
            if mode == "refuse":
                self.relay.stats["faulted_refuse"] += 1
                self.reset_both()
                return
            if mode == "hangup":
                self.relay.stats["faulted_hangup"] += 1
                if not chunked:
                    await self.creader.readexactly(length)
                self.dead = True
                _close(self.cwriter)
                return
            if mode == "blackhole":
                self.relay.stats["faulted_blackhole"] += 1
                if self.relay.capture and not chunked:
                    self.relay.captured.append((head, await self.creader.readexactly(length)))
                # Read and discard everything, forever (until the client or stop()).
                while await self.creader.read(65536):
                    pass
                return
            await self._ensure_upstream()
            if chunked:
                raw = True
                await self._send_up(head)
                continue
            if mode == "reset_body":
                after = int(params.get("after", 64))
                if length > after:
                    await self._send_up(head)
                    body = await self.creader.readexactly(after)
                    await self._send_up(body)
                    await asyncio.sleep(0.05)  # let it reach ClickHouse before the reset
                    self.relay.stats["faulted_reset_body"] += 1
                    self.reset_both()
                    return
            await self._send_up(head)
            left = length
            body = []
            while left > 0:
                data = await self.creader.read(min(left, 65536))
                if not data:
                    return
                left -= len(data)
                if self.relay.capture:
                    body.append(data)
                await self._send_up(data)
            if self.relay.capture:
                self.relay.captured.append((head, b"".join(body)))


def _body_framing(head: bytes) -> tuple[int, bool]:
    """(Content-Length or 0, chunked?) of a request head."""
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                pass
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return length, chunked


if __name__ == "__main__":  # manual use: relay a port, e.g. for curl experiments
    import argparse
    import time
    ap = argparse.ArgumentParser()
    ap.add_argument("upstream_port", type=int)
    ap.add_argument("--mode", default="pass", choices=MODES)
    args = ap.parse_args()
    r = FaultRelay("127.0.0.1", args.upstream_port).start()
    r.set(args.mode)
    print(r.url, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        r.stop()
