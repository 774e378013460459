"""Action verification over the demo's coal face: polls in simulated time through the core."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from alerts.evaluate import CoreState, Readings, evaluate
from alerts.table import ACTION, FAULT, compile_table
from hazardhub.settings import load_registry
from simulators.scenario import demo_point_signals
from simulators.signals import Constant
from telemetry.ruleconfig import VerifySpec

ROOT = Path(__file__).resolve().parent.parent


def play(feed_stuck: bool, phase_s: float, poll_s: float = 1.0, latency_s: float = 0.05):
    """Poll the face substation every `poll_s` (starting at `phase_s`), judge each poll when it
    arrives `latency_s` later; return the ACTION transitions and the power-cut event times."""
    registry = load_registry(ROOT / "examples" / "demo.yaml")
    table = compile_table(registry.sensors)
    signals = dict(demo_point_signals()["kj-sub-3"])
    if feed_stuck:
        signals["feed"] = Constant(1.0)
    dev = next(d for d in registry.devices.values() if d.spec.id == "kj-sub-3")
    state = CoreState.empty(len(registry.sensors))
    t0_ms = 1_700_000_000_000
    actions, cuts = [], []
    for k in range(70):
        t_s = phase_s + k * poll_s
        ts = t0_ms + round(t_s * 1000)
        sensors = np.array(dev.sensors, np.int32)
        values = np.array([round(signals[p.name].value_at(t_s), 2) for p in dev.points])
        batch = Readings(
            sensors, np.full(len(sensors), ts, np.int64), values, np.zeros(len(sensors), np.uint8)
        )
        state, tr, _ = evaluate(table, batch, state, ts + round(latency_s * 1000))
        for s, t, _, side, _, after in tr.rows():
            if side == ACTION:
                actions.append((t, after, ts + round(latency_s * 1000)))
            elif side == 0 and after == 2 and registry.sensors[s].id == "face1301-ch4-t1":
                cuts.append(t)
    return actions, cuts, t0_ms


@pytest.mark.parametrize("phase_s", [0.0, 0.25, 0.43, 0.5, 0.75, 0.99])
def test_the_demo_feed_drop_confirms_the_power_cut(phase_s):
    actions, cuts, _ = play(feed_stuck=False, phase_s=phase_s)
    assert len(cuts) == 1
    assert actions == []


@pytest.mark.parametrize("phase_s", [0.0, 0.5])
def test_a_stuck_feed_raises_power_cut_failed_within_deadline_plus_one_poll(phase_s):
    actions, cuts, _ = play(feed_stuck=True, phase_s=phase_s)
    (cut,) = cuts
    raised = [(t, arrival) for t, after, arrival in actions if after == 1]
    ((t_raised, arrival),) = raised
    assert t_raised == cut + 2000
    # it is known at the first poll past the deadline: within deadline + one poll period
    assert arrival <= cut + 2000 + 1000 + 50
    cleared = [t for t, after, _ in actions if after == 0]
    assert len(cleared) == 1 and cleared[0] > cut + 2000  # the demand ends when methane recovers


def _backlog(feed_in_first: bool, feed_value: float) -> list[tuple[int, int, int]]:
    """The face's polls of 10 s judged late, two batches 300 ms apart (a hub catching up after a
    restart): the power-cut crossing in the first, the feed's answer (at the crossing + 0.5 s)
    in the second. Returns the ACTION transitions (ts, after, arrival)."""
    registry = load_registry(ROOT / "examples" / "demo.yaml")
    table = compile_table(registry.sensors)
    dev = next(d for d in registry.devices.values() if d.spec.id == "kj-sub-3")
    idx = {p.name: s for p, s in zip(dev.points, dev.sensors, strict=True)}
    t0 = 1_700_000_000_000
    now = t0 + 10_000  # the hub is 10 s behind the readings it judges
    state = CoreState.empty(len(registry.sensors))
    first = [(idx["ch4_t1"], t0 + 1000, 1.2), (idx["ch4_t1"], t0 + 2000, 1.7)]
    if feed_in_first:
        first.append((idx["feed"], t0 + 2000, 1.0))
    second = [(idx["ch4_t1"], t0 + 2500, 1.7), (idx["feed"], t0 + 2500, feed_value)]
    actions = []
    for rows, arrival in ((first, now), ([], now + 100), (second, now + 300)):
        s = np.array([r[0] for r in rows], np.int32)
        batch = Readings(
            s,
            np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows]),
            np.zeros(len(rows), np.uint8),
        )
        state, tr, _ = evaluate(table, batch, state, arrival)
        actions += [(t, after, arrival) for _, t, _, side, _, after in tr.rows() if side == ACTION]
    return actions


def test_a_backlog_does_not_fail_a_power_cut_whose_feed_answers_in_the_next_batch():
    """The feedback's stream is flowing (a reading of it arrived in the batch): the deadline
    waits for its readings, though the hub's clock is far past it (and a tick comes between)."""
    assert _backlog(feed_in_first=True, feed_value=0.0) == []
    # a feed still on at 2.5 s is within 2 s of the crossing: pending, not failed by the clock
    assert _backlog(feed_in_first=True, feed_value=1.0) == []


def test_a_silent_feed_still_fails_by_the_clock():
    """No reading of the feed within the grace: the clock decides, as before."""
    actions = _backlog(feed_in_first=False, feed_value=0.0)
    assert actions[0][:2] == (1_700_000_000_000 + 2000 + 2000, 1)  # at the deadline


def test_a_verification_names_its_own_failure(tmp_path):
    """The crane's limiter check says what failed (VerifySpec.action) on its action_failed alarm;
    a check without its own text keeps the general one."""
    from alerts.alarms import AlarmBook
    from alerts.statedb import StateDB

    registry = load_registry(ROOT / "examples" / "crane.yaml")
    table = compile_table(registry.sensors)
    load = registry.sensor("tc1-load-pct")
    assert load is not None and load.verify is not None and load.verify.action
    assert table.describe(load.index, ACTION, 1)[2] == load.verify.action
    demo = compile_table(load_registry(ROOT / "examples" / "demo.yaml").sensors)
    face = next(p.sensor for p in demo.verify)
    # without an `action:` of its own, the failure names the feed that did not confirm (98)
    assert demo.describe(face, ACTION, 1) == (
        "action_failed",
        "red",
        "保护动作未确认: 馈电异常 face1301-feed 未在 2 s 内确认, 立即人工处置 "
        "the protective action was not confirmed by face1301-feed within 2 s: act by hand",
    )
    # a crane's limiter check without an `action:` says so, not a coal mine's 馈电 (helper-126);
    # a sensor fault says what the fault leaves unwatched, for the kinds where it matters
    bare = [
        dataclasses.replace(s, verify=s.verify.model_copy(update={"action": ""})) if s.verify else s
        for s in registry.sensors
    ]
    crane = compile_table(bare)
    text = crane.describe(load.index, ACTION, 1)[2]
    assert (
        text.startswith("保护动作未确认: 限制器未动作 the limiter did not act; ")
        and "馈电" not in text
    )
    assert "限制器失去监测" in crane.describe(load.index, FAULT, 1)[2]
    wind = registry.sensor("tc1-wind")
    assert wind is not None and "风速仪故障" in crane.describe(wind.index, FAULT, 1)[2]
    # a wind sensor of a mine's (not the crane pack's rule): its air flow, not lifting
    mine = compile_table(
        [dataclasses.replace(s, rule="inline") if s is wind else s for s in registry.sensors]
    )
    assert mine.describe(wind.index, FAULT, 1)[2].startswith("风速传感器故障: 该处风速失去监测")
    feed = registry.sensor("tc1-hoist-up-power")
    assert feed is not None
    assert crane.describe(feed.index, FAULT, 1)[2] == "传感器故障: 检查传感器 check the sensor"
    # through the core and the alarm book: the load at overload, the hoist circuit stays on
    up = registry.sensor("tc1-hoist-up-power")
    assert up is not None
    book = AlarmBook(StateDB(tmp_path / "state.db"), registry, table)
    state = CoreState.empty(len(registry.sensors))
    t0 = 1_700_000_000_000
    events = []
    for k in range(5):
        ts = t0 + k * 1000
        batch = Readings(
            np.array([load.index, up.index], np.int32),
            np.full(2, ts, np.int64),
            np.array([101.0, 1.0]),
            np.zeros(2, np.uint8),
        )
        state, tr, _ = evaluate(table, batch, state, ts + 50)
        events += book.apply(tr, ts + 50, state)
    failed = [e for e in events if e.side == "action_failed"]
    assert [(e.kind, e.sensor, e.action) for e in failed] == [
        ("raised", "tc1-load-pct", load.verify.action)
    ]
    # with its own text, the failure still names the circuit that stayed on (helper-103)
    assert failed[0].comment == "未确认 not confirmed: tc1-hoist-up-power 1"
    # the load set down, the circuit still on: the failure ends, saying it was never confirmed
    ts = t0 + 6000
    batch = Readings(
        np.array([load.index, up.index], np.int32),
        np.full(2, ts, np.int64),
        np.array([20.0, 1.0]),
        np.zeros(2, np.uint8),
    )
    state, tr, _ = evaluate(table, batch, state, ts + 50)
    (cleared,) = [e for e in book.apply(tr, ts + 50, state) if e.side == "action_failed"]
    assert cleared.kind == "cleared" and cleared.comment.startswith("需求结束 the level that")


def test_a_feedback_sensor_without_levels_raises_no_data_on_comm_loss():
    """helper-103: a crane's hoist-circuit sensor (no levels, no no-data time) went silent and
    nothing was said: a verification's feedback is judged for no data like a sensor with levels
    (the reference too), so its comm loss is an alarm before a demand fails on it."""
    from alerts.reference import ReferenceCore
    from alerts.table import NO_DATA
    from telemetry.quality import Quality

    registry = load_registry(ROOT / "examples" / "demo.yaml")
    table = compile_table(registry.sensors)
    feed = registry.sensor("face1301-feed").index
    assert table.loses[feed] and not table.has_rules[feed] and table.no_data[feed] == 0
    t0 = 1_700_000_000_000
    sensors = np.array([feed, feed], np.int32)
    ts = np.array([t0, t0 + 1000], np.int64)
    values = np.array([1.0, np.nan])
    quality = np.array([0, Quality.COMM_LOSS], np.uint8)
    _, tr, _ = evaluate(table, Readings(sensors, ts, values, quality), CoreState.empty(table.size))
    lost = [(s, t, after) for s, t, _, side, _, after in tr.rows() if side == NO_DATA]
    assert lost == [(feed, t0 + 1000, 1)]
    ref = ReferenceCore(table).evaluate(sensors, ts, values, quality)
    assert [(r[0], r[1], r[5]) for r in ref if r[3] == NO_DATA] == lost


@pytest.mark.parametrize("switch", [1.0, 0.0])
def test_the_crane_examples_height_limiter_check(switch):
    """examples/crane.yaml: the hook above its top working height must have hit the upper limit
    switch within 1 s (helper-103 configured it by hand: the example had no rule on either)."""
    registry = load_registry(ROOT / "examples" / "crane.yaml")
    table = compile_table(registry.sensors)
    height, limit = registry.sensor("tc1-height").index, registry.sensor("tc1-limit-up").index
    state = CoreState.empty(len(registry.sensors))
    t0, actions = 1_700_000_000_000, []
    for k, h in enumerate([50.0, 55.5, 56.0, 56.0, 56.0]):
        ts = t0 + k * 1000
        batch = Readings(
            np.array([height, limit], np.int32),
            np.full(2, ts, np.int64),
            np.array([h, switch if h > 55 else 0.0]),
            np.zeros(2, np.uint8),
        )
        state, tr, _ = evaluate(table, batch, state, ts + 50)
        actions += [(t, after) for s, t, _, side, _, after in tr.rows() if side == ACTION]
    assert actions == ([] if switch else [(t0 + 2000, 1)])


def test_a_held_actions_break_has_its_own_text() -> None:
    """helper-142: a power back on during the cut went to the desk as "not confirmed within
    2 s", another failure: a held action's break says what broke; `hold_action` replaces it
    (and needs `hold`)."""
    registry = load_registry(ROOT / "examples" / "crane.yaml")
    wind = registry.sensor("tc1-wind")
    assert wind is not None and wind.verify is not None and wind.verify.hold
    table = compile_table(registry.sensors)
    said = table.broken_actions[wind.index]
    assert said.startswith("保护动作未保持: tc1-load-pct 在需求期间恢复") and "undo it" in said
    own = wind.verify.model_copy(update={"hold_action": "起吊违规: 大风停机期间起吊, 立即停止"})
    again = compile_table(
        [dataclasses.replace(s, verify=own) if s is wind else s for s in registry.sensors]
    )
    assert again.broken_actions[wind.index] == "起吊违规: 大风停机期间起吊, 立即停止"
    with pytest.raises(ValidationError, match="needs 'hold: true'"):
        VerifySpec(sensor="feed", expect_below=0.5, within_s=2, hold_action="x")
