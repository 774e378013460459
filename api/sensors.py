"""The sensors the caller may see and their readings: `/sensors`, `/sensors/{id}`, `/latest`,
`/sensors/{id}/latest` and `/sensors/{id}/history`, added to the app's `/api/v1` router by
`sensor_routes` (`api.app`). Split from `api.app`; the routes moved as they were.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import BaseModel

from api.auth import Principal
from api.context import AppContext, Caller, Ctx, check_site, narrowed, not_found
from api.encode import json_response
from api.models import (
    LatestPublic,
    LevelPublic,
    MinMaxPublic,
    PointPublic,
    ReadingPointPublic,
    SensorPublic,
)
from api.rulepacks import spec_json
from api.timerange import refuse_seconds
from ingest.store.base import Aggregate
from telemetry.quality import Quality
from telemetry.registry import Registry, SensorInfo
from telemetry.ruleconfig import SensorKind

__all__ = ["MAX_ASKED", "MAX_HISTORY_ROWS", "HistoryAggregate", "OutRow", "sensor_routes"]

# the stores' aggregates, and both the lowest and the highest of a window in one answer (the
# dashboard's trend band)
HistoryAggregate = Aggregate | Literal["minmax"]


# a sensor out of service, as the state database keeps it: (sensor, tenant, actor, reason, at)
OutRow = tuple[Any, ...]


def _sensors_out(ctx: AppContext) -> dict[str, OutRow]:
    """The sensors out of service, by id (the dashboard's tiles say so)."""
    return {row[0]: row for row in ctx.statedb.sensors_out_of_service(None)}


def _sensor_public(info: SensorInfo, registry: Registry, out: OutRow | None) -> SensorPublic:
    device = registry.devices.get((info.tenant, info.site, info.device))
    report = device.spec.report if device is not None else None
    # a row of another tenant's sensor once of that id is not this one's
    out = out if out is not None and out[1] == info.tenant else None
    tenant_name, site_name, _ = registry.names(info.tenant, info.site)
    return SensorPublic(
        id=info.id,
        tenant=info.tenant,
        tenant_name=tenant_name,
        site=info.site,
        site_name=site_name,
        device=info.device,
        kind=info.kind,
        unit=info.unit,
        location=info.location,
        tag=info.tag,
        rule=info.rule,
        levels=[
            LevelPublic(
                name=lv.name,
                tier=lv.tier,
                above=lv.above,
                below=lv.below,
                recover=lv.recover,
                action=lv.action,
                note=lv.note,
                on_delay_s=lv.on_delay_s,
                off_delay_s=lv.off_delay_s,
                on_samples=lv.on_samples,
                off_samples=lv.off_samples,
            )
            for lv in info.levels
        ],
        no_data_s=info.no_data_s,
        report_on_change=report is not None and report.on_change,
        max_silent_s=report.max_silent_s if report is not None and report.on_change else None,
        rate=_spec(info.rate),
        early_warning=_spec(info.early_warning),
        frozen=_spec(info.frozen),
        maintenance=_spec(info.maintenance),
        calibration_due=_spec(info.calibration_due),
        lock_test=_spec(info.lock_test),
        verify=_spec(info.verify),
        suppress_when=[spec_json(c) for c in info.suppress_when],
        # (a group's members are of its site, so of its tenant)
        members=[registry.sensors[i].id for i in info.members],
        vote_level=info.vote_level if info.members else None,
        count_failed=info.count_failed if info.members else None,
        out_of_service=out is not None,
        out_of_service_by=None if out is None else out[2],
        out_of_service_reason=None if out is None else out[3],
        out_of_service_since=None if out is None else int(out[4]),
    )


def _spec(spec: BaseModel | None) -> dict[str, Any] | None:
    return None if spec is None else spec_json(spec)


def _visible_sensor(ctx: AppContext, caller: Principal, sensor_id: str) -> SensorInfo:
    info = ctx.registry.sensor(sensor_id)
    if info is None or not caller.sees(info.tenant):
        raise not_found(f"sensor {sensor_id!r}")
    return info


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


MAX_ASKED = 20_000  # sensor ids of one `/latest` question


def _shown(ids: list[str]) -> str:
    """Ids for an answer: the first 10, each cut to the 64 characters an id may have."""
    cut = [x if len(x) <= 64 else x[:64] + "..." for x in ids[:10]]
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return ", ".join(repr(x) for x in cut) + more


def _asked_sensors(
    registry: Registry, asked: list[str], among: set[str], site: str | None
) -> list[SensorInfo]:
    """The sensors `?sensor=` names, repeated or as comma lists (the other list filters'
    form: `isa_state=`, `tier=`, `kinds=`; no id holds a comma), in the order asked, each once.
    One that is not a sensor of `among` (the tenants the question covers), or not at `site`,
    is 404 naming it, whether it is none at all or another tenant's: never an empty answer
    that reads as 'no reading' (helper-180: `?sensor=bogus` and `?sensor=a,b` answered [])."""
    ids = list(dict.fromkeys(x for part in asked for x in part.split(",")))
    if len(ids) > MAX_ASKED:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{len(ids):,} sensor ids asked: at most {MAX_ASKED:,} (or none: every sensor)",
        )
    infos: list[SensorInfo] = []
    missing: list[str] = []
    for x in ids:
        info = registry.sensor(x)
        if info is None or info.tenant not in among or (site is not None and info.site != site):
            missing.append(x)
        elif not missing:
            infos.append(info)
    if missing:
        what = "sensor" if len(missing) == 1 else "sensors"
        where = "" if site is None else f" at site {site!r}"
        raise not_found(f"{what} {_shown(missing)}{where}")
    return infos


_QUALITY_NAMES = {int(q): q.name.lower() for q in Quality}
MAX_HISTORY_ROWS = 100_000  # rows of one history answer


def sensor_routes(r: APIRouter) -> None:
    """Add the routes of the sensors and their readings to `r`, in this order."""

    @r.get("/sensors", response_model=list[SensorPublic], tags=["sensors"])
    def list_sensors(
        ctx: Ctx,
        caller: Caller,
        tenant: str | None = None,
        site: str | None = None,
        kind: Annotated[
            SensorKind | None, Query(description="one of the sensor kinds (422 otherwise)")
        ] = None,
    ) -> list[SensorPublic]:
        """The sensors the caller may see, optionally filtered; a tenant or site the caller
        does not see (or none of that name) is 404, a kind that is not one 422."""
        check_site(ctx, narrowed(ctx, caller, tenant), site)
        out = _sensors_out(ctx)
        return [
            _sensor_public(s, ctx.registry, out.get(s.id))
            for s in ctx.registry.sensors
            if caller.sees(s.tenant)
            and (tenant is None or s.tenant == tenant)
            and (site is None or s.site == site)
            and (kind is None or s.kind == kind)
        ]

    @r.get("/latest", response_model=list[LatestPublic], tags=["readings"])
    async def latest_many(
        ctx: Ctx,
        caller: Caller,
        sensor: Annotated[
            list[str] | None,
            Query(
                description="sensor ids, repeated (sensor=a&sensor=b) or as a comma list "
                "(sensor=a,b); each one the caller sees (404 otherwise); default: all visible"
            ),
        ] = None,
        site: str | None = None,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> Response:
        """The newest reading of many sensors at once (those that have one); a tenant or site
        the caller does not see (or none of that name) is 404, and so is a sensor asked for
        that is not among them."""
        tenants = narrowed(ctx, caller, tenant)
        check_site(ctx, tenants, site)
        among = set(tenants)
        if sensor is not None:
            infos = _asked_sensors(ctx.registry, sensor, among, site)
        else:
            infos = [
                i
                for i in ctx.registry.sensors
                if i.tenant in among and (site is None or i.site == site)
            ]
        found = await ctx.store.latest([i.index for i in infos])
        # `response_model` documents the answer; 10,000 rows go to JSON without a model each
        return json_response(
            [
                {
                    "sensor": i.id,
                    "ts": v.ts,
                    "value": _finite(v.value),
                    "quality": v.quality,
                    "quality_name": _QUALITY_NAMES[v.quality],
                }
                for i in infos
                if (v := found.get(i.index)) is not None
            ]
        )

    @r.get("/sensors/{sensor_id}", response_model=SensorPublic, tags=["sensors"])
    def get_sensor(sensor_id: str, ctx: Ctx, caller: Caller) -> SensorPublic:
        info = _visible_sensor(ctx, caller, sensor_id)
        return _sensor_public(info, ctx.registry, _sensors_out(ctx).get(info.id))

    @r.get("/sensors/{sensor_id}/latest", response_model=LatestPublic, tags=["readings"])
    async def latest(sensor_id: str, ctx: Ctx, caller: Caller) -> LatestPublic:
        """The newest reading by event time. `value` is null for comm loss."""
        info = _visible_sensor(ctx, caller, sensor_id)
        found = (await ctx.store.latest([info.index])).get(info.index)
        if found is None:
            raise not_found(f"reading of sensor {sensor_id!r}")
        return LatestPublic(
            sensor=info.id,
            ts=found.ts,
            value=_finite(found.value),
            quality=found.quality,
            quality_name=_QUALITY_NAMES[found.quality],
        )

    @r.get(
        "/sensors/{sensor_id}/history",
        response_model=list[ReadingPointPublic] | list[PointPublic] | list[MinMaxPublic],
        tags=["readings"],
    )
    async def history(
        sensor_id: str,
        ctx: Ctx,
        caller: Caller,
        start: Annotated[int, Query(ge=0, le=2**53, description="epoch ms, inclusive")],
        end: Annotated[int, Query(ge=0, le=2**53, description="epoch ms, exclusive")],
        every: Annotated[int | None, Query(gt=0, description="window in ms")] = None,
        aggregate: HistoryAggregate = "mean",
    ) -> list[ReadingPointPublic] | list[PointPublic] | list[MinMaxPublic]:
        """Raw readings with their quality; or, with `every`, one row per window that has
        measurements (quality good or out of range): their aggregate (`minmax`: the lowest and
        the highest, `{ts, min, max}`)."""
        info = _visible_sensor(ctx, caller, sensor_id)
        refuse_seconds(start=start, end=end)
        if end <= start:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must be after start")
        # one answer is bounded: a key asking for all time must not make the hub read it all
        # windows are aligned to the epoch: a range touches those from start's to end's
        if every is not None and (end - 1) // every - start // every + 1 > MAX_HISTORY_ROWS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"more than {MAX_HISTORY_ROWS:,} windows of {every} ms: a larger every, or a "
                "shorter range",
            )
        if every is None:
            raw = await ctx.store.readings(info.index, start, end, MAX_HISTORY_ROWS + 1)
            if len(raw) > MAX_HISTORY_ROWS:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"more than {MAX_HISTORY_ROWS:,} readings in [{start}, {end}): a shorter "
                    "range, or every= for one row per window",
                )
            return [
                ReadingPointPublic(
                    ts=t, value=_finite(v), quality=q, quality_name=_QUALITY_NAMES.get(q, "unknown")
                )
                for t, v, q in raw
            ]
        if aggregate == "minmax":
            lows, highs = await asyncio.gather(
                ctx.store.history(info.index, start, end, every, "min"),
                ctx.store.history(info.index, start, end, every, "max"),
            )
            high_at = dict(highs)
            return [
                MinMaxPublic(ts=t, min=_finite(lo), max=_finite(high_at[t]))
                for t, lo in lows
                if t in high_at
            ]
        rows = await ctx.store.history(info.index, start, end, every, aggregate)
        return [PointPublic(ts=t, value=_finite(v)) for t, v in rows]
