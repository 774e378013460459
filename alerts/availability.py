"""Data availability (上线率 of a site's monitoring points): the share of a period in which each
point had data, per site and per tenant, for the monthly report a supervising centre makes of
its enterprises (helper-115: alarms were reported, the data behind them not).

A point is a configured sensor of a device (not a vehicle's, not a voting group) that the hub
judges for no data: one with levels, a `no_data_s`, or a verification's feedback role (a
display-only sensor raises no `no_data` and would read 100 % dead or alive; it is not counted).
Its time without data in [start_ms, end_ms) is the union of:

* its own `no_data` alarms (a comm loss, a silence past its timeout);
* the `no_data` alarms of its device (comm loss of the whole device) and of its device's
  gateway (`gateway_offline`: a gateway that died sends no comm loss for its points);

each from its event-time start to its end (an open one: to `end_ms`), clipped to the range. A
point configured after the range started counts from the start all the same: availability is
of the points as configured now. The SQL is built from constants and "?" placeholders only.

Only the time the hub watched counts (`alerts.hubwatch`), with and without data: the range up to
now, less the hub's absences (down, or away from its broker). A range the hub never watched
has no rate (None), not 100 % (helper-133: a month before the hub existed, and the next one,
read 1.0).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.alarmevent import device_alarm_id
from alerts.gateways import gateway_alarm_id
from alerts.hubwatch import merged, overlap, watched_spans
from alerts.statedb import StateDB
from alerts.table import NO_DATA
from telemetry.clock import wall_ms
from telemetry.registry import Registry
from telemetry.registrychecks import feedback_ids

__all__ = ["Availability", "PointGap", "SiteAvailability", "TenantAvailability", "availability"]

WORST = 5  # the points with the most time without data, per site


@dataclass(frozen=True, slots=True)
class PointGap:
    sensor: str
    device: str
    offline_s: float


@dataclass(frozen=True, slots=True)
class SiteAvailability:
    tenant: str
    site: str
    points: int
    online_rate: float | None  # 0..1: the points' time with data over the time watched
    offline_s: float  # the points' time without data (while watched), summed
    worst: tuple[PointGap, ...]  # up to WORST, the most time without data first


@dataclass(frozen=True, slots=True)
class TenantAvailability:
    tenant: str
    points: int
    online_rate: float | None
    offline_s: float


@dataclass(frozen=True, slots=True)
class Availability:
    start_ms: int
    end_ms: int
    observed_s: float  # the time of the range the hub watched (up to now)
    sites: tuple[SiteAvailability, ...]
    tenants: tuple[TenantAvailability, ...]


def _counted(registry: Registry) -> list[tuple[str, str, str, str]]:
    """(tenant, site, device, sensor) of the points availability counts."""
    feeds = feedback_ids(registry.sensors)
    return [
        (s.tenant, s.site, s.device, s.id)
        for s in registry.sensors
        if (s.tenant, s.site, s.device) in registry.devices
        and (s.levels or s.no_data_s or s.id in feeds)
    ]


def _rate(off_ms: float, watched_ms: float) -> float | None:
    return None if watched_ms <= 0 else 1.0 - off_ms / watched_ms


def availability(
    db: StateDB,
    registry: Registry,
    tenants: Sequence[str] | None,
    start_ms: int,
    end_ms: int,
    now_ms: int | None = None,
) -> Availability:
    """Per site and per tenant (of `tenants`, None: every configured one), the share of
    [start_ms, end_ms) in which the points had data, of the time the hub watched before
    `now_ms` (the hub's clock unless given; see the module)."""
    if end_ms <= start_ms:
        raise ValueError(f"the range must end after it starts ({start_ms}..{end_ms})")
    now = wall_ms() if now_ms is None else now_ms
    watched = watched_spans(db, start_ms, min(end_ms, now))
    span = sum(b - a for a, b in watched)
    points = [p for p in _counted(registry) if tenants is None or p[0] in tenants]
    gateway_of = {key: dev.spec.gateway for key, dev in registry.devices.items()}
    among = None if tenants is None else json.dumps(list(tenants))
    rows = db.query(
        "SELECT sensor, started_ts, ended_ts FROM alarms WHERE side = ? AND started_ts < ? "
        "AND (ended_ts IS NULL OR ended_ts > ?) "
        "AND (? IS NULL OR tenant IN (SELECT value FROM json_each(?)))",
        (NO_DATA, end_ms, start_ms, among, among),
    )
    gaps: dict[str, list[tuple[int, int]]] = {}
    for sensor, started, ended in rows:
        a, b = max(int(started), start_ms), min(end_ms if ended is None else int(ended), end_ms)
        if b > a:
            gaps.setdefault(str(sensor), []).append((a, b))
    by_site: dict[tuple[str, str], list[PointGap]] = {}
    for tenant, site, device, sensor in points:
        gw = gateway_of.get((tenant, site, device), "")
        spans = [
            *gaps.get(sensor, ()),
            *gaps.get(device_alarm_id(tenant, site, device), ()),
            *(gaps.get(gateway_alarm_id(tenant, site, gw), ()) if gw else ()),
        ]
        gap = PointGap(sensor, device, overlap(merged(spans), watched) / 1000.0)
        by_site.setdefault((tenant, site), []).append(gap)
    sites = []
    for (tenant, site), found in sorted(by_site.items()):
        off = sum(g.offline_s for g in found)
        worst = sorted((g for g in found if g.offline_s > 0), key=lambda g: -g.offline_s)
        sites.append(
            SiteAvailability(
                tenant,
                site,
                len(found),
                _rate(off * 1000.0, span * len(found)),
                off,
                tuple(worst[:WORST]),
            )
        )
    per_tenant: dict[str, tuple[int, float]] = {}
    for s in sites:
        n, off = per_tenant.get(s.tenant, (0, 0.0))
        per_tenant[s.tenant] = (n + s.points, off + s.offline_s)
    return Availability(
        start_ms,
        end_ms,
        span / 1000.0,
        tuple(sites),
        tuple(
            TenantAvailability(t, n, _rate(off * 1000.0, span * n), off)
            for t, (n, off) in sorted(per_tenant.items())
        ),
    )
