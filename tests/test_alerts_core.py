"""The vectorized threshold core against its plain-Python reference, and its semantics."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.evaluate import CoreState, evaluate
from alerts.reference import reference_evaluate
from alerts.table import SLOTS, compile_table
from telemetry.config import LevelSpec
from telemetry.quality import Quality
from telemetry.registry import SensorInfo


def sensor(index: int, levels: tuple[LevelSpec, ...]) -> SensorInfo:
    return SensorInfo(
        index,
        f"s{index}",
        "t",
        "site",
        "dev",
        f"k{index}",
        "methane",
        "%",
        "",
        "",
        "inline" if levels else "",
        levels,
    )


METHANE = (
    LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),
    LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0),
)


def run(levels, values, qualities=None, ts=None):
    table = compile_table([sensor(0, levels)])
    n = len(values)
    state, tr, outcome = evaluate(
        table,
        CoreState.empty(1),
        np.zeros(n, np.int32),
        np.arange(1, n + 1, dtype=np.int64) * 1000 if ts is None else np.array(ts, np.int64),
        np.array(values, np.float64),
        np.zeros(n, np.uint8) if qualities is None else np.array(qualities, np.uint8),
    )
    return state, tr, outcome


def test_methane_alarm_power_cut_and_recovery_with_hysteresis():
    state, tr, _ = run(METHANE, [0.5, 1.0, 1.2, 1.5, 1.2, 1.0, 0.99, 1.0])
    got = list(zip(tr.ts.tolist(), tr.before.tolist(), tr.after.tolist(), strict=True))
    # 1.0 raises the alarm, 1.5 the power-cut level; 1.2 and 1.0 keep power cut (recovery < 1.0)
    assert got == [(2000, 0, 1), (4000, 1, 2), (7000, 2, 0), (8000, 0, 1)]
    assert state.level[0, 0] == 1


def test_low_levels_mirror_high_levels():
    o2 = (LevelSpec(name="low", tier="orange", below=19.5, recover=19.7),)
    _, tr, _ = run(o2, [20.9, 19.5, 19.6, 19.7, 19.71])
    assert list(zip(tr.side.tolist(), tr.after.tolist(), strict=True)) == [(1, 1), (1, 0)]
    assert tr.ts.tolist() == [2000, 5000]


def test_bad_quality_and_nan_are_not_judged():
    _, tr, outcome = run(
        METHANE,
        [2.0, np.nan, 0.1],
        qualities=[Quality.SENSOR_FAULT, Quality.GOOD, Quality.CALIBRATION],
    )
    assert len(tr) == 0
    assert outcome.skipped == 3 and outcome.judged == 0


def test_out_of_order_batch_is_judged_in_event_time_order_and_late_readings_counted():
    table = compile_table([sensor(0, METHANE)])
    state, tr, _ = evaluate(
        table,
        CoreState.empty(1),
        np.zeros(3, np.int32),
        np.array([3000, 1000, 2000], np.int64),
        np.array([0.2, 1.1, 0.5]),
        np.zeros(3, np.uint8),
    )
    assert list(zip(tr.ts.tolist(), tr.after.tolist(), strict=True)) == [(1000, 1), (2000, 0)]
    _, tr2, outcome = evaluate(
        table,
        state,
        np.zeros(1, np.int32),
        np.array([2500], np.int64),
        np.array([5.0]),
        np.zeros(1, np.uint8),
    )
    assert len(tr2) == 0 and outcome.late == 1


def test_state_carries_across_batches():
    table = compile_table([sensor(0, METHANE)])
    state = CoreState.empty(1)
    levels = []
    for i, v in enumerate([1.6, 1.2, 0.9]):
        state, tr, _ = evaluate(
            table,
            state,
            np.zeros(1, np.int32),
            np.array([i], np.int64),
            np.array([v]),
            np.zeros(1, np.uint8),
        )
        levels.append(tr.after.tolist())
    assert levels == [[2], [], [0]]


def test_evaluate_does_not_modify_the_state_it_was_given():
    table = compile_table([sensor(0, METHANE)])
    state = CoreState.empty(1)
    evaluate(
        table,
        state,
        np.zeros(1, np.int32),
        np.array([1], np.int64),
        np.array([2.0]),
        np.zeros(1, np.uint8),
    )
    assert state.level.sum() == 0 and not state.active.any()


# -- property: vectorized core == reference -------------------------------------------------


@st.composite
def level_sets(draw):
    n_hi = draw(st.integers(0, SLOTS))
    n_lo = draw(st.integers(0, 2))
    levels = []
    his = sorted(draw(st.lists(st.integers(0, 20), min_size=n_hi, max_size=n_hi)))
    for j, thr in enumerate(his):
        rec = thr - draw(st.integers(0, 3))
        levels.append(LevelSpec(name=f"h{j}", tier="red", above=float(thr), recover=float(rec)))
    los = sorted(draw(st.lists(st.integers(-20, 0), min_size=n_lo, max_size=n_lo)), reverse=True)
    for j, thr in enumerate(los):
        rec = thr + draw(st.integers(0, 3))
        levels.append(LevelSpec(name=f"l{j}", tier="blue", below=float(thr), recover=float(rec)))
    return tuple(levels)


@st.composite
def scenarios(draw):
    n_sensors = draw(st.integers(1, 4))
    tables = [draw(level_sets()) for _ in range(n_sensors)]
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, 30))
        batches.append(
            (
                np.array(
                    draw(st.lists(st.integers(0, n_sensors - 1), min_size=n, max_size=n)), np.int32
                ),
                np.array(draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), np.int64),
                np.array(
                    draw(
                        st.lists(
                            st.one_of(st.integers(-25, 25).map(float), st.just(float("nan"))),
                            min_size=n,
                            max_size=n,
                        )
                    )
                ),
                np.array(
                    draw(st.lists(st.sampled_from([0, 0, 0, 0, 1, 3, 6]), min_size=n, max_size=n)),
                    np.uint8,
                ),
            )
        )
    return tables, batches


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_vectorized_core_agrees_with_reference(scenario):
    tables, batches = scenario
    table = compile_table([sensor(i, lv) for i, lv in enumerate(tables)])
    n = len(tables)
    state = CoreState.empty(n)
    active = [[False] * (2 * SLOTS) for _ in range(n)]
    level = [[0, 0] for _ in range(n)]
    last_ts = [int(np.iinfo(np.int64).min)] * n
    for s, t, v, q in batches:
        state, tr, _ = evaluate(table, state, s, t, v, q)
        expected = reference_evaluate(table, active, level, last_ts, s, t, v, q)
        got = list(
            zip(
                tr.sensor.tolist(),
                tr.ts.tolist(),
                tr.value.tolist(),
                tr.side.tolist(),
                tr.before.tolist(),
                tr.after.tolist(),
                strict=True,
            )
        )
        assert got == expected
        assert state.level.tolist() == level
        assert state.active.tolist() == active
        assert state.last_ts.tolist() == last_ts
