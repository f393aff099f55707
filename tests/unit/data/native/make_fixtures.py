#!/usr/bin/python3
"""Writes the Native and RowBinaryWithNamesAndTypes fixtures of
tests/unit/native_format_test.cpp: each query's answer from a real server.

Usage: make_fixtures.py URL_18_16 URL_26_7 (servers as the integration
harness starts them). Files: <name>.<server>.native / .rbnt. The expected
row counts are in the test."""
import sys
import urllib.request

QUERIES = {
    # every walked type, NULLs, empty strings and arrays
    "ints": "SELECT toUInt8(number) a, toInt16(-number) b, toUInt32(number) c, toInt64(number) d,"
            " toUInt64(number) e FROM numbers(3)",
    "wide": "SELECT toUInt128(number) a, toInt256(number) b, toUInt256(1) c FROM numbers(2)",
    "floats": "SELECT toFloat32(number) / 3 a, toFloat64(number) / 7 b FROM numbers(2)",
    "dates": "SELECT toDate('2024-01-02') + number a, toDateTime('2024-01-02 03:04:05', 'UTC') b,"
             " toDateTime64('2024-01-02 03:04:05.123', 3, 'UTC') c, toDate32('1950-01-01') d FROM numbers(2)",
    "ids": "SELECT toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') u, toIPv4('1.2.3.4') i4,"
           " toIPv6('::1') i6 FROM numbers(2)",
    "decimals": "SELECT toDecimal32(1.5, 2) a, toDecimal64(2.25, 4) b, toDecimal128(3, 10) c,"
                " CAST(1, 'Decimal(40, 2)') d FROM numbers(2)",
    "enums": "SELECT CAST('a', 'Enum8(\\'a\\' = 1, \\'b,)\\' = 2)') e8, CAST('y', 'Enum16(\\'x\\' = 1000, \\'y\\' = 2000)') e16 FROM numbers(2)",
    "strings": "SELECT arrayElement(['', 'x', 'hello'], number + 1) s, toFixedString('ab', 2) f FROM numbers(3)",
    "nullable": "SELECT if(number = 1, NULL, number) n, if(number = 0, NULL, toString(number)) s FROM numbers(3)",
    "arrays": "SELECT range(number) a, arrayMap(x -> toString(x), range(number)) s,"
              " [range(number), []] aa FROM numbers(3)",
    "empty_arrays": "SELECT CAST([], 'Array(String)') a FROM numbers(2)",
    "tuples": "SELECT (number, toString(number)) t, (1, (2, 'x')) tt FROM numbers(2)",
    "named_tuple": "SELECT CAST((1, 'x'), 'Tuple(a UInt8, b String)') t FROM numbers(2)",
    "map": "SELECT map('k', number, 'l', 2) m, CAST(map(), 'Map(String, UInt64)') e FROM numbers(2)",
    "bool": "SELECT true b, false c FROM numbers(2)",
    "low_cardinality": "SELECT toLowCardinality(toString(number % 2)) l,"
                       " CAST(if(number = 1, NULL, 'x'), 'LowCardinality(Nullable(String))') ln,"
                       " toLowCardinality(toFixedString('ab', 2)) lf FROM numbers(3)",
    "lc_array": "SELECT CAST([toString(number)], 'Array(LowCardinality(String))') a FROM numbers(3)",
    "lc_wide": "SELECT toLowCardinality(toString(number)) l FROM numbers(300)",
    "lc_tuple": "SELECT CAST((toString(number), 'y'), 'Tuple(LowCardinality(String), LowCardinality(String))') t FROM numbers(2)",
    "multi_block": "SELECT number a, toString(number) s FROM numbers(5) SETTINGS max_block_size = 2",
    # the same rows in several blocks and in one (merge_native_blocks)
    "one_block": "SELECT number a, toString(number) s FROM numbers(5)",
    "nullable_blocks": "SELECT if(number = 1, NULL, number) n, if(number = 0, NULL, toString(number)) s,"
                       " toFixedString('ab', 2) f FROM numbers(5) SETTINGS max_block_size = 2",
    "nullable_block": "SELECT if(number = 1, NULL, number) n, if(number = 0, NULL, toString(number)) s,"
                      " toFixedString('ab', 2) f FROM numbers(5)",
    "zero_rows": "SELECT 1 a FROM numbers(0)",
    "unknown": "SELECT toIntervalDay(1) i",
}
# Types each server lacks: 18.16 has no Bool, Date32, Int256, Map, IPv4/6 columns of that name...
SKIP_18 = {"zero_rows", "unknown", "wide", "dates", "ids", "decimals", "bool", "map", "named_tuple", "lc_tuple"}


def fetch(url: str, sql: str) -> bytes:
    req = urllib.request.Request(url, data=sql.encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def main() -> None:
    for url, server in ((sys.argv[1], "18"), (sys.argv[2], "26")):
        for name, sql in QUERIES.items():
            if server == "18" and name in SKIP_18:
                continue
            for fmt, ext in (("Native", "native"), ("RowBinaryWithNamesAndTypes", "rbnt")):
                if server == "18" and ext == "rbnt":
                    continue
                try:
                    data = fetch(url, f"{sql} FORMAT {fmt}")
                except Exception as e:  # noqa: BLE001
                    print(f"{server} {name} {fmt}: {e}", file=sys.stderr)
                    continue
                with open(f"{name}.{server}.{ext}", "wb") as f:
                    f.write(data)


if __name__ == "__main__":
    main()
