"""The dead letters of the state database: messages the hub refused, kept with the reason.

A part of `alerts.statedb` (whose `StateDB` extends `DeadLetterBook`), apart so that each module
keeps to one concern: a letter like one kept lately is counted on it, and beyond the limits
the oldest letters (of the origin holding most first) are deleted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from alerts.alarmrows import DeadLetter
from alerts.errors import AlarmStoreError

__all__ = ["REPEATS_MS", "DeadLetterBook"]


REPEATS_MS = 3_600_000  # a dead letter like one kept this recently is counted on it
# dead letters whose every payload is kept (within the limits), never counted on one before: a
# batch the store refused for its own data holds readings stored nowhere else (helper-153)
_EACH_KEPT = ("store_refused:",)


class DeadLetterBook:
    """The dead letters of `StateDB`, which sets up every attribute declared here."""

    _lock: threading.Lock
    _db: sqlite3.Connection
    _max_payload: int
    _letters_kept: tuple[int, int]  # rows, payload bytes
    _letters: list[int] | None
    query: Callable[..., list[tuple[Any, ...]]]

    def add_dead_letter(
        self, at: int, source: str, topic: str, reason: str, payload: bytes, origin: str = ""
    ) -> int:
        """Keep a rejected message with the reason (payload cut to the configured size); the
        oldest beyond the limits are deleted. Returns how many were deleted. A message of the
        same topic, source and reason as one kept in the hour before is counted on that one
        (`repeats`, `last_at`), its payload not kept: one device's flood does not push every
        other's evidence out. `origin`: the tenant the topic names ("" when none): beyond the
        limits the oldest letters of the origin holding most go first."""
        kept = payload[: self._max_payload]
        with self._lock, self._hurried():
            try:
                like = (None,)
                if not reason.startswith(_EACH_KEPT):  # (the only copy of their readings)
                    like = self._db.execute(
                        "SELECT MAX(id) FROM dead_letters WHERE topic = ? AND source = ? "
                        "AND reason = ? AND at > ? AND at <= ?",
                        (topic[:1024], source, reason[:2000], at - REPEATS_MS, at),
                    ).fetchone()
                if like[0] is not None:  # the same again: counted on the one kept
                    self._db.execute(
                        "UPDATE dead_letters SET repeats = repeats + 1, "
                        "last_at = MAX(COALESCE(last_at, at), ?) WHERE id = ?",
                        (at, like[0]),
                    )
                    return 0
                letters = self._letters if self._letters is not None else self._count_letters()
                self._db.execute(
                    "INSERT INTO dead_letters (at, source, topic, reason, payload, size, origin) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (at, source, topic[:1024], reason[:2000], kept, len(payload), origin[:256]),
                )
                letters[0] += 1
                letters[1] += len(kept)
                rows, size = self._letters_kept
                if letters[0] <= rows and letters[1] <= size:
                    return 0
                return self._prune(rows, size)
            except sqlite3.Error as exc:
                self._letters = None  # counted again from the table
                raise AlarmStoreError(f"state database: {exc}") from exc

    @contextmanager
    def _hurried(self) -> Iterator[None]:
        """(Under the lock) commits not waiting for the disk: a flood of bad messages, one
        commit each, must not be held to a disk flush each (~1.5 ms: 600 a second at most); the
        next alarm's commit (FULL) flushes them too."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def _count_letters(self) -> list[int]:
        """(Under the lock) the letters kept and their payloads' bytes, read from the table."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM dead_letters"
        ).fetchone()
        self._letters = [int(row[0]), int(row[1])]
        return self._letters

    def _prune(self, rows: int, size: int) -> int:
        """Down to 90 % of both limits: the oldest letters of the origin holding most (by the
        limit passed) first, as many as that frees; then, if still over, the oldest of all."""
        assert self._letters is not None
        keep_rows, keep_bytes = rows * 9 // 10, size * 9 // 10
        over_rows = max(0, self._letters[0] - keep_rows)
        over_bytes = max(0, self._letters[1] - keep_bytes)
        by = "COUNT(*)" if self._letters[0] > rows else "SUM(length(payload))"
        (origin,) = self._db.execute(
            f"SELECT origin FROM dead_letters GROUP BY origin ORDER BY {by} DESC LIMIT 1"
        ).fetchone()
        cut = self._db.execute(
            "SELECT id FROM (SELECT id, SUM(length(payload)) OVER (ORDER BY id) AS freed, "
            "ROW_NUMBER() OVER (ORDER BY id) AS n FROM dead_letters WHERE origin = ?) "
            "WHERE n >= ? AND freed >= ? ORDER BY id LIMIT 1",
            (origin, over_rows, over_bytes),
        ).fetchone()
        last = cut[0] if cut is not None else 2**62  # not enough there: all of its letters
        gone = self._db.execute(
            "DELETE FROM dead_letters WHERE origin = ? AND id <= ?", (origin, last)
        ).rowcount
        kept_rows, kept_bytes = self._count_letters()
        if kept_rows <= keep_rows and kept_bytes <= keep_bytes:
            return gone
        # the oldest of all, down to 90 % of both limits
        cut = self._db.execute(
            "SELECT id, total FROM (SELECT id, SUM(length(payload)) OVER "
            "(ORDER BY id DESC) AS total, ROW_NUMBER() OVER (ORDER BY id DESC) AS n "
            "FROM dead_letters) WHERE n > ? OR total > ? ORDER BY id DESC LIMIT 1",
            (keep_rows, keep_bytes),
        ).fetchone()
        if cut is not None:
            gone += self._db.execute("DELETE FROM dead_letters WHERE id <= ?", (cut[0],)).rowcount
            self._count_letters()
        return gone

    def dead_letters(self, limit: int = 100, since: int | None = None) -> list[DeadLetter]:
        """The newest `limit` letters by their last message (a letter repeated lately comes
        first), of those refused or repeated at or after `since` (ms)."""
        rows = self.query(
            "SELECT id, at, source, topic, reason, payload, size, repeats, last_at "
            "FROM dead_letters WHERE COALESCE(last_at, at) >= ? "
            "ORDER BY COALESCE(last_at, at) DESC, id DESC LIMIT ?",
            (-(2**62) if since is None else since, limit),
        )
        return [DeadLetter(*r) for r in rows]
