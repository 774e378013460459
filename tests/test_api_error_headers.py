"""Every answer of the app carries the browser's security headers, the answers of Starlette's
own error paths too: a route's unexpected error (500, which Starlette answered from outside
every middleware, without them), an unknown route (404), a method a route does not take (405),
a request that does not validate (422), a body over the limit (413) and the static files. A 500
says nothing of the error: no traceback, no message that may hold a password. Over a real
socket (uvicorn), as a browser reads them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from api.registrydb import RegistryDB
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, mine_registry
from services import free_port

ROOT = ApiKeySpec(name="root", sha256=hash_key("k-root"), role="admin")
AUTH = {"Authorization": "Bearer k-root"}
SECRET = "S3cretPass"  # in the message of the error a route meets


def _fail() -> str | None:
    raise RuntimeError(f"influxdb://hub:{SECRET}@10.0.0.5:8086 refused the connection")


@contextlib.asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """`app` served by uvicorn on a free loopback port, and a client of it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(  # its errors to the root logger, which pytest reads (no log_config)
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            log_level="error",
        )
    )
    serving = asyncio.create_task(server.serve(), name="api")

    async def started() -> bool:
        return server.started

    try:
        await eventually(started, 10, "the API to listen")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    rdb = RegistryDB(tmp_path / "registry.db")
    ctx = AppContext(reg, store, db, Metrics(), KeyRing([ROOT], rdb), not_ready=_fail)
    async with served(create_app(ctx)) as client:
        yield client
    await store.close()
    db.close()
    rdb.close()


def _secured(r: httpx.Response, what: str) -> None:
    h = r.headers
    assert h.get("x-frame-options") == "DENY", (what, r.status_code, dict(h))
    assert h.get("x-content-type-options") == "nosniff", what
    assert h.get("referrer-policy") == "no-referrer", what
    policy = h.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, what
    assert "default-src 'self'" in policy, what
    assert "'unsafe-inline'" not in policy, what


async def test_an_unexpected_error_answers_500_with_the_headers_and_no_detail(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = await api.get("/readyz")
    assert r.status_code == 500, r.text
    _secured(r, "500")
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 500 and body["instance"] == "/readyz", body
    for leak in (SECRET, "10.0.0.5", "Traceback", "RuntimeError", "influxdb", "readyz("):
        assert leak not in r.text, (leak, r.text)
    # the error is the log's: the server logs it with its traceback
    assert SECRET in caplog.text, caplog.text
    # and the hub answers on
    r = await api.get("/healthz")
    assert r.status_code == 200
    # counted in /metrics, by the route as declared (a 500 was counted nowhere: helper-220)
    assert await api_errors(api) == {'hazardhub_api_errors_total{route="/readyz"}': 1}
    with caplog.at_level(logging.CRITICAL):
        assert (await api.get("/readyz")).status_code == 500
    assert await api_errors(api) == {'hazardhub_api_errors_total{route="/readyz"}': 2}


async def api_errors(api: httpx.AsyncClient) -> dict[str, float]:
    """The series of `hazardhub_api_errors_total` on /metrics, with their counts."""
    r = await api.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert "# TYPE hazardhub_api_errors_total counter" in r.text
    return {
        series: float(value)
        for series, _, value in (line.rpartition(" ") for line in r.text.splitlines())
        if series.startswith("hazardhub_api_errors_total")
    }


async def test_starlettes_error_answers_and_the_static_files_carry_the_headers(
    api: httpx.AsyncClient,
) -> None:
    for method, path, headers, body, want in (
        ("GET", "/no-such-page", {}, None, 404),
        ("GET", "/api/v1/no-such-route", AUTH, None, 404),
        ("GET", "/static/no-such-file.js", {}, None, 404),
        ("DELETE", "/healthz", {}, None, 405),
        ("POST", "/api/v1/me", AUTH, None, 405),
        ("GET", "/api/v1/alarms?limit=many", AUTH, None, 422),
        ("POST", "/api/v1/alarms/acknowledge", AUTH, b"{not json", 422),
        ("POST", "/api/v1/alarms/acknowledge", AUTH, b"x" * (2 << 20), 413),
        ("GET", "/api/v1/me", {}, None, 401),
        ("GET", "/static/app.js", {}, None, 200),
        ("GET", "/docs-assets/swagger-ui.css", {}, None, 200),
        ("GET", "/openapi.json", {}, None, 200),
    ):
        r = await api.request(method, path, headers=headers, content=body)
        assert r.status_code == want, (method, path, r.status_code, r.text[:300])
        _secured(r, f"{method} {path}")
    # a refusal of the request is not the hub's error: nothing counted
    assert await api_errors(api) == {}
