"""`create_app(ctx)`: the HTTP API over the hub's registry, stores and alarms.

Every ``/api/v1`` route and ``/metrics`` require a bearer API key and scope what they return to the
caller's tenants. ``/healthz``, ``/readyz`` and the OpenAPI pages at ``/docs`` are open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from api.alarms import alarm_router
from api.alarmstats import alarm_stats_router
from api.auth import KeyWatch, Principal, current_key_watch
from api.availability import availability_router
from api.context import (
    CENTRE_ROLES,
    KNOWN_QUERY,
    WRITERS,
    AppContext,
    Caller,
    Ctx,
    WriteGuard,
    check_site,
    is_centre,
    narrowed,
    not_found,
)
from api.deadletters import dead_letter_router
from api.encode import json_response
from api.handover import handover_router
from api.keys import key_router
from api.models import (
    LatestPublic,
    LevelPublic,
    MePublic,
    MinMaxPublic,
    PointPublic,
    ReadingPointPublic,
    SensorPublic,
    TrackPointPublic,
    VehiclePublic,
)
from api.problems import BodyLimit, install_problem_handlers
from api.registry import registry_router
from api.rulepacks import rule_pack_router, spec_json
from api.sites import site_router
from api.stream import Broadcaster, Subscription, TooManyStreamsError
from api.timerange import refuse_seconds
from ingest.metrics import prom_number
from ingest.store.base import Aggregate
from telemetry.quality import Quality
from telemetry.registry import Registry, SensorInfo

__all__ = ["AppContext", "create_app"]

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


def _only(caller: Principal, only: frozenset[str] | None) -> Principal:
    """The caller seeing `only` these tenants of its own (None: all its own): a stream asked
    for one tenant. The key as it is now still decides: a tenant it no longer sees is not sent."""
    if only is None:
        return caller
    return dataclasses.replace(
        caller, tenants=only if caller.tenants is None else only & caller.tenants
    )


_QUALITY_NAMES = {int(q): q.name.lower() for q in Quality}
MAX_HISTORY_ROWS = 100_000  # rows of one history answer
MAX_TRACK_MS = 7 * 86_400_000  # the span of one track answer


class _EventStream(StreamingResponse):
    """A live stream whose subscription is given back however the response ends: its events'
    generator does it when it ran, but one that never started (the client gone before the
    first byte) would hold a place of its key's streams for good."""

    def __init__(self, stream: Broadcaster, sub: Subscription, **kw: Any) -> None:
        super().__init__(stream.events(sub), **kw)
        self._stream, self._sub = stream, sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stream.unsubscribe(self._sub)


def _router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1")

    @r.get("/me", response_model=MePublic, tags=["keys"])
    def me(caller: Caller) -> MePublic:
        """The calling key: its name, role and tenants, and the alarm actions its role may take
        (the dashboard shows only those buttons). Never the key or its digest."""
        actions: list[str] = []
        if caller.role in WRITERS:
            actions = ["acknowledge", "unshelve", "comment", "disposal"]
            if caller.role in CENTRE_ROLES:
                actions.insert(1, "shelve")
            if is_centre(caller):  # the review of an enterprise's closing (审核销号)
                actions.append("review")
        return MePublic(
            name=caller.name,
            role=caller.role,
            tenants=None if caller.tenants is None else sorted(caller.tenants),
            expires_ms=caller.expires_ms,
            alarm_actions=actions,
        )

    @r.get("/sensors", response_model=list[SensorPublic], tags=["sensors"])
    def list_sensors(
        ctx: Ctx,
        caller: Caller,
        tenant: str | None = None,
        site: str | None = None,
        kind: str | None = None,
    ) -> list[SensorPublic]:
        """The sensors the caller may see, optionally filtered; a tenant or site the caller
        does not see (or none of that name) is 404."""
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
        sensor: Annotated[list[str] | None, Query(description="ids; default: all visible")] = None,
        site: str | None = None,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> Response:
        """The newest reading of many sensors at once (those that have one); a tenant or site
        the caller does not see (or none of that name) is 404."""
        tenants = narrowed(ctx, caller, tenant)
        check_site(ctx, tenants, site)
        among = set(tenants)
        if sensor:
            infos = [
                i
                for i in (ctx.registry.sensor(x) for x in sensor[:20_000])
                if i is not None and i.tenant in among
            ]
        else:
            infos = [i for i in ctx.registry.sensors if i.tenant in among]
        if site is not None:
            infos = [i for i in infos if i.site == site]
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

    @r.get("/stream", tags=["stream"], response_class=StreamingResponse)
    async def stream(
        ctx: Ctx,
        caller: Caller,
        watch: Annotated[KeyWatch, Depends(current_key_watch)],
        kinds: Annotated[
            str,
            Query(
                pattern="^(alarm|reading|notification)(,(alarm|reading|notification))*$",
                description="alarm, reading, notification (of subscriptions with an sse channel)",
            ),
        ] = "alarm,reading",
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> StreamingResponse:
        """Server-sent events: `alarm` transitions and `reading`s (the newest per sensor and
        flush) of the caller's tenants (or of `tenant` alone: another's is 404); `lagged` says
        how many a slow client missed. The stream follows the key: it ends (`end`) once the key
        is revoked, expires or leaves the configuration, and sends nothing of a tenant the key
        no longer sees."""
        only = None if tenant is None else frozenset(narrowed(ctx, caller, tenant))
        if ctx.stream is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no live stream here")

        def current() -> Principal | None:
            now = watch.current()
            return None if now is None else _only(now, only)

        try:
            sub = ctx.stream.subscribe(
                _only(caller, only), frozenset(kinds.split(",")), current, key=watch.digest
            )
        except TooManyStreamsError as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "30"}
            ) from exc
        return _EventStream(
            ctx.stream,
            sub,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

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

    return r


def _store_metrics(store: object) -> str:
    """The store's own counters and gauges (spool depth, refused lines ...), when it has them."""
    stats = getattr(store, "stats", None)
    if not callable(stats):
        return ""
    found = stats()
    if not dataclasses.is_dataclass(found) or isinstance(found, type):
        return ""
    lines: list[str] = []

    def walk(prefix: str, value: object) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(f"{prefix}_{f.name}", getattr(value, f.name))
        elif isinstance(value, bool | int | float):
            lines.append(f"# TYPE {prefix} gauge")
            lines.append(f"{prefix} {prom_number(value)}")

    walk("hazardhub_store", found)
    return "\n".join(lines) + ("\n" if lines else "")


def create_app(ctx: AppContext) -> FastAPI:
    """Build the app; nothing happens at import time."""
    app = FastAPI(
        title="hazardhub",
        version="0.1.0",
        summary="Online monitoring and early warning for major hazard sources, mines and vehicles",
        docs_url=None,  # served below from files of our own: monitoring centres are often offline
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_problem_handlers(app)  # errors as RFC 9457 problem details
    app.add_middleware(BodyLimit, max_bytes=1 << 20)  # no request needs more than 1 MiB
    for router in (
        _router(),
        alarm_router(),
        alarm_stats_router(),
        availability_router(),
        handover_router(),
        site_router(),
        rule_pack_router(),
        key_router(),
        registry_router(),
        dead_letter_router(),
    ):
        # a query parameter a route does not take is 422 on every one, never ignored
        app.include_router(router, dependencies=KNOWN_QUERY)

    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    # the interactive API docs without a CDN (FastAPI's default page loads Swagger UI from
    # jsdelivr, and showed nothing on a network without the internet)
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="hazardhub API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The operator dashboard (plain files, no external resources); it asks for a key."""
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(ctx: Ctx) -> Response:
        why = ctx.not_ready()
        if why is None:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {why}\n", status_code=503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics(ctx: Ctx, caller: Caller) -> PlainTextResponse:
        if caller.role not in ("admin", "operator"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "metrics are for admins and operators")
        if caller.tenants is not None:  # the counters are the whole hub's, every tenant's
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "metrics are the whole hub's: for a key of every tenant"
            )
        text = ctx.metrics.render() + _store_metrics(ctx.store)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app
