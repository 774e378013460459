"""A rest counted only with the engine off (`rest_needs_acc_off`, per class): a coach stopped
with ACC on is not resting; the JSON record's `acc_on` carried to the fleet's rules."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import orjson
import pytest
from test_fleet_alarms import CONFIG, T0
from test_vehicle_analytics import (
    CST_0800,
    HOUR,
    LON0,
    MIN,
    STEP,
    batch,
    drive,
    fleet,
    kinds,
    run,
)

from alerts.statedb import StateDB
from alerts.table import kind_name
from alerts.vehicles import (
    ClassLimits,
    EventKind,
    FleetSettings,
    FleetState,
    ReferenceFleet,
    compile_fleet,
    evaluate_fleet,
)
from alerts.vehicles.lateness import FleetHistory, evaluate_late
from alerts.vehicles.table import FleetTable
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.positions import decode_positions
from ingest.store.base import PositionBatch, positioned
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT

Row = tuple[Any, ...]


def coach_table(acc_off: bool, lateness_s: float = 0.0) -> FleetTable:
    coach = ClassLimits.model_validate(
        {"speed_kmh": 100.0, "expressway_kmh": 100.0, "rest_needs_acc_off": acc_off}
    )
    settings = FleetSettings(coach=coach, lateness_s=lateness_s)
    return compile_fleet(settings, fleet("coach"))


def with_acc(rows: list[Row], stop_acc: int, moving_acc: int = 1) -> list[Row]:
    """The rows with a driver (none) and the ACC: `stop_acc` at stopped fixes."""
    return [(*r, 0, moving_acc if r[4] > 5 else stop_acc) for r in rows]


def stop_in_the_middle(stop_acc: int) -> list[Row]:
    """A coach driving 3 h 50 min, stopping 25 min (ACC `stop_acc`), driving 20 min more."""
    legs = [(3 * HOUR + 50 * MIN, 90.0), (25 * MIN, 0.0), (20 * MIN, 90.0)]
    return with_acc(drive(10, CST_0800, legs), stop_acc)


FATIGUE_AT = CST_0800 + 3 * HOUR + 50 * MIN + 25 * MIN + 10 * MIN + STEP  # 4 h 00 min 30 s driven


@pytest.mark.parametrize("acc_off", [True, False])
def test_a_stop_with_the_engine_running_is_no_rest_with_the_option(acc_off: bool) -> None:
    """With `rest_needs_acc_off` the 25 min idling are no rest: the stretch goes on (the idle
    minutes not counted as driving), and fatigue is raised at 4 h of driving; without it they
    are a rest, as before."""
    events = run(coach_table(acc_off), stop_in_the_middle(stop_acc=1))
    if acc_off:
        assert [e[1:4] for e in events] == [
            (EventKind.FATIGUE_CONTINUOUS, FATIGUE_AT, 4 * 3600.0 + 30)
        ]
    else:
        assert events == []


@pytest.mark.parametrize(("acc_off", "stop_acc"), list(itertools.product([True, False], [0, -1])))
def test_a_stop_with_the_engine_off_or_acc_not_said_is_a_rest_either_way(
    acc_off: bool, stop_acc: int
) -> None:
    assert run(coach_table(acc_off), stop_in_the_middle(stop_acc)) == []


def test_no_acc_column_at_all_is_a_rest() -> None:
    rows = [r[:5] for r in stop_in_the_middle(stop_acc=1)]
    assert run(coach_table(True), rows) == []


def test_idling_ends_a_rest_going_on() -> None:
    """15 min with the engine off, 10 idling, 15 off: no rest of 20 min; 10 idling then 20 off:
    one."""

    def stops(parts: list[tuple[int, int]]) -> list[Row]:
        rows = with_acc(drive(10, CST_0800, [(3 * HOUR + 50 * MIN, 90.0)]), 0)[:-1]
        t, lat, lon = rows[-1][1] + STEP, rows[-1][2], rows[-1][3]
        for minutes, acc in parts:
            for _ in range(minutes * MIN // STEP):
                rows.append((10, t, lat, lon, 0.0, 0, acc))
                t += STEP
        more = drive(10, t, [(20 * MIN, 90.0)], lat=lat)
        return rows + [(v, tt, la, lon, sp, 0, 1 if sp else 0) for v, tt, la, _, sp in more]

    split = stops([(15, 0), (10, 1), (15, 0)])
    assert kinds(run(coach_table(True), split)) == [EventKind.FATIGUE_CONTINUOUS]
    assert run(coach_table(False), split) == []
    assert run(coach_table(True), stops([(10, 1), (20, 0)])) == []


def test_a_silence_after_an_idle_fix_is_a_rest_beyond_the_gap() -> None:
    """A terminal that says ACC on and goes silent (switched off with the engine): idle for
    `max_drive_gap_s` (20 min), a rest after it, as after a moving fix: 45 min of silence end
    the stretch, 35 min do not."""
    for silence, raised in ((45, False), (35, True)):
        rows = with_acc(drive(10, CST_0800, [(3 * HOUR + 50 * MIN, 90.0)]), 1)
        again = rows[-1][1] + silence * MIN
        rows += with_acc(drive(10, again, [(20 * MIN, 90.0)]), 1)
        got = [e for e in run(coach_table(True), rows) if e[1] == EventKind.FATIGUE_CONTINUOUS]
        assert bool(got) is raised


@pytest.mark.parametrize("size", [1, 7, 40])
def test_the_idle_stop_carries_over_batches_and_the_reference_agrees(size: int) -> None:
    table = coach_table(True)
    rows = stop_in_the_middle(stop_acc=1)
    state, ref = FleetState.new(len(table)), ReferenceFleet(table)
    got, want = [], []
    for lo in range(0, len(rows), size):
        b = batch(rows[lo : lo + size])
        state, events = evaluate_fleet(table, state, b, rows[lo : lo + size][-1][1])
        got += events.rows()
        want += ref.evaluate(b, rows[lo : lo + size][-1][1])
    assert [e[1:3] for e in got] == [(EventKind.FATIGUE_CONTINUOUS, FATIGUE_AT)]
    assert got == want


def test_late_idle_fixes_are_judged_in_order_by_the_lateness_window() -> None:
    """A stop of 40 min idling (a fix every 2 min: the ring keeps all of it), its last fixes
    held back and sent after the next leg's first (within the window): the rewind judges the
    kept fixes and the late ones with their ACC, as in order: no rest, raised at 4 h."""
    table = coach_table(True, lateness_s=600.0)
    rows = with_acc(drive(10, CST_0800, [(3 * HOUR + 50 * MIN, 90.0)]), 1)[:-1]
    stop_at = rows[-1][1] + STEP
    lat, lon = rows[-1][2], rows[-1][3]
    stop = [(10, stop_at + k * 2 * MIN, lat, lon, 0.0, 0, 1) for k in range(20)]
    more = [
        (v, t, la, lo - LON0 + lon, sp, d, a)
        for v, t, la, lo, sp, d, a in with_acc(drive(10, stop_at + 40 * MIN, [(20 * MIN, 90.0)]), 1)
    ]  # on from where it stopped
    at = stop_at + 40 * MIN + 10 * MIN + STEP  # 4 h 00 min 30 s driven
    want = [(EventKind.FATIGUE_CONTINUOUS, at)]
    assert [e[1:3] for e in run(table, rows + stop + more)] == want  # in order
    order = rows + stop[:-3] + more[:1] + stop[-3:] + more[1:]
    state, hist = FleetState.new(len(table)), FleetHistory.new(len(table))
    got, rewound = [], 0
    for lo in range(0, len(order), 5):
        chunk = order[lo : lo + 5]
        state, events = evaluate_late(table, state, hist, batch(chunk), max(r[1] for r in chunk))
        got += events.rows()
        assert hist.late == 0
        rewound += hist.rewound
    assert rewound > 0
    assert [e[1:3] for e in got] == want


def test_the_class_option_is_off_by_default_and_read_from_the_settings() -> None:
    assert not compile_fleet(FleetSettings(), fleet("coach", "hazmat")).rest_needs_acc_off.any()
    settings = FleetSettings.model_validate({"coach": {"rest_needs_acc_off": True}})
    table = compile_fleet(settings, fleet("coach", "hazmat", "charter"))
    assert table.rest_needs_acc_off.tolist() == [True, False, False]
    assert settings.coach.speed_kmh == 100.0  # the class's other defaults kept


# ingest: acc_on from the JSON record to the fleet's rules --------------------------------------


def test_acc_on_is_carried_as_a_column() -> None:
    rec = {"ts": T0, "lat": 30.0, "lon": 104.0, "speed_kmh": 0.0, "heading_deg": 0.0}
    recs = [{**rec, "acc_on": True}, {**rec, "ts": T0 + 1, "acc_on": False}, {**rec, "ts": T0 + 2}]
    assert decode_positions(orjson.dumps(recs)).acc.tolist() == [1, 0, -1]
    assert decode_positions(orjson.dumps([])).acc.dtype == np.int8

    def pb(n: int, acc: list[int] | None) -> PositionBatch:
        lat = np.array([30.0, 0.0, 30.0][:n])
        z = np.zeros(n)
        said = None if acc is None else np.array(acc, np.int8)
        return PositionBatch(np.zeros(n, np.int32), np.arange(n), lat, lat, z, z, acc=said)

    both = PositionBatch.concat([pb(3, [1, 0, 1]), pb(2, None)])
    assert both.acc is not None and both.acc.tolist() == [1, 0, 1, -1, -1]
    assert PositionBatch.concat([pb(2, None), pb(1, None)]).acc is None
    kept = positioned(pb(3, [1, 0, 0]))  # the report without a fix (0, 0) left out
    assert kept.acc is not None and kept.acc.tolist() == [1, 0]


async def test_acc_on_in_json_positions_decides_the_coachs_rest(tmp_path) -> None:
    """Through the pipeline and the dispatcher: a coach of a centre whose rules say 熄火休息
    idles 25 min with ACC on and is raised at 4 h of driving; the same with ACC off is not; a
    payload without acc_on carries no column."""
    config = CONFIG + "fleet:\n  coach: {rest_needs_acc_off: true}\n"
    profiles, packs = load_profiles(ROOT / "profiles")
    reg = build_registry(parse_document(config, HubConfig, "fleet.yaml"), profiles, packs, "x")
    topic = TopicLayout().position("acme", "coach")
    legs = [(3 * HOUR + 50 * MIN, 90.0), (25 * MIN, 0.0), (20 * MIN, 90.0)]
    rows = drive(0, T0, legs)
    for stop_acc, raised in ((1, True), (0, False), (None, False)):
        folder = tmp_path / str(stop_acc)
        folder.mkdir()
        db, store = StateDB(folder / "state.db"), SqliteStore(reg, folder / "ts.db")
        dispatcher = Dispatcher(reg, store, db, Metrics())
        pipeline = Pipeline(reg, TopicLayout(), Metrics())
        await store.open()
        try:
            for lo in range(0, len(rows), 60):
                part = rows[lo : lo + 60]
                recs = [
                    {"ts": t, "lat": la, "lon": ln, "speed_kmh": sp, "heading_deg": 90.0}
                    | ({} if stop_acc is None else {"acc_on": bool(stop_acc) if sp == 0 else True})
                    for _, t, la, ln, sp in part
                ]
                h = pipeline.handle(topic, orjson.dumps(recs), part[-1][1])
                assert h.positions is not None and not h.reasons
                assert (h.positions.acc is None) is (stop_acc is None)
                await dispatcher.judge(None, [h.positions], part[-1][1])
            fatigue = [
                a
                for a in db.list_alarms(None)
                if a.rule == "fleet" and kind_name(a.side) == "fatigue"
            ]
            assert bool(fatigue) is raised
        finally:
            await store.close()
            db.close()
