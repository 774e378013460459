"""Where a vehicle is now, through the API (an operator could not ask it: `/track` wants a window
of at most 7 days, `/vehicles/{id}` was 404): `GET /vehicles/{id}` with its last known position
and active alarms, and `GET /vehicles?with=last_position` for a map of the fleet, from either
store (a real influxd and the embedded SQLite store)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_store_contract import T0, make_store

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, evaluate
from alerts.statedb import StateDB
from alerts.table import compile_table
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.base import PositionBatch, TimeSeriesStore
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import Registry, build_registry

KEYS = [
    ApiKeySpec(name="centre", sha256=hash_key("k-centre"), role="operator"),
    ApiKeySpec(name="b", sha256=hash_key("k-b"), role="enterprise", tenants=("placeholder",)),
]


def _registry() -> tuple[Registry, str]:
    """Fresh tenants a and b (a shared InfluxDB never mixes their series with another test's):
    a's tankers 1 and 2 (2 never sends a fix), b's coach."""
    u = uuid.uuid4().hex[:10]
    speed = {"levels": [{"name": "over", "tier": "orange", "above": 80, "recover": 75}]}
    config = HubConfig.model_validate(
        {
            "rule_packs": [{"name": "test", "rules": {"speed": speed}}],
            "tenants": [
                {
                    "id": f"a{u}",
                    "vehicles": [
                        {
                            "id": f"tk1-{u}",
                            "plate": "苏A11111",
                            "class": "hazmat",
                            "rule": "test.speed",
                        },
                        {
                            "id": f"tk2-{u}",
                            "plate": "苏A22222",
                            "class": "hazmat",
                            "rule": "test.speed",
                        },
                    ],
                },
                {
                    "id": f"b{u}",
                    "vehicles": [
                        {
                            "id": f"bus-{u}",
                            "plate": "苏B33333",
                            "class": "coach",
                            "rule": "test.speed",
                        }
                    ],
                },
            ],
        }
    )
    return build_registry(config), u


@dataclass
class Rig:
    api: httpx.AsyncClient
    u: str
    store: TimeSeriesStore
    registry: Registry
    db: StateDB

    def speed_sensor(self, vehicle: str) -> int:
        return next(
            v.speed_sensor for (_t, vid), v in self.registry.vehicles.items() if vid == vehicle
        )


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "influx"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    reg, u = _registry()
    store = make_store(request.param, reg, request)
    await store.open()
    db = StateDB(tmp_path / "state.db")
    b_key = KEYS[1].model_copy(update={"tenants": (f"b{u}",)})
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([KEYS[0], b_key])))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            yield Rig(client, u, store, reg, db)
    finally:
        await store.close()
        db.close()


def _fixes(vehicle: int, ts: list[int], lat: list[float], speed: list[float]) -> PositionBatch:
    n = len(ts)
    lat_a = np.asarray(lat, dtype=np.float64)
    return PositionBatch(
        vehicle=np.full(n, vehicle, dtype=np.int32),
        ts=np.asarray(ts, dtype=np.int64),
        lat=lat_a,
        lon=lat_a + 89.0,
        speed_kmh=np.asarray(speed, dtype=np.float64),
        heading_deg=np.full(n, 135.0),
    )


async def test_a_vehicle_says_its_newest_position_by_event_time_and_its_alarms(rig: Rig) -> None:
    """The live fixes arrive first, then the terminal's blind-area backlog (older event times):
    the last known position is the newest by event time, not the last to arrive. The active
    alarms come with it; a vehicle that never sent a fix is there with a null position."""
    tk1 = rig.speed_sensor(f"tk1-{rig.u}")
    await rig.store.write_positions(_fixes(tk1, [T0 + 50_000, T0 + 60_000], [31.5, 31.6], [90, 95]))
    await rig.store.write_positions(_fixes(tk1, [T0 + 10_000, T0 + 20_000], [31.1, 31.2], [40, 50]))
    # its speed rule raised an alarm (orange, above 80 km/h)
    table = compile_table(rig.registry.sensors)
    _, tr, _ = evaluate(
        table,
        CoreState.empty(len(rig.registry.sensors)),
        np.array([tk1], np.int32),
        np.array([T0 + 50_000], np.int64),
        np.array([90.0]),
        np.zeros(1, np.uint8),
    )
    AlarmBook(rig.db, rig.registry, table).apply(tr, T0 + 51_000)

    before = time.time()
    r = await rig.api.get(f"/api/v1/vehicles/tk1-{rig.u}", headers=_auth("k-centre"))
    assert r.status_code == 200, r.text
    got = r.json()
    age = got["last_position"].pop("age_s")
    assert math.isclose(age, before - (T0 + 60_000) / 1000, abs_tol=5)
    assert got["last_position"] == {
        "ts": T0 + 60_000,
        "lat": pytest.approx(31.6),
        "lon": pytest.approx(120.6),
        "speed_kmh": pytest.approx(95.0),
        "heading_deg": pytest.approx(135.0),
    }
    assert (got["id"], got["tenant"], got["plate"], got["vehicle_class"], got["speed_sensor"]) == (
        f"tk1-{rig.u}",
        f"a{rig.u}",
        "苏A11111",
        "hazmat",
        f"tk1-{rig.u}.speed",
    )
    [alarm] = got["active_alarms"]
    assert (alarm["kind"], alarm["tier"], alarm["rule"], alarm["started_ts"], alarm["acked"]) == (
        "above",
        "orange",
        "test.speed",
        T0 + 50_000,
        False,
    )
    assert (await rig.api.get(f"/api/v1/alarms/{alarm['id']}", headers=_auth("k-centre"))).json()[
        "sensor"
    ] == f"tk1-{rig.u}.speed"

    # no fix yet: the vehicle all the same, with a null position and no alarm
    r = await rig.api.get(f"/api/v1/vehicles/tk2-{rig.u}", headers=_auth("k-centre"))
    assert r.status_code == 200, r.text
    assert r.json()["last_position"] is None and r.json()["active_alarms"] == []


async def test_another_tenants_vehicle_is_404_as_one_that_does_not_exist(rig: Rig) -> None:
    tk1 = rig.speed_sensor(f"tk1-{rig.u}")
    await rig.store.write_positions(_fixes(tk1, [T0], [31.0], [10]))
    other = await rig.api.get(f"/api/v1/vehicles/tk1-{rig.u}", headers=_auth("k-b"))
    none = await rig.api.get("/api/v1/vehicles/no-such-truck", headers=_auth("k-b"))
    assert (other.status_code, none.status_code) == (404, 404)
    assert other.json()["detail"] == f"vehicle 'tk1-{rig.u}' not found"
    assert none.json()["detail"] == "vehicle 'no-such-truck' not found"
    own = await rig.api.get(f"/api/v1/vehicles/bus-{rig.u}", headers=_auth("k-b"))
    assert own.status_code == 200 and own.json()["last_position"] is None


async def test_the_list_with_last_position_is_a_map_of_the_fleet(rig: Rig) -> None:
    """`?with=last_position` gives each vehicle's last position (null without one), for the
    caller's vehicles only; without it the rows are as before. A speed the terminal did not
    send is null, not NaN (which is no JSON)."""
    tk1, bus = rig.speed_sensor(f"tk1-{rig.u}"), rig.speed_sensor(f"bus-{rig.u}")
    await rig.store.write_positions(_fixes(tk1, [T0 + 2000, T0 + 1000], [31.2, 31.1], [20, 10]))
    await rig.store.write_positions(_fixes(bus, [T0 + 5000], [32.0], [math.nan]))
    url = "/api/v1/vehicles"
    r = await rig.api.get(url, params={"with": "last_position"}, headers=_auth("k-centre"))
    assert r.status_code == 200, r.text
    mine = {v["id"]: v["last_position"] for v in r.json()}
    assert set(mine) == {f"tk1-{rig.u}", f"tk2-{rig.u}", f"bus-{rig.u}"}
    assert mine[f"tk2-{rig.u}"] is None
    assert (mine[f"tk1-{rig.u}"]["ts"], mine[f"tk1-{rig.u}"]["lat"]) == (
        T0 + 2000,
        pytest.approx(31.2),
    )
    assert mine[f"bus-{rig.u}"]["ts"] == T0 + 5000
    assert mine[f"bus-{rig.u}"]["speed_kmh"] is None
    assert mine[f"bus-{rig.u}"]["heading_deg"] == pytest.approx(135.0)
    # tenant-scoped: b's key sees b's coach alone; tenant= narrows the centre's
    r = await rig.api.get(url, params={"with": "last_position"}, headers=_auth("k-b"))
    assert [(v["id"], v["last_position"]["ts"]) for v in r.json()] == [(f"bus-{rig.u}", T0 + 5000)]
    r = await rig.api.get(
        url, params={"with": "last_position", "tenant": f"a{rig.u}"}, headers=_auth("k-centre")
    )
    assert sorted(v["id"] for v in r.json()) == [f"tk1-{rig.u}", f"tk2-{rig.u}"]
    # without the option: the rows as they were; an unknown option is 422
    plain = (await rig.api.get(url, headers=_auth("k-b"))).json()
    assert plain == [
        {
            "id": f"bus-{rig.u}",
            "tenant": f"b{rig.u}",
            "plate": "苏B33333",
            "vehicle_class": "coach",
            "speed_sensor": f"bus-{rig.u}.speed",
        }
    ]
    bad = await rig.api.get(url, params={"with": "last"}, headers=_auth("k-b"))
    assert bad.status_code == 422
