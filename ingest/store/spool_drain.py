"""Draining the spool (`ingest.store.spool`): the oldest records not yet drained read back in
order (`peek`), checked against their frame, and marked drained (`pop`), which moves the cursor
and deletes the segments left behind. Split from `ingest.store.spool`, whose `Spool` extends
`SpoolDraining` and sets up the attributes declared here; the code moved as it was.
"""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ingest.store.base import StoreError
from ingest.store.spool_frame import HEADER, MAGIC

if TYPE_CHECKING:
    from ingest.store.spool import _Segment

__all__ = ["SpoolDraining"]

_CURSOR = "cursor"


class SpoolDraining:
    """The draining of `Spool`, which sets up every attribute declared here."""

    directory: Path
    _lock: threading.Lock
    _segments: list[_Segment]
    _cursor: int  # byte offset in self._segments[0]
    _writer: BinaryIO | None
    _reader: BinaryIO | None
    _reader_seq: int
    _pending_records: int
    _pending_bytes: int
    _drained: list[int]  # records, bytes

    if TYPE_CHECKING:

        def _check_open(self) -> None:
            """`Spool._check_open`: raise unless the spool is open."""

    def peek(self, max_records: int = 1, max_bytes: int | None = None) -> list[bytes]:
        """The oldest records not yet drained, oldest first: up to `max_records`, and no more
        once `max_bytes` of payload are read (at least one)."""
        out: list[bytes] = []
        size = 0
        with self._lock:
            self._check_open()
            seg_i, offset = 0, self._cursor
            while (
                len(out) < max_records
                and seg_i < len(self._segments)
                and (max_bytes is None or size < max_bytes)
            ):
                seg = self._segments[seg_i]
                if offset >= seg.size:
                    seg_i, offset = seg_i + 1, 0
                    continue
                payload = self._read_at(seg, offset)
                out.append(payload)
                size += len(payload)
                offset += HEADER.size + len(payload)
        return out

    def _read_at(self, seg: _Segment, offset: int) -> bytes:
        if self._reader is None or self._reader_seq != seg.seq:
            if self._reader is not None:
                self._reader.close()
            self._reader = seg.path.open("rb")
            self._reader_seq = seg.seq
        self._reader.seek(offset)
        magic, length, crc = HEADER.unpack(self._reader.read(HEADER.size))
        payload = self._reader.read(length)
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            raise StoreError(
                f"spool {seg.path} changed under the hub at byte {offset}", retryable=False
            )
        return payload

    def _frame_size_at(self, seg: _Segment, offset: int) -> int:
        if self._reader is None or self._reader_seq != seg.seq:
            if self._reader is not None:
                self._reader.close()
            self._reader = seg.path.open("rb")
            self._reader_seq = seg.seq
        self._reader.seek(offset)
        _magic, length, _crc = HEADER.unpack(self._reader.read(HEADER.size))
        return int(HEADER.size + length)

    def pop(self, count: int = 1) -> None:
        """Mark the `count` oldest records drained; delete the segments left behind."""
        with self._lock:
            self._check_open()
            for _ in range(count):
                if not self._segments or not self._pending_records:
                    raise ValueError("pop from an empty spool")
                seg = self._segments[0]
                if self._cursor >= seg.size:
                    self._drop_head()
                    seg = self._segments[0]
                size = self._frame_size_at(seg, self._cursor)
                self._cursor += size
                self._pending_records -= 1
                self._pending_bytes -= size
                self._drained[0] += 1
                self._drained[1] += size
            while self._segments and self._cursor >= self._segments[0].size:
                if len(self._segments) == 1 and self._pending_records:
                    break
                self._drop_head()
            self._write_cursor()

    def _drop_head(self) -> None:
        seg = self._segments.pop(0)
        self._delete(seg)
        self._cursor = 0

    def _delete(self, seg: _Segment) -> None:
        for attr in ("_writer", "_reader"):
            f: BinaryIO | None = getattr(self, attr)
            if f is not None and f.name == str(seg.path):
                f.close()
                setattr(self, attr, None)
                if attr == "_reader":
                    self._reader_seq = -1
        seg.path.unlink(missing_ok=True)

    def _write_cursor(self) -> None:
        path = self.directory / _CURSOR
        if not self._segments:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{self._segments[0].seq} {self._cursor}\n")
        os.replace(tmp, path)
