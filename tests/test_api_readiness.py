"""`GET /api/v1/readiness`, what the dashboard's banner reads: the hub's status, its cause's code
and since when to every key, the reason in full to the monitoring centre's keys only; since when
counts from the hub's first look, not from the first request (the hub looks every second)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from api.readywatch import ReadinessWatch, status_of
from hazardhub.hub import Hub, HubSettings
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, mine_registry
from services import free_port

KEYS = {
    "admin": ApiKeySpec(name="admin", sha256=hash_key("k-admin"), role="admin"),
    "op": ApiKeySpec(name="op", sha256=hash_key("k-op"), role="operator"),
    # a centre's role, of some tenants only: not the centre's
    "op-coal": ApiKeySpec(
        name="op-coal", sha256=hash_key("k-op-coal"), role="operator", tenants=("north-coal",)
    ),
    "coal": ApiKeySpec(
        name="coal", sha256=hash_key("k-coal"), role="enterprise", tenants=("north-coal",)
    ),
    "view": ApiKeySpec(
        name="view", sha256=hash_key("k-view"), role="viewer", tenants=("north-coal",)
    ),
}
SPOOLING = (
    "the store refuses writes (influxdb_auth: InfluxDB at db.example:8086 answered 401 "
    "authorization failed): readings are judged and kept in the disk spool until it is fixed"
)
HELD = (
    "the store refuses writes since 2026-12-01T08:00:00+00:00 (sqlite_full: database or disk "
    "is full at /srv/hub/ts.db): ingest holds the messages unacknowledged"
)
BROKER = "not subscribed to the broker: no reading is heard"


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{who}"}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[AppContext, httpx.AsyncClient]]:
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    ctx = AppContext(reg, store, db, Metrics(), KeyRing(list(KEYS.values())))
    app = create_app(ctx)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield ctx, client
    await store.close()
    db.close()


def test_since_when_is_the_present_causes_first_look() -> None:
    why: list[str | None] = [None]
    watch = ReadinessWatch(lambda: why[0])
    assert watch.look(1000).since_ms is None
    why[0] = BROKER
    assert watch.look(2000).since_ms == 2000
    assert watch.look(9000).since_ms == 2000  # the same cause lasting
    why[0] = HELD
    now = watch.look(10_000)
    assert (now.status, now.cause, now.since_ms) == ("not_ready", "sqlite_full", 10_000)
    why[0] = None
    assert watch.look(11_000).status == "ready"
    why[0] = HELD
    assert watch.look(12_000).since_ms == 12_000  # a new outage: counted anew
    assert status_of(SPOOLING) == "degraded"
    assert status_of(HELD) == status_of(BROKER) == status_of("something new") == "not_ready"


async def test_every_key_reads_the_cause_the_centre_alone_the_reason(rig) -> None:
    ctx, api = rig
    assert (await api.get("/api/v1/readiness")).status_code == 401
    for who in KEYS:
        r = await api.get("/api/v1/readiness", headers=auth(who))
        assert r.json() == {"status": "ready", "cause": None, "reason": None, "since_ms": None}
    ctx.not_ready = lambda: SPOOLING
    before = time.time_ns() // 1_000_000
    first = (await api.get("/api/v1/readiness", headers=auth("coal"))).json()
    assert first["status"] == "degraded" and first["cause"] == "influxdb_auth", first
    assert first["reason"] is None  # InfluxDB's address and words: the centre's
    assert first["since_ms"] >= before
    for who in ("admin", "op"):  # the monitoring centre: the reason in full
        said = (await api.get("/api/v1/readiness", headers=auth(who))).json()
        assert said == {**first, "reason": SPOOLING}, (who, said)
    for who in ("op-coal", "view"):
        said = (await api.get("/api/v1/readiness", headers=auth(who))).json()
        assert said == first, (who, said)
    # a probe's /readyz looks too: the same cause lasting keeps its since
    assert (await api.get("/readyz")).text == "not ready: influxdb_auth\n"
    await asyncio.sleep(0.01)
    again = (await api.get("/api/v1/readiness", headers=auth("coal"))).json()
    assert again["since_ms"] == first["since_ms"]
    ctx.not_ready = lambda: "the hub's clock is behind the gateways at /srv/x"  # not known here
    other = (await api.get("/api/v1/readiness", headers=auth("coal"))).json()
    assert other["cause"] == "other" and other["reason"] is None, other
    assert other["status"] == "not_ready" and other["since_ms"] > first["since_ms"]


async def test_a_hub_without_its_broker_says_so_since_it_started_not_since_asked(
    tmp_path: Path,
) -> None:
    """The hub looks every second: a dashboard opened a while into an outage reads when it began
    (as far as the hub saw it), not the moment it asked."""
    api_port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=free_port(), api_port=api_port),
        extra_keys=[KEYS["op"]],
    )
    stop = asyncio.Event()
    started = time.time_ns() // 1_000_000
    task = asyncio.create_task(hub.run(stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as api:

            async def answered() -> httpx.Response | None:
                try:
                    return await api.get("/healthz")  # not /readyz: it looks too
                except httpx.TransportError:
                    return None

            await eventually(answered, 10, "the API to listen")
            await asyncio.sleep(2.5)
            asked = time.time_ns() // 1_000_000
            said = (await api.get("/api/v1/readiness", headers=auth("op"))).json()
            assert said["status"] == "not_ready" and said["cause"] == "broker", said
            assert said["reason"].startswith("not subscribed to the broker"), said
            assert started <= said["since_ms"] <= asked - 1500, (started, said, asked)
    finally:
        stop.set()
        await task
