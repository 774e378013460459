"""The hub's lateness window (`lateness_s`): a late reading within it is judged in order by the
dispatcher, counted as rewound; without it, counted late and not judged."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.statedb import StateDB
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.registry import build_registry

from e2e_helpers import ROOT

T0 = 1_800_000_000_000


def registry(lateness_s: float, extra: tuple[dict, ...] = ()):
    config = {
        "lateness_s": lateness_s,
        "tenants": [
            {
                "id": "north-coal",
                "sites": [
                    {
                        "id": "face",
                        "devices": [
                            {
                                "id": "sub",
                                "profile": "coal-substation",
                                "modbus": {"host": "127.0.0.1", "port": 1502, "unit": 1},
                                "sensors": [
                                    {
                                        "id": "t1",
                                        "point": "ch4_t1",
                                        "kind": "methane",
                                        "levels": [
                                            {
                                                "name": "alarm",
                                                "tier": "yellow",
                                                "above": 1.0,
                                                "recover": 1.0,
                                                "on_samples": 3,
                                            }
                                        ],
                                    },
                                    *extra,
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(HubConfig.model_validate(config), profiles, packs, "t")


def batch(i: int, ts: int, value: float, seq: int) -> ReadingBatch:
    return ReadingBatch(
        np.array([i], np.int32),
        np.array([ts], np.int64),
        np.array([value]),
        np.zeros(1, np.uint8),
        np.zeros(1, np.int64),
        np.array([seq], np.int64),
    )


@pytest.mark.parametrize(("lateness_s", "raised"), [(60.0, True), (0.0, False)])
async def test_a_late_reading_completing_three_in_a_row(tmp_path, lateness_s, raised):
    reg = registry(lateness_s)
    i = reg.sensor("t1").index
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    metrics = Metrics()
    d = Dispatcher(reg, store, db, metrics)
    try:
        events = []
        for seq, (ts, value) in enumerate(((T0, 1.5), (T0 + 2000, 1.5), (T0 + 1000, 1.5))):
            events += await d.judge(batch(i, ts, value, seq), [], ts + 100)
        got = [(e.kind, e.ts) for e in events]
        if raised:  # three in a row by event time: raised at the third, T0 + 2 s
            assert got == [("raised", T0 + 2000)]
            assert metrics.total("hazardhub_readings_rewound_total") == 1
            assert metrics.total("hazardhub_readings_late_total") == 0
        else:
            assert got == []
            assert metrics.total("hazardhub_readings_late_total") == 1
    finally:
        await store.close()
        db.close()


T2 = {"id": "t2", "point": "ch4_t2", "kind": "methane", "rule": "coal-methane.return-middle"}


async def test_the_window_survives_a_configuration_change_and_a_restart(tmp_path):
    """With a window, a configuration change through the API failed (500, rolled back) and the
    hub did not start again once it had saved its state (helper-81: IndexError in remap_core,
    the window's arrays of a fresh state are empty). A change keeps the window's readings; a
    restart starts the window afresh from the alarms the database restores."""
    reg = registry(60.0)
    i = reg.sensor("t1").index
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    state_file = tmp_path / "analytics-state.npz"
    d = Dispatcher(reg, store, db, Metrics(), state_file=state_file)
    try:
        events = []
        for seq, ts in enumerate((T0, T0 + 2000)):
            events += await d.judge(batch(i, ts, 1.5, seq), [], ts + 100)
        d.reload(registry(60.0, (T2,)), T0 + 2100)  # a sensor added
        i = d.registry.sensor("t1").index
        events += await d.judge(batch(i, T0 + 1000, 1.5, 2), [], T0 + 2200)  # late, in the window
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000)]
        await d.save_state()
    finally:
        await store.close()
        db.close()
    reg = registry(60.0, (T2,))
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    try:
        d = Dispatcher(reg, store, db, Metrics(), state_file=state_file)  # it raised here
        i = reg.sensor("t1").index
        events = await d.judge(batch(i, T0 + 3000, 0.5, 3), [], T0 + 3100)
        assert [(e.kind, e.ts) for e in events] == [("cleared", T0 + 3000)]
    finally:
        await store.close()
        db.close()
