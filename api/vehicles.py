"""The caller's vehicles and their tracks: `/vehicles` and `/vehicles/{id}/track`, added to the
app's `/api/v1` router by `vehicle_routes` (`api.app`). Split from `api.app`; the routes moved as
they were.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.context import Caller, Ctx, narrowed, not_found
from api.models import TrackPointPublic, VehiclePublic
from api.timerange import refuse_seconds

__all__ = ["MAX_TRACK_MS", "vehicle_routes"]

MAX_TRACK_MS = 7 * 86_400_000  # the span of one track answer


def vehicle_routes(r: APIRouter) -> None:
    """Add the routes of the vehicles to `r`, in this order."""

    @r.get("/vehicles", response_model=list[VehiclePublic], tags=["vehicles"])
    def list_vehicles(
        ctx: Ctx,
        caller: Caller,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> list[VehiclePublic]:
        """The caller's vehicles; a tenant the caller does not see (or none of that name) is
        404."""
        among = set(narrowed(ctx, caller, tenant))
        return [
            VehiclePublic(
                id=v.spec.id,
                tenant=v.tenant,
                plate=v.spec.plate,
                vehicle_class=v.spec.vehicle_class,
                speed_sensor=ctx.registry.sensors[v.speed_sensor].id,
            )
            for v in ctx.registry.vehicles.values()
            if v.tenant in among
        ]

    @r.get("/vehicles/{vehicle_id}/track", response_model=list[TrackPointPublic], tags=["vehicles"])
    async def track(
        vehicle_id: str,
        ctx: Ctx,
        caller: Caller,
        start: Annotated[int, Query(ge=0, le=2**53, description="epoch ms, inclusive")],
        end: Annotated[int, Query(ge=0, le=2**53, description="epoch ms, exclusive")],
    ) -> list[TrackPointPublic]:
        found = [
            v
            for (t, vid), v in ctx.registry.vehicles.items()
            if vid == vehicle_id and caller.sees(t)
        ]
        if not found:
            raise not_found(f"vehicle {vehicle_id!r}")
        refuse_seconds(start=start, end=end)
        if end - start > MAX_TRACK_MS:  # a year of fixes every 10 s is 3 million rows
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"a track spans at most {MAX_TRACK_MS // 86_400_000} days: ask it in parts",
            )
        cols = await ctx.store.track(found[0].speed_sensor, start, end)
        return [
            TrackPointPublic(
                ts=int(cols.ts[i]),
                lat=float(cols.lat[i]),
                lon=float(cols.lon[i]),
                speed_kmh=float(cols.speed_kmh[i]),
                heading_deg=float(cols.heading_deg[i]),
            )
            for i in range(len(cols))
        ]
