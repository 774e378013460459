"""The frames of the disk spool's segment files (`ingest.store.spool`).

A record is framed as ``magic (4) | length (u32 LE) | crc32 of the payload (u32 LE) | payload``;
a segment file is frames back to back. `scan` checks a whole file and says where and why its
valid frames stop (a torn tail, a bad frame); `scan_prefix` counts the frames of a prefix already
checked, and `frame_ends_at` tells whether an offset (the spool's cursor) falls between frames.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

__all__ = ["HEADER", "MAGIC", "MAX_RECORD", "encode_frame", "frame_ends_at", "scan", "scan_prefix"]

MAGIC = b"HHS1"
HEADER = struct.Struct("<4sII")
MAX_RECORD = 1 << 30


def encode_frame(payload: bytes) -> bytes:
    """`payload` framed."""
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def scan(path: Path) -> tuple[int, int, str]:
    """(records, valid bytes, why it stopped early or "") of one segment file."""
    records = 0
    at = 0
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        while at < size:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                return records, at, f"torn header at byte {at}"
            magic, length, crc = HEADER.unpack(head)
            if magic != MAGIC or length > MAX_RECORD:
                return records, at, f"bad frame at byte {at}"
            payload = f.read(length)
            if len(payload) < length:
                return records, at, f"torn record at byte {at}"
            if zlib.crc32(payload) != crc:
                return records, at, f"CRC mismatch at byte {at}"
            at += HEADER.size + length
            records += 1
    return records, at, ""


def scan_prefix(path: Path, end: int) -> tuple[int, int, str]:
    """Records in the first `end` bytes of a segment."""
    records = 0
    at = 0
    with path.open("rb") as f:
        while at < end:
            f.seek(at)
            _magic, length, _crc = HEADER.unpack(f.read(HEADER.size))
            at += HEADER.size + length
            records += 1
    return records, at, ""


def frame_ends_at(path: Path, offset: int) -> bool:
    """Whether a frame of the segment file ends at `offset` (or `offset` is 0)."""
    return scan_prefix(path, offset)[1] == offset
