"""The alarm journal (`alarm_events` of the state database, `alerts.statedb`) read in the order
of its ids, for the live stream: what follows an id, each event with the highest tier its alarm
had reached by then (`peak_tier`).

The state database's writers take its one write lock from numbering a batch's events to its
commit, so a read sees every event up to the newest it sees: an event id is a position in the
journal, and "the events after id N" misses nothing that was there and repeats nothing. The live
stream follows the journal so (`api.stream.Broadcaster`) and resumes a client's stream from the
last id it had (`Last-Event-ID`).

Reads go on connections of their own (read-only, WAL): the live stream's follower is on the
ingest's path and must not wait behind a long read of the API (alarm statistics, an export), and
a replay of thousands of events must not hold up the follower.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.alarmevent import AlarmEvent
from alerts.desk import EVENT_OF
from alerts.errors import AlarmStoreError
from alerts.lifecycle import DISPOSAL_MOVES
from alerts.table import TIER_RANK, kind_name

if TYPE_CHECKING:
    from telemetry.registry import Registry

__all__ = [
    "DISPOSAL_AFTER",
    "AlarmFeed",
    "FedEvent",
    "Replay",
    "alarm_body",
    "peak_of",
    "peak_tiers",
]

# the disposal each step of the journal leads to (`alerts.lifecycle`'s moves, by the journal's
# words for them: `alerts.desk.EVENT_OF`), and those words as SQL
DISPOSAL_AFTER = {EVENT_OF[action]: after for action, (_, after) in DISPOSAL_MOVES.items()}
_STEP_WORDS = ", ".join(f"'{kind}'" for kind in DISPOSAL_AFTER)
_AFTER = (
    "SELECT e.id, e.alarm_id, e.kind, e.ts, e.arrival, e.level, e.level_name, e.tier, e.value, "
    "e.actor, e.comment, e.isa_state, a.tenant, a.site, a.device, a.sensor, a.rule, a.side, "
    "a.action, a.disposal "
    "FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id WHERE e.id > ? "
)
# what some alarms (a JSON list of ids) were as of an id, read once for a page of events and
# carried forward through the page in id order (`_Then`): the tiers they had reached by then,
# their last disposal step by then, and whether their journal holds any step (an alarm of
# before the lifecycle was closed without one). A query per event over its alarm's earlier
# events made a replay quadratic in one alarm's events: 10,000 comments on one alarm took
# minutes (helper-247); these run once per alarm of the page
_STATES = (
    "SELECT j.value, "  # noqa: S608 (the fixed step words)
    "(SELECT group_concat(DISTINCT x.tier) FROM alarm_events x "
    "WHERE x.alarm_id = j.value AND x.id <= ?), "
    "(SELECT x.kind FROM alarm_events x WHERE x.alarm_id = j.value AND x.id <= ? "
    f"AND x.kind IN ({_STEP_WORDS}) "
    "ORDER BY x.id DESC LIMIT 1), "
    "EXISTS (SELECT 1 FROM alarm_events y WHERE y.alarm_id = j.value "
    f"AND y.kind IN ({_STEP_WORDS})) "
    "FROM json_each(?) j"
)
# the newest event id of some tenants in a range of ids: among the journal's newest events, or
# the newest of each of their alarms (an index seek each: alarms_tenant_id, alarm_events_alarm)
_OWN_RECENT = 2_000
_OWN_RECENT_SQL = (
    "SELECT e.id FROM (SELECT id, alarm_id FROM alarm_events WHERE id > ? AND id <= ? "
    "ORDER BY id DESC LIMIT ?) e JOIN alarms a ON a.id = e.alarm_id "
    "WHERE a.tenant IN (SELECT value FROM json_each(?)) ORDER BY e.id DESC LIMIT 1"
)
_OWN_BY_ALARM = (
    "SELECT MAX((SELECT MAX(x.id) FROM alarm_events x WHERE x.alarm_id = a.id AND x.id > ? "
    "AND x.id <= ?)) FROM alarms a WHERE a.tenant IN (SELECT value FROM json_each(?))"
)
_LAST = "SELECT COALESCE(MAX(id), 0) FROM alarm_events"
# the tiers each of some events' alarms had up to that event (its own included)
_PEAKS = (
    "SELECT e.id, group_concat(DISTINCT x.tier) FROM alarm_events e "
    "JOIN alarm_events x ON x.alarm_id = e.alarm_id AND x.id <= e.id "
    "WHERE e.id IN ({}) GROUP BY e.id"
)
_PEAKS_AT_ONCE = 500  # event ids a query (SQLite's bound on parameters is far above)


def peak_of(tiers: str) -> str:
    """The highest of a comma list of tiers ("none" for none)."""
    return max(
        (t for t in tiers.split(",") if t), key=lambda t: TIER_RANK.get(t, 0), default="none"
    )


def alarm_body(ev: AlarmEvent, registry: Registry | None, peak_tier: str) -> dict[str, object]:
    """An alarm event as the alarm topic and the live stream carry it: its names
    (`AlarmEvent.to_json`) and the highest tier its alarm had reached (`peak_tier`)."""
    body = ev.to_json(registry)
    body["peak_tier"] = peak_tier
    return body


def peak_tiers(
    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]], events: Sequence[AlarmEvent]
) -> dict[int, str]:
    """The highest tier each event's alarm had reached by then, by event id, as the live stream
    tells it (`FedEvent.peak_tier`), read with `query` (`StateDB.query`): for the alarm topic,
    whose subscribers filter a red alarm's clear (tier none) by it too. A `raised` event is its
    alarm's first (its own tier); an event not in the journal (id 0) is left out. Raises
    `AlarmStoreError` as `query` does."""
    peaks: dict[int, str] = {}
    ids: list[int] = []
    for ev in events:
        if ev.event_id and ev.kind == "raised":
            peaks[ev.event_id] = ev.tier
        elif ev.event_id:
            ids.append(ev.event_id)
    for at in range(0, len(ids), _PEAKS_AT_ONCE):
        chunk = ids[at : at + _PEAKS_AT_ONCE]
        for event_id, tiers in query(_PEAKS.format(",".join("?" * len(chunk))), chunk):
            peaks[int(event_id)] = peak_of(str(tiers or ""))
    return peaks


@dataclass(frozen=True, slots=True)
class FedEvent:
    """A journal event as it leaves on the stream, and its alarm's highest tier by then."""

    event: AlarmEvent
    peak_tier: str


@dataclass(frozen=True, slots=True)
class Replay:
    """What followed an id in the journal: the events (oldest first, at most the limit asked),
    whether there were more than the limit, and the journal's newest id when it was read (what
    the events after are live)."""

    events: list[FedEvent]
    more: bool
    last_id: int
    # the newest id up to `last_id` of the tenants asked (`last_id` for every tenant), when the
    # replay is refused (`more`) or finds nothing: what a tenant's client resumes from next,
    # without learning the hub's whole journal (helper-241), and what an id with nothing after it
    # must be to be theirs; else `last_id`
    own_last: int = 0


def _disposal_then(step: str | None, any_step: bool, now: str) -> str:
    """The alarm's disposal as it was at an event, as the event carried it live: after the
    journal's last disposal step up to it (`step`), "received" before any; an alarm whose journal
    holds no step at all but is past "received" now (closed before the lifecycle was journaled)
    has only its disposal of now to tell."""
    if step is not None:
        return DISPOSAL_AFTER.get(step, now)
    return now if not any_step else "received"


@dataclass(slots=True)
class _Then:
    """An alarm as of an event of the journal: the highest tier it had reached (None: no event
    yet), its last disposal step (None: none yet), and whether its journal holds any step."""

    peak: str | None
    step: str | None
    any_step: bool

    def take(self, kind: str, tier: str) -> None:
        """The alarm after its next event (the first of the highest tiers stays, as `peak_of`)."""
        if self.peak is None or TIER_RANK.get(tier, 0) > TIER_RANK.get(self.peak, 0):
            self.peak = tier
        if kind in DISPOSAL_AFTER:
            self.step = kind


def _states(con: sqlite3.Connection, alarms: Sequence[int], upto: int) -> dict[int, _Then]:
    """`alarms` as of event id `upto` (their events up to it), by alarm id."""
    out: dict[int, _Then] = {}
    for alarm_id, tiers, step, any_step in con.execute(
        _STATES, (upto, upto, json.dumps(list(alarms)))
    ):
        peak = peak_of(str(tiers)) if tiers else None
        out[int(alarm_id)] = _Then(peak, None if step is None else str(step), bool(any_step))
    return out


def _events(con: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], after: int) -> list[FedEvent]:
    """The journal's rows after id `after` (oldest first) as they went out live: their alarms
    read as of `after` once, then carried forward event by event (linear in the events)."""
    then = _states(con, sorted({int(r[1]) for r in rows}), after)
    out: list[FedEvent] = []
    for r in rows:
        alarm = then.setdefault(int(r[1]), _Then(None, None, False))
        alarm.take(str(r[2]), str(r[7]))
        disposal = _disposal_then(alarm.step, alarm.any_step, str(r[19]))
        out.append(FedEvent(_event(r, disposal), alarm.peak or "none"))
    return out


def _event(r: tuple[Any, ...], disposal: str) -> AlarmEvent:
    value = r[8]
    return AlarmEvent(
        int(r[1]),
        str(r[2]),
        str(r[12]),
        str(r[13]),
        str(r[14]),
        str(r[15]),
        str(r[16]),
        kind_name(int(r[17])),
        int(r[5]),
        str(r[6]),
        str(r[7]),
        str(r[18]),
        math.nan if value is None else float(value),
        int(r[3]),
        int(r[4]),
        int(r[0]),
        str(r[11]),
        disposal,
        None if r[9] is None else str(r[9]),
        str(r[10] or ""),
    )


class AlarmFeed:
    """The journal after an id, on read-only connections of its own to the state database at
    `path`: one kept for the live stream's follower (`follow`), one opened for each replay."""

    def __init__(self, path: Path | str) -> None:
        self._uri = Path(path).resolve().as_uri() + "?mode=ro"
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self._uri, uri=True, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"alarm journal: {exc}") from exc

    @contextmanager
    def _kept(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._con is None:
                self._con = self._connect()
            yield self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def last_id(self) -> int:
        """The newest event id of the journal (0: none)."""
        with self._kept() as con:
            try:
                return int(con.execute(_LAST).fetchone()[0])
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"alarm journal: {exc}") from exc

    def follow(self, after: int, limit: int) -> list[FedEvent]:
        """At most `limit` events after id `after`, of every tenant, oldest first."""
        with self._kept() as con:
            return _read(con, after, None, limit).events

    def replay(self, after: int, tenants: frozenset[str] | None, limit: int) -> Replay:
        """The events after id `after` of `tenants` (None: every tenant), oldest first: at most
        `limit` (`more` says there were more), read at one moment with the journal's newest
        id."""
        con = self._connect()
        try:
            return _read(con, after, tenants, limit)
        finally:
            con.close()


def _read(
    con: sqlite3.Connection, after: int, tenants: frozenset[str] | None, limit: int
) -> Replay:
    sql = _AFTER
    params: list[object] = [after]
    if tenants is not None:
        if not tenants:
            sql += "AND 0 "
        else:
            sql += f"AND a.tenant IN ({','.join('?' * len(tenants))}) "
            params.extend(sorted(tenants))
    sql += "ORDER BY e.id LIMIT ?"
    params.append(limit + 1)
    try:
        con.execute("BEGIN")  # the events and the newest id of one moment
        try:
            rows = con.execute(sql, params).fetchall()
            events = _events(con, rows[:limit], after)
            last = own = int(con.execute(_LAST).fetchone()[0])
            # a key of some tenants: its tenants' newest id, for its reset, and to tell whether
            # an id with nothing after it is one of theirs (`Replay.own_last`)
            if tenants is not None and (len(rows) > limit or not rows):
                own = _own_last(con, tenants, after if rows else 0, last)
        finally:
            con.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise AlarmStoreError(f"alarm journal: {exc}") from exc
    return Replay(events, len(rows) > limit, last, own)


def _own_last(con: sqlite3.Connection, tenants: frozenset[str], above: int, last: int) -> int:
    """The newest event id in (above, last] of `tenants`' alarms (0: none): among the journal's
    newest `_OWN_RECENT` events first (a busy tenant's are there), else each of the tenants'
    alarms' newest event (a quiet tenant has few alarms), never the whole journal walked (a
    tenant with few events made each of its resets walk it, helper-247)."""
    if not tenants:
        return 0
    names = json.dumps(sorted(tenants))
    row = con.execute(_OWN_RECENT_SQL, (above, last, _OWN_RECENT, names)).fetchone()
    if row is None:
        row = con.execute(_OWN_BY_ALARM, (above, last, names)).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])
