"""Load and bookkeeping shared by test_spool.py, test_faults.py and
scripts/soak-spool: many concurrent single-row JSONEachRow INSERTs with
unique ids, each answer recorded, and the kill -9 loop.

Python standard library plus aiohttp (Debian's python3-aiohttp).
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import threading
import time
import urllib.parse
from collections import Counter
from typing import Callable, Iterable, Optional

import aiohttp

SPOOL_OPENED_RE = re.compile(
    r"\bspool_opened\b.*?\bsegments=(\d+).*?\breplay_records=(\d+).*?\breplay_rows=(\d+)"
    r".*?\bdamaged_segments=(\d+)")
RETRY_RE = re.compile(r"\bbatch_retry\b.*?\bcode=(\d+)")


class Load:
    """`concurrency` workers, each sending one INSERT of one row at a time
    ({"id": N, "r": tag}) until stop(). ids are unique: first_id, first_id+1, ...

    results: id -> HTTP status (int) or "exc:<ExceptionName>" (no answer:
    connection refused/reset, timeout). retry_after: Retry-After values seen
    on 503s. `params` are extra URL parameters (e.g. wait_for_async_insert=0).
    """

    def __init__(self, url: str, table: str, *, first_id: int = 1, tag: int = 0,
                 concurrency: int = 32, params: Optional[dict] = None,
                 pause: float = 0.0, timeout: float = 30.0):
        self.url = url
        self.table = table
        self.next_id = first_id
        self.tag = tag
        self.concurrency = concurrency
        self.params = dict(params or {})
        self.pause = pause
        self.timeout = timeout
        self.results: dict[int, object] = {}
        self.answered_at: dict[int, float] = {}
        self.retry_after: list[str] = []
        self.bodies: dict[int, bytes] = {}  # non-200 answers (first 300 bytes)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # -- control ---------------------------------------------------------------

    def start(self) -> "Load":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()),
                                        name="spool-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> "Load":
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.timeout + 10)
        return self

    def run(self, seconds: float) -> "Load":
        self.start()
        time.sleep(seconds)
        return self.stop()

    # -- results -------------------------------------------------------------------

    def ids_with(self, pred: Callable[[object], bool]) -> set[int]:
        with self._lock:
            return {i for i, s in self.results.items() if pred(s)}

    @property
    def acked(self) -> set[int]:
        return self.ids_with(lambda s: s == 200)

    @property
    def errored(self) -> set[int]:
        """Answered with an HTTP error status (not 200, not a lost connection)."""
        return self.ids_with(lambda s: isinstance(s, int) and s != 200)

    @property
    def unanswered(self) -> set[int]:
        return self.ids_with(lambda s: isinstance(s, str))

    def statuses(self) -> Counter:
        with self._lock:
            return Counter(self.results.values())

    # -- the workers -----------------------------------------------------------------

    def _take_id(self) -> int:
        with self._lock:
            i = self.next_id
            self.next_id += 1
            return i

    async def _main(self) -> None:
        qs = {"query": f"INSERT INTO {self.table} FORMAT JSONEachRow", **self.params}
        target = self.url + "/?" + urllib.parse.urlencode(qs)
        conn = aiohttp.TCPConnector(limit=self.concurrency)
        tmo = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=conn, timeout=tmo) as session:
            await asyncio.gather(*(self._worker(session, target)
                                   for _ in range(self.concurrency)))

    async def _worker(self, session: aiohttp.ClientSession, target: str) -> None:
        while not self._stop.is_set():
            i = self._take_id()
            body = b'{"id":%d,"r":%d}\n' % (i, self.tag)
            try:
                async with session.post(target, data=body) as resp:
                    data = await resp.read()
                    status = resp.status
                    if status == 503 and "Retry-After" in resp.headers:
                        self.retry_after.append(resp.headers["Retry-After"])
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                status, data = f"exc:{type(e).__name__}", b""
            with self._lock:
                self.results[i] = status
                self.answered_at[i] = time.monotonic()
                if status != 200 and data:
                    self.bodies[i] = data[:300]
            if isinstance(status, str):
                await asyncio.sleep(0.02)  # the sidecar is gone: do not spin
            elif self.pause:
                await asyncio.sleep(self.pause)


# -- ClickHouse side ------------------------------------------------------------------

def id_counts(ch, table: str) -> Counter:
    """id -> how many rows carry it."""
    out = ch.query(f"SELECT id, count() FROM {table} GROUP BY id FORMAT TSV").decode()
    c: Counter = Counter()
    for line in out.splitlines():
        i, n = line.split("\t")
        c[int(i)] = int(n)
    return c


def wait_present(ch, table: str, ids: Iterable[int], timeout: float) -> tuple[set[int], Counter]:
    """Polls until every id is in the table or `timeout` s pass; returns
    (missing ids, id counts)."""
    want = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        counts = id_counts(ch, table)
        missing = {i for i in want if counts.get(i, 0) == 0}
        if not missing or time.monotonic() > deadline:
            return missing, counts
        time.sleep(0.3)


def duplicates(counts: Counter) -> int:
    """Extra copies: rows beyond the first of each id."""
    return sum(n - 1 for n in counts.values() if n > 1)


def spool_opened(stderr: str) -> Optional[dict]:
    """The numbers of the first spool_opened line (segments, replay_records,
    replay_batches, replay_rows, damaged_segments)."""
    m = SPOOL_OPENED_RE.search(stderr)
    if not m:
        return None
    line = stderr[m.start():].split("\n", 1)[0]
    return {k: int(v) for k, v in re.findall(r"\b(\w+)=(\d+)\b", line)}


# -- the kill -9 loop ----------------------------------------------------------------

ROUND_IDS = 10_000_000  # ids of round r start at (r + 1) * ROUND_IDS


def kill_rounds(ch, table: str, launch: Callable[[], object], rounds: int, *,
                concurrency: int = 32, min_load: float = 0.3, max_load: float = 1.0,
                seed: Optional[int] = None, log: Callable[[str], None] = lambda s: None,
                drain_timeout: float = 60.0) -> dict:
    """Runs `rounds` rounds of: start a sidecar on the same spool (launch()),
    spooled single-row load for a random 0.3-1.0 s, SIGKILL. Then one last
    sidecar replays the rest; waits until every acked id is in ClickHouse,
    stops it with SIGTERM and counts.

    launch() returns an object with .url, .stop(sig, timeout) and .stderr_text().
    Returns a summary dict; nothing asserted here.
    """
    rng = random.Random(seed)
    acked: set[int] = set()
    unanswered: set[int] = set()
    errors: Counter = Counter()
    per_round = []
    replays = []
    for r in range(rounds):
        sc = launch()
        load = Load(sc.url, table, first_id=(r + 1) * ROUND_IDS, tag=r,
                    concurrency=concurrency, params={"wait_for_async_insert": "0"},
                    timeout=10).start()
        time.sleep(rng.uniform(min_load, max_load))
        sc.stop(signal.SIGKILL)
        load.stop()
        opened = spool_opened(sc.stderr_text()) or {}
        replays.append(opened.get("replay_records"))
        a = load.acked
        acked |= a
        unanswered |= load.unanswered
        for s, n in load.statuses().items():
            if s != 200:
                errors[s] += n
        per_round.append({"round": r, "acked": len(a), "unanswered": len(load.unanswered),
                          "errors": len(load.errored), "replay_records_at_start": opened.get("replay_records"),
                          "replay_rows_at_start": opened.get("replay_rows")})
        log(f"round {r}: acked={len(a)} unanswered={len(load.unanswered)} "
            f"http_errors={len(load.errored)} replay_at_start={opened.get('replay_records')}")
    final = launch()
    missing, counts = wait_present(ch, table, acked, drain_timeout)
    # Let the replay finish (duplicates of commit records lost with the kill).
    final_rc = final.stop(signal.SIGTERM, 60)
    final_open = spool_opened(final.stderr_text()) or {}
    counts = id_counts(ch, table)
    missing = {i for i in acked if counts.get(i, 0) == 0}
    dup_by_round = Counter()
    for i, n in counts.items():
        if n > 1:
            dup_by_round[i // ROUND_IDS - 1] += n - 1
    for pr in per_round:
        pr["duplicates"] = dup_by_round.get(pr["round"], 0)
    unanswered_present = sum(1 for i in unanswered if counts.get(i, 0) > 0)
    return {
        "rounds": rounds, "acked": len(acked), "missing": sorted(missing),
        "duplicates": duplicates(counts), "dup_by_round": [dup_by_round.get(r, 0) for r in range(rounds)],
        "rows": sum(counts.values()), "unanswered": len(unanswered),
        "unanswered_present": unanswered_present, "errors": dict(errors),
        "per_round": per_round, "replays": replays,
        "final_replay": final_open, "final_rc": final_rc,
        "unexpected_ids": sorted(i for i in counts if i not in acked and i not in unanswered)[:20],
    }
