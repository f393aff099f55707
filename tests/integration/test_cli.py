"""The command line as a user meets it: --help, --version, bad values, the
CHSIDECAR_* environment fallback, and a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

import rawhttp
from netutil import free_port, port_accepts
from rawhttp import RawConn

FLAGS = {  # flag: default as --help must show it (None: any)
    "--listen": "127.0.0.1:8124",
    "--upstream": None,
    "--pool-size": "8",
    "--queue-max": None,
    "--max-connections": None,
    "--max-header-bytes": None,
    "--max-headers": None,
    "--max-url-bytes": None,
    "--header-timeout": None,
    "--idle-timeout": None,
    "--connect-timeout": None,
    "--upstream-timeout": None,
    "--session-mode": "auto",
    "--max-sessions": None,
    "--session-queue-max": None,
    "--body-buffer": None,
    "--response-buffer": None,
    "--shutdown-grace": None,
    "--log-level": None,
}


def env_name(flag: str) -> str:
    return "CHSIDECAR_" + flag[2:].upper().replace("-", "_")


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHSIDECAR_")}
    env.update(extra)
    return env


def run(bin_, *args, env=None, timeout=10, cwd=None):
    """Run the binary to completion in a scratch directory (it may create
    its spool directory in the working directory)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="chsidecar-cli-") as tmp:
        return subprocess.run([bin_, *args], capture_output=True, timeout=timeout,
                              env=env if env is not None else clean_env(),
                              stdin=subprocess.DEVNULL, cwd=cwd or tmp)


def test_help_lists_every_flag(sidecar_bin):
    p = run(sidecar_bin, "--help")
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert text.strip(), "--help printed nothing on stdout"
    missing = []
    for flag, default in FLAGS.items():
        # the flag's own entry: from its name up to the next flag's entry
        m = re.search(r"^\s*" + re.escape(flag) + r"\b(.*?)(?=\n\s*--[a-z]|\Z)",
                      text, re.S | re.M)
        if not m:
            missing.append(f"{flag}: not listed")
            continue
        entry = m.group(1)
        if env_name(flag) not in entry:
            missing.append(f"{flag}: no {env_name(flag)}")
        if "default" not in entry.lower():
            missing.append(f"{flag}: no default shown")
        if default is not None and default not in entry:
            missing.append(f"{flag}: default {default} not shown")
    assert not missing, "\n".join(missing) + "\n--- help ---\n" + text
    for flag in ("--help", "--version"):
        assert flag in text


def test_version(sidecar_bin):
    p = run(sidecar_bin, "--version")
    assert p.returncode == 0, p.stderr
    assert re.search(rb"\d+\.\d+", p.stdout), p.stdout


@pytest.mark.parametrize("args,names", [
    (["--pool-size", "abc"], "--pool-size"),
    (["--pool-size", "0"], "--pool-size"),
    (["--pool-size", "-3"], "--pool-size"),
    (["--queue-max", "1.5"], "--queue-max"),
    (["--max-header-bytes", "12XB"], "--max-header-bytes"),
    (["--header-timeout", "5 parsecs"], "--header-timeout"),
    (["--upstream-timeout", "-1s"], "--upstream-timeout"),
    (["--session-mode", "sometimes"], "--session-mode"),
    (["--listen", "not-an-address"], "--listen"),
    (["--upstream", "ftp://127.0.0.1:21"], "--upstream"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--pool-size"], "--pool-size"),  # value missing
])
def test_bad_value_exits_2_with_one_line(sidecar_bin, args, names):
    full = ["--upstream", "http://127.0.0.1:1", "--listen",
            f"127.0.0.1:{free_port()}"]
    full = full + args if args[0] != "--upstream" else full[2:] + args
    p = run(sidecar_bin, *full)
    err = p.stderr.decode()
    lines = [l for l in err.splitlines() if l.strip()]
    assert p.returncode == 2, (p.returncode, err)
    assert len(lines) == 1, f"want one line, got:\n{err}"
    assert names in lines[0], lines[0]


def test_missing_upstream_exits_2(sidecar_bin):
    p = run(sidecar_bin, "--listen", f"127.0.0.1:{free_port()}")
    assert p.returncode == 2, p.stderr
    assert b"upstream" in p.stderr.lower()


def test_env_bad_value_names_the_variable(sidecar_bin):
    env = clean_env(CHSIDECAR_POOL_SIZE="0", CHSIDECAR_UPSTREAM="http://127.0.0.1:1",
                    CHSIDECAR_LISTEN=f"127.0.0.1:{free_port()}")
    p = run(sidecar_bin, env=env)
    err = p.stderr.decode()
    assert p.returncode == 2, (p.returncode, err)
    assert "CHSIDECAR_POOL_SIZE" in err, err
    assert len([l for l in err.splitlines() if l.strip()]) == 1, err


def test_env_fallback_runs(clickhouse, sidecar_bin, tmp_path):
    """Everything from the environment, nothing on the command line."""
    port = free_port()
    env = clean_env(CHSIDECAR_UPSTREAM=clickhouse.http_url,
                    CHSIDECAR_LISTEN=f"127.0.0.1:{port}",
                    CHSIDECAR_POOL_SIZE="2",
                    CHSIDECAR_ADMIN_LISTEN=f"127.0.0.1:{free_port()}")
    proc = subprocess.Popen([sidecar_bin], env=env, stdin=subprocess.DEVNULL, cwd=tmp_path,
                            stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "err", "wb"))
    try:
        assert rawhttp.wait_until(lambda: port_accepts("127.0.0.1", port), 10), \
            (tmp_path / "err").read_text()
        r = httpx.get(f"http://127.0.0.1:{port}/", params={"query": "SELECT 42"})
        assert (r.status_code, r.content) == (200, b"42\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_flag_wins_over_env(clickhouse, start_sidecar):
    """--listen given by the harness wins over CHSIDECAR_LISTEN."""
    other = free_port()
    sc = start_sidecar(clickhouse.http_url,
                       env={"CHSIDECAR_LISTEN": f"127.0.0.1:{other}"})
    r = httpx.get(sc.url + "/", params={"query": "SELECT 1"})
    assert r.status_code == 200
    assert not port_accepts("127.0.0.1", other)


def _slow_request(url: str, out: dict, seconds: float = 2.0):
    try:
        with RawConn(url, timeout=30) as c:
            r = c.request(rawhttp.get(f"/?query=SELECT%20sleep({seconds})%2C%20'done'"))
            out["r"] = (r.status, r.body)
    except Exception as e:
        out["r"] = e


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_finishes_in_flight_then_exits_0(clickhouse, start_sidecar, sig):
    sc = start_sidecar(clickhouse.http_url)
    out: dict = {}
    t = threading.Thread(target=_slow_request, args=(sc.url, out))
    t.start()
    time.sleep(0.5)  # the query is running upstream
    t0 = time.monotonic()
    sc.proc.send_signal(sig)
    # it stops accepting at once
    assert rawhttp.wait_until(lambda: not port_accepts("127.0.0.1", sc.port), 1.0), \
        "still accepting after the signal"
    t.join(15)
    rc = sc.proc.wait(15)
    took = time.monotonic() - t0
    assert out.get("r") == (200, b"0\tdone\n"), out
    assert rc == 0, (rc, sc.stderr_text()[-2000:])
    assert took < 5, f"exit {took:.1f} s after the signal"


def test_sigterm_idle_exits_0_quickly(clickhouse, start_sidecar):
    sc = start_sidecar(clickhouse.http_url)
    with RawConn(sc.url) as c:  # an idle keep-alive client must not hold it
        r = c.request(rawhttp.get("/?query=SELECT%201"))
        assert r.status == 200
        t0 = time.monotonic()
        rc = sc.stop(signal.SIGTERM, timeout=10)
        took = time.monotonic() - t0
    assert rc == 0, sc.stderr_text()[-2000:]
    assert took < 2.0, f"idle sidecar took {took:.1f} s to exit"


def _with_a_query_in_flight(start_sidecar, clickhouse, grace: str):
    """A sidecar with --shutdown-grace `grace` running a 3 s query."""
    sc = start_sidecar(clickhouse.http_url, "--shutdown-grace", grace)
    t = threading.Thread(target=_slow_request, args=(sc.url, {}, 3.0))
    t.start()
    time.sleep(0.3)
    return sc, t


def test_shutdown_grace_bounds_the_wait(clickhouse, start_sidecar):
    """A query longer than --shutdown-grace does not keep the process."""
    sc, t = _with_a_query_in_flight(start_sidecar, clickhouse, "1s")
    t0 = time.monotonic()
    sc.proc.send_signal(signal.SIGTERM)
    rc = sc.proc.wait(10)
    took = time.monotonic() - t0
    t.join(10)
    assert took < 2.5, f"exited {took:.1f} s after SIGTERM with 1 s grace"
    assert rc == 0 and "shutdown_grace_expired" in sc.stderr_text(), (rc, sc.stderr_text()[-2000:])


def test_second_signal_exits_at_once(clickhouse, start_sidecar):
    """A second SIGTERM during the drain ends the process at once, exit 1."""
    sc, t = _with_a_query_in_flight(start_sidecar, clickhouse, "30s")
    sc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert sc.proc.poll() is None, "exited before the slow query ended, on the first signal"
    t0 = time.monotonic()
    sc.proc.send_signal(signal.SIGTERM)
    rc = sc.proc.wait(10)
    took = time.monotonic() - t0
    t.join(10)
    assert rc == 1 and "shutdown_forced" in sc.stderr_text(), (rc, sc.stderr_text()[-2000:])
    assert took < 2, f"exited {took:.1f} s after the second signal"


def test_port_in_use_fails_clearly(clickhouse, sidecar_bin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run(sidecar_bin, "--listen", f"127.0.0.1:{port}", "--upstream",
                clickhouse.http_url, "--admin-listen", f"127.0.0.1:{free_port()}")
    assert p.returncode != 0
    assert str(port).encode() in p.stderr, p.stderr
