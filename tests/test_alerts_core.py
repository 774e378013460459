"""The vectorized alert core against its plain-Python reference, and its semantics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.evaluate import NO_TS, CoreState, Readings, evaluate
from alerts.reference import ReferenceCore
from alerts.table import (
    ABOVE,
    ACTION,
    BELOW,
    CALIBRATION_DUE,
    EARLY,
    FAULT,
    FROZEN,
    MAINTENANCE,
    NO_DATA,
    RATE,
    SLOTS,
    compile_table,
)
from telemetry.config import (
    CalibrationDueSpec,
    EarlyWarningSpec,
    FrozenSpec,
    LevelSpec,
    MaintenanceSpec,
    RateSpec,
    VerifySpec,
)
from telemetry.quality import Quality
from telemetry.registry import SensorInfo


def sensor(
    index: int,
    levels: tuple[LevelSpec, ...],
    no_data_s: float | None = None,
    verify: VerifySpec | None = None,
    rate: RateSpec | None = None,
    early_warning: EarlyWarningSpec | None = None,
    frozen: FrozenSpec | None = None,
    maintenance: MaintenanceSpec | None = None,
    calibration_due: CalibrationDueSpec | None = None,
) -> SensorInfo:
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
        no_data_s,
        verify,
        rate=rate,
        early_warning=early_warning,
        frozen=frozen,
        maintenance=maintenance,
        calibration_due=calibration_due,
    )


METHANE = (
    LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),
    LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0),
)


def cols(sensors, ts, values, qualities=None) -> Readings:
    n = len(values)
    return Readings(
        np.asarray(sensors, np.int32)
        if not np.isscalar(sensors)
        else np.full(n, sensors, np.int32),
        np.asarray(ts, np.int64),
        np.asarray(values, np.float64),
        np.zeros(n, np.uint8) if qualities is None else np.asarray(qualities, np.uint8),
    )


def run(levels, values, qualities=None, ts=None, now=None, no_data_s=None):
    table = compile_table([sensor(0, levels, no_data_s)])
    n = len(values)
    times = np.arange(1, n + 1, dtype=np.int64) * 1000 if ts is None else ts
    return evaluate(table, cols(0, times, values, qualities), CoreState.empty(1), now)


def side_rows(tr, side):
    return [
        (t, a)
        for t, sd, a in zip(tr.ts.tolist(), tr.side.tolist(), tr.after.tolist(), strict=True)
        if sd == side
    ]


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


def test_on_delay_in_event_time_and_off_delay():
    held = (LevelSpec(name="hi", tier="yellow", above=10, recover=9, on_delay_s=3, off_delay_s=2),)
    # above from 2 s; 3 s later (5 s) the level turns on; below from 7 s, off 2 s later (9 s)
    _, tr, _ = run(held, [0, 11, 12, 11, 12, 13, 5, 5, 5, 5])
    assert side_rows(tr, 0) == [(5000, 1), (9000, 0)]
    # a blip shorter than the delay never alarms
    _, tr, _ = run(held, [0, 11, 12, 5, 11, 5])
    assert len(tr) == 0


def test_n_consecutive_samples():
    three = (LevelSpec(name="hi", tier="yellow", above=10, recover=10, on_samples=3),)
    _, tr, _ = run(three, [11, 11, 0, 11, 11, 11, 11, 0])
    assert side_rows(tr, 0) == [(6000, 1), (8000, 0)]


def test_delays_carry_across_batches():
    held = (LevelSpec(name="hi", tier="yellow", above=10, recover=9, on_delay_s=3),)
    table = compile_table([sensor(0, held)])
    state = CoreState.empty(1)
    got = []
    for t in range(5):
        state, tr, _ = evaluate(table, cols(0, [t * 1000], [11.0]), state)
        got += side_rows(tr, 0)
    assert got == [(3000, 1)]


def test_sensor_fault_is_its_own_alarm_and_calibration_never_alarms():
    _, tr, outcome = run(
        METHANE,
        [2.0, np.nan, 5.0, 0.1, 0.2],
        qualities=[Quality.SENSOR_FAULT, Quality.GOOD, Quality.CALIBRATION, Quality.GOOD, 0],
    )
    assert side_rows(tr, FAULT) == [(1000, 1), (4000, 0)]
    assert side_rows(tr, 0) == []
    assert (outcome.judged, outcome.skipped, outcome.late) == (2, 3, 0)


def test_a_sensor_without_levels_still_raises_its_faults():
    """A tower crane's height encoder (no levels: it is shown, not judged) in fault raised
    nothing, though the docs say its faults are alarms (helper-89); a power-feed sensor's
    neither. Its next reading with a value clears it; a comm loss is not a fault."""
    _, tr, _ = run(
        (),
        [12.0, np.nan, np.nan, 12.5, 13.0],
        qualities=[0, Quality.SENSOR_FAULT, Quality.COMM_LOSS, Quality.CALIBRATION, 0],
    )
    assert side_rows(tr, FAULT) == [(2000, 1), (5000, 0)]  # the calibration clears nothing


def test_the_lateness_window_rewinds_only_sensors_worth_it():
    """A sensor without levels is judged for its faults, but a late reading of it is counted
    late, not rewound: rewinding display-only sensors cost a fifth of the core's speed with a
    window (helper-90); one with levels is rewound as before."""
    table = compile_table([sensor(0, (), None), sensor(1, METHANE, None)], lateness_ms=60_000)
    state = CoreState.empty(2)
    state, _, _ = evaluate(table, cols([0, 1], [1000, 1000], [1.0, 0.2]), state)
    state, _, _ = evaluate(table, cols([0, 1], [3000, 3000], [1.0, 0.2]), state)
    _, _, outcome = evaluate(table, cols([0, 1], [2000, 2000], [1.0, 0.3]), state)
    assert (outcome.late, outcome.rewound) == (1, 1)


def test_an_out_of_range_reading_is_judged_as_the_measurement_it_is():
    """A methane head over its span (4.5 % on a 0-4 % head, out of range) is above the
    power-cut level: it cuts, where a sensor fault would only have asked to check the head."""
    _, tr, outcome = run(
        METHANE, [0.3, 4.5, 0.2], qualities=[Quality.GOOD, Quality.OUT_OF_RANGE, Quality.GOOD]
    )
    assert side_rows(tr, ABOVE) == [(2000, 2), (3000, 0)]
    assert side_rows(tr, FAULT) == []
    assert outcome.judged == 3


def test_comm_loss_raises_no_data_and_good_data_clears_it():
    _, tr, _ = run(METHANE, [0.1, np.nan, np.nan, 0.2], qualities=[0, 3, 3, 0])
    assert side_rows(tr, NO_DATA) == [(2000, 1), (4000, 0)]


def test_silence_beyond_the_timeout_raises_no_data_against_now():
    table = compile_table([sensor(0, METHANE, no_data_s=30)])
    state, tr, _ = evaluate(table, cols(0, [1000], [0.1]), CoreState.empty(1), now=2_000)
    assert len(tr) == 0
    state, tr, _ = evaluate(table, cols(0, [], []), state, now=31_001)
    # silent for 30 s in event time, but it arrived at 2 s: silent on the hub's clock at 32 s
    assert len(tr) == 0
    state, tr, _ = evaluate(table, cols(0, [], []), state, now=32_000)
    assert len(tr) == 0
    state, tr, _ = evaluate(table, cols(0, [], []), state, now=32_001)
    assert side_rows(tr, NO_DATA) == [(31_000, 1)]  # stamped in event time
    state, tr, _ = evaluate(table, cols(0, [40_000], [0.1]), state, now=40_500)
    assert side_rows(tr, NO_DATA) == [(40_000, 0)]
    # a gap in event time inside one batch raises and clears
    _, tr, _ = evaluate(table, cols(0, [50_000, 90_000], [0.1, 0.1]), state, now=90_100)
    assert side_rows(tr, NO_DATA) == [(80_000, 1), (90_000, 0)]


def test_a_backlog_drained_late_or_a_gateway_clock_behind_is_not_silence():
    """Readings that arrive late but in order (a gateway's spool drained after an outage, or a
    gateway whose clock runs 2 min behind the hub's) keep the sensor heard: no no-data on the
    hub's clock, and no flapping; a real gap between two of them still raises."""
    table = compile_table([sensor(0, METHANE, no_data_s=30)])
    state = CoreState.empty(1)
    for k in range(20):  # one reading a second, each 120 s old when it arrives
        ts = 1_000_000 + k * 1000
        state, tr, _ = evaluate(table, cols(0, [ts], [0.1]), state, now=ts + 120_000)
        assert side_rows(tr, NO_DATA) == [], k
        state, tr, _ = evaluate(table, cols(0, [], []), state, now=ts + 120_500)  # a tick
        assert side_rows(tr, NO_DATA) == [], k
    # the gateway dies: silent on both clocks 30 s after the last arrival
    last = 1_019_000
    _, tr, _ = evaluate(table, cols(0, [], []), state, now=last + 120_000 + 30_001)
    assert side_rows(tr, NO_DATA) == [(last + 30_000, 1)]
    # a gap in the backlog itself (no readings measured for 40 s) raises and clears with it
    _, tr, _ = evaluate(table, cols(0, [last + 40_000], [0.1]), state, now=last + 160_000)
    assert side_rows(tr, NO_DATA) == [(last + 30_000, 1), (last + 40_000, 0)]


def test_a_sensor_never_heard_from_times_out_from_the_first_now():
    table = compile_table([sensor(0, METHANE, no_data_s=10)])
    state, tr, _ = evaluate(table, cols(0, [], []), CoreState.empty(1), now=100_000)
    assert len(tr) == 0
    _, tr, _ = evaluate(table, cols(0, [], []), state, now=110_001)
    assert side_rows(tr, NO_DATA) == [(110_000, 1)]


def _power_cut_table():
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2)
    return compile_table([sensor(0, METHANE, verify=verify), sensor(1, ())])


def test_power_cut_confirmed_by_the_feed_within_the_deadline():
    table = _power_cut_table()
    batch = cols([0, 1, 0, 1, 0, 1], [1000, 1000, 2000, 2000, 3000, 3000], [1.6, 1, 1.6, 0, 1.6, 0])
    state, tr, _ = evaluate(table, batch, CoreState.empty(2), now=3500)
    assert side_rows(tr, ACTION) == []
    assert state.met[0]


def test_power_cut_failed_when_the_feed_stays_on():
    table = _power_cut_table()
    batch = cols([0, 1, 0, 1], [1000, 1000, 2000, 2000], [1.6, 1, 1.6, 1])
    state, tr, _ = evaluate(table, batch, CoreState.empty(2), now=2500)
    assert side_rows(tr, ACTION) == []  # the deadline (3 s) has not passed
    state, tr, _ = evaluate(table, cols([1], [3000], [1.0]), state, now=3000)
    assert side_rows(tr, ACTION) == []  # a reading at the deadline still counts
    state, tr, _ = evaluate(table, cols([], [], []), state, now=4000)
    assert side_rows(tr, ACTION) == []  # within the grace (1 s) a feed reading may be in transit
    state, tr, _ = evaluate(table, cols([], [], []), state, now=4001)
    assert side_rows(tr, ACTION) == [(3000, 1)]
    # the feed drops late: the failure clears
    state, tr, _ = evaluate(table, cols([1], [4500], [0.0]), state, now=4600)
    assert side_rows(tr, ACTION) == [(4500, 0)]


def test_a_feed_reading_past_the_deadline_decides_without_now():
    table = _power_cut_table()
    batch = cols([0, 1, 1], [1000, 2000, 3500], [1.6, 1, 1])
    _, tr, _ = evaluate(table, batch, CoreState.empty(2))
    assert side_rows(tr, ACTION) == [(3000, 1)]


FAN = (LevelSpec(name="fan_stopped", tier="red", below=0.5, recover=0.5),)


def test_a_fan_that_stops_demands_the_power_cut_on_a_level_below():
    """风电闭锁: the heading's local fan reads 1 running, 0 stopped; its stop (a level below)
    demands that the heading's feed reads no power within 2 s, else power cut failed. A
    verification needed a level above, so only an inverted second point of the same input
    could say it (helper-72)."""
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2)
    table = compile_table([sensor(0, FAN, verify=verify), sensor(1, ())])
    (plan,) = table.verify
    assert (plan.side, plan.number) == (BELOW, 1)
    # the fan stops at 1 s, the feed stays on: failed at the deadline (3 s), both cores agree
    got = _both(
        table,
        [
            (cols([0, 1], [500, 500], [1, 1]), 600),
            (cols([0, 1], [1000, 1000], [0, 1]), 1100),
            (cols([1], [3500], [1]), 3600),
            (cols([1], [4000], [0]), 4100),  # the cut comes late: the failure clears
        ],
    )
    assert got == [(3000, 1), (4000, 0)]
    # the feed drops in time: nothing; the fan running again ends the demand
    got = _both(
        table,
        [
            (cols([0, 1], [1000, 1000], [0, 1]), 1100),
            (cols([1], [2500], [0]), 2600),
            (cols([0, 1], [5000, 5000], [1, 0]), 9000),
        ],
    )
    assert got == []


def test_a_fan_stop_judged_in_the_lateness_window_demands_the_cut_all_the_same():
    """A verification on the side below sees the changes of the lateness window's rewinds:
    its own sensor's (a stop that came late, or one a late reading undid) and those of a batch
    in which another sensor was rewound (helper-77: the core dropped them, or never saw them)."""
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2)
    lazy = (LevelSpec(name="fan_stopped", tier="red", below=0.5, recover=0.8),)
    table = compile_table([sensor(0, lazy, verify=verify), sensor(1, ())], lateness_ms=10_000)
    # the stop at 2 s comes late, rewound in; the fan stays stopped (0.6 < 0.8), the feed on
    got = _both(
        table,
        [
            (cols([0, 1, 0], [500, 500, 3000], [1, 1, 0.6]), 600),
            (cols([0, 1], [2000, 2000], [0, 1]), 3100),
            (cols([1], [5000], [1]), 10_000),
        ],
    )
    assert got == [(4000, 1)]
    # a stop of two samples at 3 s that a late reading (running at 2 s) undoes: no failure
    twice = (LevelSpec(name="fan_stopped", tier="red", below=0.5, recover=0.5, on_samples=2),)
    table = compile_table([sensor(0, twice, verify=verify), sensor(1, ())], lateness_ms=10_000)
    got = _both(
        table,
        [
            (cols([0, 1, 0], [500, 500, 3000], [0, 1, 0]), 600),
            (cols([0], [2000], [1]), 3100),
            (cols([1], [6000], [1]), 10_000),
        ],
    )
    assert got == []
    # a methane sensor rewound in the batch in which the fan stops
    methane = (LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),)
    table = compile_table(
        [sensor(0, FAN, verify=verify), sensor(1, ()), sensor(2, methane)], lateness_ms=10_000
    )
    got = _both(
        table,
        [
            (cols([0, 1, 2, 2], [500, 500, 1000, 3000], [1, 1, 0.1, 0.1]), 600),
            (cols([2, 0, 1], [2000, 4000, 4000], [0.1, 0, 1]), 4100),
            (cols([], [], []), 10_000),
        ],
    )
    assert got == [(6000, 1)]


def _both(table, batches, side=ACTION):
    """The rows of one side (ts, after) of the core and of the reference, which must agree, over
    the same (batch, now) list."""
    state, ref, got, want = CoreState.empty(table.size), ReferenceCore(table), [], []
    for batch, now in batches:
        state, tr, _ = evaluate(table, batch, state, now)
        got += side_rows(tr, side)
        rows = ref.evaluate(batch.sensor, batch.ts, batch.value, batch.quality, now)
        want += [(r[1], r[5]) for r in rows if r[3] == side]
    assert got == want
    return got


def test_a_cut_with_two_feeds_is_confirmed_only_when_both_are_off():
    """The intake and the return airway of one power-cut scope each have a feed sensor: the cut
    is confirmed when both read no power; the failure carries the feed still on and clears when
    the last one drops."""
    verify = VerifySpec(sensor="s1", also=("s2",), expect_below=0.5, within_s=2)
    table = compile_table([sensor(0, METHANE, verify=verify), sensor(1, ()), sensor(2, ())])
    both_off = cols([0, 1, 2, 0], [1000, 1500, 1500, 3500], [1.6, 0, 0, 1.6])
    assert _both(table, [(both_off, 3600)]) == []
    # the return feed (s2) stays on past the deadline (3 s), then drops at 5 s
    one_on = cols([0, 1, 2, 2, 1, 2], [1000, 1500, 1500, 3500, 3500, 5000], [1.6, 0, 1, 1, 0, 0])
    assert _both(table, [(one_on, 5100)]) == [(3000, 1), (5000, 0)]
    _, tr, _ = evaluate(table, one_on, CoreState.empty(3), 5100)
    assert tr.value[tr.side == ACTION].tolist() == [1.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.tuples(
                    st.integers(0, 3),
                    st.integers(0, 30),
                    st.sampled_from([0.0, 0.0, 1.0, 0.8, 1.6, 2.0, math.nan]),
                    # good, or (the methane's fault lock-out, a held cut's break) sensor fault,
                    # comm loss, stale, manual, calibration
                    st.sampled_from([0, 0, 0, 0, 1, 1, 3, 4, 5, 6]),
                ),
                max_size=25,
            ),
            st.one_of(st.none(), st.integers(0, 8_000)),
            # the sensors a batch has readings of: all, or (a held cut's break and the methane
            # reading that fails it, each in a batch of its own) the feeds or the methane only
            st.sampled_from([range(4), range(1, 4), range(1)]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([1, 2, 4]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_plans_with_several_feedbacks_agree_with_reference(batches, within_s, hold, off, on_fault):
    """A cut verified by three feeds, held or not, demanded by the methane's fault too or not
    (`off`: every feed reads no power first, so that the cut is met more often): the core and
    the reference give the same ACTION rows."""
    verify = VerifySpec(
        sensor="s1",
        also=("s2", "s3"),
        expect_below=0.5,
        within_s=within_s,
        hold=hold,
        on_fault=on_fault,
    )
    infos = [sensor(0, METHANE, verify=verify), sensor(1, ()), sensor(2, ()), sensor(3, ())]
    table = compile_table(infos)
    state, ref = CoreState.empty(4), ReferenceCore(table)
    clock = 0
    if off:
        batches = [([(1, 0, 0.0, 0), (2, 0, 0.0, 0), (3, 0, 0.0, 0)], None, range(4)), *batches]
    for drawn, late, only in batches:
        clock += 8_000
        rows = [r for r in drawn if r[0] in only]
        s = np.array([r[0] for r in rows], np.int32)
        t = clock + np.array([r[1] for r in rows], np.int64) * 250
        v = np.array([r[2] for r in rows])
        q = np.array([r[3] for r in rows], np.uint8)
        now = None if late is None else clock + late
        state, tr, _ = evaluate(table, Readings(s, t, v, q), state, now)
        expected = ref.evaluate(s, t, v, q, now)
        assert _norm(tr.rows()) == _norm(expected)
        assert state.level.tolist() == ref.level
        assert state.broke.tolist() == (ref.broke if table.has_hold else [])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.tuples(
                    st.integers(0, 2),
                    st.integers(0, 30),
                    st.integers(0, 3),
                    # good, or sensor fault, comm loss, stale, manual, calibration (a fault
                    # lock-out's sensor, a held cut's break)
                    st.sampled_from([0, 0, 0, 0, 1, 1, 3, 4, 5, 6]),
                ),
                max_size=12,
            ),
            st.one_of(st.none(), st.integers(0, 8_000)),
        ),
        min_size=2,
        max_size=8,
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_held_cuts_agree_with_reference(batches, two, window, on_fault):
    """Held cuts (one feed or two) over streams that reach the power-cut level and cut, power
    again and fall back in batches of every mix, demanded by the methane's fault too or not:
    the core (which judges the held plans with nothing to do without a step,
    `alerts.verify._held`) and the reference agree; with a lateness window too, readings up to
    20 s older than their batch's, up to 7 s older than the previous batch's newest, rewound
    (helper-137's fuzzing found the two apart there)."""
    table = _held_cut_table(
        also=("s2",) if two else (), lateness_ms=10_000 if window else 0, on_fault=on_fault
    )
    n = table.size
    state, ref = CoreState.empty(n), ReferenceCore(table)
    methane, feed = (0.8, 1.2, 1.6, 2.0), (0.0, 0.0, 1.0, 1.0)
    prelude = [(f, 0, 0, 0) for f in range(1, n)]
    for k, (drawn, late) in enumerate([(prelude, None), *batches]):
        rows = [r for r in drawn if r[0] < n]
        clock = k * 8_000
        s = np.array([r[0] for r in rows], np.int32)
        step = 500 if window else 250  # (with a window, batches overlapping by up to 7 s)
        t = clock + (np.array([r[1] for r in rows], np.int64) - (40 if window else 0)) * step
        q = np.array([r[3] for r in rows], np.uint8)
        v = np.array([(feed if r[0] else methane)[r[2]] for r in rows], np.float64)
        v[q == Quality.COMM_LOSS] = math.nan
        now = None if late is None else clock + late
        state, tr, _ = evaluate(table, Readings(s, t, v, q), state, now)
        expected = ref.evaluate(s, t, v, q, now)
        assert _norm(tr.rows()) == _norm(expected)
        assert state.level.tolist() == ref.level
        assert state.broke.tolist() == (ref.broke if table.has_hold else [])
        assert state.met.tolist() == ref.met


def test_power_back_on_during_the_cut_is_not_judged():
    """A confirmed cut undone while the level lasts is not flagged (docs/rules.md says why): the
    substation restores power on its own reading, which the hub may get a poll later than the
    feed's, so power back before the recovery is seen is a normal end of a cut."""
    table = _power_cut_table()
    confirmed = cols([0, 1, 0, 1], [1000, 1000, 2000, 2000], [1.6, 1, 1.6, 0])
    # the feed polled at 12 s shows power, the methane's 0.8 arrives with the 15 s poll
    ending = cols([0, 1, 0], [10_000, 12_000, 15_000], [1.6, 1, 0.8])
    assert _both(table, [(confirmed, 2500), (ending, 15_100)]) == []


def _held_cut_table(also=(), lateness_ms=0, on_fault=False):
    verify = VerifySpec(
        sensor="s1", also=also, expect_below=0.5, within_s=2, hold=True, on_fault=on_fault
    )
    feeds = [sensor(i, ()) for i in range(1, 2 + len(also))]
    return compile_table(
        [sensor(0, METHANE, verify=verify), *feeds], lateness_ms=lateness_ms, late_depth=8
    )


def test_a_held_cut_fails_when_power_is_back_while_methane_stays():
    """hold: the face re-energised at 12 s during the cut; the methane's next reading (15 s)
    still shows the power-cut level: 馈电异常 stamped with the power's return, carrying the
    feed's value; it clears when the feed reads no power again (20 s)."""
    table = _held_cut_table()
    confirmed = cols([0, 1, 0, 1], [1000, 1000, 2000, 2000], [1.6, 1, 1.6, 0])
    back = cols([0, 1, 0], [10_000, 12_000, 15_000], [1.6, 1, 1.6])
    cut_again = cols([1, 0], [20_000, 20_000], [0, 1.6])
    assert _both(table, [(confirmed, 2500), (back, 15_100), (cut_again, 20_100)]) == [
        (12_000, 1),
        (20_000, 0),
    ]
    state = CoreState.empty(2)
    for batch, now in ((confirmed, 2500), (back, 15_100)):
        state, tr, _ = evaluate(table, batch, state, now)
    assert tr.value[tr.side == ACTION].tolist() == [1.0]
    assert state.broke[0] == 12_000
    # the methane's fall below the recovery ends the demand and clears the failure
    down = cols([0], [30_000], [0.8])
    state, tr, _ = evaluate(table, down, state, 30_100)
    assert side_rows(tr, ACTION) == [(30_000, 0)]
    assert state.broke[0] == NO_TS


def test_a_held_cut_is_not_failed_by_a_restore_the_methane_reading_shows_after_the_feed():
    """The substation restores power on its own reading, which the hub gets a poll after the
    feed's: power at 12 s, methane 0.8 (below the recovery) at 15 s is a normal end of the cut.
    A break that ends before the next methane reading (a switch bounce) fails nothing either."""
    table = _held_cut_table()
    confirmed = cols([0, 1, 0, 1], [1000, 1000, 2000, 2000], [1.6, 1, 1.6, 0])
    ending = cols([0, 1, 0], [10_000, 12_000, 15_000], [1.6, 1, 0.8])
    assert _both(table, [(confirmed, 2500), (ending, 15_100)]) == []
    bounce = cols([1, 1, 0], [12_000, 13_000, 15_000], [1, 0, 1.6])
    assert _both(table, [(confirmed, 2500), (bounce, 15_100)]) == []
    # the feed's power and the methane's reading in batches of their own: the failure waits
    got = _both(
        table,
        [
            (confirmed, 2500),
            (cols([1], [12_000], [1]), 12_100),
            (cols([], [], []), 14_000),
            (cols([0], [15_000], [1.6]), 15_100),
        ],
    )
    assert got == [(12_000, 1)]
    # without hold, power back is not judged (as before)
    assert _both(_power_cut_table(), [(confirmed, 2500), (ending, 15_100)]) == []


def test_a_held_cut_with_two_feeds_fails_on_either():
    """Two feeds of one scope: the return's feed powered again fails the cut (carrying its
    value), which clears only when it reads no power again."""
    table = _held_cut_table(also=("s2",))
    confirmed = cols([0, 1, 2], [1000, 1000, 1000], [1.6, 0, 0])
    back = cols([2, 0, 1, 0], [5000, 6000, 7000, 8000], [2, 1.6, 0, 1.6])
    cut = cols([2, 0], [9000, 9000], [0, 1.6])
    assert _both(table, [(confirmed, 1100), (back, 8100), (cut, 9100)]) == [
        (5000, 1),
        (9000, 0),
    ]
    state = CoreState.empty(3)
    for batch, now in ((confirmed, 1100), (back, 8100)):
        state, tr, _ = evaluate(table, batch, state, now)
    assert tr.value[tr.side == ACTION].tolist() == [2.0]


WIND = (LevelSpec(name="stop", tier="orange", above=10.8, recover=9.8),)


def _frozen_rows(spec, ts, values, qualities=None, now=None):
    """The FROZEN rows of the core and of the reference (which must agree) for one sensor."""
    table = compile_table([sensor(0, WIND, frozen=spec)])
    return _both(table, [(cols(0, ts, values, qualities), now)], FROZEN)


def test_a_value_that_stops_moving_is_frozen_until_it_moves():
    spec = FrozenSpec(after_s=60, band=0.05)
    ts = [0, 10_000, 20_000, 50_000, 80_000, 90_000, 100_000]
    # moves, then within the band from one reading to the next for 60 s, then moves
    assert _frozen_rows(spec, ts, [3.0, 3.2, 3.21, 3.2, 3.24, 3.22, 4.0]) == [
        (80_000, 1),
        (100_000, 0),
    ]
    # sensor-fault and calibration readings neither continue nor end a run
    q = [0, 0, Quality.SENSOR_FAULT, Quality.CALIBRATION, 0, 0, 0]
    assert _frozen_rows(spec, ts, [3.0, 3.2, 9.0, 9.0, 3.2, 3.2, 3.2], q) == [(80_000, 1)]


def test_a_calm_below_ignore_below_ends_a_run_and_is_never_frozen():
    """An anemometer at 0.4 m/s for 40 min (a calm under the 0.5 m/s floor), then 0.5 and
    0.55 m/s (within the band of each other): a run starts at the first reading above the
    floor, so nothing is frozen."""
    spec = FrozenSpec(after_s=1800, band=0.1, ignore_below=0.5)
    ts = [i * 60_000 for i in range(43)]
    assert _frozen_rows(spec, ts, [0.4] * 41 + [0.5, 0.55]) == []
    # stuck above the floor for 30 min: frozen
    assert _frozen_rows(spec, ts, [0.4] * 10 + [5.0] * 33) == [(40 * 60_000, 1)]


CAL, MAN, LOSS = Quality.CALIBRATION, Quality.MANUAL, Quality.COMM_LOSS
MIN = 60_000


def _maint_rows(spec, ts, qualities, sensors=None, batches=1):
    """The MAINTENANCE rows (ts, after, value) of the core and of the reference, which must
    agree, for one methane sensor (`batches`: the readings split in that many batches)."""
    table = compile_table([sensor(0, METHANE, maintenance=spec), sensor(1, ())])
    n = len(ts)
    state, ref, got, want = CoreState.empty(table.size), ReferenceCore(table), [], []
    cuts = np.array_split(np.arange(n), batches)
    who = sensors if sensors is not None else [0] * n
    for part in cuts:
        batch = cols(
            [who[i] for i in part],
            [ts[i] for i in part],
            [0.2] * len(part),
            [qualities[i] for i in part],
        )
        state, tr, _ = evaluate(table, batch, state, None)
        got += [(r[1], r[5], r[2]) for r in tr.rows() if r[3] == MAINTENANCE]
        rows = ref.evaluate(batch.sensor, batch.ts, batch.value, batch.quality)
        want += [(r[1], r[5], r[2]) for r in rows if r[3] == MAINTENANCE]
    assert got == want
    return got


def test_a_detector_left_in_calibration_past_its_limit_raises_maintenance():
    """Calibration readings every 10 min for 3 h against a 2 h limit: 'maintenance' at the
    first reading 2 h into the run (its value the seconds held), cleared by the first measured
    reading (its value the whole time out of measurement); judged alike in one batch or many."""
    spec = MaintenanceSpec(after_s=7200)
    ts = [i * 10 * MIN for i in range(19)] + [190 * MIN]
    q = [CAL] * 19 + [0]
    for batches in (1, 4, 20):
        assert _maint_rows(spec, ts, q, batches=batches) == [
            (120 * MIN, 1, 7200.0),
            (190 * MIN, 0, 11400.0),
        ]


def test_a_measured_reading_or_a_fault_ends_the_run_and_a_comm_loss_does_not():
    spec = MaintenanceSpec(after_s=3600)
    # calibration, a measured reading at 50 min (a new run from 60 min), calibration to 100 min
    ts = [0, 30 * MIN, 50 * MIN, 60 * MIN, 100 * MIN]
    assert _maint_rows(spec, ts, [CAL, CAL, 0, CAL, CAL]) == []
    # a sensor fault ends it alike
    assert _maint_rows(spec, ts, [CAL, CAL, Quality.SENSOR_FAULT, CAL, CAL]) == []
    # a value forced by hand, the link lost for 50 min in between, still forced: overdue
    ts = [0, 10 * MIN, 60 * MIN, 70 * MIN]
    assert _maint_rows(spec, ts, [MAN, LOSS, LOSS, MAN]) == [(70 * MIN, 1, 4200.0)]
    # calibration then manual: one run
    assert _maint_rows(spec, ts, [CAL, MAN, MAN, CAL]) == [(60 * MIN, 1, 3600.0)]
    # another sensor's readings change nothing of it; a sensor without a limit never raises
    assert _maint_rows(spec, ts, [CAL] * 4, sensors=[1, 1, 1, 1]) == []


DAY = 86_400_000


def _calib_rows(ts, qualities, every_days=15.0, batches=1, window_ms=0):
    """The CALIBRATION_DUE rows (ts, after, value) of the core and of the reference, which must
    agree, for one methane sensor read every `ts` (`batches`: the readings split in that many)."""
    spec = CalibrationDueSpec(every_days=every_days)
    infos = [sensor(0, METHANE, calibration_due=spec), sensor(1, ())]
    table = compile_table(infos, lateness_ms=window_ms, late_depth=4)
    n = len(ts)
    state, ref, got, want = CoreState.empty(table.size), ReferenceCore(table), [], []
    for part in np.array_split(np.arange(n), batches):
        batch = cols(
            [0] * len(part), [ts[i] for i in part], [0.2] * len(part), [qualities[i] for i in part]
        )
        state, tr, _ = evaluate(table, batch, state, None)
        got += [(r[1], r[5], r[2]) for r in tr.rows() if r[3] == CALIBRATION_DUE]
        rows = ref.evaluate(batch.sensor, batch.ts, batch.value, batch.quality)
        want += [(r[1], r[5], r[2]) for r in rows if r[3] == CALIBRATION_DUE]
    assert got == want
    return got


def test_a_methane_sensor_not_calibrated_for_15_days_raises_calibration_due():
    """标校超期 (DOMAIN 1.3): a reading a day, a calibration on day 3: 'calibration_due' at the
    first reading 15 days after it (value: the days since), cleared by the next calibration
    (value: how long the sensor went without one); alike in one batch or many."""
    ts = [d * DAY for d in range(21)]
    q = [0] * 21
    q[3] = q[19] = CAL
    for batches in (1, 5, 21):
        assert _calib_rows(ts, q, batches=batches) == [(18 * DAY, 1, 15.0), (19 * DAY, 0, 16.0)]


def test_calibration_due_counts_from_the_first_reading_and_only_a_calibration_ends_it():
    """With no calibration seen the interval counts from the sensor's first judged reading; a
    fault or manual reading is judged (a sensor in fault still needs its calibration), a comm
    loss is not (the link, not the sensor); only a calibration reading clears the alarm."""
    ts = [0, 10 * DAY, 15 * DAY, 16 * DAY, 17 * DAY]
    assert _calib_rows(ts, [0, 0, 0, 0, 0]) == [(15 * DAY, 1, 15.0)]
    assert _calib_rows(ts, [0, 0, LOSS, Quality.SENSOR_FAULT, 0]) == [(16 * DAY, 1, 16.0)]
    assert _calib_rows(ts, [0, 0, LOSS, Quality.STALE, MAN]) == [(17 * DAY, 1, 17.0)]
    # a calibration run (minutes of calibration readings) counts from its last reading
    ts = [0, DAY, DAY + MIN, DAY + 2 * MIN, 3 * DAY, 3 * DAY + 20 * MIN]
    assert _calib_rows(ts, [0, CAL, CAL, CAL, 0, 0], every_days=2.0) == [
        (3 * DAY + 20 * MIN, 1, 2.0 + 18 / 1440)
    ]


def test_an_interval_turned_off_clears_its_raised_alarm_at_the_next_reading():
    """helper-159: `every_days: 0` (a substation that does not flag its calibrations, as the
    upgrade note advises) left the alarms already raised active for good: only a calibration
    cleared them, and such a substation sends none. The sensor's next reading clears it (no
    value), whether other sensors keep an interval or none does; the reference alike."""
    due = CalibrationDueSpec(every_days=15)
    off = CalibrationDueSpec(every_days=0)
    raised_by = compile_table([sensor(0, METHANE, calibration_due=due), sensor(1, METHANE)])
    state, ref = CoreState.empty(2), ReferenceCore(raised_by)
    batch = cols([0, 0], [0, 15 * DAY], [0.2, 0.2])
    state, tr, _ = evaluate(raised_by, batch, state, None)
    rows = ref.evaluate(batch.sensor, batch.ts, batch.value, batch.quality)
    assert [(r[1], r[5]) for r in tr.rows() if r[3] == CALIBRATION_DUE] == [(15 * DAY, 1)]
    assert [(r[1], r[5]) for r in rows if r[3] == CALIBRATION_DUE] == [(15 * DAY, 1)]
    for other in (None, due):  # no sensor with an interval left, or another one
        table = compile_table(
            [sensor(0, METHANE, calibration_due=off), sensor(1, METHANE, calibration_due=other)]
        )
        assert table.has_calib == (other is not None)
        again = ReferenceCore(table)
        again.level, again.calib_at = [list(x) for x in ref.level], list(ref.calib_at)
        nxt = cols([0, 0], [16 * DAY, 17 * DAY], [0.2, 0.2])
        st, tr, _ = evaluate(table, nxt, state.copy(), None)
        got = [(r[1], r[4], r[5], r[2]) for r in tr.rows() if r[3] == CALIBRATION_DUE]
        assert _norm(got) == [(16 * DAY, 1, 0, None)]
        want = again.evaluate(nxt.sensor, nxt.ts, nxt.value, nxt.quality)
        assert _norm([(r[1], r[4], r[5], r[2]) for r in want if r[3] == CALIBRATION_DUE]) == _norm(
            got
        )
        assert int(st.level[0, CALIBRATION_DUE]) == 0


def test_a_late_calibration_within_the_window_is_judged_in_its_place():
    """A calibration reading that comes late (a substation's backlog) within the lateness window
    rewinds the sensor: the overdue raised at 15 d is taken back (a clear stamped with the raise:
    a rewind tells nothing from before what it told), and the next reading is judged from the
    calibration; without the window the late calibration is not judged."""
    ts = [0, 15 * DAY, 15 * DAY - MIN, 16 * DAY]
    got = _calib_rows(ts, [0, 0, CAL, 0], batches=4, window_ms=3_600_000)
    assert got == [(15 * DAY, 1, 15.0), (15 * DAY, 0, 15.0)]
    assert _calib_rows(ts, [0, 0, CAL, 0], batches=4) == [(15 * DAY, 1, 15.0)]


def test_out_of_order_batch_is_judged_in_event_time_order_and_late_readings_counted():
    table = compile_table([sensor(0, METHANE)])
    state, tr, _ = evaluate(table, cols(0, [3000, 1000, 2000], [0.2, 1.1, 0.5]), CoreState.empty(1))
    assert list(zip(tr.ts.tolist(), tr.after.tolist(), strict=True)) == [(1000, 1), (2000, 0)]
    _, tr2, outcome = evaluate(table, cols(0, [2500], [5.0]), state)
    assert len(tr2) == 0 and outcome.late == 1


def test_state_carries_across_batches():
    table = compile_table([sensor(0, METHANE)])
    state = CoreState.empty(1)
    levels = []
    for i, v in enumerate([1.6, 1.2, 0.9]):
        state, tr, _ = evaluate(table, cols(0, [i], [v]), state)
        levels.append(tr.after.tolist())
    assert levels == [[2], [], [0]]


def test_evaluate_does_not_modify_the_state_it_was_given():
    table = compile_table([sensor(0, METHANE)])
    state = CoreState.empty(1)
    evaluate(table, cols(0, [1], [2.0]), state)
    assert state.level.sum() == 0 and not state.active.any()


def test_the_old_call_form_still_works():
    table = compile_table([sensor(0, METHANE)])
    b = cols(0, [1], [2.0])
    _, tr, _ = evaluate(table, CoreState.empty(1), b.sensor, b.ts, b.value, b.quality)
    assert tr.after.tolist() == [2]


# -- property: vectorized core == reference -------------------------------------------------


@st.composite
def level_sets(draw):
    n_hi = draw(st.integers(0, SLOTS))
    n_lo = draw(st.integers(0, 2))
    delays = draw(st.booleans())

    def timing():
        if not delays:
            return {}
        return {
            "on_delay_s": draw(st.sampled_from([0, 0, 1, 2.5, 5])),
            "off_delay_s": draw(st.sampled_from([0, 0, 1, 3])),
            "on_samples": draw(st.integers(1, 3)),
            "off_samples": draw(st.integers(1, 3)),
        }

    levels = []
    his = sorted(draw(st.lists(st.integers(0, 20), min_size=n_hi, max_size=n_hi)))
    for j, thr in enumerate(his):
        rec = thr - draw(st.integers(0, 3))
        levels.append(
            LevelSpec(name=f"h{j}", tier="red", above=float(thr), recover=float(rec), **timing())
        )
    los = sorted(draw(st.lists(st.integers(-20, 0), min_size=n_lo, max_size=n_lo)), reverse=True)
    for j, thr in enumerate(los):
        rec = thr + draw(st.integers(0, 3))
        levels.append(
            LevelSpec(name=f"l{j}", tier="blue", below=float(thr), recover=float(rec), **timing())
        )
    return tuple(levels)


@st.composite
def scenarios(draw):
    n_sensors = draw(st.integers(1, 4))
    infos = []
    for i in range(n_sensors):
        levels = draw(level_sets())
        no_data = draw(st.sampled_from([None, None, 3, 10]))
        verify = None
        can_verify = i == 0 and n_sensors > 1 and bool(levels)
        if can_verify and draw(st.booleans()):
            also = (f"s{n_sensors - 2}",) if n_sensors > 2 and draw(st.booleans()) else ()
            # the level that demands: the default (the highest above, else the lowest below),
            # or any one named, above or below (a fan's stop)
            named = draw(st.sampled_from([None, *(lv.name for lv in levels)]))
            verify = VerifySpec(
                sensor=f"s{n_sensors - 1}",
                also=also,
                level=named,
                expect_below=draw(st.sampled_from([0.5, 5.0])),
                within_s=draw(st.sampled_from([1, 2, 4])),
                hold=draw(st.booleans()),
                on_fault=draw(st.booleans()),
            )
        rate = early = None
        if levels and draw(st.booleans()):
            rate = RateSpec(
                per_min=draw(st.sampled_from([10, 60, 300, 1200])),
                window_s=draw(st.sampled_from([1, 2.5, 10])),
                recover_factor=draw(st.sampled_from([0.5, 0.8, 1.0])),
            )
        if any(lv.above is not None for lv in levels) and draw(st.booleans()):
            early = EarlyWarningSpec(
                window_s=draw(st.sampled_from([1, 3, 10])),
                horizon_s=draw(st.sampled_from([0.5, 2, 10])),
            )
        frozen = None
        if levels and draw(st.booleans()):
            frozen = FrozenSpec(
                after_s=draw(st.sampled_from([0.5, 1, 3, 10])),
                band=draw(st.sampled_from([0.0, 0.0, 1.0, 3.0])),
                ignore_below=draw(st.sampled_from([None, None, 0.0, 5.0])),
            )
        maintenance = None
        if draw(st.booleans()):  # (applied to the judged sensors only: `compile_table`)
            maintenance = MaintenanceSpec(after_s=draw(st.sampled_from([1, 2, 5, 30])))
        calibration = None
        if draw(st.booleans()):  # (judged sensors only, as maintenance); every 1-10 s here
            every = draw(st.sampled_from([1, 2, 5, 10]))
            calibration = CalibrationDueSpec(every_days=every / 86400)
        infos.append(
            sensor(i, levels, no_data, verify, rate, early, frozen, maintenance, calibration)
        )
    voters = [i.index for i in infos if any(lv.above is not None for lv in i.levels)]
    if len(voters) >= 2 and draw(st.booleans()):
        k = draw(st.integers(1, len(voters)))
        vote = LevelSpec(name="area", tier="red", above=k, recover=k)
        group = sensor(n_sensors, (vote,))
        infos.append(
            dataclasses.replace(
                group, members=tuple(voters), vote_level=1, count_failed=draw(st.booleans())
            )
        )
    batches = []
    clock = 0
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 30))
        clock += draw(st.integers(0, 15_000))
        now = draw(st.one_of(st.none(), st.just(clock)))
        batches.append(
            (
                np.array(
                    draw(st.lists(st.integers(0, n_sensors - 1), min_size=n, max_size=n)), np.int32
                ),
                np.array(draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), np.int64)
                * 500,
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
                    draw(
                        st.lists(
                            st.sampled_from([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 6]),
                            min_size=n,
                            max_size=n,
                        )
                    ),
                    np.uint8,
                ),
                now,
            )
        )
    window = draw(st.sampled_from([0, 0, 1000, 5000, 10**9]))
    return infos, batches, draw(st.sampled_from([3, 32])), (window, draw(st.integers(1, 6)))


def _norm(rows):
    return [tuple(None if isinstance(x, float) and math.isnan(x) else x for x in r) for r in rows]


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_vectorized_core_agrees_with_reference(scenario):
    """Random rules and streams (out-of-order times, duplicates, all qualities), with and
    without a lateness window (`alerts.lateness`)."""
    infos, batches, depth, (window, late_depth) = scenario
    table = compile_table(infos, trend_depth=depth, lateness_ms=window, late_depth=late_depth)
    n = len(infos)
    assert table.vote_level.any() or not any(i.members for i in infos)
    state = CoreState.empty(n)
    ref = ReferenceCore(table)
    used = ~np.isnan(table.threshold)
    for k, (s, t, v, q, now) in enumerate(batches):
        state, tr, outcome = evaluate(table, Readings(s, t, v, q), state, now, inplace=k % 2 == 1)
        expected = ref.evaluate(s, t, v, q, now)
        assert _norm(tr.rows()) == _norm(expected)
        judged, late, rewound, in_window = ref.outcome
        assert (outcome.judged, outcome.late, outcome.rewound) == (judged, late, rewound)
        assert outcome.late_in_window == in_window
        assert state.level.tolist() == ref.level
        assert state.frozen_since.tolist() == ref.frozen_since
        assert state.maint_since.tolist() == ref.maint_since
        assert state.calib_at.tolist() == ref.calib_at
        assert state.last_arrival.tolist() == ref.last_arrival
        if window:
            assert ref.ck is not None
            for i in range(n):
                kept = late_depth - int(state.ring_n[i])
                ring = list(
                    zip(
                        state.ring_ts[i, kept:].tolist(),
                        _norm([state.ring_v[i, kept:].tolist()])[0],
                        state.ring_q[i, kept:].tolist(),
                        strict=True,
                    )
                )
                assert ring == [(a, None if math.isnan(b) else b, c) for a, b, c in ref.ring[i]]
            assert state.ck_level.tolist() == ref.ck.level
            assert state.ck_last_ts.tolist() == ref.ck.last_ts
            assert state.ck_last_data.tolist() == ref.ck.last_data
            assert state.ck_frozen_since.tolist() == ref.ck.frozen_since
            assert state.ck_maint_since.tolist() == ref.ck.maint_since
            assert state.ck_calib_at.tolist() == ref.ck.calib_at
            assert state.ck_active.tolist() == ref.ck.active
        else:
            assert state.ring_ts.shape == (0, 0)
        assert state.active.tolist() == ref.active
        assert state.raw.tolist() == ref.raw
        assert state.last_ts.tolist() == ref.last_ts
        assert state.last_data.tolist() == ref.last_data
        assert state.deadline.tolist() == ref.deadline
        assert state.met.tolist() == ref.met
        assert state.broke.tolist() == (ref.broke if table.has_hold else [])
        if table.has_delays:
            assert state.run_start[used].tolist() == np.array(ref.run_start)[used].tolist()
            assert state.run_count[used].tolist() == np.array(ref.run_count)[used].tolist()
        for row, i in enumerate(table.trend_sensor.tolist()):
            assert state.trend_readings(row) == ref.hist[i]


def test_two_of_three_detectors_at_level_1_raise_the_area_to_level_2():
    lel = (
        LevelSpec(name="level1", tier="yellow", above=25, recover=23),
        LevelSpec(name="level2", tier="red", above=50, recover=45),
    )
    area = LevelSpec(name="area_level2", tier="red", above=2, recover=2)
    group = dataclasses.replace(sensor(3, (area,)), members=(0, 1, 2), vote_level=1)
    table = compile_table([sensor(0, lel), sensor(1, lel), sensor(2, lel), group])
    batch = cols([0, 1, 2, 0, 1], [1000, 2000, 3000, 4000, 5000], [30, 10, 30, 10, 60])
    _, tr, _ = evaluate(table, batch, CoreState.empty(4))
    area_rows = [(t, a) for s, t, _, sd, _, a in tr.rows() if s == 3]
    # one detector at 1 s; the second at 3 s raises the area; 4 s drops back to one; 5 s two again
    assert area_rows == [(3000, 1), (4000, 0), (5000, 1)]


def test_a_group_counting_failed_members_degrades_2_of_3_to_1_of_the_2_that_measure():
    """2 of 3 detectors at level 1: with one in sensor fault (or without data), one more
    detector at level 1 raises the area when the group counts failed members (fail-safe), not
    otherwise; the fault's end, with the other detector still at level 1, clears it again."""
    lel = (
        LevelSpec(name="level1", tier="yellow", above=25, recover=23),
        LevelSpec(name="level2", tier="red", above=50, recover=45),
    )
    area = LevelSpec(name="area_level2", tier="red", above=2, recover=2)
    fault, loss = Quality.SENSOR_FAULT, Quality.COMM_LOSS
    for counts in (True, False):
        group = dataclasses.replace(
            sensor(3, (area,)), members=(0, 1, 2), vote_level=1, count_failed=counts
        )
        table = compile_table([sensor(0, lel), sensor(1, lel), sensor(2, lel), group])
        # detector 0 fails at 1 s; detector 1 reaches level 1 at 2 s; detector 0 reads 5 at 4 s
        first = cols([0, 1], [1000, 2000], [math.nan, 30], [fault, 0])
        back = cols([0], [4000], [5])
        # then detector 2 loses its link at 6 s (detector 1 still at level 1)
        gone = cols([2], [6000], [math.nan], [loss])
        _both(table, [(first, None), (back, None), (gone, None)], side=ABOVE)  # they agree
        state, got = CoreState.empty(4), []
        for batch in (first, back, gone):
            state, tr, _ = evaluate(table, batch, state)
            got += [(t, a) for s, t, _, sd, _, a in tr.rows() if s == 3]
        assert got == ([(2000, 1), (4000, 0), (6000, 1)] if counts else [])


def test_a_group_judged_afresh_counts_its_members_as_they_are():
    """helper-118: a group made to count failed members by a reload (its state afresh), with
    two of its three detectors already in fault, was judged only at a member's change: a dead
    detector's fault readings change nothing, so the area stayed unprotected and silent. A
    group never judged is judged first on its members as they are."""
    lel = (LevelSpec(name="level1", tier="yellow", above=25, recover=23),)
    area = LevelSpec(name="area_level2", tier="red", above=2, recover=2)
    fault = Quality.SENSOR_FAULT
    base = [sensor(0, lel), sensor(1, lel), sensor(2, lel)]
    group = dataclasses.replace(sensor(3, (area,)), members=(0, 1, 2), vote_level=1)
    before = compile_table([*base, group])
    after = compile_table([*base, dataclasses.replace(group, count_failed=True)])
    dead = cols([0, 1], [1000, 1000], [math.nan, math.nan], [fault, fault])
    state, _, _ = evaluate(before, dead, CoreState.empty(4))
    ref = ReferenceCore(before)
    ref.evaluate(dead.sensor, dead.ts, dead.value, dead.quality)
    # the reload: the group's rules changed, its state starts afresh (alerts.reload)
    state.last_ts[3], state.level[3] = NO_TS, 0
    ref.table, ref.last_ts[3], ref.level[3] = after, NO_TS, [0] * len(ref.level[3])
    clean = cols([2], [5000], [1.0])
    _, tr, _ = evaluate(after, clean, state)
    got = [(t, a) for s, t, _, side, _, a in tr.rows() if s == 3 and side == ABOVE]
    want = ref.evaluate(clean.sensor, clean.ts, clean.value, clean.quality)
    assert got == [(t, a) for s, t, _, side, _, a in want if s == 3 and side == ABOVE]
    assert got == [(1000, 1)]  # at its members' latest time: the two faults


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-1, 2), min_size=1, max_size=12),
    st.lists(st.integers(1, 2), min_size=3, max_size=3),
    st.data(),
)
def test_the_vote_seed_counts_the_members_at_their_groups_level(assign, need, data):
    """For the groups a batch's sensors are in: the members at the group's level before the
    batch, counted member by member here; by the groups of the batch (a small batch) and by
    every group (a large one) alike."""
    import alerts.vote

    lel = (LevelSpec(name="l1", tier="yellow", above=1, recover=1),)
    lel += (LevelSpec(name="l2", tier="red", above=2, recover=2),)
    n = len(assign)
    members = [[i for i, g in enumerate(assign) if g == k] for k in range(3)]
    infos = [sensor(i, lel) for i in range(n)]
    area = LevelSpec(name="area", tier="red", above=1, recover=1)
    for k in range(3):
        group = sensor(n + k, (area,))
        infos.append(dataclasses.replace(group, members=tuple(members[k]), vote_level=need[k]))
    table = compile_table(infos)
    state = CoreState.empty(n + 3)
    state.level[:n, ABOVE] = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    batch = np.array(data.draw(st.lists(st.integers(0, n + 2), max_size=20)), np.int64)
    touched = sorted({assign[i] for i in batch.tolist() if i < n and assign[i] >= 0})
    expect = [sum(int(state.level[m, ABOVE]) >= need[k] for m in members[k]) for k in touched]
    for few in (4096, 0):
        alerts.vote._FEW, was = few, alerts.vote._FEW
        try:
            seed = alerts.vote.vote_seed(table, state, batch)
        finally:
            alerts.vote._FEW = was
        if not touched:
            assert seed is None
            continue
        assert seed is not None
        keys, counts = seed
        groups = np.array(touched) + n
        got = counts[groups] if keys is None else counts[np.searchsorted(keys, groups)]
        assert got.tolist() == expect


# -- rate of rise and early warning -----------------------------------------------------------


@st.composite
def trend_streams(draw):
    """One or two sensors with trend options fed random walks (rises, plateaus and falls)."""
    infos = []
    for i in range(draw(st.integers(1, 2))):
        levels = draw(level_sets().filter(lambda ls: any(lv.above is not None for lv in ls)))
        rate = RateSpec(
            per_min=draw(st.sampled_from([6, 30, 120])),
            window_s=draw(st.sampled_from([2, 5, 20])),
            recover_factor=draw(st.sampled_from([0.5, 0.8, 1.0])),
        )
        early = EarlyWarningSpec(
            window_s=draw(st.sampled_from([2, 5, 20])), horizon_s=draw(st.sampled_from([2, 10]))
        )
        infos.append(
            sensor(i, levels, rate=rate if draw(st.booleans()) else None, early_warning=early)
        )
    batches = []
    clock = 0
    level = [0.0] * len(infos)
    for _ in range(draw(st.integers(1, 4))):
        rows = []
        for _ in range(draw(st.integers(0, 25))):
            i = draw(st.integers(0, len(infos) - 1))
            clock += draw(st.sampled_from([0, 250, 500, 1000, 3000]))
            level[i] += draw(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0]))
            rows.append((i, clock - draw(st.sampled_from([0, 0, 0, 700])), level[i]))
        s, t, v = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
        batches.append(
            (
                np.array(s, np.int32),
                np.array(t, np.int64),
                np.array(v, np.float64),
                np.zeros(len(rows), np.uint8),
                clock,
            )
        )
    return infos, batches, draw(st.sampled_from([2, 4, 32]))


@settings(max_examples=100, deadline=None)
@given(trend_streams())
def test_trends_agree_with_reference(scenario):
    infos, batches, depth = scenario
    table = compile_table(infos, trend_depth=depth)
    state = CoreState.empty(len(infos))
    ref = ReferenceCore(table)
    for s, t, v, q, now in batches:
        state, tr, _ = evaluate(table, Readings(s, t, v, q), state, now)
        assert _norm(tr.rows()) == _norm(ref.evaluate(s, t, v, q, now))
        assert state.level.tolist() == ref.level
        for row, i in enumerate(table.trend_sensor.tolist()):
            assert state.trend_readings(row) == ref.hist[i]


RISING = (
    LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),
    LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0),
)


def run_trend(values, step_ms=10_000, rate=None, early=None, depth=32):
    table = compile_table([sensor(0, RISING, rate=rate, early_warning=early)], trend_depth=depth)
    times = np.arange(1, len(values) + 1, dtype=np.int64) * step_ms
    return evaluate(table, cols(0, times, values), CoreState.empty(1))


def test_rate_of_rise_raises_above_per_min_and_clears_below_its_recovery():
    rate = RateSpec(per_min=0.3, window_s=60, recover_factor=0.5)
    # +0.1 per 10 s = 0.6/min from 30 s on; flat from 80 s: the rise over the last 60 s falls
    values = [0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    state, tr, _ = run_trend(values, rate=rate)
    # 30 s: (0.2 - 0.1) over 20 s = 0.3/min, not more; 40 s: 0.2 over 30 s = 0.4/min: raised.
    # Flat from 80 s: at 120 s, 0.2 over 60 s (from 60 s) = 0.2/min, not below 0.15: kept; at
    # 130 s, 0.1 over 60 s = 0.1/min: cleared
    assert side_rows(tr, RATE) == [(40_000, 1), (130_000, 0)]
    assert state.level[0, RATE] == 0


def test_rate_of_rise_needs_two_readings_in_the_window():
    # readings 10 s apart, window 5 s: never two in a window, never a rate alarm
    _, tr, _ = run_trend([0.0, 0.5, 1.0, 1.5], rate=RateSpec(per_min=0.1, window_s=5))
    assert side_rows(tr, RATE) == []


def test_early_warning_before_the_level_and_cleared_when_it_is_reached():
    early = EarlyWarningSpec(window_s=30, horizon_s=45)
    # 0.01/s: 1.0 is reached at 110 s, foreseen under 45 s ahead from 70 s (0.6: 40 s) on; at
    # 110 s power cut (1.5) is 50 s ahead, beyond the horizon
    values = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0]
    _, tr, _ = run_trend(values, early=early)
    assert side_rows(tr, EARLY) == [(70_000, 1), (110_000, 0)]
    assert side_rows(tr, ABOVE) == [(110_000, 1)]


def test_early_warning_goes_on_to_the_next_level_while_the_trend_holds():
    early = EarlyWarningSpec(window_s=30, horizon_s=60)
    values = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.6, 1.6, 1.6, 1.6]
    _, tr, _ = run_trend(values, early=early)
    # at 1.0 (60 s) the level is reached and the warning moves to power_cut (level 2); at 1.6
    # power cut is reached and nothing is above it
    assert side_rows(tr, EARLY) == [(20_000, 1), (60_000, 2), (90_000, 0)]


def test_trend_buffers_keep_the_last_readings_only_of_trend_sensors():
    table = compile_table(
        [
            sensor(0, RISING),
            sensor(1, RISING, rate=RateSpec(per_min=1, window_s=60)),
        ],
        trend_depth=4,
    )
    assert table.trends == 1 and table.trend_of.tolist() == [-1, 0]
    batch = cols([1] * 7 + [0], [*range(1000, 7001, 1000), 500], [0, 1, 2, 3, 4, 5, 6, 9])
    state, _, _ = evaluate(table, batch, CoreState.empty(2))
    assert state.hist_n.tolist() == [4]
    assert state.trend_readings(0) == [(4000, 3), (5000, 4), (6000, 5), (7000, 6)]
    hist = (state.hist_ts, state.hist_v, state.hist_n, state.hist_head, state.hist_base)
    assert sum(a.nbytes for a in hist) == 4 * 12 + 2 + 2 + 8  # times: int32 offsets from a base


def test_trend_times_kept_as_offsets_judge_as_absolute_ones_across_long_gaps():
    """The trend buffers keep times as int32 offsets from a base that moves with the readings:
    epoch times, gaps of weeks (the base moves, offsets beyond int32 kept as the oldest) and a
    dense stream judge as the reference does, with the same kept readings."""
    rate = RateSpec(per_min=1, window_s=60)
    early = EarlyWarningSpec(window_s=30, horizon_s=600)
    table = compile_table([sensor(0, RISING, rate=rate, early_warning=early)], trend_depth=4)
    t0 = 1_700_000_000_000
    day = 86_400_000
    # the base moves at 44 days (24 days' reading kept, shifted), and at 90 days (all saturate)
    batches = [[0, 10_000, 20_000], [24 * day], [44 * day, 44 * day + 3_000, 44 * day + 6_000]]
    batches += [[90 * day, 90 * day + 5_000], [90 * day + k * 3_000 for k in range(2, 9)]]
    gaps = [g for b in batches for g in b]
    values = [0.0, 0.4, 0.9, 0.2, 0.5, 1.2, 0.1, 0.3, 0.4, 0.6, 0.8, 1.1, 1.3, 1.4, 1.6, 1.7]
    ref = ReferenceCore(table)
    state = CoreState.empty(1)
    at = 0
    for k, b in enumerate(batches):
        batch = cols(0, [t0 + g for g in b], values[at : at + len(b)])
        at += len(b)
        state, tr, _ = evaluate(table, batch, state)
        assert _norm(tr.rows()) == _norm(
            ref.evaluate(batch.sensor, batch.ts, batch.value, batch.quality)
        )
        if k == 2:  # the reading of 24 days, kept across the move of the base
            assert state.trend_readings(0) == [
                (t0 + g, v) for g, v in zip(gaps[3:7], values[3:7], strict=True)
            ]
    assert state.hist_ts.dtype == np.int32
    assert state.trend_readings(0) == [
        (t0 + g, v) for g, v in zip(gaps[-4:], values[-4:], strict=True)
    ]


def test_trend_buffers_saved_right_aligned_by_an_older_hub_read_as_rings():
    """A state saved before the ring buffers (right-aligned, no `hist_head`) goes on as if it
    had never been saved: the same transitions and the same kept readings."""

    table = compile_table([sensor(0, RISING, rate=RateSpec(per_min=1, window_s=60))], trend_depth=4)
    values = [0, 0.5, 1, 3, 3, 3, 0.5, 4, 4]
    first = cols([0] * 6, [k * 10_000 for k in range(1, 7)], values[:6])
    ring, _, _ = evaluate(table, first, CoreState.empty(1))
    assert int(ring.hist_head[0]) != 0  # six readings into four slots: the ring has turned
    hts, hv, _ = ring.aligned(np.arange(1))
    legacy = dataclasses.replace(
        ring, hist_ts=hts, hist_v=hv, hist_head=np.zeros(0, dtype=np.int16)
    )
    rest = cols([0] * 3, [k * 10_000 for k in range(7, 10)], values[6:])
    a, tr_a, _ = evaluate(table, rest, ring)
    b, tr_b, _ = evaluate(table, rest, legacy)
    assert tr_a.rows() == tr_b.rows() and len(tr_a) > 0
    assert a.trend_readings(0) == b.trend_readings(0)
    assert [ts for ts, _ in a.trend_readings(0)] == [60_000, 70_000, 80_000, 90_000]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(-(2**40), 2**40)), max_size=60),
    st.booleans(),
)
def test_the_sort_by_sensor_and_time_is_lexsort(rows, huge_sensor):
    from alerts.segments import by_sensor_time

    s = np.array([r[0] for r in rows], np.int64)
    ts = np.array([r[1] for r in rows], np.int64)
    if huge_sensor and rows:
        s[0] = 2**40  # the key does not fit: lexsort
    assert by_sensor_time(s, ts).tolist() == np.lexsort((ts, s)).tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**20), st.integers(-(2**40), 2**40), st.integers(0, 6)),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
)
def test_transitions_are_ordered_by_sensor_time_and_side_as_lexsort(rows, huge_sensor):
    """The order of the transitions `assemble` hands out (a packed key's sort, or lexsort when
    it does not fit) is lexsort's, ties in input order."""
    from alerts.segments import by_sensor_time

    s = np.array([r[0] for r in rows], np.int64)
    ts = np.array([r[1] for r in rows], np.int64)
    side = np.array([r[2] for r in rows], np.int64)
    if huge_sensor:
        s[0] = 2**40  # the key does not fit: lexsort
    got = by_sensor_time(s, ts, side).tolist()
    assert got == np.lexsort((side, ts, s)).tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 64),
    st.lists(st.integers(-200, 200), max_size=40),
)
def test_ring_slots_wrap_as_the_modulo(keep, xs):
    """The trend rings' slot arithmetic (`alerts.trend._wrap`, which avoids numpy's slow integer
    division in the common range) equals x mod keep for any x."""
    from alerts.trend import _wrap

    x = np.array(xs, dtype=np.int64)
    assert _wrap(x, keep).tolist() == (x % keep).tolist()


def test_feeds_whose_backlogs_come_in_separate_batches_raise_no_failure():
    """After an outage two feeds' backlogs come one batch apart: the first feed's, already
    confirming the cut, is heard, so the clock waits for the second's (in the next batch, in
    time) instead of raising a false 馈电异常; once every feed is silent past the grace, it
    fails."""
    verify = VerifySpec(sensor="s1", also=("s2",), expect_below=0.5, within_s=2, grace_s=5)
    table = compile_table([sensor(0, METHANE, verify=verify), sensor(1, ()), sensor(2, ())])
    start = cols([0, 1, 2], [1000, 1000, 1000], [1.6, 1, 1])  # demanded, both feeds on
    a_backlog = cols([1, 1], [2000, 2500], [0, 0])  # the first off at 2 s
    b_backlog = cols([2], [2600], [0])  # the second off at 2.6 s
    assert _both(table, [(start, 1100), (a_backlog, 60_000), (b_backlog, 60_050)]) == []
    silent = cols([], [], [])
    assert _both(table, [(start, 1100), (a_backlog, 60_000), (silent, 65_001)]) == [(3000, 1)]


def test_a_feed_sending_only_faulty_or_old_readings_does_not_hold_off_its_failure():
    """The feed's readings keep coming, but faulty, without a value, or old ones sent again
    (late: at or before its last judged time): they cannot confirm the cut, so the failure
    comes once the clock passes the deadline by the grace."""
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2, grace_s=5)
    table = compile_table([sensor(0, METHANE, verify=verify), sensor(1, ())])
    start = cols([0, 1], [1000, 1050], [1.6, 1])
    for quality in (Quality.SENSOR_FAULT, Quality.COMM_LOSS):
        late = cols([1], [7900], [math.nan], [quality])  # arrives at 8,100 with the clock
        assert _both(table, [(start, 1100), (late, 8100)]) == [(3000, 1)]
    again = cols([1], [1050], [1])  # the last sample, sent again with its own time
    assert _both(table, [(start, 1100), (again, 8100)]) == [(3000, 1)]
    # a reading with a value, arriving within the grace, still holds it off (it may be behind)
    behind = cols([1], [2000], [1])
    assert _both(table, [(start, 1100), (behind, 8100)]) == []


def test_a_held_cut_is_not_mended_by_a_feed_reading_from_before_its_break():
    """With a lateness window, the feed's 11 s reading (no power) arriving after its 12 s one
    (power back) mended the break: the face powered during the cut, nothing raised (core and
    reference alike, helper-137). A reading from before the break neither mends it nor is the
    feed's value now."""
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2, hold=True)
    table = compile_table(
        [sensor(0, METHANE, verify=verify), sensor(1, ())], lateness_ms=60_000, late_depth=8
    )
    confirmed = cols([0, 1, 0, 1], [1000, 1000, 2000, 2000], [1.6, 1, 1.6, 0])
    back, late = cols([1], [12_000], [1]), cols([1], [11_000], [0])
    methane = cols([0], [15_000], [1.6])
    batches = [(confirmed, 2500), (back, 12_100), (late, 12_200), (methane, 15_100)]
    assert _both(table, batches) == [(12_000, 1)]


def test_a_held_cut_with_a_window_and_two_feeds_agrees_with_reference():
    """helper-137's fuzzing, seed 2122: two feeds, a lateness window, a feed's old reading
    rewound: the reference broke the action at 10 s, the core skipped the plan's step (its
    `_held` shortcut knows no rewinds; with a window the step decides)."""
    table = _held_cut_table(also=("s2",), lateness_ms=10_000)
    hist = [
        ([(1, -6250, 0.0)], 1100),
        ([(0, -3500, 2.0), (0, -750, 1.2), (1, 1750, 0.0), (0, -8250, 0.8), (1, 1500, 0.0),
          (0, -2750, 2.0)], 2000),
        ([(2, -750, 0.0), (0, 2250, 0.8), (2, -500, 0.0), (0, 3000, 0.8), (1, 4750, 1.0),
          (0, 1250, 1.2), (1, 10500, 1.0)], 15000),
        ([(2, 11500, 0.0), (1, 4500, 1.0), (0, -750, 1.2), (0, 11250, 1.2), (1, 5250, 0.0),
          (0, 8500, 2.0), (0, 10250, 2.0)], 16000),
        ([(2, 10000, 0.0), (2, 1000, 1.0), (0, 12500, 1.2), (0, 4000, 0.8)], 12100),
    ]  # fmt: skip
    batches = [(cols(*(list(c) for c in zip(*rows, strict=True))), now) for rows, now in hist]
    assert _both(table, batches)[-1] == (10_000, 1)
