"""Small network helpers shared by the test harness and scripts/clickhouse-dev."""

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago.

    The kernel picks it (bind to port 0); the socket is closed before
    returning, so another process may take it in between: callers that start a
    server on it should retry with a new port if the server fails to bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connection to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float, alive=None) -> bool:
    """Poll until host:port accepts a connection or `timeout` seconds pass.

    `alive`, if given, is called between attempts; when it returns False the
    wait stops early (the process that should listen has died).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(host, port):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.05)
    return port_accepts(host, port)
