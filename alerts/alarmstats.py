"""Alarm-system performance after EEMUA 191 (and ISA-18.2 / IEC 62682): how many alarms a site
gets per 10 minutes and when that is a flood, chattering alarm points, standing alarms, and the
bad actors that make most of the load.

An *activation* is a `raised` event of the alarm journal; an *alarm point* is a tenant's sensor,
rule and kind (side), device comm-loss alarms included (sensor `device:{tenant}/{site}/{device}`,
rule `comm_loss`). Activations are placed by event time (`ts`, the reading that raised the alarm),
not by arrival: a gateway spool replayed after an outage counts in the 10 minutes the alarms
happened in, not in the minute it arrived. Every activation counts, also one that started
shelved, suppressed or out of service: they are the alarm system's load all the same.

Each function takes the tenants to look at (None: every tenant) and, but the standing alarms
(a present state), a half-open range [start_ms, end_ms) of event time. The SQL is built from the
constants below and "?" placeholders only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.statedb import StateDB
from alerts.table import kind_name

__all__ = [
    "BAD_ACTORS",
    "BUCKET_MS",
    "CHATTER_COUNT",
    "CHATTER_WINDOW_MS",
    "FLOOD_ABOVE",
    "AlarmPoint",
    "AlarmRate",
    "BadActor",
    "BadActors",
    "Chatter",
    "Chattering",
    "RateBucket",
    "SiteRate",
    "Standing",
    "StandingAlarm",
    "alarm_rate",
    "bad_actors",
    "chattering",
    "standing_alarms",
    "worst_windows",
]

BUCKET_MS = 600_000  # EEMUA 191: alarms per 10 minutes
FLOOD_ABOVE = 10  # a 10-minute period with more activations than this is a flood
CHATTER_WINDOW_MS = 60_000
CHATTER_COUNT = 3  # this many activations of one point within the window: chattering
BAD_ACTORS = 10

I64 = npt.NDArray[np.int64]

# a raise's event time is its alarm's `started_ts` (alerts.alarms): the condition on it lets the
# (tenant, started_ts) index of the alarms find a tenant's range, the journal is then read by alarm
_FROM = (
    " FROM alarms a JOIN alarm_events e ON e.alarm_id = a.id"
    " WHERE a.started_ts >= ? AND a.started_ts < ? AND e.kind = 'raised' AND e.ts >= ? AND e.ts < ?"
)
_POINT = "a.tenant, a.sensor, a.rule, a.side"
_RATE = "SELECT a.tenant, a.site, e.ts / ? AS period, COUNT(*)"
_RATE_TAIL = " GROUP BY a.tenant, a.site, period ORDER BY a.tenant, a.site, period"
_EVENTS = "SELECT " + _POINT + ", a.id, a.site, a.device, e.ts"
_EVENTS_TAIL = " ORDER BY " + _POINT + ", e.ts, e.id"
# the points with the most activations, then the site and device of each one's latest alarm; the
# total over every point comes in the same statement, so that the shares add up
_ACTORS = (
    "SELECT g.tenant, g.sensor, g.rule, g.side, l.site, l.device, g.n, g.total FROM ("
    "SELECT " + _POINT + ", MAX(a.id) AS last, COUNT(*) AS n, SUM(COUNT(*)) OVER () AS total"
)
_ACTORS_TAIL = (
    " GROUP BY " + _POINT + " ORDER BY n DESC, " + _POINT + " LIMIT ?"
    ") g JOIN alarms l ON l.id = g.last ORDER BY g.n DESC, g.tenant, g.sensor, g.rule, g.side"
)
_STANDING = (
    "SELECT a.id, " + _POINT + ", a.site, a.device, a.level_name, a.tier, a.isa_state, "
    "a.started_ts FROM alarms a WHERE a.state = 'active' AND a.started_ts < ?"
)
_STANDING_TAIL = " ORDER BY a.started_ts, a.id"
_AND_SITE = " AND a.site = ?"


def _among(tenants: Sequence[str] | None) -> tuple[str, list[Any]]:
    """The tenant condition and its parameters; None: every tenant."""
    if tenants is None:
        return "", []
    return " AND a.tenant IN (" + ",".join("?" * len(tenants)) + ")", list(tenants)


def _order(p: AlarmPoint) -> tuple[str, str, str, int]:
    return p.tenant, p.sensor, p.rule, p.side


def _span(start_ms: int, end_ms: int) -> list[int]:
    """The parameters of `_FROM`."""
    return [start_ms, end_ms, start_ms, end_ms]


def _check_range(start_ms: int, end_ms: int) -> None:
    if end_ms <= start_ms:
        raise ValueError(f"the range must end after it starts ({start_ms}..{end_ms})")


@dataclass(frozen=True, slots=True)
class AlarmPoint:
    """One tenant's sensor, rule and side; the site and device of its latest alarm."""

    tenant: str
    sensor: str
    rule: str
    side: int
    site: str
    device: str

    @property
    def kind(self) -> str:
        return kind_name(self.side)


# rate and floods -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RateBucket:
    start: int  # ms, on the 10-minute grid of the epoch
    count: int
    flood: bool


@dataclass(frozen=True, slots=True)
class SiteRate:
    tenant: str
    site: str
    activations: int
    peak: int  # the most in one period
    flood_periods: int
    mean: float  # activations per period of the range
    buckets: tuple[RateBucket, ...]  # the periods with activations, in order


@dataclass(frozen=True, slots=True)
class AlarmRate:
    start_ms: int
    end_ms: int
    periods: int  # 10-minute periods of the grid the range touches (the first, last may be part)
    flood_above: int
    activations: int
    sites: tuple[SiteRate, ...]  # the sites with activations, by tenant and site


def alarm_rate(
    db: StateDB,
    tenants: Sequence[str] | None,
    start_ms: int,
    end_ms: int,
    *,
    site: str | None = None,
    flood_above: int = FLOOD_ABOVE,
) -> AlarmRate:
    """Activations per site and 10-minute period (epoch-aligned); a period with more than
    `flood_above` is a flood."""
    _check_range(start_ms, end_ms)
    periods = (end_ms - 1) // BUCKET_MS - start_ms // BUCKET_MS + 1
    if tenants is not None and not tenants:
        return AlarmRate(start_ms, end_ms, periods, flood_above, 0, ())
    among, params = _among(tenants)
    sql = _RATE + _FROM + among
    args: list[Any] = [BUCKET_MS, *_span(start_ms, end_ms), *params]
    if site is not None:
        sql += _AND_SITE
        args.append(site)
    rows = db.query(sql + _RATE_TAIL, args)
    by_site: dict[tuple[str, str], list[RateBucket]] = {}
    for tenant, site_id, period, count in rows:
        by_site.setdefault((tenant, site_id), []).append(
            RateBucket(int(period) * BUCKET_MS, int(count), int(count) > flood_above)
        )
    sites = tuple(_site_rate(key, buckets, periods) for key, buckets in by_site.items())
    return AlarmRate(
        start_ms, end_ms, periods, flood_above, sum(s.activations for s in sites), sites
    )


def _site_rate(key: tuple[str, str], buckets: list[RateBucket], periods: int) -> SiteRate:
    total = sum(b.count for b in buckets)
    return SiteRate(
        key[0],
        key[1],
        total,
        max(b.count for b in buckets),
        sum(b.flood for b in buckets),
        total / periods,
        tuple(buckets),
    )


# chattering ----------------------------------------------------------------------------------
def worst_windows(group: I64, ts: I64, window_ms: int) -> tuple[I64, I64]:
    """For events sorted by group (0, 1, ... with none left out) and time: per group, the most
    events in any window of `window_ms` (both ends included) and the time of the first event of
    the earliest such window. One pass of `searchsorted` over a key of group and time."""
    if window_ms < 0:
        raise ValueError("the window cannot be negative")
    n = int(ts.shape[0])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    groups = int(group[-1]) + 1
    lo = int(ts.min())
    stride = int(ts.max()) - lo + window_ms + 1  # a window never reaches the next group
    if groups * stride >= 2**62:
        raise ValueError("too many alarm points over too long a range")
    key = group * np.int64(stride) + (ts - np.int64(lo))
    count = np.searchsorted(key, key + np.int64(window_ms), side="right") - np.arange(n)
    worst = np.zeros(groups, np.int64)
    np.maximum.at(worst, group, count)
    at = np.flatnonzero(count == worst[group])
    _, first = np.unique(group[at], return_index=True)
    return worst, ts[at[first]]


@dataclass(frozen=True, slots=True)
class Chatter:
    point: AlarmPoint
    activations: int  # in the range
    worst: int  # the most activations within one window
    worst_start: int  # ms, the first activation of the earliest such window


@dataclass(frozen=True, slots=True)
class Chattering:
    start_ms: int
    end_ms: int
    window_ms: int
    min_count: int
    points: tuple[Chatter, ...]  # the worst first


def chattering(
    db: StateDB,
    tenants: Sequence[str] | None,
    start_ms: int,
    end_ms: int,
    *,
    window_ms: int = CHATTER_WINDOW_MS,
    min_count: int = CHATTER_COUNT,
) -> Chattering:
    """The alarm points with `min_count` or more activations within `window_ms` (a sliding
    window over their activations in the range, both ends included)."""
    _check_range(start_ms, end_ms)
    if tenants is not None and not tenants:
        return Chattering(start_ms, end_ms, window_ms, min_count, ())
    among, params = _among(tenants)
    rows = db.query(_EVENTS + _FROM + among + _EVENTS_TAIL, [*_span(start_ms, end_ms), *params])
    keys: list[tuple[Any, ...]] = []
    where: list[tuple[int, str, str]] = []  # each point's latest alarm: id, site, device
    group = np.empty(len(rows), np.int64)
    ts = np.empty(len(rows), np.int64)
    for i, row in enumerate(rows):
        if not keys or keys[-1] != row[:4]:
            keys.append(row[:4])
            where.append(row[4:7])
        elif row[4] > where[-1][0]:
            where[-1] = row[4:7]
        group[i] = len(keys) - 1
        ts[i] = row[7]
    points = [
        AlarmPoint(t, sensor, rule, int(side), site, device)
        for (t, sensor, rule, side), (_, site, device) in zip(keys, where, strict=True)
    ]
    worst, start = worst_windows(group, ts, window_ms)
    activations = np.bincount(group, minlength=len(points))
    found = [
        Chatter(points[g], int(activations[g]), int(worst[g]), int(start[g]))
        for g in np.flatnonzero(worst >= min_count).tolist()
    ]
    found.sort(key=lambda c: (-c.worst, -c.activations, *_order(c.point)))
    return Chattering(start_ms, end_ms, window_ms, min_count, tuple(found))


# standing alarms -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StandingAlarm:
    alarm_id: int
    point: AlarmPoint
    level_name: str
    tier: str
    isa_state: str
    started_ts: int
    age_ms: int


@dataclass(frozen=True, slots=True)
class Standing:
    now_ms: int
    standing_ms: int
    alarms: tuple[StandingAlarm, ...]  # the oldest first


def standing_alarms(
    db: StateDB, tenants: Sequence[str] | None, now_ms: int, *, standing_s: float
) -> Standing:
    """The alarms still active that started (event time) more than `standing_s` before
    `now_ms`. The state is the present one, so there is no range: `now_ms` is the clock."""
    if standing_s <= 0:
        raise ValueError("standing_s must be positive")
    standing_ms = round(standing_s * 1000)
    if tenants is not None and not tenants:
        return Standing(now_ms, standing_ms, ())
    among, params = _among(tenants)
    rows = db.query(_STANDING + among + _STANDING_TAIL, [now_ms - standing_ms, *params])
    return Standing(
        now_ms,
        standing_ms,
        tuple(
            StandingAlarm(
                int(alarm_id),
                AlarmPoint(tenant, sensor, rule, int(side), site, device),
                level_name,
                tier,
                isa_state,
                int(started),
                now_ms - int(started),
            )
            for (
                alarm_id,
                tenant,
                sensor,
                rule,
                side,
                site,
                device,
                level_name,
                tier,
                isa_state,
                started,
            ) in rows
        ),
    )


# bad actors ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BadActor:
    point: AlarmPoint
    activations: int
    share: float  # of every activation in the range and scope


@dataclass(frozen=True, slots=True)
class BadActors:
    start_ms: int
    end_ms: int
    activations: int  # every activation in the range and scope
    share: float  # of them, the listed points'
    points: tuple[BadActor, ...]  # the most first; ties by tenant, sensor, rule, side


def bad_actors(
    db: StateDB,
    tenants: Sequence[str] | None,
    start_ms: int,
    end_ms: int,
    *,
    limit: int = BAD_ACTORS,
) -> BadActors:
    """The `limit` alarm points with the most activations in the range."""
    _check_range(start_ms, end_ms)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if tenants is not None and not tenants:
        return BadActors(start_ms, end_ms, 0, 0.0, ())
    among, params = _among(tenants)
    rows = db.query(
        _ACTORS + _FROM + among + _ACTORS_TAIL, [*_span(start_ms, end_ms), *params, limit]
    )
    total = int(rows[0][7]) if rows else 0
    points = tuple(
        BadActor(AlarmPoint(tenant, sensor, rule, int(side), site, device), int(n), int(n) / total)
        for tenant, sensor, rule, side, site, device, n, _ in rows
    )
    listed = sum(p.activations for p in points)
    return BadActors(start_ms, end_ms, total, listed / total if total else 0.0, points)
