"""A throwaway ClickHouse server for tests and local development.

One implementation shared by the pytest fixtures (conftest.py) and
scripts/clickhouse-dev. Each ClickHouseServer owns a private temporary
directory (on /dev/shm when it is writable, so single-row INSERT storms
measure the proxy and not the disk; see PROTOCOL.md) holding a minimal
config.xml and users.xml written here, the logs, and the data. It listens on
127.0.0.1 only, on free ports picked at the first start and kept across
restarts.

Users (users.xml):
  default   no password
  alice     password "secret"      (for authentication tests)
  readonly  no password, readonly=1 profile
  noinsert  no password, no access to any database but system

Life cycle:
  srv = ClickHouseServer(); srv.start()   # blocks until GET /ping says "Ok."
  srv.query("SELECT 1")                   # -> b"1\\n"
  srv.restart()                           # same ports, same data
  srv.stop()                              # process only, data kept
  srv.close()                             # stop + remove the temp dir
It is also a context manager (enter = start, exit = close). Servers still
open when the interpreter exits are closed by an atexit hook, and the server
process gets SIGTERM if the thread that started it dies (PR_SET_PDEATHSIG,
set only when started from the main thread), so no server outlives its owner.

Which server: CHSIDECAR_TEST_SERVER=18.16 (the default: this class, Debian's
clickhouse-server) or 26.7 (chdb_server.ChdbServer: clickhouse-local out of
libchdb.so, same interface and users). new_server() makes the chosen one;
TEST_SERVER holds the choice and each server's `kind` says which it is.

Python standard library only; run with /usr/bin/python3.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Mapping, Optional

try:  # imported as tests/integration/clickhouse_server.py or as a package
    from netutil import free_port
except ImportError:  # pragma: no cover
    from .netutil import free_port  # type: ignore

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds; 18.16 normally answers /ping in < 1 s
STOP_TIMEOUT = 15.0   # SIGTERM grace before SIGKILL

# urllib honours http_proxy & co. from the environment; never for loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_live: "weakref.WeakSet[ClickHouseServer]" = weakref.WeakSet()

SERVER_KINDS = ("18.16", "26.7")
TEST_SERVER = os.environ.get("CHSIDECAR_TEST_SERVER", "").strip() or "18.16"
if TEST_SERVER not in SERVER_KINDS:
    raise RuntimeError(f"CHSIDECAR_TEST_SERVER={TEST_SERVER!r}: expected one of "
                       f"{', '.join(SERVER_KINDS)}")


class ClickHouseError(Exception):
    """A non-200 answer from ClickHouse.

    status: HTTP status; body: the response body (bytes);
    code: the ClickHouse exception code parsed from "Code: N", or None.
    """

    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body
        m = re.search(rb"Code: (\d+)", body or b"")
        self.code = int(m.group(1)) if m else None
        super().__init__(f"HTTP {status}: {body.decode('utf-8', 'replace').strip()}")


def find_binary() -> list[str]:
    """Command that runs the server: $CLICKHOUSE_SERVER_BIN, Debian's
    /usr/sbin/clickhouse-server, or a modern single `clickhouse` binary."""
    env = os.environ.get("CLICKHOUSE_SERVER_BIN")
    if env:
        return [env]
    for cand in ("/usr/sbin/clickhouse-server", shutil.which("clickhouse-server")):
        if cand and os.access(cand, os.X_OK):
            return [cand]
    single = shutil.which("clickhouse")
    if single:
        return [single, "server"]
    raise FileNotFoundError(
        "clickhouse-server not found: install it (scripts/install-deps) "
        "or set CLICKHOUSE_SERVER_BIN")


def _tmp_base() -> Optional[str]:
    base = os.environ.get("CHSIDECAR_CH_TMPDIR")
    if base:
        return base
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return None  # tempfile's default


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _x(s) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


CONFIG_XML = """<?xml version="1.0"?>
<!-- Written by tests/integration/clickhouse_server.py: a throwaway server. -->
<yandex>
    <logger>
        <level>{log_level}</level>
        <log>{log_dir}/clickhouse-server.log</log>
        <errorlog>{log_dir}/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>{host}</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <interserver_http_host>{host}</interserver_http_host>
    <display_name>chsidecar-test</display_name>
    <!-- 3 s is the 18.16 default; explicit because the proxy's stale-
         connection handling is tested against it. -->
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_connections>4096</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <default_session_timeout>60</default_session_timeout>
    <max_session_timeout>3600</max_session_timeout>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <mlock_executable>false</mlock_executable>
    <path>{data_dir}/</path>
    <tmp_path>{data_dir}/tmp/</tmp_path>
    <user_files_path>{data_dir}/user_files/</user_files_path>
    <format_schema_path>{data_dir}/format_schemas/</format_schema_path>
    <users_config>{users_xml}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
</yandex>
"""

USERS_XML = """<?xml version="1.0"?>
<!-- Written by tests/integration/clickhouse_server.py: a throwaway server. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <alice>
            <password>secret</password>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </alice>
        <readonly>
            <password></password>
            <networks><ip>::/0</ip></networks>
            <profile>readonly</profile>
            <quota>default</quota>
        </readonly>
        <noinsert>
            <password></password>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <allow_databases><database>system</database></allow_databases>
        </noinsert>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""


class ClickHouseServer:
    """One throwaway ClickHouse server process; see the module docstring.

    data_dir: where the data lives; default <tempdir>/data. A caller-given
    data_dir is created if missing and never removed by close().
    Not thread-safe: drive one instance from one thread.
    """

    kind = "18.16"  # which server this is; see TEST_SERVER

    def __init__(self, data_dir: Optional[str] = None, *,
                 log_level: str = "information",
                 binary: Optional[list[str]] = None):
        self.root = tempfile.mkdtemp(prefix="chsidecar-ch-", dir=_tmp_base())
        self._owns_data = data_dir is None
        self.data_dir = os.path.abspath(data_dir or os.path.join(self.root, "data"))
        self.log_dir = os.path.join(self.root, "log")
        self.config_path = os.path.join(self.root, "config.xml")
        self.users_path = os.path.join(self.root, "users.xml")
        self.stdout_path = os.path.join(self.root, "stdout.txt")
        self.log_level = log_level
        self.binary = binary or find_binary()
        self.http_port: Optional[int] = None
        self.tcp_port: Optional[int] = None
        self.interserver_port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.startup_seconds: Optional[float] = None  # of the last start()
        self.returncode: Optional[int] = None  # of the last stop()
        self._closed = False
        _live.add(self)

    # -- properties ---------------------------------------------------------

    @property
    def http_url(self) -> str:
        """"http://127.0.0.1:PORT" (no trailing slash)."""
        if self.http_port is None:
            raise RuntimeError("ClickHouseServer not started yet")
        return f"http://{HOST}:{self.http_port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self) -> str:
        return (f"<ClickHouseServer http={self.http_port} tcp={self.tcp_port} "
                f"pid={self.pid} root={self.root}>")

    # -- life cycle ----------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> "ClickHouseServer":
        """Start the server and wait until GET /ping answers "Ok.".

        The first start picks free ports (and retries with new ones if the
        server dies early, e.g. a port was taken in between); later starts
        reuse them. Raises RuntimeError with the server's logs on failure.
        """
        if self._closed:
            raise RuntimeError("ClickHouseServer is closed")
        if self.running():
            return self
        first = self.http_port is None
        attempts = 3 if first else 1
        err = None
        for _ in range(attempts):
            if first:
                self._pick_ports()
            try:
                self._start_once(timeout)
                return self
            except RuntimeError as e:
                err = e
        raise err  # type: ignore[misc]

    def stop(self, timeout: float = STOP_TIMEOUT,
             sig: int = signal.SIGTERM) -> Optional[int]:
        """Stop the process (sig, then SIGKILL after `timeout` s); keep the
        data and ports. Returns the exit code (None if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)  # in case it was pause()d
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode
        return proc.returncode

    def kill(self) -> Optional[int]:
        """SIGKILL: a crash, for outage tests. Data and ports are kept."""
        return self.stop(sig=signal.SIGKILL)

    def restart(self, timeout: float = START_TIMEOUT) -> "ClickHouseServer":
        """stop() then start(): same ports, same data."""
        self.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the server hangs (connections accepted by the kernel,
        never answered). resume() or stop() undoes it."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        """stop() and remove the temporary directory. Idempotent."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        shutil.rmtree(self.root, ignore_errors=True)  # a caller's data_dir stays

    def __enter__(self) -> "ClickHouseServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries -------------------------------------------------------------

    def query(self, sql: str, data: Optional[bytes] = None,
              params: Optional[Mapping[str, object]] = None,
              headers: Optional[Mapping[str, str]] = None,
              timeout: float = 60.0) -> bytes:
        """POST a query straight to ClickHouse (not through the proxy).

        Without `data` the SQL is the body. With `data` the SQL goes in the
        `query` URL parameter and `data` is the body (e.g. INSERT rows).
        `params` are more URL parameters (settings, user, session_id, ...).
        Returns the body; raises ClickHouseError on a non-200 answer.
        """
        qs = {k: str(v) for k, v in (params or {}).items()}
        if data is None:
            body = sql.encode()
        else:
            qs["query"] = sql
            body = data
        url = self.http_url + "/"
        if qs:
            url += "?" + urllib.parse.urlencode(qs)
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers=dict(headers or {}))
        try:
            with _opener.open(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise ClickHouseError(e.code, e.read()) from None

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            with _opener.open(self.http_url + "/ping", timeout=timeout) as r:
                return r.status == 200 and r.read() == b"Ok.\n"
        except (OSError, urllib.error.URLError):
            return False

    def logs(self, tail: int = 4000) -> str:
        """The last `tail` characters of stdout and each server log."""
        out = []
        for p in (self.stdout_path,
                  os.path.join(self.log_dir, "clickhouse-server.err.log"),
                  os.path.join(self.log_dir, "clickhouse-server.log")):
            try:
                with open(p, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - tail))
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            out.append(f"--- {p} ---\n{text}")
        return "\n".join(out)

    # -- internals -----------------------------------------------------------

    def _pick_ports(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port(HOST))
        self.http_port, self.tcp_port, self.interserver_port = sorted(ports)

    def _write_config(self) -> None:
        for d in (self.data_dir, self.log_dir):
            os.makedirs(d, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(CONFIG_XML.format(
                log_level=_x(self.log_level), log_dir=_x(self.log_dir),
                host=HOST, http_port=self.http_port, tcp_port=self.tcp_port,
                interserver_port=self.interserver_port,
                data_dir=_x(self.data_dir), users_xml=_x(self.users_path)))
        with open(self.users_path, "w") as f:
            f.write(USERS_XML)

    # What runs, named in errors (a subclass runs another server).
    program_name = "clickhouse-server"

    def _command(self) -> list[str]:
        return self.binary + [f"--config-file={self.config_path}"]

    def _ports_text(self) -> str:
        return f"{self.http_port}/{self.tcp_port}/{self.interserver_port}"

    def _start_once(self, timeout: float) -> None:
        self._write_config()
        t0 = time.monotonic()
        in_main = threading.current_thread() is threading.main_thread()
        with open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                self._command(),
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is ours to relay
                preexec_fn=_set_pdeathsig if in_main else None)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(
                    f"{self.program_name} exited with {code} during start-up "
                    f"(ports {self._ports_text()})\n{self.logs()}")
            if self.ping(timeout=0.5):
                self.startup_seconds = time.monotonic() - t0
                return
            time.sleep(0.05)
        self.stop(timeout=5)
        raise RuntimeError(
            f"{self.program_name} did not answer /ping within {timeout} s\n"
            f"{self.logs()}")


def server_class(kind: Optional[str] = None) -> type:
    """The class for `kind` (default: TEST_SERVER)."""
    kind = kind or TEST_SERVER
    if kind == "26.7":
        try:
            from chdb_server import ChdbServer
        except ImportError:  # pragma: no cover
            from .chdb_server import ChdbServer  # type: ignore
        return ChdbServer
    return ClickHouseServer


def new_server(data_dir: Optional[str] = None, *, kind: Optional[str] = None,
               **kw) -> ClickHouseServer:
    """A new (not started) server of the chosen kind (default: TEST_SERVER)."""
    return server_class(kind)(data_dir, **kw)


@atexit.register
def _close_all() -> None:
    for srv in list(_live):
        try:
            srv.close()
        except Exception:
            pass
