"""Data availability over HTTP (`alerts.availability`): the share of a range in which each site's
monitoring points had data, per site and per tenant, with the points that had least; for the
monthly report of a supervising centre. A key counts its own tenants only; `tenant` narrows.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, Field

from alerts.availability import availability
from api.alarms import names_of
from api.alarmstats import Range, Tenant
from api.context import Caller, Ctx, narrowed

__all__ = ["availability_router"]


class PointGapPublic(BaseModel):
    sensor: str
    device: str
    offline_s: float = Field(description="time without data in the range, seconds")


class SiteAvailabilityPublic(BaseModel):
    tenant: str
    tenant_name: str
    site: str
    site_name: str
    points: int = Field(description="the points counted (judged for no data)")
    online_rate: float | None = Field(
        description="0..1: the points' time with data over the time the hub watched in the "
        "range; null when it watched none of it"
    )
    offline_s: float = Field(description="the points' time without data, summed, seconds")
    worst: list[PointGapPublic] = Field(description="up to 5, the most time without data first")


class TenantAvailabilityPublic(BaseModel):
    tenant: str
    tenant_name: str
    points: int
    online_rate: float | None
    offline_s: float


class AvailabilityPublic(BaseModel):
    start: int
    end: int
    observed_s: float = Field(
        description="the time of the range the hub watched (up to now; less its absences), "
        "seconds: the rates are of this time"
    )
    tenants: list[TenantAvailabilityPublic]
    sites: list[SiteAvailabilityPublic]


def availability_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/data-quality", tags=["alarm-quality"])

    @r.get("/availability", response_model=AvailabilityPublic)
    async def site_availability(
        ctx: Ctx, caller: Caller, span: Range, tenant: Tenant = None
    ) -> AvailabilityPublic:
        """Per tenant and site, the share of the range (ms, event time, at most 31 days, the
        last 24 hours unless given) in which the points had data: their no-data alarms and
        their device's and gateway's, unioned (上线率, docs/alarms.md)."""
        tenants = narrowed(ctx, caller, tenant)
        found = await asyncio.to_thread(availability, ctx.statedb, ctx.registry, tenants, *span)
        names = names_of(ctx.registry)
        return AvailabilityPublic(
            start=found.start_ms,
            end=found.end_ms,
            observed_s=found.observed_s,
            tenants=[
                TenantAvailabilityPublic(
                    tenant=t.tenant,
                    tenant_name=names.get((t.tenant, None), ""),
                    points=t.points,
                    online_rate=t.online_rate,
                    offline_s=t.offline_s,
                )
                for t in found.tenants
            ],
            sites=[
                SiteAvailabilityPublic(
                    tenant=s.tenant,
                    tenant_name=names.get((s.tenant, None), ""),
                    site=s.site,
                    site_name=names.get((s.tenant, s.site), ""),
                    points=s.points,
                    online_rate=s.online_rate,
                    offline_s=s.offline_s,
                    worst=[
                        PointGapPublic(sensor=g.sensor, device=g.device, offline_s=g.offline_s)
                        for g in s.worst
                    ],
                )
                for s in found.sites
            ],
        )

    return r
