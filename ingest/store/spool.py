"""A bounded, durable, append-only spool of records in segment files.

`BufferedStore` keeps here the batches the time-series store could not take, and drains them in
order once it answers again. The spool is plain blocking file I/O guarded by a lock; the async
shell calls it from a worker thread.

Layout of the folder::

    0000000000000001.seg  0000000000000002.seg ...   segments, oldest first
    cursor                                           "<segment> <offset>": where draining stands

A record is framed as ``magic (4) | length (u32 LE) | crc32 of the payload (u32 LE) | payload``
(`ingest.store.spool_frame`). `append` writes the frame and calls ``fsync`` before it returns, so
an appended record survives a crash or a power cut; a new segment's directory entry is synced too.
A crash in the middle of an append leaves a torn frame at the end of the last segment; `open` finds
it (bad magic, short length or CRC mismatch), logs it and cuts the file there. That record's
`append` never returned, so nobody was told it was kept. A bad frame in an older segment means the
disk lost data; the rest of that segment is skipped, logged and counted in
`SpoolStats.corrupt_segments`.

`pop` moves the cursor past drained records and deletes segments it has left behind (draining:
`ingest.store.spool_drain`). The cursor file is replaced atomically but not synced: after a
crash the spool may start from an older cursor and hand out records that were already drained.
The stores' writes are idempotent (same series and time overwrite), so such a replay changes
nothing.

The byte limit counts the frames not yet drained. An append that would pass it raises
`SpoolFullError` (a retryable `StoreError`): the caller keeps the data (ingest holds the MQTT
acknowledgements) rather than the spool dropping anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ingest.store.base import StoreError
from ingest.store.spool_drain import _CURSOR, SpoolDraining
from ingest.store.spool_frame import (
    MAX_RECORD,
    encode_frame,
    frame_ends_at,
    scan,
    scan_prefix,
)

__all__ = ["Spool", "SpoolFullError", "SpoolStats"]

log = logging.getLogger(__name__)

_SUFFIX = ".seg"


class SpoolFullError(StoreError):
    """The spool holds its byte limit; try again once it has drained."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True, slots=True)
class SpoolStats:
    pending_records: int  # appended, not yet drained
    pending_bytes: int  # their frames, what the limit counts
    max_bytes: int
    disk_bytes: int  # segment files on disk (drained frames of the oldest segment included)
    segments: int
    appended_records: int  # since this process opened the spool
    appended_bytes: int
    drained_records: int
    drained_bytes: int
    full_refusals: int  # appends refused because the spool was full
    corrupt_segments: int  # segments cut short at open (torn tail or lost data)


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int  # bytes of valid frames
    records: int  # valid frames from the start of the file


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool(SpoolDraining):
    """Records appended durably and read back in order; see the module docstring."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: bool = True,
    ) -> None:
        if max_bytes < 1 or segment_bytes < 1:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._cursor = 0  # byte offset in self._segments[0]
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._reader_seq = -1
        self._pending_records = 0
        self._pending_bytes = 0
        self._appended = [0, 0]
        self._drained = [0, 0]
        self._full_refusals = 0
        self._corrupt = 0
        self._open = False

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Find the segments, check their frames (cutting a torn tail) and the cursor."""
        with self._lock:
            if self._open:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            paths = sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))
            for path in paths:  # the readings of every enterprise: the hub's user's alone
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)
            segments: list[_Segment] = []
            for i, path in enumerate(paths):
                try:
                    seq = int(path.name[: -len(_SUFFIX)])
                except ValueError:
                    log.warning("spool %s: ignoring %s (not a segment name)", self.directory, path)
                    continue
                records, size, why = scan(path)
                if why:
                    self._corrupt += 1
                    last = i == len(paths) - 1
                    log.error(
                        "spool %s: %s: %s; %s",
                        self.directory,
                        path.name,
                        why,
                        "cut there (an append that never returned)"
                        if last
                        else "the rest of this segment is lost",
                    )
                    with path.open("r+b") as f:
                        f.truncate(size)
                segments.append(_Segment(seq, path, size, records))
            self._segments = segments
            self._cursor = self._read_cursor()
            self._recount()
            self._open = True
            if self._pending_records:
                log.info(
                    "spool %s: %d record(s), %d bytes to drain",
                    self.directory,
                    self._pending_records,
                    self._pending_bytes,
                )

    def close(self) -> None:
        with self._lock:
            for f in (self._writer, self._reader):
                if f is not None:
                    f.close()
            self._writer = self._reader = None
            self._reader_seq = -1
            self._open = False

    def _read_cursor(self) -> int:
        """The offset in the oldest segment where draining resumes (0 when unknown)."""
        if not self._segments:
            return 0
        try:
            seq_text, offset_text = (self.directory / _CURSOR).read_text().split()
            seq, offset = int(seq_text), int(offset_text)
        except (OSError, ValueError):
            return 0
        # segments before the cursor's were drained but not yet deleted
        while self._segments and self._segments[0].seq < seq:
            self._delete(self._segments.pop(0))
        if not self._segments or self._segments[0].seq != seq:
            return 0
        head = self._segments[0]
        if not 0 <= offset <= head.size or not frame_ends_at(head.path, offset):
            log.warning("spool %s: cursor %s:%d is not on a record", self.directory, seq, offset)
            return 0
        return offset

    def _recount(self) -> None:
        records = 0
        size = 0
        for i, seg in enumerate(self._segments):
            if i == 0 and self._cursor:
                skipped, _, _ = scan_prefix(seg.path, self._cursor)
                records += seg.records - skipped
                size += seg.size - self._cursor
            else:
                records += seg.records
                size += seg.size
        self._pending_records = records
        self._pending_bytes = size

    # -- writing --------------------------------------------------------------------------

    def append(self, payload: bytes) -> None:
        """Add one record durably, or raise `SpoolFullError` when it does not fit."""
        if len(payload) > MAX_RECORD:
            raise ValueError(f"a spool record holds at most {MAX_RECORD} bytes")
        frame = encode_frame(payload)
        with self._lock:
            self._check_open()
            if self._pending_bytes + len(frame) > self.max_bytes:
                self._full_refusals += 1
                raise SpoolFullError(
                    f"spool {self.directory} is full: {self._pending_bytes} of {self.max_bytes} "
                    f"bytes wait to be drained; {len(frame)} more do not fit"
                )
            active = self._segments[-1] if self._segments else None
            if active is None or (active.size and active.size + len(frame) > self.segment_bytes):
                active = self._new_segment()
            writer = self._writer_for(active)
            try:
                writer.seek(active.size)
                writer.write(frame)
                writer.flush()
                if self._fsync:
                    os.fsync(writer.fileno())
            except OSError:
                self._discard_writer(active)
                raise
            active.size += len(frame)
            active.records += 1
            self._pending_records += 1
            self._pending_bytes += len(frame)
            self._appended[0] += 1
            self._appended[1] += len(frame)

    def _discard_writer(self, seg: _Segment) -> None:
        """An append failed (the disk full or failing): drop the writer and what it buffered,
        and cut what reached the file back to the last whole record (the next append writes
        there anyway; a torn record at the end is cut at the next open too)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()  # flushes what it buffered: fails again, dropped
        with contextlib.suppress(OSError), seg.path.open("r+b") as f:
            f.truncate(seg.size)

    def _new_segment(self) -> _Segment:
        seq = self._segments[-1].seq + 1 if self._segments else 1
        path = self.directory / f"{seq:016d}{_SUFFIX}"
        path.touch(mode=0o600)
        if self._fsync:
            _fsync_dir(self.directory)
        seg = _Segment(seq, path, 0, 0)
        self._segments.append(seg)
        if len(self._segments) == 1:
            self._cursor = 0
        return seg

    def _writer_for(self, seg: _Segment) -> BinaryIO:
        if self._writer is None or self._writer.name != str(seg.path):
            if self._writer is not None:
                self._writer.close()
            self._writer = seg.path.open("r+b")
        return self._writer

    # -- state ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._pending_records

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(
                pending_records=self._pending_records,
                pending_bytes=self._pending_bytes,
                max_bytes=self.max_bytes,
                disk_bytes=sum(s.size for s in self._segments),
                segments=len(self._segments),
                appended_records=self._appended[0],
                appended_bytes=self._appended[1],
                drained_records=self._drained[0],
                drained_bytes=self._drained[1],
                full_refusals=self._full_refusals,
                corrupt_segments=self._corrupt,
            )

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError(f"spool {self.directory} is not open", retryable=False)
