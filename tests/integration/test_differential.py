"""Differential fuzzer (issue 19): the sidecar must insert exactly what
ClickHouse inserts when each request is sent to it alone.

Each round generates a set of INSERT requests (seeded random.Random) and
sends each one straight to ClickHouse, alone, into tables *_a, and the same
requests (table names swapped) all at once through the sidecar into tables
*_b, so that they share batches. Then it compares, per request:

  plain tables   HTTP status and exception code equal to direct's, and the
                 request's rows (tagged by its `rid`) in *_b exactly as in
                 *_a, per database and table, content included.
  failing view   (table *_m has a materialized view doing throwIf(n = 13)):
                 a request answered 200 by the sidecar was answered 200
                 direct and its rows are in *_b exactly as in *_a; a request
                 answered with an error has its rows in *_b 0 times or
                 exactly as often as in *_a, never more.
  spool          some requests get wait_for_async_insert=0 through the
                 sidecar (direct they go without it: 18.16 refuses the
                 setting). An early 200 for a request direct refuses is
                 allowed; its rows must then be absent from *_b (as from
                 *_a) and listed in dead-letter.jsonl.

Inputs (see issue 19): formats JSONEachRow, CSV, CSVWithNames, TSV,
TSVWithNames, Values; quoting, blanks before quotes, delimiters, line ends
(\\n, \\r\\n, \\n\\r, \\r); the SQL in the query parameter or in the body, or
the data in the query parameter; a query parameter ending in ';', ' ;' or
newlines; a form feed after the format name; gzip with Content-Encoding
gzip/GZIP/Gzip and identity; chunked and unframed bodies; settings
(format_csv_delimiter, input_format_allow_errors_num/ratio,
input_format_skip_unknown_fields, max_insert_block_size), repeated URL
parameters (query, database, user, a setting); credentials (default,
alice/secret, readonly, Basic auth); JSON oddities; multipart bodies.

Runs:
  test_differential_regressions   the kept inputs (REGRESSIONS), every time
                                  (pytest -k regressions; one case: -k csv-eol-nr)
  test_differential_random        (-k random) CHSIDECAR_FUZZ_CASES generated requests
                                  (default 720) from CHSIDECAR_FUZZ_SEED
                                  (default 19), CHSIDECAR_FUZZ_ROUND per round
  scripts/fuzz-differential [CASES] [SEED] runs the random part longer.
Every failure names the case (seed, round, rid, the generator's notes), the
field that differs, both answers and the request bytes; a mismatch class found
by the random part belongs in REGRESSIONS.
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import os
import random
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import pytest

from rawhttp import Closed, RawConn, chunked, uniq

SEED = int(os.environ.get("CHSIDECAR_FUZZ_SEED", "19"))
CASES = int(os.environ.get("CHSIDECAR_FUZZ_CASES", "720"))
ROUND = int(os.environ.get("CHSIDECAR_FUZZ_ROUND", "24"))
# Stop reporting after this many mismatches (the summary still counts all).
MAX_REPORTED = int(os.environ.get("CHSIDECAR_FUZZ_MAX_REPORTED", "40"))
REQUEST_TIMEOUT = float(os.environ.get("CHSIDECAR_FUZZ_TIMEOUT", "20"))
# 1: print every request's two answers and row counts (to study a case).
VERBOSE = os.environ.get("CHSIDECAR_FUZZ_VERBOSE") == "1"

SIDECAR_FLAGS = ("--flush-delay-min", "50ms", "--flush-delay-max", "200ms",
                 "--retry-backoff-min", "10ms", "--retry-backoff-max", "200ms",
                 "--log-level", "info")

COLUMNS = "rid UInt32, s String, n Int32, f Float64"
COLS = ["rid", "s", "n", "f"]
CODE_RE = re.compile(rb"Code: (\d+)")


# -- a request, with placeholders ------------------------------------------------

# Placeholders, replaced per side: @P@ plain table, @M@ table with a failing
# view, @U@ another plain table, @D@ the round's extra database, @R@ the rid.
@dataclass
class Req:
    params: list                   # [(name, value)] of the URL, in order
    body: bytes = b""
    headers: list = field(default_factory=list)
    method: str = "POST"
    gzip: bool = False             # gzip the body after substitution
    framing: str = "cl"            # cl | chunked | none (no length: raw socket)
    spool: bool = False            # + wait_for_async_insert=0 through the sidecar
    note: str = ""                 # what the generator chose, for the report
    raw_query: Optional[str] = None  # the query string as is (not encoded)
    delay: float = 0.0             # seconds before it is sent through the sidecar

    @property
    def mv(self) -> bool:
        text = repr(self.params) + repr(self.raw_query)
        return "@M@" in text or b"@M@" in self.body


def R(sql=None, body=b"", params=(), **kw) -> Req:
    """Shorthand: `sql` goes first as the query parameter."""
    ps = ([("query", sql)] if sql is not None else []) + list(params)
    return Req(params=ps, body=body, **kw)


class Names:
    def __init__(self, base: str, db: str):
        self.base, self.db = base, db

    def table(self, role: str, side: str) -> str:
        return f"{self.base}_{role}_{side}"

    def subst(self, side: str, rid: int):
        m = {"@P@": self.table("p", side), "@M@": self.table("m", side),
             "@U@": self.table("u", side), "@D@": self.db, "@R@": str(rid)}

        def s(x):
            if isinstance(x, bytes):
                for k, v in m.items():
                    x = x.replace(k.encode(), v.encode())
                return x
            for k, v in m.items():
                x = x.replace(k, v)
            return x
        return s


def render(req: Req, names: Names, side: str, rid: int) -> bytes:
    s = names.subst(side, rid)
    params = [(s(k), s(v)) for k, v in req.params]
    if side == "b" and req.spool:
        params.append(("wait_for_async_insert", "0"))
    if req.raw_query is not None:
        qs = s(req.raw_query)
        if side == "b" and req.spool:
            qs += "&wait_for_async_insert=0"
    else:
        qs = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}"
                      for k, v in params)
    target = "/?" + qs if qs else "/"
    body = s(req.body)
    if req.gzip:
        body = gzip.compress(body, 6)
    lines = [f"{req.method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    if req.framing == "cl":
        lines.append(f"Content-Length: {len(body)}")
    elif req.framing == "chunked":
        cut = len(body) // 2
        body = chunked([body[:cut], body[cut:]])
        if not any(k.lower() == "transfer-encoding" for k, _ in req.headers):
            lines.append("Transfer-Encoding: chunked")
    elif req.framing == "none":
        lines.append("Connection: close")
    lines += [f"{k}: {s(v)}" for k, v in req.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@dataclass
class Answer:
    status: int            # 0: connection closed without an answer, -1: timeout
    code: Optional[int]
    body: bytes

    def short(self) -> str:
        return f"{self.status} code={self.code} {self.body[:160]!r}"


def send(url: str, raw: bytes, method: str) -> Answer:
    try:
        with RawConn(url, timeout=REQUEST_TIMEOUT) as c:
            c.send(raw)
            r = c.read_response(method)
    except Closed as e:
        return Answer(0, None, str(e).encode())
    except OSError as e:  # socket.timeout and resets
        return Answer(-1 if "timed out" in str(e) else 0, None, repr(e).encode())
    code = r.header("x-clickhouse-exception-code")
    if code is None and r.status != 200:
        m = CODE_RE.search(r.body)
        code = m.group(1).decode() if m else None
    return Answer(r.status, int(code) if code is not None else None, r.body)


# -- the generator ---------------------------------------------------------------

STRINGS = ["hello", "", "a,b", 'say "hi"', "it's", "tab\there", "line\nbreak",
           "back\\slash", "ünïcode", "semi;colon", " lead", "trail ", "|pipe|",
           "cr\rhere", "x" * 40, "{json}", "(paren)", "1", "\\N", "-- not a comment"]
INTS = ["0", "1", "-5", "42", "13", "2147483647", "7"]
FLOATS = ["0.5", "-1", "1e10", "inf", "nan", "-inf", "3"]
BAD_INTS = ["abc", "+1", "1.5", "99999999999", "", " 1"]


FORMATS = ["JSONEachRow", "JSONEachRow", "CSV", "CSV", "CSVWithNames",
           "TSV", "TabSeparated", "TSVWithNames", "Values", "Values"]


class Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.round_fmt: Optional[str] = None

    def round(self, n: int) -> list:
        """n requests; most of them in one format, so that they share batches."""
        self.round_fmt = self.pick(FORMATS)
        return [self.request() for _ in range(n)]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, xs):
        return self.rng.choice(xs)

    def rows(self, notes):
        n = self.pick([1, 1, 1, 2, 2, 3, 5])
        out = []
        for _ in range(n):
            out.append({"rid": "@R@", "s": self.pick(STRINGS),
                        "n": self.pick(INTS), "f": self.pick(FLOATS)})
        if self.chance(0.12):
            out[self.rng.randrange(n)]["n"] = self.pick(BAD_INTS)
            notes.append("bad-int")
        return out

    # CSV family ---------------------------------------------------------------

    def csv_field(self, col, v, delim, notes):
        rng = self
        if col == "s":
            must = any(c in v for c in (delim, '"', "'", "\n", "\r")) or v != v.strip()
            q = self.pick(['"', '"', "'", ""]) if True else ""
            if q == "" and must:
                q = '"'
            if q == "'" and ("'" in v or '"' in v):
                q = '"'
            text = q + v.replace(q, q + q) + q if q else v
        else:
            text = f'"{v}"' if self.chance(0.1) else v
        if text.startswith(('"', "'")) and rng.chance(0.12):
            text = self.pick([" ", "\t", "  "]) + text
            notes.append("blank-before-quote")
        return text

    def csv(self, cols, rows, notes, settings, header):
        delim = ","
        if self.chance(0.15):
            delim = self.pick([";", "|", "\t"])
            notes.append(f"delim={delim!r}")
            settings.append(("format_csv_delimiter", delim))
            if self.chance(0.3):  # repeated setting: the last one applies
                settings.insert(0, ("format_csv_delimiter", self.pick([",", ";"])))
                notes.append("setting-twice")
        eol = self.pick(["\n"] * 6 + ["\r\n", "\r\n", "\n\r", "\r"])
        if eol != "\n":
            notes.append(f"eol={eol!r}")
        lines = []
        if header:
            lines.append(delim.join(f'"{c}"' if self.chance(0.3) else c for c in cols))
        for r in rows:
            lines.append(delim.join(self.csv_field(c, r[c], delim, notes) for c in cols))
        text = eol.join(lines)
        if self.chance(0.85):
            text += eol
        else:
            notes.append("no-final-eol")
        return text

    # TSV family ---------------------------------------------------------------

    def tsv(self, cols, rows, notes, header):
        def esc(v):
            return (v.replace("\\", "\\\\").replace("\t", "\\t")
                    .replace("\n", "\\n").replace("\r", "\\r"))
        eol = "\n" if self.chance(0.9) else self.pick(["\r\n", "\n\r"])
        if eol != "\n":
            notes.append(f"eol={eol!r}")
        lines = ["\t".join(cols)] if header else []
        for r in rows:
            lines.append("\t".join(esc(r[c]) if c == "s" else r[c] for c in cols))
        text = eol.join(lines)
        return text + eol if self.chance(0.9) else text

    # JSONEachRow --------------------------------------------------------------

    def json_rows(self, cols, rows, notes, settings):
        parts = []
        for r in rows:
            items = []
            for c in cols:
                v = r[c]
                if c == "rid":
                    items.append(f'"rid":{v}')
                elif c == "s":
                    items.append('"s":' + json.dumps(v, ensure_ascii=self.chance(0.5)))
                elif c == "n":
                    if v in BAD_INTS or self.chance(0.2):
                        items.append(f'"n":{json.dumps(v)}')  # a quoted number
                    else:
                        items.append(f'"n":{v}')
                else:
                    items.append(f'"f":{json.dumps(v)}' if v in ("inf", "nan", "-inf")
                                 else f'"f":{v}')
            odd = self.rng.random()
            if odd < 0.04:
                items.append('"s2":"raw\ttab\nnl"')
                items[1] = '"s":"raw\ttab"'
                notes.append("json-raw-tab")
            elif odd < 0.07:
                items[-1] = '"f":inf'
                notes.append("json-inf")
            elif odd < 0.10:
                items[2] = '"n":+1'
                notes.append("json-plus")
            elif odd < 0.13:
                items[1] = '"s":"a\\qb"'
                notes.append("json-\\q")
            elif odd < 0.16:
                items[1] = '"s":"x\\udc00y"'
                notes.append("json-lone-surrogate")
            elif odd < 0.20:
                depth = self.pick([3, 50, 2000])
                items.append('"extra":' + "[" * depth + "1" + "]" * depth)
                notes.append(f"json-unknown-depth-{depth}")
                if self.chance(0.8):
                    settings.append(("input_format_skip_unknown_fields", "1"))
            self.rng.shuffle(items) if self.chance(0.2) else None
            parts.append("{" + ",".join(items) + "}")
        sep = self.pick(["\n"] * 6 + ["", ",", ";", "\r\n", " ", ",\n"])
        if sep != "\n":
            notes.append(f"json-sep={sep!r}")
        return sep.join(parts) + ("\n" if self.chance(0.8) else "")

    # Values ----------------------------------------------------------------------

    def values(self, cols, rows, notes):
        def lit(c, v):
            if c == "s":
                return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
            if v in BAD_INTS:
                return f"'{v}'" if v == "" else v
            return v
        tups = ["(" + ",".join(lit(c, r[c]) for c in cols) + ")" for r in rows]
        sep = self.pick([",", ", ", " ", ",\n"])
        text = sep.join(tups)
        odd = self.rng.random()
        if odd < 0.05:
            text += ";"
            notes.append("values-;")
        elif odd < 0.08 and len(tups) > 1:
            text = tups[0] + "; " + ",".join(tups[1:])
            notes.append("values-;-more")
        elif odd < 0.11:
            text = tups[0] + " /* c */ " + "".join("," + t for t in tups[1:])
            notes.append("values-comment")
        elif odd < 0.13:
            text = tups[0] + " -- c\n" + "".join("," + t for t in tups[1:])
            notes.append("values-line-comment")
        return text

    # one request ---------------------------------------------------------------

    def request(self) -> Req:
        notes: list[str] = []
        settings: list = []
        fmt = self.pick(FORMATS)
        if self.round_fmt and self.chance(0.6):  # most of a round share a batch key
            fmt = self.round_fmt
        notes.append(fmt)
        cols = list(COLS)
        collist = ""
        if self.chance(0.2):
            rest = cols[1:]
            self.rng.shuffle(rest)
            cols = ["rid"] + rest
            collist = " (" + ", ".join(cols) + ")"
            notes.append("collist")
        rows = self.rows(notes)
        if fmt in ("CSV", "CSVWithNames"):
            header_only = fmt == "CSVWithNames" and self.chance(0.05)
            data = self.csv(cols, [] if header_only else rows, notes, settings,
                            fmt == "CSVWithNames")
            if header_only:
                data = data.rstrip("\r\n")
                notes.append("header-only")
        elif fmt in ("TSV", "TabSeparated", "TSVWithNames"):
            data = self.tsv(cols, rows, notes, fmt == "TSVWithNames")
        elif fmt == "JSONEachRow":
            data = self.json_rows(cols, rows, notes, settings)
        else:
            data = self.values(cols, rows, notes)

        role = self.pick(["@P@"] * 6 + ["@M@"] * 3 + ["@U@"])
        table = role
        params: list = []
        dbq = self.rng.random()
        if dbq < 0.08:
            table = "@D@." + role
            notes.append("qualified")
        elif dbq < 0.16:
            params.append(("database", "@D@"))
            notes.append("database=@D@")
        elif dbq < 0.20:
            two = ["@D@", "default"]
            self.rng.shuffle(two)
            params += [("database", two[0]), ("database", two[1])]
            notes.append(f"database-twice={two}")
        elif dbq < 0.21:
            params.append(("database", "no_such_db"))
            notes.append("database=missing")
        sql = f"INSERT INTO {table}{collist} FORMAT {fmt}"

        # settings
        if self.chance(0.08):
            settings.append(("input_format_allow_errors_num", self.pick(["0", "1", "5"])))
            notes.append("allow_errors_num")
        if self.chance(0.08):
            settings.append(("input_format_allow_errors_ratio", self.pick(["0.1", "0.5", "1"])))
            notes.append("allow_errors_ratio")
        if self.chance(0.06) and ("input_format_skip_unknown_fields", "1") not in settings:
            settings.append(("input_format_skip_unknown_fields", "1"))
        if self.chance(0.06):
            settings.append(("max_insert_block_size", self.pick(["1", "2", "1000"])))
            notes.append("max_insert_block_size")
        if self.chance(0.04):
            v = self.pick(["0", "1"])
            settings += [("input_format_allow_errors_num", v),
                         ("input_format_allow_errors_num", "1" if v == "0" else "0")]
            notes.append("allow_errors_num-twice")

        # credentials
        creds: list = []
        headers: list = []
        c = self.rng.random()
        if c < 0.06:
            creds = [("user", "default")]
        elif c < 0.12:
            creds = [("user", "alice"), ("password", "secret")]
            notes.append("alice")
        elif c < 0.15:
            headers.append(("Authorization", "Basic " + base64.b64encode(b"alice:secret").decode()))
            notes.append("basic-alice")
        elif c < 0.18:
            creds = [("user", "readonly")]
            notes.append("readonly")
        elif c < 0.22:
            two = [("user", "readonly"), ("user", "default")]
            self.rng.shuffle(two)
            creds = two
            notes.append(f"user-twice={two[0][1]},{two[1][1]}")
        elif c < 0.23:
            creds = [("user", "alice"), ("password", "wrong")]
            notes.append("bad-password")

        # where the SQL and the data go
        body: bytes
        place = self.rng.random()
        query_param = None
        if place < 0.55:
            term = self.pick([""] * 14 + [";", " ;", "\n", "\n\n"])
            if term:
                notes.append(f"query-ends={term!r}")
            query_param = sql + term
            body = data.encode()
        elif place < 0.85:
            sep = self.pick(["\n"] * 5 + [" ", "\r\n", "\f", "\t"])
            if sep != "\n":
                notes.append(f"sql-sep={sep!r}")
            body = (sql + sep + data).encode()
            notes.append("sql-in-body")
        elif place < 0.95:
            query_param = sql + "\n" + data
            body = b""
            notes.append("data-in-param")
        else:
            query_param = "INSERT INTO " + table
            body = (collist + f" FORMAT {fmt}\n" + data).encode()
            notes.append("sql-split")
        if query_param is not None and self.chance(0.04):
            params.insert(0, ("query", query_param))
            params.append(("query", f"INSERT INTO @U@ FORMAT {fmt}"))
            notes.append("query-twice")
        elif query_param is not None:
            params.insert(0, ("query", query_param))
        params += creds + settings
        if self.chance(0.1):  # reorder the URL parameters (query stays first)
            head, tail = params[:1], params[1:]
            self.rng.shuffle(tail)
            params = head + tail

        req = Req(params=params, body=body, headers=headers, note="")
        e = self.rng.random()
        if e < 0.10 and body:
            req.gzip = True
            enc = self.pick(["gzip"] * 5 + ["GZIP", "Gzip"])
            req.headers.append(("Content-Encoding", enc))
            notes.append(f"CE={enc}")
        elif e < 0.12:
            req.headers.append(("Content-Encoding", "identity"))
            notes.append("CE=identity")
        f = self.rng.random()
        if f < 0.1:
            req.framing = "chunked"
            notes.append("chunked")
        elif f < 0.11:
            req.framing = "chunked"
            req.gzip = True
            req.headers.append(("Transfer-Encoding", "gzip, chunked"))
            notes.append("TE=gzip,chunked")
        elif f < 0.12:
            req.framing = "none"
            notes.append("no-length")
        if self.chance(0.03) and query_param is not None and body:
            bnd = "fuzzbnd" + str(self.rng.randrange(1000))
            name = self.pick(["file", "data", "query"])
            req.body = (f"--{bnd}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                        f"filename=\"d.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode() \
                + body + f"\r\n--{bnd}--\r\n".encode()
            req.headers.append(("Content-Type", f"multipart/form-data; boundary={bnd}"))
            notes.append(f"multipart-{name}")
        if self.chance(0.1):
            req.spool = True
            notes.append("spool")
        req.note = " ".join(notes)
        return req


# -- the kept regression inputs ------------------------------------------------------

def _gz(req: Req, enc: str) -> Req:
    req.gzip = True
    req.headers.append(("Content-Encoding", enc))
    return req


CSV2 = "INSERT INTO @P@ (rid, s) FORMAT CSV"
ROW = '{"rid":@R@,"s":"ok","n":1,"f":0.5}\n'
# Each entry: a name and requests sent together through the sidecar (so that
# they share a batch); each is sent alone direct.
REGRESSIONS: list[tuple[str, list[Req]]] = [
    # The quote opened after a blank runs to the end of the data: in a batch
    # it swallows the rows of the requests after it (unquoted strings).
    # (delay: the quote first in the batch, the others 10 ms later.)
    ("csv-blank-before-quote", [R(CSV2, b'@R@, "hello\n'), R(CSV2, b'@R@,a\n', delay=0.01),
                                R(CSV2, b'@R@,b\n', delay=0.01), R(CSV2, b'@R@,c\n', delay=0.01)]),
    ("csv-tab-before-quote", [R(CSV2, b'@R@,\t"x,y\n'), R(CSV2, b'@R@,a\n', delay=0.01),
                              R(CSV2, b'@R@,b\n', delay=0.01)]),
    ("csv-blank-before-quote-alone", [R(CSV2, b'@R@, "hello\n'), R(CSV2, b'@R@, "hello')]),
    ("csv-eol-nr", [R(CSV2, b'@R@,a\n\r@R@,b\n\r'), R(CSV2, b'@R@,"c"\n')]),
    ("csv-eol-lone-cr", [R(CSV2, b'@R@,a\r@R@,b\r'), R(CSV2, b'@R@,"c"\n')]),
    ("csv-eol-lone-cr-at-end", [R(CSV2, b'@R@,a\r'), R(CSV2, b'@R@,"c"\n')]),
    ("csv-eol-crlf", [R(CSV2, b'@R@,a\r\n@R@,"b"\r\n'), R(CSV2, b'@R@,"c"\n')]),
    ("csvwithnames-header-only", [R("INSERT INTO @P@ (rid, s) FORMAT CSVWithNames", b"rid,s"),
                                  R("INSERT INTO @P@ (rid, s) FORMAT CSVWithNames",
                                    b"rid,s\n@R@,x\n")]),
    ("mv-fails-for-one-request", [R("INSERT INTO @M@ FORMAT JSONEachRow",
                                    b'{"rid":@R@,"s":"a","n":%d,"f":0}\n' % n)
                                  for n in (0, 13, 0, 1)]),
    ("mv-fails-spooled", [R("INSERT INTO @M@ FORMAT JSONEachRow",
                            b'{"rid":@R@,"s":"a","n":%d,"f":0}\n' % n, spool=True)
                          for n in (0, 13, 0)]),
    ("spool-dead-letter", [R("INSERT INTO @P@ FORMAT TSV", b"@R@\tx\t7\t-1\r\n", spool=True),
                           R(None, b"INSERT INTO @P@ (rid, n) FORMAT TabSeparated\t@R@\tabc\n",
                             spool=True),
                           R("INSERT INTO @P@ (rid, n) FORMAT CSV", b"@R@,abc\n", spool=True),
                           R("INSERT INTO @P@ (rid, n) FORMAT CSV", b"@R@,1\n", spool=True)]),
    # Answered 200 early, then refused as the sidecar sends them: dead-lettered
    # although ClickHouse takes each alone (an acknowledged row lost).
    ("spool-acked-rows-ClickHouse-takes", [
        R(CSV2, b"@R@,a\n\r", spool=True),
        R(None, b"INSERT INTO @P@ (rid, s) FORMAT TSV\f@R@\tx\n", spool=True),
        R(None, b"INSERT INTO @P@ (rid, s) FORMAT CSV\t@R@,'x'\n\r", spool=True),
        R(CSV2, b"@R@,b\n", spool=True)]),
    # The form feed read as data: with allow_errors the first row is dropped, 200.
    ("formfeed-allow-errors-drops-a-row", [
        R(None, b"INSERT INTO @P@ (rid, n) FORMAT TSV\f@R@\t1\n@R@\t2\n@R@\t3\n",
          [("input_format_allow_errors_num", "1")])]),
    ("spool-passthrough-keeps-wait_for_async_insert", [
        _gz(R(None, b"INSERT INTO @P@ (rid, s) FORMAT TSV\n@R@\tx\n", spool=True), "gzip")]),
    ("user-twice", [R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode(),
                      [("user", "readonly"), ("user", "default")]),
                    R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode(),
                      [("user", "default"), ("user", "readonly")]),
                    R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode(),
                      [("user", "alice"), ("password", "secret"), ("user", "readonly")]),
                    R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode())]),
    ("database-twice", [R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode(),
                          [("database", "@D@"), ("database", "default")]),
                        R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode(),
                          [("database", "default"), ("database", "@D@")])]),
    ("query-twice", [R("INSERT INTO @P@ FORMAT JSONEachRow", ROW.encode(),
                       [("query", "INSERT INTO @U@ FORMAT JSONEachRow")]),
                     R("INSERT INTO @U@ FORMAT JSONEachRow", ROW.encode())]),
    ("setting-twice-delimiter", [R("INSERT INTO @P@ (rid, s) FORMAT CSV", b"@R@;a\n",
                                   [("format_csv_delimiter", ";"), ("format_csv_delimiter", ",")]),
                                 R("INSERT INTO @P@ (rid, s) FORMAT CSV", b"@R@,b\n",
                                   [("format_csv_delimiter", ",")])]),
    ("multipart", [R("INSERT INTO @P@ (rid, s) FORMAT CSV",
                     b'--b1\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
                     b"\r\n@R@,x\n\r\n--b1--\r\n",
                     headers=[("Content-Type", "multipart/form-data; boundary=b1")]),
                   R(CSV2, b"@R@,y\n")]),
    ("query-ends-semicolon", [R(CSV2 + ";", b"@R@,a\n"), R(CSV2 + " ;", b"@R@,b\n")]),
    # Direct: 200 and nothing inserted (the statement ends at ';').
    ("query-ends-semicolon-values", [R("INSERT INTO @P@ (rid, s) FORMAT Values ;", b"(@R@,'a')"),
                                     R("INSERT INTO @P@ (rid, s) FORMAT Values", b"(@R@,'b')")]),
    # ClickHouse checks credentials, the database and the encoding before the
    # data: those errors win over a data error.
    ("errors-before-data", [
        R(None, b"INSERT INTO @P@ FORMAT JSONEachRow\f" + ROW.encode(),
          [("user", "alice"), ("password", "wrong")]),
        R("INSERT INTO @P@ (rid, s) FORMAT Values", b"(@R@,'a') /* c */ ,(@R@,'b')",
          [("database", "no_such_db")]),
        R("INSERT INTO @P@ FORMAT JSONEachRow", b'{"rid":@R@,"s":"a\\qb"}\n',
          [("user", "readonly")]),
        R(None, b"INSERT INTO @P@ FORMAT JSONEachRow\f" + ROW.encode(),
          headers=[("Content-Encoding", "identity")])]),
    # Both refuse; 18.16 answers 500, the sidecar's own refusal 400.
    ("refused-by-both", [
        R("INSERT INTO @P@ FORMAT JSONEachRow", b'{"rid":@R@,"extra":1}\n'),
        R("INSERT INTO @P@ (rid, s) FORMAT CSVWithNames", b'rid,s\r@R@,a\r'),
        R("INSERT INTO @P@ (rid, n) FORMAT Values", b"(@R@,1) -- c\n")]),
    ("query-ends-newlines", [R(CSV2 + "\n", b"@R@,a\n"), R(CSV2 + "\n\n", b"@R@,b\n"),
                             R("INSERT INTO @P@ FORMAT JSONEachRow\n\n", ROW.encode())]),
    ("formfeed-after-format", [R(None, b"INSERT INTO @P@ (rid, s) FORMAT CSV\f@R@,a\n"),
                               R(None, b"INSERT INTO @P@ FORMAT JSONEachRow\f" + ROW.encode())]),
    ("content-encoding-case", [_gz(R(CSV2, b"@R@,a\n"), "GZIP"), _gz(R(CSV2, b"@R@,b\n"), "Gzip"),
                               R(CSV2, b"@R@,c\n", headers=[("Content-Encoding", "identity")]),
                               _gz(R(CSV2, b"@R@,d\n"), "gzip")]),
    ("te-gzip-chunked", [R(CSV2, b"@R@,a\n", framing="chunked", gzip=True,
                           headers=[("Transfer-Encoding", "gzip, chunked")])]),
    # Alone the first is refused (2 errors in 3 rows); after the good one in a
    # batch the ratio stays under 0.5.
    ("allow-errors-ratio-in-batch", [
        R("INSERT INTO @P@ (rid, n) FORMAT CSV", b"@R@,1\n@R@,x\n@R@,y\n",
          [("input_format_allow_errors_ratio", "0.5")], delay=0.01),
        R("INSERT INTO @P@ (rid, n) FORMAT CSV", b"@R@,1\n@R@,2\n@R@,3\n",
          [("input_format_allow_errors_ratio", "0.5")])]),
    ("allow-errors-num-in-batch", [
        R("INSERT INTO @P@ (rid, n) FORMAT CSV", b"@R@,1\n@R@,x\n@R@,y\n",
          [("input_format_allow_errors_num", "1")]),
        R("INSERT INTO @P@ (rid, n) FORMAT CSV", b"@R@,1\n@R@,x\n@R@,3\n",
          [("input_format_allow_errors_num", "1")])]),
    ("no-length-no-chunked", [R(CSV2, b"", framing="none"),
                              R(None, b"INSERT INTO @P@ (rid, s) FORMAT CSV\n@R@,a\n",
                                framing="none"),
                              _gz(R(None, b"INSERT INTO @P@ (rid, s) FORMAT CSV\n@R@,a\n",
                                    framing="none"), "gzip")]),
    ("json-oddities", [R("INSERT INTO @P@ FORMAT JSONEachRow", b)
                       for b in (b'{"rid":@R@,"s":"raw\ttab"}\n', b'{"rid":@R@,"s":"raw\nnl"}\n',
                                 b'{"rid":@R@,"f":inf}\n', b'{"rid":@R@,"n":+1}\n',
                                 b'{"rid":@R@,"s":"a"};{"rid":@R@,"s":"b"}\n',
                                 b'{"rid":@R@,"s":"a\\qb"}\n', b'{"rid":@R@,"s":"\\udc00"}\n')]
     + [R("INSERT INTO @P@ FORMAT JSONEachRow",
          b'{"rid":@R@,"x":' + b"[" * 2000 + b"1" + b"]" * 2000 + b"}\n",
          [("input_format_skip_unknown_fields", "1")])]),
    ("values-semicolon-and-comments", [
        R("INSERT INTO @P@ (rid, s) FORMAT Values", b"(@R@,'a'); (@R@,'b')"),
        R("INSERT INTO @P@ (rid, s) FORMAT Values", b"(@R@,'a') /* c */ ,(@R@,'b')"),
        R("INSERT INTO @P@ (rid, s) FORMAT Values", b"(@R@,'a') -- c\n,(@R@,'b')"),
        R("INSERT INTO @P@ (rid, s) FORMAT Values", b"(@R@,'c')")]),
    ("gzip-ratio-over-1000", [_gz(R("INSERT INTO @P@ FORMAT JSONEachRow",
                                    ROW.encode() + b" " * 10_000_000), "gzip")]),
]


# -- running a round and comparing ---------------------------------------------------

class Harness:
    def __init__(self, ch, sidecar, spool_dir, tag: str):
        self.ch, self.sc, self.spool_dir = ch, sidecar, spool_dir
        self.names = Names(uniq("dfz"), uniq("dfzdb"))
        self.next_rid = 1
        self.mismatches: list[tuple[str, str]] = []  # (class, text)
        # (field, direct status/code, sidecar status/code) -> count
        self.signatures: collections.Counter = collections.Counter()
        self.cases = 0
        self.tag = tag
        ch.query(f"CREATE DATABASE {self.names.db}")
        for db in ("default", self.names.db):
            for side in "ab":
                for role in "pmu":
                    t = f"{db}.{self.names.table(role, side)}"
                    ch.query(f"CREATE TABLE {t} ({COLUMNS}) ENGINE = MergeTree ORDER BY rid")
                    if role == "m":
                        ch.query(f"CREATE MATERIALIZED VIEW {t}_v ENGINE = MergeTree "
                                 f"ORDER BY rid AS SELECT rid, throwIf(n = 13) AS x FROM {t}")

    def tables(self, side):
        return [(db, role, f"{db}.{self.names.table(role, side)}")
                for db in ("default", self.names.db) for role in "pmu"]

    def rows(self, side: str, lo: int, hi: int) -> dict:
        """{rid: Counter((db, role, s, n, f))}"""
        parts = [f"SELECT '{db}' AS d, '{role}' AS r, rid, s, n, toString(f) AS f FROM {t} "
                 f"WHERE rid BETWEEN {lo} AND {hi}" for db, role, t in self.tables(side)]
        out = collections.defaultdict(collections.Counter)
        text = self.ch.query(" UNION ALL ".join(parts) + " FORMAT JSONEachRow")
        for line in text.decode("utf-8", "replace").splitlines():
            r = json.loads(line)
            out[int(r["rid"])][(r["d"], r["r"], r["s"], r["n"], r["f"])] += 1
        return out

    def dead_letter(self) -> str:
        """The rows (data fields) of dead-letter.jsonl, one after another."""
        p = os.path.join(self.spool_dir, "dead-letter.jsonl")
        try:
            with open(p, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        out = []
        for line in lines:
            try:
                out.append(json.loads(line).get("data", ""))
            except ValueError:
                out.append(line)
        return "\n".join(out)

    def run(self, reqs: list[Req], label: str) -> None:
        lo = self.next_rid
        rids = list(range(lo, lo + len(reqs)))
        self.next_rid += len(reqs)
        self.cases += len(reqs)
        raw_a = [render(q, self.names, "a", r) for q, r in zip(reqs, rids)]
        raw_b = [render(q, self.names, "b", r) for q, r in zip(reqs, rids)]
        ans_a: list = [None] * len(reqs)
        ans_b: list = [None] * len(reqs)
        start = threading.Barrier(len(reqs) + 1)

        def via_sidecar(i):
            start.wait()
            if reqs[i].delay:
                time.sleep(reqs[i].delay)
            ans_b[i] = send(self.sc.url, raw_b[i], reqs[i].method)

        threads = [threading.Thread(target=via_sidecar, args=(i,)) for i in range(len(reqs))]
        for t in threads:
            t.start()
        start.wait()
        with ThreadPoolExecutor(4) as pool:  # each alone, straight to ClickHouse
            for i, a in enumerate(pool.map(
                    lambda i: send(self.ch.http_url, raw_a[i], reqs[i].method),
                    range(len(reqs)))):
                ans_a[i] = a
        for t in threads:
            t.join()
        hi = lo + len(reqs) - 1
        rows_a = self.rows("a", lo, hi)
        rows_b = self.rows("b", lo, hi)
        if any(q.spool for q in reqs):  # spooled rows land after the answer
            deadline, last, stable = time.monotonic() + 15, None, 0
            while time.monotonic() < deadline and stable < 3:
                time.sleep(0.25)
                cur = self.rows("b", lo, hi), self.dead_letter()
                stable = stable + 1 if cur == last else 0
                last = cur
            rows_b = last[0]
        dl = self.dead_letter()
        for i, (q, rid) in enumerate(zip(reqs, rids)):
            self.compare(label, q, rid, raw_b[i], ans_a[i], ans_b[i],
                         rows_a.get(rid, collections.Counter()),
                         rows_b.get(rid, collections.Counter()), dl)
        stray = set(rows_b) - set(rids)
        if stray:
            self.report("stray-rows", f"{label}: rows with rids {sorted(stray)} in *_b")

    def report(self, cls: str, text: str, sig=None):
        self.mismatches.append((cls, text))
        self.signatures[sig or (cls,)] += 1

    def compare(self, label, q: Req, rid, raw, a: Answer, b: Answer, ra, rb, dl):
        def per_table(c):
            t = collections.Counter()
            for (d, r, *_), n in c.items():
                t[(d, r)] += n
            return dict(t)

        ca, cb = per_table(ra), per_table(rb)
        if VERBOSE:
            print(f"[{label} rid={rid}] {q.note}\n  direct {a.short()} rows {ca}\n"
                  f"  sidecar {b.short()} rows {cb}\n  {raw[:300]!r}")
        what = []
        early = q.spool and b.status == 200 and a.status != 200  # spooled, then refused
        if q.mv and early:
            for k in set(ca) | set(cb):
                if cb.get(k, 0) not in (0, ca.get(k, 0)):
                    what.append(("mv:spool:rows",
                                 f"{k}: direct {ca.get(k, 0)} sidecar {cb.get(k, 0)}"))
        elif q.mv:
            if b.status == 200:
                if a.status != 200:
                    what.append(("mv:status", f"sidecar 200, direct {a.status}"))
                if ra != rb:
                    what.append(("mv:rows", f"rows direct {ca} sidecar {cb}"))
            else:
                for k in set(ca) | set(cb):
                    if cb.get(k, 0) not in (0, ca.get(k, 0)):
                        what.append(("mv:rows-after-error",
                                     f"{k}: direct {ca.get(k, 0)} sidecar {cb.get(k, 0)}"))
        elif early:
            if ca != cb:
                what.append(("spool:rows", f"rows direct {ca} sidecar {cb}"))
            elif not ca and not re.search(rf"(?<![0-9.]){rid}(?![0-9.])", dl):
                what.append(("spool:no-dead-letter",
                             f"direct refused, sidecar 200, rid {rid} not in dead-letter.jsonl"))
        else:
            if (a.status, a.code) != (b.status, b.code):
                what.append(("status", f"direct {a.status}/{a.code}, sidecar {b.status}/{b.code}"))
            if ca != cb:
                what.append(("rows", f"rows direct {ca} sidecar {cb}"))
            elif ra != rb:
                only_a = list((ra - rb).elements())[:3]
                only_b = list((rb - ra).elements())[:3]
                what.append(("content", f"only direct {only_a}, only sidecar {only_b}"))
        for cls, detail in what:
            text = (f"[{self.tag} {label} rid={rid}] {cls}: {detail}\n"
                    f"    notes: {q.note}\n"
                    f"    direct:  {a.short()}\n"
                    f"    sidecar: {b.short()}\n"
                    f"    request (sidecar side): {raw[:700]!r}"
                    + (" ..." if len(raw) > 700 else ""))
            self.report(cls, text, (cls, f"{a.status}/{a.code}", f"{b.status}/{b.code}"))

    def verdict(self):
        if not self.mismatches:
            return
        classes = collections.Counter(c for c, _ in self.mismatches)
        head = (f"{len(self.mismatches)} mismatches in {self.cases} cases "
                f"({self.tag}); by field: {dict(classes)}\n"
                "by field, direct's answer, the sidecar's answer:\n"
                + "".join(f"  {n:4d}  {' '.join(sig)}\n"
                          for sig, n in self.signatures.most_common()) + "\n")
        shown = "\n\n".join(t for _, t in self.mismatches[:MAX_REPORTED])
        more = len(self.mismatches) - MAX_REPORTED
        pytest.fail(head + shown + (f"\n\n... and {more} more" if more > 0 else ""),
                    pytrace=False)


@pytest.fixture
def harness(clickhouse, start_sidecar, tmp_path):
    spool_dir = str(tmp_path / "spool")
    sc = start_sidecar(clickhouse.http_url, "--spool-dir", spool_dir, *SIDECAR_FLAGS)

    def make(tag):
        return Harness(clickhouse, sc, spool_dir, tag)
    return make


@pytest.mark.parametrize("name", [n for n, _ in REGRESSIONS])
def test_differential_regressions(harness, name):
    reqs = dict(REGRESSIONS)[name]
    h = harness(f"regression {name}")
    h.run(reqs, name)
    h.verdict()


def test_differential_random(harness, capsys):
    rng = random.Random(SEED)
    gen = Gen(rng)
    h = harness(f"seed={SEED}")
    t0 = time.monotonic()
    done, rnd = 0, 0
    while done < CASES:
        n = min(ROUND, CASES - done)
        h.run(gen.round(n), f"round={rnd}")
        done += n
        rnd += 1
    with capsys.disabled():
        print(f"\n[measured] differential fuzzer: {done} cases, seed {SEED}, "
              f"{time.monotonic() - t0:.1f} s, {len(h.mismatches)} mismatches")
    h.verdict()
