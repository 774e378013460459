"""Alarm quality after EEMUA 191 over HTTP: alarms per 10 minutes and floods, chattering alarm
points, standing alarms, bad actors (`alerts.alarmstats`). Every route needs a key and counts
only the caller's tenants; `tenant` narrows within them. Ranges are ms since the epoch, half-open,
by event time; the last 24 hours unless given, at most 31 days.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from alerts import alarmstats as stats
from api.alarms import names_of
from api.auth import Principal
from api.context import AppContext, Caller, Ctx, check_record_site, record_scope
from api.handling import HandlingPublic, handling_report
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms

__all__ = ["alarm_stats_router"]

_MAX_MS = 2**53  # ms since the epoch: far beyond any real time, within the database's integers
_DAY_MS = 86_400_000
_MAX_RANGE_MS = 31 * _DAY_MS


def _range(
    start: Annotated[
        int | None,
        Query(ge=0, le=_MAX_MS, description="ms since the epoch, inclusive; default end - 24 h"),
    ] = None,
    end: Annotated[
        int | None,
        Query(ge=0, le=_MAX_MS, description="ms since the epoch, exclusive; default now"),
    ] = (None),
) -> tuple[int, int]:
    refuse_seconds(start=start, end=end)
    end_ms = wall_ms() if end is None else end
    start_ms = end_ms - _DAY_MS if start is None else start
    if end_ms <= start_ms:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must be after start")
    if end_ms - start_ms > _MAX_RANGE_MS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a range is at most 31 days")
    return start_ms, end_ms


Range = Annotated[tuple[int, int], Depends(_range)]
Tenant = Annotated[str | None, Query(description="only this tenant (of the caller's)")]


async def _scope(ctx: AppContext, caller: Principal, tenant: str | None) -> list[str] | None:
    """The tenants counted (None: every one): the key's, configured or not, as the alarm list."""
    return await record_scope(ctx, caller, tenant)


class AlarmPointPublic(BaseModel):
    tenant: str
    site: str
    device: str
    sensor: str
    rule: str
    side: str


def _point(p: stats.AlarmPoint) -> dict[str, str]:
    return {
        "tenant": p.tenant,
        "site": p.site,
        "device": p.device,
        "sensor": p.sensor,
        "rule": p.rule,
        "side": p.kind,
    }


class RateBucketPublic(BaseModel):
    start: int
    count: int
    flood: bool


class SiteRatePublic(BaseModel):
    tenant: str
    site: str
    activations: int
    peak: int
    flood_periods: int
    mean_per_10min: float
    buckets: list[RateBucketPublic]


class AlarmRatePublic(BaseModel):
    start: int
    end: int
    bucket_ms: int
    periods: int
    flood: int
    activations: int
    sites: list[SiteRatePublic]


class ChatterPublic(AlarmPointPublic):
    activations: int
    worst: int
    worst_start: int


class ChatteringPublic(BaseModel):
    start: int
    end: int
    window_s: float
    min_count: int
    points: list[ChatterPublic]


class StandingAlarmPublic(AlarmPointPublic):
    alarm_id: int
    level_name: str
    tier: str
    isa_state: str
    started_ts: int
    age_s: float


class StandingPublic(BaseModel):
    now: int
    standing_s: float
    alarms: list[StandingAlarmPublic]


class BadActorPublic(AlarmPointPublic):
    activations: int
    share: float


class BadActorsPublic(BaseModel):
    start: int
    end: int
    activations: int
    share: float
    points: list[BadActorPublic]


def alarm_stats_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/alarm-quality", tags=["alarm-quality"])

    @r.get("/rate", response_model=AlarmRatePublic)
    async def rate(
        ctx: Ctx,
        caller: Caller,
        span: Range,
        site: str | None = None,
        tenant: Tenant = None,
        flood: Annotated[
            int, Query(ge=1, le=100_000, description="a 10-minute period with more is a flood")
        ] = stats.FLOOD_ABOVE,
    ) -> AlarmRatePublic:
        """Activations (raises) per site and 10 minutes of event time, on the epoch's grid; a
        period with more than `flood` is a flood (EEMUA 191: more than 10). A site the caller
        does not see (or none of that name) is 404."""
        tenants = await _scope(ctx, caller, tenant)
        await check_record_site(ctx, tenants, site)
        found = await asyncio.to_thread(
            stats.alarm_rate,
            ctx.statedb,
            tenants,
            *span,
            site=site,
            flood_above=flood,
        )
        return AlarmRatePublic(
            start=found.start_ms,
            end=found.end_ms,
            bucket_ms=stats.BUCKET_MS,
            periods=found.periods,
            flood=found.flood_above,
            activations=found.activations,
            sites=[
                SiteRatePublic(
                    tenant=s.tenant,
                    site=s.site,
                    activations=s.activations,
                    peak=s.peak,
                    flood_periods=s.flood_periods,
                    mean_per_10min=s.mean,
                    buckets=[
                        RateBucketPublic(start=b.start, count=b.count, flood=b.flood)
                        for b in s.buckets
                    ],
                )
                for s in found.sites
            ],
        )

    @r.get("/chattering", response_model=ChatteringPublic)
    async def chattering(
        ctx: Ctx, caller: Caller, span: Range, tenant: Tenant = None
    ) -> ChatteringPublic:
        """Alarm points with 3 or more activations within 60 s (sliding, both ends included)."""
        found = await asyncio.to_thread(
            stats.chattering, ctx.statedb, await _scope(ctx, caller, tenant), *span
        )
        return ChatteringPublic(
            start=found.start_ms,
            end=found.end_ms,
            window_s=found.window_ms / 1000,
            min_count=found.min_count,
            points=[
                ChatterPublic(
                    **_point(c.point),
                    activations=c.activations,
                    worst=c.worst,
                    worst_start=c.worst_start,
                )
                for c in found.points
            ],
        )

    @r.get("/standing", response_model=StandingPublic)
    async def standing(
        ctx: Ctx,
        caller: Caller,
        standing_s: Annotated[
            float | None,
            Query(gt=0, le=366 * 86400, description="default: the hub's notify.standing_s"),
        ] = None,
        tenant: Tenant = None,
    ) -> StandingPublic:
        """Alarms active for longer than `standing_s` (from their event time), the oldest first."""
        found = await asyncio.to_thread(
            stats.standing_alarms,
            ctx.statedb,
            await _scope(ctx, caller, tenant),
            wall_ms(),
            standing_s=ctx.registry.config.notify.standing_s if standing_s is None else standing_s,
        )
        return StandingPublic(
            now=found.now_ms,
            standing_s=found.standing_ms / 1000,
            alarms=[
                StandingAlarmPublic(
                    **_point(a.point),
                    alarm_id=a.alarm_id,
                    level_name=a.level_name,
                    tier=a.tier,
                    isa_state=a.isa_state,
                    started_ts=a.started_ts,
                    age_s=a.age_ms / 1000,
                )
                for a in found.alarms
            ],
        )

    @r.get("/bad-actors", response_model=BadActorsPublic)
    async def bad_actors(
        ctx: Ctx,
        caller: Caller,
        span: Range,
        tenant: Tenant = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = stats.BAD_ACTORS,
    ) -> BadActorsPublic:
        """The alarm points with the most activations, with their share of all of them."""
        found = await asyncio.to_thread(
            stats.bad_actors, ctx.statedb, await _scope(ctx, caller, tenant), *span, limit=limit
        )
        return BadActorsPublic(
            start=found.start_ms,
            end=found.end_ms,
            activations=found.activations,
            share=found.share,
            points=[
                BadActorPublic(**_point(b.point), activations=b.activations, share=b.share)
                for b in found.points
            ],
        )

    @r.get("/handling", response_model=HandlingPublic)
    async def handling(
        ctx: Ctx, caller: Caller, span: Range, tenant: Tenant = None
    ) -> HandlingPublic:
        """How the alarms that started in the range (event time) were handled, per tenant and
        site: raised by peak tier, acknowledged and how fast, disposal states, time to close,
        ever overdue, still open, shelved and by whom. The times count from `raised_at`."""
        return await asyncio.to_thread(
            handling_report,
            ctx.statedb,
            await _scope(ctx, caller, tenant),
            *span,
            names_of(ctx.registry),
        )

    return r
