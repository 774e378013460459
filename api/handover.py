"""The shift handover (交接班): one answer for a dispatcher handing over at 08:00, over the key's
tenants (and one site when asked) and the shift that ends (the last 8 hours unless told): the
alarms raised in it by peak tier and how they were handled, what is waiting now (active and not
acknowledged, active and acknowledged, returned and not acknowledged, past a disposal deadline),
the points shelved now (by whom, until when, why), the sensors out of service now (who, why,
since) and the points that chattered most in the shift.

The range is of event time, as the alarm list's `start`/`end` and the handling report's; the
lists of what waits are the present state, whenever the alarm started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from alerts import alarmstats as stats
from alerts.statedb import AlarmFilter, StateDB
from alerts.table import kind_name
from api.alarms import alarm_json, names_of
from api.alarmstats import ChatterPublic
from api.context import AppContext, Caller, Ctx, check_record_site, record_scope
from api.handling import CountsPublic, handling_report
from api.models import AlarmPublic
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms
from telemetry.registry import Registry

__all__ = ["HandoverPublic", "handover_router"]

_HOUR_MS = 3_600_000
_MAX_MS = 2**53
_MAX_RANGE_MS = 31 * 24 * _HOUR_MS
LIST_MAX = 500  # alarms per list of one answer
_ACKABLE = ("unack", "ack", "rtn_unack", "normal")  # not shelved, suppressed, out of service
CHATTER_MAX = 10  # the points that chattered most

# a point's first activation in a range (as `alerts.alarmstats` counts activations: `raised`
# events by event time, of alarms that started in the range)
_FIRST = (
    "SELECT MIN(e.ts) FROM alarms a JOIN alarm_events e ON e.alarm_id = a.id"
    " WHERE a.tenant = ? AND a.sensor = ? AND a.rule = ? AND a.side = ?"
    " AND a.started_ts >= ? AND a.started_ts < ? AND e.kind = 'raised' AND e.ts >= ? AND e.ts < ?"
)
# the shelves in force, each with the tenant and site of its point's latest alarm (a shelve is
# the point's: sensor, rule and kind)
_SHELVES = (
    "SELECT s.sensor, s.rule, s.side, s.until, s.level, s.actor, s.reason, s.at, "
    "a.tenant, a.site, a.device, a.level_name, a.tier FROM shelves s "
    "JOIN alarms a ON a.id = (SELECT MAX(b.id) FROM alarms b WHERE b.sensor = s.sensor "
    "AND b.rule = s.rule AND b.side = s.side) WHERE s.until > ? ORDER BY s.until"
)


class AlarmListPublic(BaseModel):
    count: int = Field(description="the alarms listed")
    truncated: bool = Field(description=f"more than {LIST_MAX}: the newest {LIST_MAX} listed")
    alarms: list[AlarmPublic]


class ShelfPublic(BaseModel):
    tenant: str
    site: str
    device: str
    sensor: str
    location: str
    tag: str
    rule: str
    side: str
    level: int | None = Field(description="the shelve holds the point up to this level")
    level_name: str = Field(description="of the point's latest alarm")
    tier: str = Field(description="of the point's latest alarm")
    by: str
    reason: str
    since: int = Field(description="when it was shelved, ms")
    until: int = Field(description="when the shelve ends by itself, ms")


class OutOfServicePublic(BaseModel):
    tenant: str
    site: str
    device: str
    sensor: str
    kind: str
    location: str
    tag: str
    by: str
    reason: str
    since: int


class ShiftChatterPublic(ChatterPublic):
    """A point that chattered in the shift: when it began in the shift, and its worst minute."""

    first_ts: int = Field(
        description="its first activation in the shift (event time, ms): when it began to chatter"
    )
    worst_start: int = Field(
        description="the first activation of its worst 60 s (the earliest such window), ms"
    )


class TenantRaisedPublic(CountsPublic):
    """An enterprise's part of the shift's alarms, counted as the whole."""

    tenant: str
    tenant_name: str = Field(description="the enterprise's name as configured; '' when none")


class HandoverPublic(BaseModel):
    start: int
    end: int
    now: int
    site: str | None
    raised: CountsPublic = Field(
        description="the alarms that started in [start, end), as the handling report counts them"
    )
    raised_by_tenant: list[TenantRaisedPublic] = Field(
        description="`raised` per enterprise (those with alarms in the shift, by id): which "
        "enterprise raised what, for a centre's key that sees several"
    )
    red: AlarmListPublic = Field(
        description="the alarms that started in [start, end) and reached red at some time (a "
        "power cut, a protective action not confirmed ...), whatever their state now"
    )
    active_unack: AlarmListPublic
    active_ack: AlarmListPublic
    returned_unack: AlarmListPublic
    overdue: AlarmListPublic
    review: AlarmListPublic = Field(
        description="closed by an enterprise and waiting for the monitoring centre's review "
        "(审核销号, disposal `review`) now, whatever their state"
    )
    centre_unack: AlarmListPublic = Field(
        description="not acknowledged by the supervising centre now (`centre_acked` false; "
        "active or returned, whatever the enterprise did): the centre's duty officer's work"
    )
    shelved: list[ShelfPublic]
    out_of_service: list[OutOfServicePublic]
    chattering: list[ShiftChatterPublic] = Field(
        description="the points that chattered most in the shift, the worst first"
    )


def shift_range(hours: int | None, start: int | None, end: int | None, now: int) -> tuple[int, int]:
    """[start, end) of the shift: `hours` back from `end` (now unless given), or from `start`."""
    refuse_seconds(start=start, end=end)
    if hours is not None and start is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give hours or start, not both")
    end_ms = now if end is None else end
    start_ms = end_ms - (hours or 8) * _HOUR_MS if start is None else start
    if end_ms <= start_ms:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must be after start")
    if end_ms - start_ms > _MAX_RANGE_MS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a range is at most 31 days")
    return start_ms, end_ms


def _alarms(db: StateDB, registry: Registry, where: AlarmFilter) -> AlarmListPublic:
    rows, events = db.list_alarm_records(where, LIST_MAX + 1)
    names = names_of(registry)
    shown = rows[:LIST_MAX]
    return AlarmListPublic(
        count=len(shown),
        truncated=len(rows) > LIST_MAX,
        alarms=[
            AlarmPublic.model_validate(alarm_json(a, events[a["id"]], registry, names))
            for a in shown
        ],
    )


def _place(registry: Registry, sensor: str, tenant: str, site: str, device: str) -> dict[str, str]:
    info = registry.sensor_of(tenant, sensor, site, device)
    return {
        "location": info.location if info is not None else "",
        "tag": info.tag if info is not None else "",
    }


def handover(
    ctx: AppContext, tenants: list[str] | None, site: str | None, start: int, end: int, now: int
) -> HandoverPublic:
    """The handover over `tenants` (those the caller sees, configured or not; None: every
    tenant) and `site` (None: every site)."""
    db, registry = ctx.statedb, ctx.registry

    def waiting(**kw: Any) -> AlarmListPublic:
        return _alarms(db, registry, AlarmFilter(tenants, site=site, **kw))

    def among(tenant: str) -> bool:
        return tenants is None or tenant in tenants

    shelves = [
        ShelfPublic(
            tenant=r[8],
            site=r[9],
            device=r[10],
            sensor=r[0],
            **_place(registry, r[0], r[8], r[9], r[10]),
            rule=r[1],
            side=kind_name(r[2]),
            level=r[4],
            level_name=r[11],
            tier=r[12],
            by=r[5],
            reason=r[6],
            since=r[7],
            until=r[3],
        )
        for r in (db.query(_SHELVES, (now,)) if tenants is None or tenants else [])
        if among(r[8]) and (site is None or r[9] == site)
    ]
    out = []
    for sensor, tenant, actor, reason, at in db.sensors_out_of_service(tenants):
        info = registry.sensor(sensor)
        if info is None or info.tenant != tenant or (site is not None and info.site != site):
            continue
        out.append(
            OutOfServicePublic(
                tenant=tenant,
                site=info.site,
                device=info.device,
                sensor=sensor,
                kind=info.kind,
                location=info.location,
                tag=info.tag,
                by=actor,
                reason=reason,
                since=int(at),
            )
        )
    chatter = stats.chattering(db, tenants, start, end)
    report = handling_report(db, tenants, start, end, names_of(registry), only_site=site)
    return HandoverPublic(
        start=start,
        end=end,
        now=now,
        site=site,
        raised=report.total,
        # which enterprise raised what: a city centre's shift has the totals of many
        raised_by_tenant=[
            TenantRaisedPublic(**t.model_dump(exclude={"sites"})) for t in report.tenants
        ],
        # the shift's red alarms, handled or not: a feed that failed to cut, acknowledged and
        # back to normal by 08:00, was in no list of the handover (helper-108)
        red=waiting(peak_tier=["red"], start_ts=start, end_ts=end),
        active_unack=waiting(state="active", isa_state=["unack"]),
        active_ack=waiting(state="active", isa_state=["ack"]),
        returned_unack=waiting(isa_state=["rtn_unack"]),
        overdue=waiting(overdue=True),
        review=waiting(disposal="review"),  # the centre's work waiting, handed over too
        # and its acknowledgements (the lists above are the site's side, `isa_state`)
        centre_unack=waiting(centre_acked=False, isa_state=list(_ACKABLE)),
        shelved=shelves,
        out_of_service=sorted(out, key=lambda o: o.since),
        chattering=[
            ShiftChatterPublic(
                tenant=c.point.tenant,
                site=c.point.site,
                device=c.point.device,
                sensor=c.point.sensor,
                rule=c.point.rule,
                side=c.point.kind,
                activations=c.activations,
                worst=c.worst,
                # when it began in the shift, not its worst minute's start (which the
                # dispatcher read as the start: helper-113)
                first_ts=_first(db, c.point, start, end, c.worst_start),
                worst_start=c.worst_start,
            )
            for c in _on_site(chatter.points, site)[:CHATTER_MAX]
        ],
    )


def _first(db: StateDB, p: stats.AlarmPoint, start: int, end: int, worst_start: int) -> int:
    """The point's first activation in [start, end) (at the latest its worst window's)."""
    span = (start, end, start, end)
    ((first,),) = db.query(_FIRST, (p.tenant, p.sensor, p.rule, p.side, *span))
    return worst_start if first is None else min(int(first), worst_start)


def _on_site(points: Sequence[stats.Chatter], site: str | None) -> list[stats.Chatter]:
    return [c for c in points if site is None or c.point.site == site]


def handover_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["alarms"])

    @r.get("/handover", response_model=HandoverPublic)
    async def get_handover(
        ctx: Ctx,
        caller: Caller,
        hours: Annotated[
            int | None,
            Query(ge=1, le=72, description="the shift: this many hours back from end (default 8)"),
        ] = None,
        start: Annotated[
            int | None,
            Query(ge=0, le=_MAX_MS, description="ms since the epoch, inclusive (instead of hours)"),
        ] = None,
        end: Annotated[
            int | None, Query(ge=0, le=_MAX_MS, description="ms since the epoch; default now")
        ] = None,
        site: str | None = None,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> HandoverPublic:
        """The shift handover (交接班): the alarms raised in the shift by peak tier and how they
        were handled; the alarms waiting now (active unacknowledged, active acknowledged,
        returned unacknowledged, overdue); the points shelved and the sensors out of service
        now; the points that chattered most in the shift. A site or tenant the caller does not
        see is 404."""
        # the key's tenants, configured or not: a removed enterprise's alarms still wait
        tenants = await record_scope(ctx, caller, tenant)
        await check_record_site(ctx, tenants, site)
        now = wall_ms()
        span = shift_range(hours, start, end, now)
        return await asyncio.to_thread(handover, ctx, tenants, site, *span, now)

    return r
