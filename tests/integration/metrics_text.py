"""The sidecar's /metrics page (Prometheus text format 0.0.4), read strictly
for the tests: every non-comment line must be a sample."""

from __future__ import annotations

import re
import urllib.request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    """{(name, frozenset(labels.items())): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def fetch_metrics(admin_url: str) -> dict:
    """GET admin_url/metrics (no proxy) and parse it."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(admin_url + "/metrics", timeout=5) as r:
        return parse_metrics(r.read().decode())
