"""pytest fixtures: a real ClickHouse and the real chsidecar binary.

The server is Debian's clickhouse-server 18.16 or, with
CHSIDECAR_TEST_SERVER=26.7, ClickHouse 26.7 (clickhouse-local from libchdb.so,
see chdb_server.py); both have the same interface and users. Tests that
need one kind use the markers below (or check `clickhouse.kind`).

Fixtures
  clickhouse          (session)  a started ClickHouseServer shared by all tests;
                                 do not stop it, use clickhouse_factory for that
  clickhouse_factory  (function) factory(data_dir=None, **kw) -> a fresh,
                                 started, private ClickHouseServer; closed at
                                 teardown. For tests that stop/restart/kill it.
  sidecar_bin         (session)  path of the binary: $CHSIDECAR_BIN, else
                                 <repo>/build/proxy/chsidecar; fails if missing
  start_sidecar       (function) start_sidecar(upstream_url, *extra_args,
                                 env=None, port=None, ready_timeout=10)
                                 -> Sidecar; stopped at teardown
  sidecar             (function) start_sidecar(clickhouse.http_url)

Sidecar: .url "http://127.0.0.1:PORT", .port, .proc (Popen), .pid,
.rss_kib(), .stderr_text(), .stop(sig=SIGTERM, timeout=10) -> returncode,
.returncode (after stop). A sidecar that crashed on its own (SIGSEGV,
SIGABRT, ...) fails the test at teardown. The sidecar runs with
`--listen 127.0.0.1:PORT --upstream URL` plus the extra args; stderr goes to
a file in the test's tmp_path (stdout too, to sidecar.stdout).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable, Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clickhouse_server import (ClickHouseError, ClickHouseServer,  # noqa: E402,F401
                               TEST_SERVER, new_server)
from netutil import free_port, port_accepts, wait_port  # noqa: E402,F401

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN = os.path.join(REPO, "build", "proxy", "chsidecar")
# A sidecar that died of one of these on its own (not via Sidecar.stop or a
# test's own kill) fails the test at teardown.
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS,
                  signal.SIGFPE, signal.SIGILL}


class Sidecar:
    """One running chsidecar process (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen, port: int, stderr_path: str,
                 args: list[str]):
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.stderr_path = stderr_path
        self.args = args
        admin = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--admin-listen"), None)
        self.admin_url = f"http://{admin}" if admin else None
        self.returncode: Optional[int] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident set size in KiB (VmRSS of /proc/PID/status)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.proc.pid} (exited?)")

    def stderr_text(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig`, wait up to `timeout` s, then SIGKILL. Returns the exit
        code (negative = killed by that signal, as in Popen). Idempotent."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.returncode is None:
            self.returncode = self.proc.returncode
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"<Sidecar {self.url} pid={self.proc.pid} rc={self.returncode}>"


@pytest.fixture(scope="session")
def clickhouse():
    srv = new_server()
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture
def clickhouse_factory():
    made: list[ClickHouseServer] = []

    def factory(data_dir: Optional[str] = None, **kw) -> ClickHouseServer:
        srv = new_server(data_dir, **kw)
        made.append(srv)
        srv.start()
        return srv

    yield factory
    for srv in reversed(made):
        srv.close()


@pytest.fixture(scope="session")
def sidecar_bin() -> str:
    path = os.environ.get("CHSIDECAR_BIN") or DEFAULT_BIN
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"chsidecar binary not found or not executable: {path} "
                    f"(build it with scripts/build, or set CHSIDECAR_BIN)",
                    pytrace=False)
    return os.path.abspath(path)


@pytest.fixture
def start_sidecar(sidecar_bin, tmp_path) -> Callable[..., Sidecar]:
    started: list[Sidecar] = []

    def start(upstream_url: str, *extra_args: str, env: Optional[dict] = None,
              port: Optional[int] = None,
              ready_timeout: float = 10.0) -> Sidecar:
        """Run chsidecar on 127.0.0.1:<port> (free one by default) against
        upstream_url; return once the port accepts TCP. `env` entries are
        added to (not replacing) os.environ; a None value removes a name."""
        port = port or free_port()
        n = len(started)
        stderr_path = str(tmp_path / f"sidecar{n}.stderr")
        stdout_path = str(tmp_path / f"sidecar{n}.stdout")
        extra = list(map(str, extra_args))
        # Each sidecar gets its own admin port, so several can run at once.
        if not any(a.startswith("--admin-listen") for a in extra):
            admin_port = free_port()
            while admin_port == port:
                admin_port = free_port()
            extra = ["--admin-listen", f"127.0.0.1:{admin_port}"] + extra
        args = [sidecar_bin, "--listen", f"127.0.0.1:{port}",
                "--upstream", upstream_url, *extra]
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        # The admin listener defaults to 127.0.0.1:9124; let the kernel pick a
        # port instead, so that sidecars of parallel runs do not collide.
        # A test that needs it passes --admin-listen (the flag wins).
        full_env.setdefault("CHSIDECAR_ADMIN_LISTEN", "127.0.0.1:0")
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=full_env,
                                    cwd=str(tmp_path))
        sc = Sidecar(proc, port, stderr_path, args)
        started.append(sc)
        if not wait_port("127.0.0.1", port, ready_timeout,
                         alive=lambda: proc.poll() is None):
            rc = sc.stop(timeout=2)
            pytest.fail(
                f"chsidecar did not listen on 127.0.0.1:{port} within "
                f"{ready_timeout} s (exit code {rc})\ncommand: {' '.join(args)}"
                f"\n--- stderr ---\n{sc.stderr_text()[-8000:]}", pytrace=False)
        return sc

    yield start
    crashed = []
    for sc in reversed(started):
        died_alone = sc.returncode is None and sc.proc.poll() is not None
        rc = sc.stop()
        if died_alone and -rc in _CRASH_SIGNALS:
            crashed.append(f"{sc!r} died of signal {-rc}\n"
                           f"--- stderr ---\n{sc.stderr_text()[-8000:]}")
    if crashed:
        pytest.fail("chsidecar crashed during the test:\n" + "\n".join(crashed),
                    pytrace=False)


@pytest.fixture
def sidecar(start_sidecar, clickhouse) -> Sidecar:
    return start_sidecar(clickhouse.http_url)


def pytest_report_header(config):
    return f"ClickHouse server for integration tests: {TEST_SERVER} (CHSIDECAR_TEST_SERVER)"
