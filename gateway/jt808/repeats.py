"""A terminal's position messages sent again, recognised (pure): JT/T 808's retransmission.

A terminal that does not get the platform's 0x8001 within its answer timeout T (parameter
0x0002) sends the same message again, unchanged, same serial number, T x (k + 1) after its k-th
retransmission (parameter 0x0003 times). When it was the answer that was lost (or late), the
gateway had taken the message already: published again, each position became a second record
of the same instant, which the hub counted as a late position. So the gateway keeps, per
vehicle, the last `WINDOW` location messages (0x0200, 0x0704) it took, each as one 64-bit
digest of (message id, serial number, body): a message whose digest is there is answered again
(0x8001 result 0) and not published. A serial number reused after it wrapped round (65,536
messages later) with another body is another digest: a new message.

The bound: `WINDOW` (128) messages per vehicle, the newest; 1 KiB per vehicle ever
authenticated since the gateway started. At a message a second, 128 are two minutes: a
terminal with T = 10 s and 3 retransmissions sends its last one 60 s after the first (10 + 20
+ 30 s), the simulator's (5 s, 2) 15 s after.

Across a restart: given a `path`, each key is also written to a small SQLite file (a row per
vehicle and ring slot, so `WINDOW` rows per vehicle at most), committed once a second
(`flush`) and at the stop, without an fsync of its own (WAL, synchronous=NORMAL: a process
killed keeps what was committed, a power cut may lose the last ones). At the start the keys
of the last `KEEP_MS` (10 minutes: a retransmission schedule is over long before) are read
back and older rows deleted. A key lost (the last second before a kill -9, a power cut) costs
what the window saves: a position published twice, which the hub stores once and counts late.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import struct
from array import array
from pathlib import Path

from gateway.jt808.directory import VehicleRef
from telemetry.private import keep_private

__all__ = ["KEEP_MS", "WINDOW", "Repeats", "repeat_key"]

log = logging.getLogger("gateway.jt808.server")

WINDOW = 128  # location messages remembered per vehicle
KEEP_MS = 600_000  # keys older than this are not read back at a start

_SCHEMA = """
CREATE TABLE IF NOT EXISTS repeats (
    tenant TEXT NOT NULL, vehicle TEXT NOT NULL, slot INTEGER NOT NULL,
    key INTEGER NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (tenant, vehicle, slot)
) WITHOUT ROWID
"""


def repeat_key(msg_id: int, serial: int, body: bytes) -> int:
    """One message's digest: its id, its serial number and its (whole) body."""
    digest = hashlib.blake2b(struct.pack(">HH", msg_id, serial), digest_size=8)
    digest.update(body)
    return int.from_bytes(digest.digest(), "big")


class _Ring:
    """The newest keys of one vehicle, at most `size` (a ring of unsigned 64-bit integers)."""

    __slots__ = ("keys", "next")

    def __init__(self) -> None:
        self.keys = array("Q")
        self.next = 0  # where the next key goes once the ring is full

    def add(self, key: int, size: int) -> int:
        """Add the key; return its slot."""
        if len(self.keys) < size:
            self.keys.append(key)
            return len(self.keys) - 1
        slot = self.next
        self.keys[slot] = key
        self.next = (slot + 1) % size
        return slot


class Repeats:
    """Each vehicle's location messages taken lately (`remember`), so that one sent again is
    known (`seen`). Shared by the server's connections: a terminal may send again on a new
    connection what it had no answer for on the one before."""

    def __init__(self, window: int = WINDOW, path: Path | None = None, now_ms: int = 0) -> None:
        """`path`: the file that keeps the keys across a restart (read back those of the
        `KEEP_MS` before `now_ms`); in memory only without it."""
        if window < 1:
            raise ValueError(f"window {window} must be at least 1")
        self.window = window
        self._by_vehicle: dict[VehicleRef, _Ring] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                self._open(path, now_ms)
            except sqlite3.Error as exc:
                self._failed(exc)

    def seen(self, ref: VehicleRef, key: int) -> bool:
        ring = self._by_vehicle.get(ref)
        return ring is not None and key in ring.keys

    def remember(self, ref: VehicleRef, key: int, now_ms: int = 0) -> None:
        """The message was taken (its positions durable): a copy of it is a retransmission."""
        ring = self._by_vehicle.get(ref)
        if ring is None:
            ring = self._by_vehicle[ref] = _Ring()
        slot = ring.add(key, self.window)
        if self._db is not None:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO repeats VALUES (?, ?, ?, ?, ?)",
                    (ref.tenant, ref.vehicle, slot, _signed(key), now_ms),
                )
            except sqlite3.Error as exc:
                self._failed(exc)

    def flush(self) -> None:
        """Commit the keys remembered since the last flush (once a second, and at the stop)."""
        if self._db is not None and self._db.in_transaction:
            try:
                self._db.commit()
            except sqlite3.Error as exc:
                self._failed(exc)

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _open(self, path: Path, now_ms: int) -> None:
        keep_private(path.parent, (path.name,))  # whose vehicles these are: the spool's mode
        db = self._db = sqlite3.connect(str(path), timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        rows = db.execute(
            "SELECT tenant, vehicle, key, at_ms FROM repeats WHERE at_ms >= ? ORDER BY at_ms, slot",
            (now_ms - KEEP_MS,),
        ).fetchall()
        kept: list[tuple[str, str, int, int, int]] = []
        for tenant, vehicle, key, at_ms in rows:
            ring = self._by_vehicle.setdefault(VehicleRef(tenant, vehicle), _Ring())
            slot = ring.add(key & 0xFFFF_FFFF_FFFF_FFFF, self.window)
            kept.append((tenant, vehicle, slot, key, at_ms))
        # the rows again in the slots the rings hold them in now; older ones gone
        db.execute("DELETE FROM repeats")
        db.executemany("INSERT OR REPLACE INTO repeats VALUES (?, ?, ?, ?, ?)", kept)
        db.commit()
        if rows:
            log.info("jt808: %d location messages taken before the restart remembered", len(rows))

    def _failed(self, exc: sqlite3.Error) -> None:
        """The file cannot be written: the window goes on in memory (a restart forgets it)."""
        log.warning("jt808: the retransmission window is kept in memory only from now: %s", exc)
        if self._db is not None:
            self._db.close()
        self._db = None

    def __len__(self) -> int:
        """Keys remembered in all."""
        return sum(len(r.keys) for r in self._by_vehicle.values())


def _signed(key: int) -> int:
    """An unsigned 64-bit key as SQLite's signed INTEGER."""
    return key - (1 << 64) if key >= 1 << 63 else key
