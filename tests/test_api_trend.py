"""What the dashboard's trend and tiles read from the API: `aggregate=minmax` (the lowest and the
highest measurement of each window in one answer, from either store) and, for a sensor whose
device reports on change, the most it stays silent (`max_silent_s`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_store_contract import T0, make_store

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch, TimeSeriesStore
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry

KEYS = [
    ApiKeySpec(name="all", sha256=hash_key("k-all"), role="operator"),
    ApiKeySpec(name="other", sha256=hash_key("k-other"), role="viewer", tenants=("other",)),
]


def _registry() -> tuple[Registry, str]:
    """A fresh tenant (stores shared by tests never mix its series with another's): device d1
    polled, device d2 reporting on change (silent for at most 600 s)."""
    u = uuid.uuid4().hex[:10]
    profile = {"name": "gasdet", "points": [{"name": "ch4", "address": 0, "unit": "%LEL"}]}

    def sensor(name: str) -> dict[str, str]:
        return {"id": f"{u}-{name}", "point": "ch4", "kind": "methane"}

    config = HubConfig.model_validate(
        {
            "device_profiles": [profile],
            "tenants": [
                {
                    "id": f"t{u}",
                    "sites": [
                        {
                            "id": "s1",
                            "devices": [
                                {
                                    "id": "d1",
                                    "profile": "gasdet",
                                    "sensors": [sensor("polled")],
                                },
                                {
                                    "id": "d2",
                                    "profile": "gasdet",
                                    "report": {"on_change": True, "max_silent_s": 600},
                                    "sensors": [sensor("on-change")],
                                },
                            ],
                        }
                    ],
                },
                {"id": "other", "sites": []},
            ],
        }
    )
    return build_registry(config), u


@dataclass
class Rig:
    api: httpx.AsyncClient
    u: str  # the sensors' prefix
    store: TimeSeriesStore
    registry: Registry


@pytest.fixture(params=["sqlite", "influx"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    reg, u = _registry()
    store = make_store(request.param, reg, request)
    await store.open()
    db = StateDB(tmp_path / "state.db")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing(KEYS)))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            yield Rig(client, u, store, reg)
    finally:
        await store.close()
        db.close()


def _batch(sensor: int, points: list[tuple[int, float, Quality]]) -> ReadingBatch:
    n = len(points)
    return ReadingBatch(
        np.full(n, sensor, np.int32),
        np.array([t for t, _, _ in points], np.int64),
        np.array([v for _, v, _ in points]),
        np.array([q for _, _, q in points], np.uint8),
        np.ones(n, np.int64),
        np.arange(n, dtype=np.int64),
    )


async def test_minmax_gives_the_lowest_and_highest_measurement_of_each_window(rig: Rig) -> None:
    """One request per redraw of the trend's band; windows without measurements are left out
    (the dashboard draws a gap there), and a calibration's test gas is no measurement."""
    info = rig.registry.sensor(f"{rig.u}-polled")
    assert info is not None
    await rig.store.write_readings(
        _batch(
            info.index,
            [
                (T0, 0.3, Quality.GOOD),
                (T0 + 2000, 0.1, Quality.GOOD),
                (T0 + 4000, 0.9, Quality.GOOD),
                (T0 + 5000, 9.9, Quality.CALIBRATION),  # the test gas: not in the band
                # nothing in [T0 + 10 s, T0 + 20 s): a gap
                (T0 + 21_000, 0.5, Quality.GOOD),
                (T0 + 25_000, 7.0, Quality.CALIBRATION),  # a window of test gas only
            ],
        )
    )
    r = await rig.api.get(
        f"/api/v1/sensors/{rig.u}-polled/history",
        params={"start": T0, "end": T0 + 30_000, "every": 5000, "aggregate": "minmax"},
        headers={"Authorization": "Bearer k-all"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"ts": T0, "min": 0.1, "max": 0.9},
        {"ts": T0 + 20_000, "min": 0.5, "max": 0.5},
    ]
    # a key of another tenant does not see the sensor at all
    r = await rig.api.get(
        f"/api/v1/sensors/{rig.u}-polled/history",
        params={"start": T0, "end": T0 + 30_000, "every": 5000, "aggregate": "minmax"},
        headers={"Authorization": "Bearer k-other"},
    )
    assert r.status_code == 404


async def test_a_sensor_says_whether_its_device_reports_on_change(rig: Rig) -> None:
    r = await rig.api.get("/api/v1/sensors", headers={"Authorization": "Bearer k-all"})
    by_id = {s["id"]: s for s in r.json()}
    polled, on_change = by_id[f"{rig.u}-polled"], by_id[f"{rig.u}-on-change"]
    assert (polled["report_on_change"], polled["max_silent_s"]) == (False, None)
    assert (on_change["report_on_change"], on_change["max_silent_s"]) == (True, 600)
