"""The gateway's durable uplink queue: every batch is written here before it is sent.

SQLite in WAL mode, synchronous=FULL: a committed batch survives a gateway crash (kill -9), a
restart, and a power cut on a disk that keeps what it fsynced (the WAL is fsynced at each
commit). Batches leave in the order they came, only after the broker acknowledged them (one
transaction a window). The spool is bounded by bytes and by age; when a limit is hit the oldest
batches are dropped, counted per device and kept as a drop report, which the publisher sends
once the link is back (nothing vanishes silently).
A batch may also be kept aside (`hold`): as durable, but not sent until it is released into the
queue (`release`, one transaction), e.g. positions held until the backlog older than them came.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError
from telemetry.private import keep_private

__all__ = ["MESSAGE", "DropReport", "Held", "Spool", "SpoolError", "Spooled"]

log = logging.getLogger(__name__)

# the `readings` of a batch that carries none (a vehicle's driver, waybill, registration a
# platform reported): dropped, it is counted as a message (`take_messages_dropped`), never in a
# drop report, which the hub takes for readings lost (a data_lost alarm, helper-247)
MESSAGE = -1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    device TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, readings INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped (
    device TEXT PRIMARY KEY, batches INTEGER NOT NULL, readings INTEGER NOT NULL,
    first_created INTEGER NOT NULL, last_created INTEGER NOT NULL, reason TEXT NOT NULL
);
-- the drops counted since the last report, per site and device (the topic's; `dropped` above is
-- the table of an older gateway: its rows become reports at the start)
CREATE TABLE IF NOT EXISTS drops_open (
    site TEXT NOT NULL, device TEXT NOT NULL, batches INTEGER NOT NULL,
    readings INTEGER NOT NULL, first_created INTEGER NOT NULL, last_created INTEGER NOT NULL,
    reason TEXT NOT NULL, PRIMARY KEY (site, device)
);
-- reports made of them, each sent (again after a crash, unchanged) until the broker has it
CREATE TABLE IF NOT EXISTS drop_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, device TEXT NOT NULL,
    batches INTEGER NOT NULL, readings INTEGER NOT NULL, first_created INTEGER NOT NULL,
    last_created INTEGER NOT NULL, reason TEXT NOT NULL
);
-- batches kept aside, not sent until released (a JT/T 808 connection's positions held until
-- its blind-area backlog came); released into `batches` in one transaction, and at the start
-- by whoever holds them (a gateway killed while holding)
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,
    created INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    device TEXT NOT NULL, epoch INTEGER NOT NULL, readings INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS held_key ON held (key);
"""


class SpoolError(GatewayError):
    """The spool's file cannot be used."""


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    topic: str
    payload: bytes
    device: str
    epoch: int
    seq: int
    readings: int  # MESSAGE: a message that carries none


@dataclass(frozen=True, slots=True)
class Held:
    """A batch kept aside under `key` (`Spool.hold`), not sent until released."""

    key: str
    topic: str
    payload: bytes
    device: str
    epoch: int
    readings: int


@dataclass(frozen=True, slots=True)
class DropReport:
    """The batches of one device (or vehicle) dropped between two reports; `id` numbers the
    report in its spool, `site` is the topic's (empty from an older gateway's spool)."""

    device: str
    batches: int
    readings: int
    first_created: int
    last_created: int
    reason: str
    site: str = ""
    id: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            **({"site": self.site} if self.site else {}),
            "device": self.device,
            "batches": self.batches,
            "readings": self.readings,
            "first_created": self.first_created,
            "last_created": self.last_created,
            "reason": self.reason,
        }


class Spool:
    """A bounded FIFO of encoded batches on disk. Thread-safe; every call is one transaction."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 7 * 86400,
        clock_ms: Callable[[], int],
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0:
            raise SpoolError("spool limits must be positive")
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        self._clock = clock_ms
        self._lock = threading.Lock()
        try:
            # an enterprise's readings and positions: its user's alone (a demo's spool was 0644)
            keep_private(Path(path).parent, (Path(path).name,))
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on the disk (the WAL fsynced) when `push` returns. The JT/T 808
            # gateway answers 0x8001 after it, and the terminal deletes its blind-area data;
            # NORMAL left every commit since the last checkpoint to a power cut (helper-150)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            with self._tx():  # an older gateway's drops not reported yet: reports now
                self._db.execute(
                    "INSERT INTO drop_reports (site, device, batches, readings, first_created, "
                    "last_created, reason) SELECT '', device, batches, readings, first_created, "
                    "last_created, reason FROM dropped ORDER BY device"
                )
                self._db.execute("DELETE FROM dropped")
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM batches"
            ).fetchone()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open the spool {path}: {exc}") from exc
        self._count, self._bytes = int(row[0]), int(row[1])
        self._messages_dropped: Counter[str] = Counter()
        self._messages_said: set[str] = set()  # logged since the last drop reports were made

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def push(
        self, topic: str, payload: bytes, device: str, epoch: int, seq: int, readings: int
    ) -> None:
        """Append a batch, then drop the oldest ones while a limit is exceeded."""
        now = self._clock()
        with self._lock, self._tx():
            self._append(now, topic, payload, device, epoch, seq, readings)
            self._enforce(now)

    def push_message(self, topic: str, payload: bytes, device: str, epoch: int) -> None:
        """`push` of a message that carries no readings (`MESSAGE`): sent as any batch, but
        dropped by a limit it is counted apart (`take_messages_dropped`), not reported as
        readings of `device` lost."""
        self.push(topic, payload, device, epoch, 0, MESSAGE)

    def take_messages_dropped(self) -> dict[str, int]:
        """The messages (`push_message`) dropped by a limit since the last call, by device."""
        with self._lock:
            taken = dict(self._messages_dropped)
            self._messages_dropped.clear()
        return taken

    def push_many(self, batches: Sequence[tuple[str, bytes, str, int, int, int]]) -> None:
        """`push` of several batches (topic, payload, device, epoch, seq, readings) in one
        transaction: all of them are durable, or none."""
        now = self._clock()
        with self._lock, self._tx():
            for batch in batches:
                self._append(now, *batch)
            self._enforce(now)

    def _append(
        self,
        now: int,
        topic: str,
        payload: bytes,
        device: str,
        epoch: int,
        seq: int,
        readings: int,
    ) -> None:
        """(Under the lock, in a transaction) one batch to be sent, counted."""
        self._db.execute(
            "INSERT INTO batches (created, topic, payload, device, epoch, seq, readings) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now, topic, payload, device, epoch, seq, readings),
        )
        self._count += 1
        self._bytes += len(payload)

    def hold(
        self, key: str, topic: str, payload: bytes, device: str, epoch: int, readings: int
    ) -> None:
        """Keep a batch aside under `key`: durable (committed), but not sent until `release`."""
        with self._lock, self._tx():
            self._db.execute(
                "INSERT INTO held (key, created, topic, payload, device, epoch, readings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, self._clock(), topic, payload, device, epoch, readings),
            )

    def held(self) -> list[Held]:
        """Every batch kept aside, in the order they were kept."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, topic, payload, device, epoch, readings FROM held ORDER BY id"
            ).fetchall()
        return [Held(*r) for r in rows]

    def release(
        self,
        key: str,
        batches: Sequence[tuple[str, bytes, str, int, int, int]],
        keep: Held | None = None,
    ) -> None:
        """In one transaction: forget what is kept under `key`, append `batches` (topic, payload,
        device, epoch, seq, readings) to be sent, and keep `keep` aside under `key` instead."""
        now = self._clock()
        with self._lock, self._tx():
            self._db.execute("DELETE FROM held WHERE key = ?", (key,))
            if keep is not None:
                self._db.execute(
                    "INSERT INTO held (key, created, topic, payload, device, epoch, readings) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, now, keep.topic, keep.payload, keep.device, keep.epoch, keep.readings),
                )
            for batch in batches:
                self._append(now, *batch)
            if batches:
                self._enforce(now)

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _enforce(self, now: int) -> None:
        # batches leave in id order and ids grow with time: only the oldest ones can be expired,
        # so look at the head instead of scanning the table (a scan per push stalls at scale)
        while self._count:
            head = self._db.execute(
                "SELECT id, created, device, readings, LENGTH(payload), topic FROM batches "
                "ORDER BY id LIMIT 1"
            ).fetchone()
            if head is None or head[1] >= now - self.max_age_ms:
                break
            self._drop([head], "older than the spool's age limit")
        if self._bytes > self.max_bytes:
            victims: list[tuple[int, int, str, int, int, str]] = []
            excess = self._bytes - self.max_bytes
            for row in self._db.execute(
                "SELECT id, created, device, readings, LENGTH(payload), topic FROM batches "
                "ORDER BY id"
            ):
                if excess <= 0 or len(victims) >= self._count - 1:
                    break
                victims.append(row)
                excess -= row[4]
            self._drop(victims, "spool full")

    def _drop(self, rows: list[tuple[int, int, str, int, int, str]], reason: str) -> None:
        for rid, created, device, readings, size, topic in rows:
            self._db.execute("DELETE FROM batches WHERE id = ?", (rid,))
            self._count -= 1
            self._bytes -= size
            if readings == MESSAGE:  # no readings of the device: counted apart, no report
                if device not in self._messages_said:
                    self._messages_said.add(device)
                    log.warning(
                        "spool: dropping the oldest messages of %s that carry no readings "
                        "(%s); counted, not reported as readings lost",
                        device,
                        reason,
                    )
                self._messages_dropped[device] += 1
                continue
            # the site of `{root}/{tenant}/{site}/{device}/telemetry` (and "vehicles" of a
            # position's `{root}/{tenant}/vehicles/{vehicle}/position`)
            parts = topic.split("/")
            site = parts[-3] if len(parts) >= 3 else ""
            first = not self._db.execute(
                "SELECT 1 FROM drops_open WHERE site = ? AND device = ?", (site, device)
            ).fetchone()
            if first:  # once per device until its report is made (they are counted meanwhile)
                log.warning(
                    "spool: dropping the oldest batches of %s (%s); counted, and reported once "
                    "the link is back",
                    device,
                    reason,
                )
            self._db.execute(
                "INSERT INTO drops_open (site, device, batches, readings, first_created, "
                "last_created, reason) VALUES (?, ?, 1, ?, ?, ?, ?) "
                "ON CONFLICT (site, device) DO UPDATE SET "
                "batches = batches + 1, readings = readings + excluded.readings, "
                "last_created = excluded.last_created, reason = excluded.reason",
                (site, device, readings, created, created, reason),
            )

    def peek(self, limit: int = 100, *, skip: Sequence[str] = ()) -> list[Spooled]:
        """The oldest batches, in order; none of the topics in `skip` (those the broker refused
        for now)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, device, epoch, seq, readings FROM batches "
                "WHERE topic NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?",
                (json.dumps(list(skip)), limit),
            ).fetchall()
        return [Spooled(*r) for r in rows]

    def ack(self, item: Spooled) -> None:
        """Forget a batch the broker acknowledged."""
        self.ack_many((item,))

    def ack_many(self, items: Sequence[Spooled]) -> None:
        """Forget batches the broker acknowledged, in one transaction (one fsync)."""
        with self._lock, self._tx():
            for item in items:
                cur = self._db.execute("DELETE FROM batches WHERE id = ?", (item.id,))
                if cur.rowcount:
                    self._count -= 1
                    self._bytes -= len(item.payload)

    def drop_reports(self) -> list[DropReport]:
        """The reports to send, oldest first: the drops counted since the last call become a
        report of their own first (numbered, unchanged from then on: a report sent again after
        a crash is the same report, and drops meanwhile go into the next one)."""
        with self._lock, self._tx():
            self._db.execute(
                "INSERT INTO drop_reports (site, device, batches, readings, first_created, "
                "last_created, reason) SELECT site, device, batches, readings, first_created, "
                "last_created, reason FROM drops_open ORDER BY site, device"
            )
            self._db.execute("DELETE FROM drops_open")
            self._messages_said.clear()
            rows = self._db.execute(
                "SELECT device, batches, readings, first_created, last_created, reason, site, id "
                "FROM drop_reports ORDER BY id"
            ).fetchall()
        return [DropReport(*r) for r in rows]

    def clear_drop_report(self, report: DropReport) -> None:
        """Forget a drop report once it was published."""
        with self._lock, self._tx():
            self._db.execute("DELETE FROM drop_reports WHERE id = ?", (report.id,))


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if not exc_type:
                self._db.execute("COMMIT")
        finally:
            # the body or the COMMIT failed (SQLITE_BUSY, a full disk): roll back what is
            # still open (SQLite may already have), or every later BEGIN would fail
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
