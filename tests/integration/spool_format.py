"""The spool's checksum, for tests that write records by hand
(proxy/spool_record.h: a record's CRC-32C covers its segment's number as
u64 little-endian, then the payload). Standard library only; also used by
tests/fuzz/make_corpus.py."""


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: for the few short records tests write."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
