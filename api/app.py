"""`create_app(ctx)`: the HTTP API over the hub's registry, stores and alarms.

Every ``/api/v1`` route and ``/metrics`` require a bearer API key and scope what they return to the
caller's tenants. ``/healthz``, ``/readyz`` (its reason in full for an admin key of every tenant:
`api.readiness`) and the OpenAPI pages at ``/docs`` are open.

The `/api/v1` routes of this module's router are in `api.sensors` (the sensors and their
readings), `api.livestream` (the live stream) and `api.vehicles`, added to it in the order they
always had; the other routers come from their resources' modules.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
)
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from api.alarms import alarm_router
from api.alarmstats import alarm_stats_router
from api.alarmsupervise import alarm_supervise_router
from api.availability import availability_router
from api.bypasses import bypass_router
from api.context import (
    CENTRE_ROLES,
    KNOWN_QUERY,
    WRITERS,
    AppContext,
    Caller,
    Ctx,
    WriteGuard,
    is_centre,
)
from api.deadletters import dead_letter_router
from api.handover import handover_router
from api.hazards import hazard_router
from api.hazardstats import hazard_stats_router
from api.hazardsupervise import hazard_supervise_router
from api.headers import SecurityHeaders
from api.keys import key_router
from api.livestream import stream_route
from api.locktests import lock_test_router
from api.models import MePublic
from api.problems import BodyLimit, Unhandled, install_problem_handlers
from api.readiness import readiness_router, readyz
from api.registry import registry_router
from api.rulepacks import rule_pack_router
from api.sensors import sensor_routes
from api.sites import site_router
from api.supervisions import supervision_router
from api.vehicles import vehicle_routes
from ingest.metrics import store_metrics

__all__ = ["AppContext", "create_app"]


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

    sensor_routes(r)
    stream_route(r)
    vehicle_routes(r)
    return r


@functools.cache
def _routers() -> tuple[APIRouter, ...]:
    """The `/api/v1` routers, built once a process: an app includes them as they are (FastAPI
    keeps each inclusion's own view of them), so a hub, or a test, making another app does not
    analyse every route's signature again (about half of `create_app`'s second). They hold no
    state: the app's is on the app (`app.state`) or in its `AppContext`."""
    return (
        _router(),
        alarm_router(),
        alarm_stats_router(),
        availability_router(),
        lock_test_router(),
        bypass_router(),
        hazard_stats_router(),  # (these two before /hazards/{id} and /hazards/{id}/{step})
        hazard_supervise_router(),
        alarm_supervise_router(),
        supervision_router(),
        hazard_router(),
        handover_router(),
        site_router(),
        rule_pack_router(),
        key_router(),
        registry_router(),
        dead_letter_router(),
        readiness_router(),
    )


def _store_metrics(store: object) -> str:
    """The store's own counters and gauges (spool depth, refused lines ...), when it has them."""
    stats = getattr(store, "stats", None)
    return store_metrics(stats()) if callable(stats) else ""


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
    # a route's unexpected error as a 500 problem inside SecurityHeaders: Starlette's own 500
    # comes from outside every middleware added here, and had none of the browser's headers
    app.add_middleware(Unhandled, metrics=ctx.metrics)  # and counts it
    app.add_middleware(SecurityHeaders)  # last added, outermost: on the 413 and the 500 too
    for router in _routers():
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

    # open: health probes carry no key (the reason in full for the centre's admin)
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["ops"])

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
