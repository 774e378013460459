"""The lateness window (`alerts.lateness`): late readings judged in order, and what comes out.

The vectorized core against the reference with the window on is in `test_alerts_core` (the
scenarios there draw a window); here: a core that gets readings out of order within the window
ends where a core that got them in order ends, and so does a consumer applying its transitions.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_alerts_core import _norm, cols, level_sets, sensor

from alerts.evaluate import CoreState, Readings, evaluate
from alerts.reference import ReferenceCore
from alerts.table import ABOVE, ACTION, NO_DATA, RATE, SIDES, compile_table
from telemetry.config import EarlyWarningSpec, LevelSpec, RateSpec

THREE = (LevelSpec(name="hi", tier="yellow", above=10, recover=9, on_samples=3),)


def consume(book: dict[tuple[int, int], int], tr) -> None:
    """What `alerts.alarms.AlarmBook` keeps: the last `after` per (sensor, side)."""
    for s, _, _, side, _, after in tr.rows():
        book[(s, side)] = after


def levels_of(book: dict[tuple[int, int], int], n: int) -> list[list[int]]:
    return [[book.get((s, d), 0) for d in range(SIDES)] for s in range(n)]


@st.composite
def reordered(draw):
    """Sensors without votes or verification, a stream in event time (distinct times per
    sensor) and the same stream delayed by at most `late_depth` places, both in batches."""
    infos = []
    for i in range(draw(st.integers(1, 3))):
        levels = draw(level_sets())
        rate = early = None
        if levels and draw(st.booleans()):
            rate = RateSpec(per_min=draw(st.sampled_from([10, 60, 300])), window_s=2.5)
        if any(lv.above is not None for lv in levels) and draw(st.booleans()):
            early = EarlyWarningSpec(window_s=3, horizon_s=draw(st.sampled_from([2, 10])))
        no_data = draw(st.sampled_from([None, 2, 10]))
        if not levels and no_data is None:  # judged by nothing: never rewound, its late readings
            no_data = 10  # counted late by design (`alerts.table`), not what this test is about
        infos.append(sensor(i, levels, no_data, rate=rate, early_warning=early))
    n = len(infos)
    rows = []
    for i in range(n):
        times = sorted(set(draw(st.lists(st.integers(0, 60), max_size=25))))
        for t in times:
            v = draw(st.one_of(st.integers(-25, 25).map(float), st.just(float("nan"))))
            q = draw(st.sampled_from([0, 0, 0, 0, 1, 3, 6]))
            rows.append((i, t * 500, v, q))
    rows.sort(key=lambda r: (r[1], r[0]))
    depth = draw(st.integers(1, 6))
    delay = [draw(st.integers(0, depth)) for _ in rows]
    shuffled = [
        r
        for _, r in sorted(
            zip([k + d for k, d in enumerate(delay)], rows, strict=True), key=lambda x: x[0]
        )
    ]
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=6)))
    return infos, rows, shuffled, cuts, depth


def batches(rows, cuts):
    edges = [0, *cuts, len(rows)]
    for lo, hi in itertools.pairwise(edges):
        part = rows[lo:hi]
        yield Readings(
            np.array([r[0] for r in part], np.int32),
            np.array([r[1] for r in part], np.int64),
            np.array([r[2] for r in part], np.float64),
            np.array([r[3] for r in part], np.uint8),
        )


@settings(max_examples=150, deadline=None)
@given(reordered())
def test_out_of_order_within_the_window_ends_as_in_order(case):
    infos, rows, shuffled, cuts, depth = case
    table = compile_table(infos, trend_depth=3, lateness_ms=10**9, late_depth=depth)
    n = len(infos)
    in_order, _, _ = evaluate(table, next(batches(rows, [])), CoreState.empty(n))
    state = CoreState.empty(n)
    book: dict[tuple[int, int], int] = {}
    ref = ReferenceCore(table)
    told: dict[tuple[int, int], int] = {}
    for b in batches(shuffled, cuts):
        state, tr, outcome = evaluate(table, b, state)
        assert outcome.late == 0  # all within the window: none left unjudged
        for s, t, _, side, _, _ in tr.rows():  # none goes back before what was told (129)
            assert t >= told.get((s, side), t), (s, side, t, told)
            told[(s, side)] = t
        consume(book, tr)
        assert _norm(tr.rows()) == _norm(ref.evaluate(b.sensor, b.ts, b.value, b.quality))
    assert state.level.tolist() == in_order.level.tolist()
    assert levels_of(book, n) == state.level.tolist()
    for f in ("raw", "active", "last_ts", "last_data", "hist_n"):
        assert getattr(state, f).tolist() == getattr(in_order, f).tolist(), f
    for row in range(table.trends):
        assert state.trend_readings(row) == in_order.trend_readings(row)
    used = ~np.isnan(table.threshold)
    assert state.run_start[used].tolist() == in_order.run_start[used].tolist()


def late_run(levels, arrivals, lateness_ms, late_depth=8):
    """Feed (ts, value) batches one by one; return all transitions and the outcomes."""
    table = compile_table([sensor(0, levels)], lateness_ms=lateness_ms, late_depth=late_depth)
    state = CoreState.empty(1)
    got, outcomes = [], []
    for ts, v in arrivals:
        state, tr, outcome = evaluate(table, cols(0, [ts], [v]), state)
        got += [(t, side, b, a) for _, t, _, side, b, a in tr.rows()]
        outcomes.append(outcome)
    return got, outcomes, state


def test_a_late_high_reading_completes_three_in_a_row():
    arrivals = [(1000, 11.0), (3000, 11.0), (2000, 11.0), (4000, 5.0)]
    got, outcomes, _ = late_run(THREE, arrivals, 60_000)
    assert got == [(3000, ABOVE, 0, 1), (4000, ABOVE, 1, 0)]
    assert outcomes[2].rewound == 1 and outcomes[2].late == 0 and outcomes[2].judged == 1
    # without a window the reading is late: nothing is raised
    got, outcomes, _ = late_run(THREE, arrivals, 0)
    assert got == [] and outcomes[2].late == 1 and outcomes[2].rewound == 0


def test_a_late_low_reading_undoes_a_raise_with_a_correction_after_it():
    # 1, 2, 4 s high raised HI at 4 s; the low reading of 3 s breaks the run: cleared at 4 s
    got, _, state = late_run(THREE, [(1000, 11.0), (2000, 11.0), (4000, 11.0), (3000, 0.0)], 60_000)
    assert got == [(4000, ABOVE, 0, 1), (4000, ABOVE, 1, 0)]
    assert state.level[0, ABOVE] == 0


def test_an_episode_found_before_a_told_raise_neither_clears_nor_raises_it_again():
    """helper-129: told HI raised at 50 s (30, 40, 50 s high), a late batch of 5, 10, 15 s high
    and 20 s low (an episode 15-20 s in order) cleared the running alarm at 20 s, before its
    raise, and raised it again at 50 s: a new alarm, notified twice, its acknowledgement lost."""
    arrivals = [(30_000, 12.0), (40_000, 12.0), (50_000, 12.0)]
    arrivals += [(5_000, 12.0), (10_000, 12.0), (15_000, 12.0), (20_000, 5.0)]
    got, outcomes, state = late_run(THREE, arrivals, 600_000)
    assert got == [(50_000, ABOVE, 0, 1)]
    assert state.level[0, ABOVE] == 1 and outcomes[-1].rewound == 1


def test_a_state_saved_before_told_is_judged_without_the_bound():
    """A state restored from a hub of before (no `told`) is judged, the bound unknown."""
    table = compile_table([sensor(0, THREE)], lateness_ms=600_000)
    state, _, _ = evaluate(table, cols(0, [30_000, 40_000, 50_000], [12.0] * 3), CoreState.empty(1))
    assert state.told.tolist()[0][ABOVE] == 50_000
    old = dataclasses.replace(state, told=np.zeros((0, SIDES), np.int64))
    late = cols(0, [5_000, 10_000, 15_000, 20_000], [12.0, 12.0, 12.0, 5.0])
    new, tr, outcome = evaluate(table, late, old)
    assert outcome.rewound == 4 and new.told.shape == (1, SIDES)
    assert [(t, b, a) for _, t, _, side, b, a in tr.rows() if side == ABOVE] == [
        (20_000, 1, 0),
        (50_000, 0, 1),
    ]  # as before the bound: told raised at 50 s was not known


def test_readings_older_than_the_window_are_late_and_counted():
    arrivals = [(1000, 11.0), (12_000, 11.0), (2000, 11.0), (13_000, 11.0)]
    got, outcomes, _ = late_run(THREE, arrivals, 5000)
    assert got == [(13_000, ABOVE, 0, 1)]
    assert outcomes[2].late == 1 and outcomes[2].late_in_window == 0


def test_more_readings_in_the_window_than_kept_makes_older_ones_late_in_window():
    # two readings kept: after 4, 5, 6 s the checkpoint is at 4 s; 3 s is within 60 s, but late
    arrivals = [(4000, 11.0), (5000, 11.0), (6000, 0.0), (3000, 11.0), (5500, 11.0)]
    got, outcomes, state = late_run(THREE, arrivals, 60_000, late_depth=2)
    assert outcomes[3].late == 1 and outcomes[3].late_in_window == 1
    assert outcomes[4].rewound == 1  # 5.5 s is after the checkpoint
    assert state.ring_n[0] == 2 and state.ring_ts[0].tolist() == [5500, 6000]
    assert state.ck_last_ts[0] == 5000
    # 4, 5, 5.5 s: three high in a row (raised at 5.5 s), 6 s low clears it
    assert got == [(5500, ABOVE, 0, 1), (6000, ABOVE, 1, 0)]


def test_a_late_data_reading_does_not_flap_a_silence_alarm():
    table = compile_table([sensor(0, THREE, no_data_s=3)], lateness_ms=60_000)
    state, _, _ = evaluate(table, cols(0, [1000, 2000], [0.0, 0.0]), CoreState.empty(1), now=2000)
    state, tr, _ = evaluate(table, cols(0, [], []), state, now=10_000)
    assert [(t, d, a) for _, t, _, d, _, a in tr.rows()] == [(5000, NO_DATA, 1)]
    # a reading of 1.5 s arrives late: the sensor is still silent, nothing comes out
    state, tr, outcome = evaluate(table, cols(0, [1500], [0.0]), state, now=10_100)
    assert outcome.rewound == 1 and len(tr) == 0 and state.level[0, NO_DATA] == 1


def test_rate_of_rise_is_judged_again_with_the_late_reading():
    rate = RateSpec(per_min=30, window_s=5, recover_factor=0.5)
    table = compile_table([sensor(0, THREE, rate=rate)], lateness_ms=60_000)
    state = CoreState.empty(1)
    out = []
    # 1 s: 0, 3 s: 0.4 (12/min: nothing); the late 2 s reading of 1.5 is 90/min over 1 s
    for ts, v in [(1000, 0.0), (3000, 0.4), (2000, 1.5)]:
        state, tr, _ = evaluate(table, cols(0, [ts], [v]), state)
        out += [(t, d, b, a) for _, t, _, d, b, a in tr.rows() if d == RATE]
    # in order: raised at 2 s, cleared at 3 s (0.4 over 2 s from 1 s = 12/min, below 15)
    assert out == [(2000, RATE, 0, 1), (3000, RATE, 1, 0)]
    assert state.level[0, RATE] == 0


def test_a_group_counts_a_member_change_older_than_its_last_judged_time():
    lel = (LevelSpec(name="level1", tier="yellow", above=25, recover=23),)
    area = LevelSpec(name="area", tier="red", above=2, recover=2)
    group = dataclasses.replace(sensor(2, (area,)), members=(0, 1), vote_level=1)
    for window in (0, 60_000):
        table = compile_table([sensor(0, lel), sensor(1, lel), group], lateness_ms=window)
        state, tr, _ = evaluate(table, cols([0], [5000], [30]), CoreState.empty(3))
        # member 1 reaches level 1 at 3 s, before the group's last change (5 s): judged at 5.001
        state, tr, _ = evaluate(table, cols([1], [3000], [30]), state)
        area_rows = [(t, a) for s, t, _, d, _, a in tr.rows() if s == 2]
        assert area_rows == [(5001, 1)]
        assert state.level[2, ABOVE] == 1


def test_the_reference_keeps_the_same_rings_and_checkpoints():
    table = compile_table([sensor(0, THREE)], lateness_ms=60_000, late_depth=2)
    ref = ReferenceCore(table)
    state = CoreState.empty(1)
    for ts, v in [(4000, 11.0), (5000, 11.0), (6000, 0.0), (3000, 11.0), (5500, 11.0)]:
        b = cols(0, [ts], [v])
        state, _, _ = evaluate(table, b, state)
        ref.evaluate(b.sensor, b.ts, b.value, b.quality)
    assert [t for t, _, _ in ref.ring[0]] == [5500, 6000]
    assert ref.ck is not None and ref.ck.last_ts == [5000] == state.ck_last_ts.tolist()
    assert state.level[0, ACTION] == 0


def test_without_a_window_the_state_keeps_no_lateness_arrays():
    table = compile_table([sensor(0, THREE)])
    state, _, _ = evaluate(table, cols(0, [1000], [11.0]), CoreState.empty(1))
    assert state.ring_ts.shape == (0, 0) and state.ck_level.shape == (0, SIDES)
    with_window = compile_table([sensor(0, THREE)], lateness_ms=1000, late_depth=4)
    state, _, _ = evaluate(with_window, cols(0, [2000], [11.0]), state)
    assert state.ring_ts.shape == (1, 4) and state.ck_last_ts.tolist() == [1000]


def _both(table, state, ref, ts, values, now):
    """One batch of sensor 0 through the core and the reference: the no-data rows of each."""
    b = cols(0, ts, values)
    state, tr, _ = evaluate(table, b, state, now=now)
    rows = ref.evaluate(b.sensor, b.ts, b.value, b.quality, now)
    core = [
        (t, a)
        for t, sd, a in zip(tr.ts.tolist(), tr.side.tolist(), tr.after.tolist(), strict=True)
        if sd == NO_DATA
    ]
    return state, core, [(r[1], r[5]) for r in rows if r[3] == NO_DATA]


def test_a_reading_rewound_in_the_window_is_judged_on_both_clocks():
    """Readings arriving 120 s old (a gateway clock behind, a spool drained), then one sent again
    3 s back, inside the lateness window: the rerun judges silence on the hub's clock too, as the
    reference does; no false no-data."""
    table = compile_table([sensor(0, (), no_data_s=30)], lateness_ms=10_000)
    state, ref = CoreState.empty(1), ReferenceCore(table)
    for k in range(10):
        ts = 1_000_000 + k * 1000
        state, core, expected = _both(table, state, ref, [ts], [0.1], ts + 120_000)
        assert core == expected == [], k
    state, core, expected = _both(table, state, ref, [1_006_000], [0.1], 1_129_300)
    assert core == expected == []
    assert int(state.level[0, NO_DATA]) == ref.level[0][NO_DATA] == 0


def test_a_batch_sent_again_for_ever_does_not_keep_a_dead_device_heard():
    """The device dies at 10 s; its gateway keeps re-sending its last batch (never
    acknowledged): old readings are not heard, so no-data is raised one timeout after the last
    new one arrived, by the core and the reference alike, and stays."""
    table = compile_table([sensor(0, (), no_data_s=30)], lateness_ms=60_000)
    state, ref = CoreState.empty(1), ReferenceCore(table)
    state, core, expected = _both(table, state, ref, [8000, 9000, 10_000], [0.1] * 3, 10_100)
    raised = []
    for now in range(15_000, 120_001, 5000):
        state, core, expected = _both(table, state, ref, [9000, 10_000], [0.1, 0.1], now)
        assert core == expected, now
        state, core, expected = _both(table, state, ref, [], [], now + 2500)
        assert core == expected, now
        raised += core
    assert raised == [(40_000, 1)]
    assert int(state.level[0, NO_DATA]) == ref.level[0][NO_DATA] == 1
