"""Holding a connection's positions while a blind-area backlog may follow (pure; time passed in).

The hub judges each vehicle's positions in event-time order, and does not judge one older than
the newest it judged. Many terminals, reconnecting after a blind area (a tunnel, the mountains),
send a live 0x0200 first and their blind-area backlog after it (0x0704 type 1): handed on as
they come, the whole blind area would be older than the live fix, and in no alarm. Only here is
the order known, so after a terminal authenticates, and after a silence that may have left a
backlog (a fix more than `gap_s` after the connection's last one, which had ACC on: the TCP
connection outlived a tunnel), the connection's positions are *held*:

- every position from the first one on (live 0x0200 and both kinds of 0x0704) is held, until
  the first of: `live_s` after the first one held (the bound); `quiet_s` after the last sign of
  a backlog (a 0x0704 blind-area upload, or positions older than one the connection sent
  before them); `urgent_s` after a position with an urgent alarm bit (emergency, collision,
  rollover: someone may be hurt, so it is held least);
- then everything held is handed on at once, sorted by event time (stable), and the hold is
  over: later positions are handed on as they come;
- more than `max_positions` held (a long backlog): the oldest are handed on, in time order,
  down to half of it; the newest (the live ones) stay held.

A position handed on that is older than one already handed on for the vehicle is late at the
hub (stored, judged by no rule): a backlog that goes on past the bound. Such positions are
counted (`late`), never dropped.

Holding is only of handing on: the caller keeps held positions on disk before the terminal is
answered, answers at once, and hands them on (`flush`) when the connection closes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import orjson

from telemetry.jt808.messages import Alarm

__all__ = ["URGENT", "Hold", "HoldPolicy", "Release", "Source", "Taken"]

# alarm bits that cut a hold short: the driver's emergency button, a collision, a rollover
URGENT = int(Alarm.EMERGENCY | Alarm.COLLISION | Alarm.ROLLOVER)


class Source(enum.Enum):
    """Where a message's positions come from."""

    LIVE = "live"  # 0x0200
    BATCH = "batch"  # 0x0704 type 0, a normal batch
    BLIND = "blind"  # 0x0704 type 1, a blind-area backlog


@dataclass(frozen=True, slots=True)
class HoldPolicy:
    """How long a connection's positions may be held (seconds); `live_s` 0 holds nothing."""

    live_s: float = 15.0
    quiet_s: float = 5.0
    urgent_s: float = 3.0
    gap_s: float = 90.0
    max_positions: int = 1000

    def __post_init__(self) -> None:
        if min(self.live_s, self.quiet_s, self.urgent_s, self.gap_s) < 0:
            raise ValueError("hold times must not be negative")
        if self.max_positions < 2:
            raise ValueError("max_positions must be at least 2")


@dataclass(frozen=True, slots=True)
class Release:
    """Held positions handed on now (`parts`: each record's JSON, in time order); `kept` are
    still held (a full hold handing on its oldest)."""

    parts: tuple[bytes, ...]
    kept: tuple[bytes, ...]
    why: str  # bound, quiet, urgent, full, closed
    received_ms: int  # when the first of them reached the gateway
    reordered: int  # of `parts`, how many go ahead of one the terminal sent before them
    late: int  # of `parts`, how many are older than a position handed on before


@dataclass(frozen=True, slots=True)
class Taken:
    """What to do with one message's positions: keep them aside (`held`: their JSON in `parts`)
    or hand them on now (`late` of them older than one handed on before); and, a hold being
    full, its oldest to hand on (`full`)."""

    held: bool
    parts: tuple[bytes, ...] = ()
    late: int = 0
    full: Release | None = None
    opened: str = ""  # "gap" when this message opened a hold (a silence with ACC on)


@dataclass(slots=True)
class _Item:
    ts: int
    order: int  # arrival order, for a stable sort
    part: bytes
    received_ms: int


class Hold:
    """The hold of one connection."""

    def __init__(self, policy: HoldPolicy) -> None:
        self.policy = policy
        self._live = int(policy.live_s * 1000)
        self._quiet = int(policy.quiet_s * 1000)
        self._urgent = int(policy.urgent_s * 1000)
        self._gap = int(policy.gap_s * 1000)
        self._armed = False  # the next positions open a hold
        self._items: list[_Item] = []
        self._order = 0
        self._first_ms = 0  # when the first position held arrived
        self._sign_ms: int | None = None  # the last sign of a backlog
        self._urgent_ms: int | None = None  # the first position held with an urgent bit
        self.newest: int | None = None  # the newest event time handed on (of the vehicle)
        self._last: tuple[int, bool] | None = None  # newest received: (ts, ACC on)

    @property
    def holding(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def arm(self, newest: int | None = None) -> None:
        """The terminal authenticated: its next positions may come before its backlog.
        `newest`: the newest position of the vehicle handed on before (another connection's)."""
        if newest is not None and (self.newest is None or newest > self.newest):
            self.newest = newest
        self._armed = self._live > 0

    @property
    def deadline(self) -> int | None:
        """When the hold ends unless something else ends it first (ms), None when not holding."""
        if not self._items:
            return None
        end = self._first_ms + self._live
        if self._sign_ms is not None:
            end = min(end, self._sign_ms + self._quiet)
        if self._urgent_ms is not None:
            end = min(end, self._urgent_ms + self._urgent)
        return end

    def take(self, records: Sequence[Mapping[str, object]], source: Source, now_ms: int) -> Taken:
        """One message's position records (a 0x0704's sorted by time), received at `now_ms`."""
        if not records:
            return Taken(held=False)
        times = [cast(int, r["ts"]) for r in records]
        oldest = min(times)
        last = self._last
        opened = ""
        if (
            not self._items
            and not self._armed
            and self._live > 0
            and source is not Source.BLIND
            and last is not None
            and last[1]
            and oldest - last[0] > self._gap
        ):
            self._armed, opened = True, "gap"
        newest = max(times)
        if last is None or newest >= last[0]:
            at = times.index(newest)
            self._last = (newest, bool(records[at].get("acc_on")))
        if not self._items and not self._armed:
            late = 0 if self.newest is None else sum(t < self.newest for t in times)
            self._handed(newest)
            return Taken(held=False, late=late)
        # held
        if not self._items:
            self._first_ms = now_ms
            self._armed = False
        if source is Source.BLIND or (last is not None and oldest < last[0]):
            self._sign_ms = now_ms
        if self._urgent_ms is None and any(
            cast(int, r.get("alarm_flags", 0)) & URGENT for r in records
        ):
            self._urgent_ms = now_ms
        parts = tuple(orjson.dumps(r) for r in records)
        for ts, part in zip(times, parts, strict=True):
            self._items.append(_Item(ts, self._order, part, now_ms))
            self._order += 1
        full = None
        if len(self._items) > self.policy.max_positions:
            full = self._release("full", keep=self.policy.max_positions // 2)
        return Taken(held=True, parts=parts, full=full, opened=opened)

    def due(self, now_ms: int) -> Release | None:
        """Hand on what is held if its time came."""
        end = self.deadline
        if end is None or now_ms < end:
            return None
        assert self._items
        why = "bound"
        if self._urgent_ms is not None and end == self._urgent_ms + self._urgent:
            why = "urgent"
        elif self._sign_ms is not None and end == self._sign_ms + self._quiet:
            why = "quiet"
        return self._release(why)

    def flush(self) -> Release | None:
        """The connection closes: hand on everything held (and hold nothing more)."""
        self._armed = False
        return self._release("closed") if self._items else None

    def _handed(self, ts: int) -> None:
        if self.newest is None or ts > self.newest:
            self.newest = ts

    def _release(self, why: str, keep: int = 0) -> Release:
        """Hand on the oldest of what is held, all but the newest `keep`."""
        items = sorted(self._items, key=lambda i: (i.ts, i.order))
        out, kept = items[: len(items) - keep], items[len(items) - keep :]
        # each one that goes ahead of one the terminal had sent before it would have been late
        reordered, seen = 0, -1
        for item in sorted(out, key=lambda i: i.order):
            if item.ts < seen:
                reordered += 1
            seen = max(seen, item.ts)
        before = self.newest
        late = 0 if before is None else sum(i.ts < before for i in out)
        self._handed(out[-1].ts)
        self._items = sorted(kept, key=lambda i: i.order)
        if not kept:
            self._sign_ms = self._urgent_ms = None
        return Release(
            tuple(i.part for i in out),
            tuple(i.part for i in self._items),
            why,
            min(i.received_ms for i in out),
            reordered,
            late,
        )
