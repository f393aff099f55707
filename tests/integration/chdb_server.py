"""A throwaway ClickHouse 26.7 for the tests: clickhouse-local out of
libchdb.so (npm package @chdb/lib-linux-x64-gnu, installed by
scripts/install-deps), serving ClickHouse's own HTTP handler.

ChdbServer has ClickHouseServer's interface (start, stop, kill, restart,
pause, resume, close, query, ping, http_url, http_port, tcp_port, pid, root,
data_dir, logs, startup_seconds, ...) and the same users (users.xml via the
config file's users_config, which clickhouse-local reads and its HTTP handler
authenticates): default (no password), alice/"secret", readonly (readonly=1).

The process is chdb_launcher.py (see there): stop() sends it SIGTERM, which
it turns into a KILL QUERY of its own keep-alive query; it then exits 0.
kill() is SIGKILL, as for clickhouse-server.

Differences from a real 26.7 clickhouse-server that the tests may meet:
the `default` database has clickhouse-local's Overlay engine (MergeTree
tables in it work, stored under store/ as with Atomic); there are no system
log tables (query_log, part_log, ...) unless configured; async inserts are
applied synchronously; `implicit_select` is on; a query that calls the
server's own HTTP port with url() kills it; a failed native-protocol login
can abort it.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

try:
    from clickhouse_server import HOST, USERS_XML, ClickHouseServer, _x
except ImportError:  # pragma: no cover
    from .clickhouse_server import HOST, USERS_XML, ClickHouseServer, _x  # type: ignore

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "chdb_launcher.py")
CHDB_VERSION = "26.7.3-stable.1"   # the npm package; its server says 26.7.2.1
CHDB_DIR_DEFAULT = "/var/cache/chsidecar/chdb-26.7.3"


def chdb_lib_path() -> str:
    """$CHSIDECAR_CHDB_LIB, else $CHSIDECAR_CHDB_DIR (default
    /var/cache/chsidecar/chdb-26.7.3)/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so."""
    env = os.environ.get("CHSIDECAR_CHDB_LIB")
    if env:
        return env
    base = os.environ.get("CHSIDECAR_CHDB_DIR") or CHDB_DIR_DEFAULT
    return os.path.join(base, "node_modules", "@chdb", "lib-linux-x64-gnu", "libchdb.so")


CHDB_CONFIG_XML = """<?xml version="1.0"?>
<!-- Written by tests/integration/chdb_server.py: a throwaway clickhouse-local server. -->
<clickhouse>
    <logger>
        <level>{log_level}</level>
        <log>{log_dir}/clickhouse-server.log</log>
        <errorlog>{log_dir}/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <display_name>chsidecar-test</display_name>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_connections>4096</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <default_session_timeout>60</default_session_timeout>
    <max_session_timeout>3600</max_session_timeout>
    <mlock_executable>false</mlock_executable>
    <tmp_path>{data_dir}/tmp/</tmp_path>
    <user_files_path>{data_dir}/user_files/</user_files_path>
    <format_schema_path>{data_dir}/format_schemas/</format_schema_path>
    <users_config>{users_xml}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
</clickhouse>
"""


class ChdbServer(ClickHouseServer):
    """ClickHouse 26.7 (clickhouse-local from libchdb.so); see the module docstring."""

    kind = "26.7"

    def __init__(self, data_dir: Optional[str] = None, *,
                 log_level: str = "information",
                 lib: Optional[str] = None, **_ignored):
        self.lib = lib or chdb_lib_path()
        if not os.path.isfile(self.lib):
            raise FileNotFoundError(
                f"libchdb.so not found at {self.lib}: run scripts/install-deps "
                f"(npm package @chdb/lib-linux-x64-gnu@{CHDB_VERSION}) or set "
                f"CHSIDECAR_CHDB_LIB / CHSIDECAR_CHDB_DIR")
        super().__init__(data_dir, log_level=log_level, binary=[sys.executable, LAUNCHER])

    def __repr__(self) -> str:
        return (f"<ChdbServer http={self.http_port} tcp={self.tcp_port} "
                f"pid={self.pid} root={self.root}>")

    def _write_config(self) -> None:
        for d in (self.data_dir, self.log_dir):
            os.makedirs(d, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(CHDB_CONFIG_XML.format(
                log_level=_x(self.log_level), log_dir=_x(self.log_dir),
                data_dir=_x(self.data_dir), users_xml=_x(self.users_path)))
        with open(self.users_path, "w") as f:
            f.write(USERS_XML_26)

    program_name = "chdb launcher"

    def _command(self) -> list[str]:
        return self.binary + [
            f"--lib={self.lib}", f"--config-file={self.config_path}",
            f"--path={self.data_dir}/", f"--host={HOST}",
            f"--http-port={self.http_port}", f"--tcp-port={self.tcp_port}",
            f"--log-level={self.log_level}"]

    def _ports_text(self) -> str:
        return f"{self.http_port}/{self.tcp_port}"


# Same users as clickhouse_server.USERS_XML; <clickhouse> root element. The
# default profile (the base of every profile, default_profile in the config)
# undoes what clickhouse-local changes over a server's defaults, so that HTTP
# clients see clickhouse-server 26.7's behaviour: implicit_select (else
# "SELEKT x" is an unknown identifier, 47, not a syntax error, 62),
# allow_introspection_functions, storage_file_read_method.
# clickhouse_server.py's users (the same names, passwords and profiles),
# with the root element newer servers name, and clickhouse-local's own
# defaults undone where they differ from a server's.
USERS_XML_26 = (USERS_XML.replace("yandex>", "clickhouse>")
                .replace("clickhouse_server.py", "chdb_server.py")
                .replace("<max_memory_usage>4000000000</max_memory_usage>\n",
                         "<max_memory_usage>4000000000</max_memory_usage>\n"
                         "            <implicit_select>0</implicit_select>\n"
                         "            <allow_introspection_functions>0</allow_introspection_functions>\n"
                         "            <storage_file_read_method>pread</storage_file_read_method>\n"))
