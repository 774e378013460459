"""The live stream follows its key: a stream open when its key is revoked, expires or leaves the
configuration ends (an `end` event) and sends nothing more, and an event of a tenant a new
configuration took off the key is not sent. Over a real socket (uvicorn), as a browser reads it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import uvicorn

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, Principal, hash_key
from api.registrydb import RegistryDB
from api.stream import Broadcaster
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec
from telemetry.registry import Registry

from e2e_helpers import eventually, mine_registry
from services import free_port

COAL, CHEM = "north-coal", "acme-chem"
DAY = 86_400_000
ROOT = ApiKeySpec(name="root", sha256=hash_key("k-root"), role="admin")
BOTH = ApiKeySpec(name="both", sha256=hash_key("k-both"), role="operator", tenants=(COAL, CHEM))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Rig:
    api: httpx.AsyncClient
    ring: KeyRing
    stream: Broadcaster
    reg: Registry
    clock: Clock

    def reading(self, sensor_index: int, value: float) -> None:
        self.stream.on_readings(
            ReadingBatch(
                np.array([sensor_index], np.int32),
                np.array([self.clock.now], np.int64),
                np.array([value]),
                np.zeros(1, np.uint8),
                np.zeros(1, np.int64),
                np.zeros(1, np.int64),
            )
        )

    @property
    def coal(self) -> int:
        return self.reg.sensor("ch4-t1").index

    @property
    def chem(self) -> int:
        (vehicle,) = self.reg.vehicles.values()  # the acme-chem tanker's speed
        return vehicle.speed_sensor


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    rdb = RegistryDB(tmp_path / "registry.db")
    clock = Clock()
    ring = KeyRing([ROOT, BOTH], rdb, clock=clock)
    stream = Broadcaster(reg, heartbeat_s=0.2)
    app = create_app(AppContext(reg, store, db, Metrics(), ring, stream=stream))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve(), name="api")
    await eventually(lambda: _started(server), 10, "the API to listen")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
        yield Rig(api, ring, stream, reg, clock)
    server.should_exit = True
    await serving
    await store.close()
    db.close()
    rdb.close()


async def _started(server: uvicorn.Server) -> bool:
    return server.started


class Reader:
    """A stream read in a task: the (event, data) pairs so far, and whether it has ended."""

    def __init__(self, api: httpx.AsyncClient, key: str, query: str = "") -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.ended = False
        self.task = asyncio.create_task(self._read(api, key, query), name="reader")

    async def _read(self, api: httpx.AsyncClient, key: str, query: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        url = f"/api/v1/stream?kinds=reading{query}"
        async with api.stream("GET", url, headers=headers) as r:
            assert r.status_code == 200
            kind = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.append((kind, orjson.loads(line[6:])))
        self.ended = True

    def tenants(self) -> list[object]:
        return [d["tenant"] for k, d in self.events if k == "reading"]

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _subscribed(rig: Rig, n: int = 1) -> bool:
    return rig.stream.subscribers >= n


async def make_key(rig: Rig, body: dict[str, object]) -> str:
    r = await rig.api.post(
        "/api/v1/api-keys", json=body, headers={"Authorization": "Bearer k-root"}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def test_stream_of_a_revoked_key_ends_and_sends_nothing_more(rig: Rig) -> None:
    key = await make_key(rig, {"name": "wall", "role": "viewer", "tenants": [COAL]})
    reader = Reader(rig.api, key)
    try:
        await eventually(lambda: _subscribed(rig), 5, "the subscriber")
        rig.reading(rig.coal, 0.5)
        await eventually(lambda: _has(reader, 1), 5, "the first reading")
        r = await rig.api.delete(
            "/api/v1/api-keys/wall", headers={"Authorization": "Bearer k-root"}
        )
        assert r.status_code == 204
        rig.reading(rig.coal, 0.7)  # before the next heartbeat
        await asyncio.wait_for(reader.task, 5)
        assert reader.ended
        assert reader.events == [
            ("reading", reader.events[0][1]),
            ("end", {"reason": "the key no longer authenticates"}),
        ]
        assert reader.events[0][1]["value"] == 0.5
        assert rig.stream.subscribers == 0
    finally:
        await reader.close()


async def test_quiet_stream_of_an_expired_key_ends_at_the_next_heartbeat(rig: Rig) -> None:
    key = await make_key(
        rig, {"name": "short", "role": "viewer", "tenants": [COAL], "expires_in_days": 1}
    )
    reader = Reader(rig.api, key)
    try:
        await eventually(lambda: _subscribed(rig), 5, "the subscriber")
        await asyncio.sleep(0.5)  # heartbeats: the key still authenticates
        assert not reader.ended
        rig.clock.now += DAY
        await asyncio.wait_for(reader.task, 5)
        assert reader.events == [("end", {"reason": "the key no longer authenticates"})]
    finally:
        await reader.close()


async def test_stream_follows_a_new_configuration_of_its_key(rig: Rig) -> None:
    reader = Reader(rig.api, "k-both")
    try:
        await eventually(lambda: _subscribed(rig), 5, "the subscriber")
        rig.reading(rig.coal, 0.5)
        rig.reading(rig.chem, 40.0)
        await eventually(lambda: _has(reader, 2), 5, "a reading of each tenant")
        assert sorted(map(str, reader.tenants())) == [CHEM, COAL]
        # a new configuration keeps the key to the chemical tenant (as Hub.switch does)
        rig.ring.set_config_keys([ROOT, BOTH.model_copy(update={"tenants": (CHEM,)})])
        rig.reading(rig.coal, 0.6)
        rig.reading(rig.chem, 41.0)
        rig.reading(rig.coal, 0.7)
        await eventually(lambda: _has(reader, 3), 5, "the chemical tenant's reading")
        await asyncio.sleep(0.5)
        assert reader.tenants()[2:] == [CHEM]
        assert not reader.ended
        # and one without the key at all
        rig.ring.set_config_keys([ROOT])
        await asyncio.wait_for(reader.task, 5)
        assert reader.events[-1] == ("end", {"reason": "the key no longer authenticates"})
    finally:
        await reader.close()


async def _has(reader: Reader, n: int) -> bool:
    return len(reader.tenants()) >= n


async def test_a_key_over_its_streams_is_answered_429_with_the_reason(rig: Rig) -> None:
    """Streams are capped per key (security audit, helper-107): one more is refused before it
    starts, saying why; another key still opens its own."""
    rig.stream.max_per_key = 2
    both = Principal("both", "operator", frozenset({COAL, CHEM}))
    held = [rig.stream.subscribe(both, frozenset({"alarm"}), key=hash_key("k-both")) for _ in "ab"]
    try:
        r = await rig.api.get("/api/v1/stream", headers={"Authorization": "Bearer k-both"})
        assert r.status_code == 429, r.text
        assert "this key has 2 live streams open" in r.json()["detail"]
        assert r.headers["retry-after"] == "30"
        assert rig.stream.subscribers == 2
    finally:
        for sub in held:
            rig.stream.unsubscribe(sub)


async def test_a_stream_asked_for_one_tenant_sends_that_tenants_alone(rig: Rig) -> None:
    """`?tenant=` was ignored: a centre's wall display of one enterprise got every tenant's
    readings. A key of several tenants gets the one asked; another's (or none of that name)
    is 404 before anything is streamed; the key as it is now still decides."""
    for key, tenant in (("k-both", "nowhere"), ("k-root", "nowhere")):
        assert await _refused(rig, key, tenant) == f"tenant {tenant!r} not found"
    root = Reader(rig.api, "k-root", f"&tenant={CHEM}")
    both = Reader(rig.api, "k-both", f"&tenant={COAL}")
    try:
        await eventually(lambda: _subscribed(rig, 2), 5, "the subscribers")
        rig.reading(rig.coal, 0.5)
        rig.reading(rig.chem, 40.0)
        rig.reading(rig.coal, 0.6)
        await eventually(lambda: _has(both, 2), 5, "the coal readings")
        await eventually(lambda: _has(root, 1), 5, "the chemical reading")
        await asyncio.sleep(0.3)
        assert both.tenants() == [COAL, COAL]
        assert root.tenants() == [CHEM]
        # a new configuration takes the coal tenant off the key: nothing more of it
        rig.ring.set_config_keys([ROOT, BOTH.model_copy(update={"tenants": (CHEM,)})])
        rig.reading(rig.coal, 0.7)
        rig.reading(rig.chem, 41.0)
        await eventually(lambda: _has(root, 2), 5, "the second chemical reading")
        await asyncio.sleep(0.5)
        assert both.tenants() == [COAL, COAL] and not both.ended
    finally:
        await both.close()
        await root.close()
    assert await _refused(rig, "k-both", COAL) == f"tenant {COAL!r} not found"  # not the key's


async def _refused(rig: Rig, key: str, tenant: str) -> str:
    """Why a stream of `tenant` is refused (404); a stream that starts is a failure (not a
    hang: its first bytes are enough)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with rig.api.stream("GET", f"/api/v1/stream?tenant={tenant}", headers=headers) as r:
        assert r.status_code == 404, r.status_code
        return str(orjson.loads(await r.aread())["detail"])
