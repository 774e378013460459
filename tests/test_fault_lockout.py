"""故障闭锁 (fault lock-out, DOMAIN 1.3): with `verify: {on_fault: true}` a sensor-fault reading
of the verified sensor demands the protective action as its level does (`alerts.verify`), in
the core and its reference alike; the demand pending at a restart is kept."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from test_alerts_core import METHANE, _both, cols, sensor
from test_snapshot import Node

from alerts.evaluate import NO_TS, CoreState, evaluate
from alerts.reload import core_signature
from alerts.table import compile_table
from hazardhub.settings import load_profiles
from ingest.store.base import ReadingBatch
from telemetry.config import HubConfig, VerifySpec
from telemetry.quality import Quality
from telemetry.registry import build_registry, parse_document

FAULT_Q, LOSS, CALIB = Quality.SENSOR_FAULT, Quality.COMM_LOSS, Quality.CALIBRATION
NAN = math.nan
ROOT = Path(__file__).resolve().parent.parent


def _table(on_fault=True, hold=False, lateness_ms=0):
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2, hold=hold, on_fault=on_fault)
    infos = [sensor(0, METHANE, verify=verify), sensor(1, ())]
    return compile_table(infos, lateness_ms=lateness_ms, late_depth=8)


def test_a_sensor_fault_demands_the_cut_and_fails_when_the_feed_stays_on():
    """The T1 sensor reads fault at 2 s, the feed stays on: action_failed stamped with the
    deadline (4 s); its next good reading below the level (6 s) ends the demand and clears it.
    Without `on_fault` the fault demands nothing (as before)."""
    batches = [
        (cols([0, 1], [1000, 1000], [0.3, 1]), 1100),
        (cols([0, 1], [2000, 2000], [NAN, 1], [FAULT_Q, 0]), 2100),
        (cols([0, 1], [3000, 3000], [NAN, 1], [FAULT_Q, 0]), 3100),
        (cols([1], [4500], [1]), 4600),
        (cols([0, 1], [6000, 6000], [0.3, 1]), 6100),
    ]
    assert _both(_table(), batches) == [(4000, 1), (6000, 0)]
    assert _both(_table(on_fault=False), batches) == []
    # the state in between: the demand from the fault's event time
    state = CoreState.empty(2)
    for batch, now in batches[:2]:
        state, _, _ = evaluate(_table(), batch, state, now)
    assert state.deadline[0] == 4000 and not state.met[0]


def test_the_feed_dropping_in_time_meets_the_fault_lockout():
    table = _table()
    batches = [
        (cols([0, 1], [1000, 1000], [0.3, 1]), 1100),
        (cols([0, 1], [2000, 3000], [NAN, 0], [FAULT_Q, 0]), 3100),
        (cols([0, 1], [5000, 5000], [NAN, 0], [FAULT_Q, 0]), 5100),
        (cols([0, 1], [6000, 7000], [0.3, 1]), 7100),  # recovered: power back is no break
    ]
    assert _both(table, batches) == []
    state = CoreState.empty(2)
    for batch, now in batches[:2]:
        state, _, _ = evaluate(table, batch, state, now)
    assert state.met[0]


def test_comm_loss_and_calibration_neither_start_nor_end_a_fault_demand():
    """Comm loss says nothing of the sensor (the substation locks out on its own) and a
    calibration reading never alarms: neither starts a demand; in fault, neither ends it."""
    table = _table()
    quiet = [
        (cols([0, 1], [1000, 1000], [0.3, 1]), 1100),
        (cols([0, 0, 1], [2000, 3000, 3000], [NAN, 0.2, 1], [LOSS, CALIB, 0]), 3100),
        (cols([1], [6000], [1]), 6100),
    ]
    assert _both(table, quiet) == []
    lasting = [
        (cols([0, 1], [1000, 1000], [0.3, 1]), 1100),
        (cols([0, 1], [2000, 2000], [NAN, 0], [FAULT_Q, 0]), 2100),  # met at once
        (cols([0, 0], [3000, 4000], [NAN, 0.2], [LOSS, CALIB]), 4100),
    ]
    state = CoreState.empty(2)
    for batch, now in lasting:
        state, _, _ = evaluate(table, batch, state, now)
    assert state.deadline[0] == 4000 and state.met[0]  # still demanded
    state, _, _ = evaluate(table, cols([0], [5000], [0.3]), state, 5100)
    assert state.deadline[0] == NO_TS  # the good reading ends it


def test_a_fault_during_the_levels_demand_continues_it_and_a_level_after_the_fault_too():
    """One demand, one deadline: methane at the power-cut level at 1 s (deadline 3 s), the
    sensor in fault at 2 s: the failure is stamped 3 s; the fault at 1 s giving way to the level
    at 2 s: stamped 3 s as well (not 4 s), and a reading between the threshold and the recovery
    after the fault keeps the level's demand."""
    table = _table()
    level_first = [
        (cols([0, 1], [1000, 1000], [1.6, 1]), 1100),
        (cols([0, 1], [2000, 2000], [NAN, 1], [FAULT_Q, 0]), 2100),
        (cols([0, 1], [3500, 3500], [1.2, 1]), 3600),
        (cols([0], [5000], [0.8]), 5100),
    ]
    assert _both(table, level_first) == [(3000, 1), (5000, 0)]
    fault_first = [
        (cols([0, 1], [1000, 1000], [NAN, 1], [FAULT_Q, 0]), 1100),
        (cols([0, 1], [2000, 2000], [1.6, 1]), 2100),
        (cols([0, 1], [3500, 3500], [1.6, 1]), 3600),
        (cols([1], [4000], [0]), 4100),
    ]
    assert _both(table, fault_first) == [(3000, 1), (4000, 0)]
    state = CoreState.empty(2)
    for batch, now in fault_first[:2]:
        state, _, _ = evaluate(table, batch, state, now)
    assert state.deadline[0] == 3000


def test_a_held_fault_lockout_fails_at_the_sensors_next_reading_still_in_fault():
    """hold: the cut met, the face re-energised at 12 s while the sensor is still in fault:
    the sensor's fault reading at 15 s fails it, stamped 12 s; had its next reading been good
    and below the level, the power back would be the normal end of the lock-out."""
    table = _table(hold=True)
    met = cols([0, 1, 0, 1], [1000, 1000, 2000, 2000], [NAN, 0, NAN, 0], [FAULT_Q, 0, FAULT_Q, 0])
    back = cols([0, 1, 0], [10_000, 12_000, 15_000], [NAN, 1, NAN], [FAULT_Q, 0, FAULT_Q])
    assert _both(table, [(met, 2500), (back, 15_100)]) == [(12_000, 1)]
    ended = cols([0, 1, 0], [10_000, 12_000, 15_000], [NAN, 1, 0.3], [FAULT_Q, 0, 0])
    assert _both(table, [(met, 2500), (ended, 15_100)]) == []
    # a comm-loss reading of the sensor is no reading of it: the failure waits
    lost = cols([0, 1, 0], [10_000, 12_000, 15_000], [NAN, 1, NAN], [FAULT_Q, 0, LOSS])
    assert _both(table, [(met, 2500), (lost, 15_100)]) == []


def test_a_late_fault_reading_rewound_in_the_window_demands_the_cut():
    """With a lateness window, the sensor's fault at 2 s arriving after its 3 s reading (in
    calibration, which neither starts nor ends a fault) is judged in order: the demand from
    2 s, failed at 4 s. (A fault the consumer was told of already, at 3 s, is not moved back
    by a late one: `alerts.lateness`; the demand is judged on the transitions that come out.)"""
    table = _table(lateness_ms=10_000)
    batches = [
        (cols([0, 1], [1000, 1000], [0.3, 1]), 1100),
        (cols([0, 1], [3000, 3000], [0.2, 1], [CALIB, 0]), 3100),
        (cols([0], [2000], [NAN], [FAULT_Q]), 3200),
        (cols([1], [4500], [1]), 4600),
    ]
    assert _both(table, batches) == [(4000, 1)]


def test_on_fault_is_in_the_core_signature_only_when_set():
    """A configuration without `on_fault` keeps the state a hub saved before it."""
    plain = VerifySpec(sensor="s1", expect_below=0.5, within_s=2)
    info = sensor(0, METHANE, verify=plain)
    assert "on_fault" not in repr(plain)
    locked = sensor(0, METHANE, verify=plain.model_copy(update={"on_fault": True}))
    assert core_signature(locked, [locked]) != core_signature(info, [info])
    assert core_signature(info, [info])[-1] != "on_fault"


def _registry():
    folder = Path(__file__).parent / "scenarios" / "fault-lockout-power-not-cut"
    config = parse_document((folder / "config.yaml").read_text(), HubConfig, str(folder))
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, str(folder))


T0 = 1_760_000_000_000


def _batch(reg, rows, seq):
    n = len(rows)
    return ReadingBatch(
        np.array([reg.sensor(s).index for s, _, _, _ in rows], np.int32),
        np.array([T0 + t for _, t, _, _ in rows], np.int64),
        np.array([v for _, _, v, _ in rows]),
        np.array([q for _, _, _, q in rows], np.uint8),
        np.zeros(n, np.int64),
        np.arange(seq, seq + n, dtype=np.int64),
    )


async def _over_a_restart(tmp_path, state: bool) -> list:
    reg = _registry()
    async with Node(tmp_path, reg=reg) as first:
        await first.dispatcher.judge(
            _batch(reg, [("t1", 1000, 0.3, 0), ("feed", 1000, 1, 0)], 0), [], T0 + 1100
        )
        fault = [("t1", 2000, NAN, FAULT_Q), ("feed", 2000, 1.0, 0)]
        await first.dispatcher.judge(_batch(reg, fault, 2), [], T0 + 2100)
        await first.dispatcher.save_state()
    async with Node(tmp_path, reg=reg, state=state) as second:
        if not state:  # the demand armed again from the sensor-fault alarm's raise
            await second.dispatcher.confirm_restored()
        late = [("t1", 5000, NAN, FAULT_Q), ("feed", 5000, 1.0, 0)]
        events = await second.dispatcher.judge(_batch(reg, late, 4), [], T0 + 5100)
    return [(e.side, e.kind, e.ts - T0, e.comment) for e in events if e.side == "action_failed"]


async def test_a_fault_demand_pending_at_a_save_is_kept_over_a_restart(tmp_path):
    """The state saved with the fault's demand pending (deadline 4 s, the feed on): after the
    restart the feed's next reading fails it, stamped with the deadline."""
    got = await _over_a_restart(tmp_path, state=True)
    assert got == [
        ("action_failed", "raised", 4000, "故障闭锁未确认 fault lock-out not confirmed: feed 1")
    ]


async def test_a_fault_demand_unknown_to_the_state_is_armed_from_the_fault_alarm(tmp_path):
    """No saved state (the hub killed before its save): the demand is armed again at the start
    from the sensor-fault alarm's raise (2 s, deadline 4 s); the store's feed readings do not
    confirm it, so the next feed reading fails it."""
    got = await _over_a_restart(tmp_path, state=False)
    assert got == [
        ("action_failed", "raised", 4000, "故障闭锁未确认 fault lock-out not confirmed: feed 1")
    ]


async def test_a_met_fault_lockout_is_journaled_on_the_sensor_fault_alarm(tmp_path):
    """The cut confirmed 1 s after the fault: the record an inspector asks for is a line in the
    journal of the sensor-fault alarm (the fault demanded the cut), not of an older level's."""
    reg = _registry()
    async with Node(tmp_path, reg=reg) as node:
        rows = [("t1", 1000, 1.6, 0), ("feed", 1000, 0.0, 0), ("t1", 2000, 0.3, 0)]
        rows.append(("feed", 3000, 1.0, 0))  # the level's cut over, the power back
        await node.dispatcher.judge(_batch(reg, rows, 0), [], T0 + 2100)
        fault = [("t1", 5000, NAN, FAULT_Q), ("feed", 6000, 0.0, 0)]
        events = await node.dispatcher.judge(_batch(reg, fault, 4), [], T0 + 6100)
        said = [(e.side, e.kind, e.comment) for e in events if e.kind == "commented"]
        assert len(said) == 1
        side, _, comment = said[0]
        assert side == "fault"
        assert comment.startswith("保护动作已确认 action confirmed 1 s after the fault: feed 0 at")
