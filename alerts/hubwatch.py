"""When the hub was watching: the spans of time in which it was running and judging (its clock
ticking, `ingest.dispatch.Dispatcher.tick`), kept in the state database (table `hub_watch`).

Data availability (`alerts.availability`) counts a point's time with and without data within
these spans only: while the hub was down or away from its broker, nobody knows whether a point
had data, and that time is neither the enterprise's loss nor its credit (helper-133 read 100 %
for a month before the hub existed). A span is extended at most every `EVERY_MS` while the
clock ticks; a tick more than `GAP_MS` after the last extension starts a new span, so the hub's
absences are known within `EVERY_MS`."""

from __future__ import annotations

from collections.abc import Sequence

from alerts.statedb import StateDB

__all__ = ["EVERY_MS", "GAP_MS", "HubWatch", "merged", "overlap", "watched_spans"]

EVERY_MS = 30_000
GAP_MS = 90_000


class HubWatch:
    """The span of this process's watch, extended on the clock's ticks."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._since: int | None = None
        self._last: int | None = None

    def due(self, now: int) -> bool:
        return self._last is None or not 0 <= now - self._last < EVERY_MS

    def seen(self, now: int) -> None:
        """The hub watched at `now`: extend its span, or start one after an absence (or a
        clock set back). Raise AlarmStoreError."""
        if self._since is None or self._last is None or not 0 <= now - self._last <= GAP_MS:
            since = now
        else:
            since = self._since
        with self._db.transaction() as con:
            con.execute(
                "INSERT INTO hub_watch (start_ms, end_ms) VALUES (?, ?) "
                "ON CONFLICT (start_ms) DO UPDATE SET end_ms = MAX(end_ms, excluded.end_ms)",
                (since, now),
            )
        self._since, self._last = since, now


def watched_spans(db: StateDB, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The hub's watch within [start_ms, end_ms), merged, in order."""
    rows = db.query(
        "SELECT start_ms, end_ms FROM hub_watch WHERE start_ms < ? AND end_ms > ?",
        (end_ms, start_ms),
    )
    return merged([(max(int(a), start_ms), min(int(b), end_ms)) for a, b in rows])


def merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[a, b) spans as their union: disjoint, in order; empty ones left out."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def overlap(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    """The length of the intersection of two merged span lists."""
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total
