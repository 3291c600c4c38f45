"""The spool's record format: `length (4 bytes, big-endian) | crc32 of body (4 bytes) | body`, a body being the
header line `stream \\t seq_key \\t seq \\n` followed by the encoded event. Pure: no files here (`producer.spool`
writes and reads them)."""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

HEADER = struct.Struct(">II")  # body length, crc32(body)
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a length beyond this is corruption, not a record


class Record(NamedTuple):
    """One event on its way to the broker: where it goes, its run's seq, and the encoded event."""

    stream: str
    seq_key: str
    seq: int
    payload: bytes


def frame(record: Record) -> bytes:
    body = f"{record.stream}\t{record.seq_key}\t{record.seq}\n".encode() + record.payload
    return HEADER.pack(len(body), zlib.crc32(body)) + body


class Parsed(NamedTuple):
    records: list[tuple[Record, int]]  # each record with the offset just past it
    end: int  # offset just past the last good record
    torn: bool  # stopped at bytes that are not a whole, valid record


def parse(data: bytes, base: int = 0) -> Parsed:
    """Whole, valid records at the start of `data` (which begins at file offset `base`).

    Stops at the first record whose header, length or checksum is wrong, or which is cut short: what
    follows is a torn tail. `torn` is False only when `data` ends exactly after a record.
    """
    out: list[tuple[Record, int]] = []
    pos, size = 0, len(data)
    while pos < size:
        if size - pos < HEADER.size:
            return Parsed(out, base + pos, True)
        length, crc = HEADER.unpack_from(data, pos)
        start, stop = pos + HEADER.size, pos + HEADER.size + length
        if length > MAX_RECORD_BYTES or stop > size:
            return Parsed(out, base + pos, True)
        body = data[start:stop]
        record = _decode_body(body) if zlib.crc32(body) == crc else None
        if record is None:
            return Parsed(out, base + pos, True)
        pos = stop
        out.append((record, base + pos))
    return Parsed(out, base + pos, False)


def _decode_body(body: bytes) -> Record | None:
    head, sep, payload = body.partition(b"\n")
    parts = head.decode("utf-8", "replace").split("\t")
    if not sep or len(parts) != 3 or not parts[2].isdigit():
        return None
    return Record(parts[0], parts[1], int(parts[2]), payload)
