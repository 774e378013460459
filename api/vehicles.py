"""The caller's vehicles, their last known positions and their tracks: `/vehicles`,
`/vehicles/{id}` and `/vehicles/{id}/track`, added to the app's `/api/v1` router by
`vehicle_routes` (`api.app`).

The last position is the store's newest by event time (`TimeSeriesStore.last_positions`, one query
for every vehicle of a list), not the hub's memory: the fleet's state in the ingest dispatcher
(`alerts.vehicles.FleetState`) keeps a vehicle's last judged fix without its speed or heading,
the API's context does not reach it, and a hub just restarted has none until the next fix. The
store keeps neither a fix's arrival time nor its altitude, nor does the hub know a terminal's
link: the answer leaves them out; the fleet's `offline` alarm, among the active alarms, says the
hub found the vehicle silent.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from alerts.kinds import kind_name
from alerts.vehiclereports import latest_reports
from api.auth import Principal
from api.context import AppContext, Caller, Ctx, narrowed, not_found
from api.models import TrackPointPublic, VehiclePublic
from api.timerange import refuse_seconds
from api.vehiclemodels import (
    DriverPublic,
    LastPositionPublic,
    RegistrationPublic,
    VehicleAlarmBrief,
    VehicleStatePublic,
    VehicleWithLastPublic,
    WaybillPublic,
)
from ingest.store.base import PositionBatch
from telemetry.clock import wall_ms
from telemetry.registry import VehicleInfo

__all__ = ["MAX_TRACK_MS", "MAX_VEHICLE_ALARMS", "vehicle_routes"]

MAX_TRACK_MS = 7 * 86_400_000  # the span of one track answer
MAX_VEHICLE_ALARMS = 200  # active alarms in one vehicle's answer (one per kind is active at most)


def _visible(ctx: AppContext, caller: Principal, vehicle_id: str) -> VehicleInfo:
    """The caller's vehicle of that id: 404 alike for none and for another tenant's."""
    for (t, vid), v in ctx.registry.vehicles.items():
        if vid == vehicle_id and caller.sees(t):
            return v
    raise not_found(f"vehicle {vehicle_id!r}")


def _vehicle(ctx: AppContext, v: VehicleInfo) -> dict[str, str]:
    return {
        "id": v.spec.id,
        "tenant": v.tenant,
        "plate": v.spec.plate,
        "vehicle_class": v.spec.vehicle_class,
        "speed_sensor": ctx.registry.sensors[v.speed_sensor].id,
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _last_positions(batch: PositionBatch, now_ms: int) -> dict[int, LastPositionPublic]:
    """The rows of `TimeSeriesStore.last_positions` by speed sensor index."""
    return {
        int(batch.vehicle[i]): LastPositionPublic(
            ts=int(batch.ts[i]),
            lat=float(batch.lat[i]),
            lon=float(batch.lon[i]),
            speed_kmh=_finite(float(batch.speed_kmh[i])),
            heading_deg=_finite(float(batch.heading_deg[i])),
            age_s=(now_ms - int(batch.ts[i])) / 1000,
        )
        for i in range(len(batch))
    }


def mask_id_number(number: str) -> str:
    """An identity card number as a viewer key is shown it: its first and last 4 characters,
    the rest starred (3201**********1234); a short one wholly starred."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def _shown_driver(driver: dict[str, Any], role: str) -> dict[str, Any]:
    """The driver as the caller is shown it: a viewer key (a wall display, a visitor) sees the
    identity card number and the qualification certificate's number (most often the identity
    card's again) masked (personal information: PIPL); the centre's keys and the enterprise's
    own see them whole, to identify the driver of a vehicle in trouble."""
    if role != "viewer":
        return driver
    masked = {k: mask_id_number(str(driver[k])) for k in ("id_number", "licence") if driver.get(k)}
    return {**driver, **masked}


def vehicle_routes(r: APIRouter) -> None:
    """Add the routes of the vehicles to `r`, in this order."""

    @r.get(
        "/vehicles",
        response_model=list[VehiclePublic] | list[VehicleWithLastPublic],
        tags=["vehicles"],
    )
    async def list_vehicles(
        ctx: Ctx,
        caller: Caller,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
        with_: Annotated[
            Literal["last_position"] | None,
            Query(
                alias="with",
                description="`last_position`: each vehicle with its newest stored position "
                "(null when none), for a map of the fleet: one store query for them all",
            ),
        ] = None,
    ) -> list[VehiclePublic] | list[VehicleWithLastPublic]:
        """The caller's vehicles; a tenant the caller does not see (or none of that name) is
        404."""
        among = set(narrowed(ctx, caller, tenant))
        vehicles = [v for v in ctx.registry.vehicles.values() if v.tenant in among]
        if with_ is None:
            return [VehiclePublic(**_vehicle(ctx, v)) for v in vehicles]
        found = await ctx.store.last_positions([v.speed_sensor for v in vehicles])
        last = _last_positions(found, wall_ms())
        return [
            VehicleWithLastPublic(**_vehicle(ctx, v), last_position=last.get(v.speed_sensor))
            for v in vehicles
        ]

    @r.get("/vehicles/{vehicle_id}", response_model=VehicleStatePublic, tags=["vehicles"])
    async def get_vehicle(vehicle_id: str, ctx: Ctx, caller: Caller) -> VehicleStatePublic:
        """The vehicle, its last known position (the newest stored by event time; null when
        none), its active alarms, and its driver, waybill and terminal's registration as its
        JT/T 809 platform last reported them (each null when none came); another tenant's
        vehicle is 404, as one that does not exist."""
        v = _visible(ctx, caller, vehicle_id)
        sensor = ctx.registry.sensors[v.speed_sensor].id
        found = await ctx.store.last_positions([v.speed_sensor])
        rows = await asyncio.to_thread(
            ctx.statedb.list_alarms,
            [v.tenant],
            state="active",
            sensor=sensor,
            site="vehicles",
            limit=MAX_VEHICLE_ALARMS,
        )
        said = await asyncio.to_thread(latest_reports, ctx.statedb, v.tenant, v.spec.id)
        driver, waybill, reg = (said.get(k) for k in ("driver", "waybill", "registration"))
        return VehicleStatePublic(
            **_vehicle(ctx, v),
            driver=None if driver is None else DriverPublic(**_shown_driver(driver, caller.role)),
            waybill=None if waybill is None else WaybillPublic(**waybill),
            registration=None if reg is None else RegistrationPublic(**reg),
            last_position=_last_positions(found, wall_ms()).get(v.speed_sensor),
            active_alarms=[
                VehicleAlarmBrief(
                    id=a.id,
                    kind=kind_name(a.side),
                    tier=a.tier,
                    level_name=a.level_name,
                    rule=a.rule,
                    started_ts=a.started_ts,
                    acked=bool(a.acked),
                )
                for a in rows
            ],
        )

    @r.get("/vehicles/{vehicle_id}/track", response_model=list[TrackPointPublic], tags=["vehicles"])
    async def track(
        vehicle_id: str,
        ctx: Ctx,
        caller: Caller,
        start: Annotated[int, Query(ge=0, le=2**53, description="epoch ms, inclusive")],
        end: Annotated[int, Query(ge=0, le=2**53, description="epoch ms, exclusive")],
    ) -> list[TrackPointPublic]:
        found = _visible(ctx, caller, vehicle_id)
        refuse_seconds(start=start, end=end)
        if end - start > MAX_TRACK_MS:  # a year of fixes every 10 s is 3 million rows
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"a track spans at most {MAX_TRACK_MS // 86_400_000} days: ask it in parts",
            )
        cols = await ctx.store.track(found.speed_sensor, start, end)
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
