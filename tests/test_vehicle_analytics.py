"""Fleet analytics: scenario tests per rule, and the vectorized core against its reference."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.vehicles import (
    ClassLimits,
    CorridorFence,
    EventKind,
    FleetConfigError,
    FleetEvents,
    FleetSettings,
    FleetState,
    FleetTable,
    ForbiddenArea,
    ReferenceFleet,
    SpeedZone,
    TimeWindow,
    areas,
    compile_fleet,
    evaluate_fleet,
    fleet_kpis,
    geo,
)
from alerts.vehicles.alarms import FleetAlarms, FleetChange
from alerts.vehicles.areas import ScanIndex
from alerts.vehicles.fencegrid import FenceGrid, FenceIndex
from alerts.vehicles.geo import ShapeSet, compile_shape
from alerts.vehicles.lateness import FleetHistory, evaluate_late
from alerts.vehicles.state import RANK, ROLL_SLOT_MS, ROLL_SLOTS
from alerts.vehicles.table import Zone
from ingest.store.base import PositionBatch
from telemetry.config import VehicleSpec
from telemetry.registry import VehicleInfo

CST_0800 = int(datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00 in China
MIN = 60_000
HOUR = 60 * MIN
STEP = 30_000
LAT0, LON0 = 30.0, 104.0
M_PER_DEG_LAT = 6_371_008.8 * math.pi / 180


def fleet(*classes: str) -> list[VehicleInfo]:
    return [
        VehicleInfo("t", VehicleSpec(id=f"v{i}", plate=f"川A{i:05d}", vehicle_class=c), 10 + i)
        for i, c in enumerate(classes)
    ]


def batch(rows: Sequence[tuple[Any, ...]]) -> PositionBatch:
    """rows of (vehicle index, ts, lat, lon, speed), or with a sixth, the driver's code, and a
    seventh, the ACC (1 on, 0 off, -1 not said)."""
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return PositionBatch(
        vehicle=np.asarray(cols[0], dtype=np.int32),
        ts=np.asarray(cols[1], dtype=np.int64),
        lat=np.asarray(cols[2], dtype=np.float64),
        lon=np.asarray(cols[3], dtype=np.float64),
        speed_kmh=np.asarray(cols[4], dtype=np.float64),
        heading_deg=np.zeros(len(rows)),
        driver=np.asarray(cols[5], dtype=np.int64) if len(cols) > 5 else None,
        acc=np.asarray(cols[6], dtype=np.int8) if len(cols) > 6 else None,
    )


def drive(
    vehicle: int, start: int, legs: Sequence[tuple[int, float]], lat: float = LAT0
) -> list[tuple[int, int, float, float, float]]:
    """A fix every 30 s eastwards along `lat`; each leg is (duration ms, speed km/h)."""
    rows = []
    t, lon = start, LON0
    for duration, speed in legs:
        end = t + duration
        while t < end:
            rows.append((vehicle, t, lat, lon, speed))
            lon += speed / 3600 * STEP / 1000 * 1000 / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
            t += STEP
    rows.append((vehicle, t, lat, lon, 0.0))
    return rows


def run(
    table: FleetTable, rows: list[tuple[int, int, float, float, float]], now: int | None = None
) -> list[tuple[int, EventKind, int, float, int]]:
    state = FleetState.new(len(table))
    now = max(r[1] for r in rows) if now is None else now
    _, events = evaluate_fleet(table, state, batch(rows), now)
    return events.rows()


def kinds(events: list[tuple[int, EventKind, int, float, int]]) -> list[EventKind]:
    return [e[1] for e in events]


# fatigue ---------------------------------------------------------------------------------------


def test_coach_driving_4h10_without_rest_is_fatigue() -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    events = run(table, drive(10, CST_0800, [(4 * HOUR + 10 * MIN, 90.0)]))
    assert kinds(events) == [EventKind.FATIGUE_CONTINUOUS]
    assert events[0][2] == CST_0800 + 4 * HOUR + STEP  # the first fix past 4 h of driving


@pytest.mark.parametrize(("rest_min", "fatigue"), [(19, True), (20, False)])
def test_coach_rest_of_19_min_does_not_count_20_does(rest_min: int, fatigue: bool) -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    legs = [(2 * HOUR, 90.0), (rest_min * MIN, 0.0), (2 * HOUR + 10 * MIN, 90.0)]
    events = run(table, drive(10, CST_0800, legs))
    assert kinds(events) == ([EventKind.FATIGUE_CONTINUOUS] if fatigue else [])


def test_night_continuous_limit_is_2h() -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    start = CST_0800 + 14 * HOUR + 30 * MIN  # 22:30
    events = run(table, drive(10, start, [(2 * HOUR + 10 * MIN, 70.0)]))
    assert kinds(events) == [EventKind.FATIGUE_CONTINUOUS]
    assert events[0][2] == start + 2 * HOUR + STEP


def test_fatigue_ends_when_the_rest_has_lasted_20_min_not_at_the_fix_that_shows_it() -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    rows = drive(10, CST_0800, [(4 * HOUR + 10 * MIN, 90.0)])
    parked = rows[-1][1]  # the first stopped fix: the rest begins
    _, _, lat, lon, _ = rows[-1]
    rows += [(10, parked + k * 7 * MIN, lat, lon, 0.0) for k in (1, 2, 3)]  # a sleepy terminal
    rows += [(10, parked + 25 * MIN, lat, lon, 60.0)]
    events = run(table, rows)
    assert [e[1:4] for e in events] == [
        (EventKind.FATIGUE_CONTINUOUS, CST_0800 + 4 * HOUR + STEP, 4 * 3600.0 + 30),
        (EventKind.FATIGUE_CONTINUOUS_END, parked + 20 * MIN, 21 * 60.0),  # found at 21 min
    ]


@pytest.mark.parametrize("silence_min", [39, 41, 36 * 60])
def test_a_silence_after_a_moving_fix_is_driving_up_to_the_gap_then_rest(silence_min: int) -> None:
    """helper-116: a coach's fatigue alarm stayed open across 36 h without data, and hid the
    next day's. A silence after a moving fix counts as driving up to max_drive_gap_s (20 min)
    and as a rest after it: 41 min end the stretch (stamped when the rest had lasted 20 min),
    39 min do not."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    rows = drive(10, CST_0800, [(4 * HOUR + 10 * MIN, 90.0)])
    last = rows.pop()[1]  # (drive() ends on a stopped fix: drop it, moving to the end)
    again = last + silence_min * MIN
    rows += [
        (v, t - CST_0800 + again, la, lo, sp)
        for v, t, la, lo, sp in drive(10, CST_0800, [(HOUR, 90.0)])
    ]
    cont = (EventKind.FATIGUE_CONTINUOUS, EventKind.FATIGUE_CONTINUOUS_END)
    events = [e for e in run(table, rows) if e[1] in cont]  # (and offline, raised and ended)
    gone = last - STEP  # the last moving fix
    if silence_min < 40:
        assert kinds(events) == [EventKind.FATIGUE_CONTINUOUS]  # still one stretch
    else:
        assert [e[1:3] for e in events] == [
            (EventKind.FATIGUE_CONTINUOUS, CST_0800 + 4 * HOUR + STEP),
            (EventKind.FATIGUE_CONTINUOUS_END, gone + 40 * MIN),
        ]


def shifts(
    vehicle: int, start: int, legs: Sequence[tuple[int, float, int]]
) -> list[tuple[int, int, float, float, float, int]]:
    """`drive` with each leg's driver (duration ms, speed, driver code) on its fixes."""
    rows = drive(vehicle, start, [(d, v) for d, v, _ in legs])
    ends = list(itertools.accumulate(d for d, _, _ in legs))
    out = []
    for v, t, lat, lon, speed in rows:
        leg = next((i for i, e in enumerate(ends) if t - start < e), len(legs) - 1)
        out.append((v, t, lat, lon, speed, legs[leg][2]))
    return out


A, B, C = 101, 202, 303  # drivers


def test_a_double_crew_taking_turns_is_no_fatigue_each_drivers_own_is() -> None:
    """A coach's two drivers take turns, 3 h 50 min each with 5 min stops: 11.5 h of the coach's
    driving, but no driver drove 4 h without a rest, nor 8 h that day (helper-74: fatigue was
    the coach's). Without the drivers said, it is the coach's, as before."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    turn, swap = 3 * HOUR + 50 * MIN, 5 * MIN
    legs = [(turn, 90.0, A), (swap, 0.0, B), (turn, 90.0, B), (swap, 0.0, A), (turn, 90.0, A)]
    rows = shifts(10, CST_0800 - 2 * HOUR, legs)
    assert run(table, rows) == []
    anonymous = [r[:5] for r in rows]
    assert kinds(run(table, anonymous)) == [EventKind.FATIGUE_CONTINUOUS, EventKind.FATIGUE_DAILY]
    # and the same in batches, with the rounds cut anywhere
    state, got = FleetState.new(len(table)), []
    for i in range(0, len(rows), 97):
        part = rows[i : i + 97]
        state, events = evaluate_fleet(table, state, batch(part), part[-1][1])
        got += events.rows()
    assert got == []


def test_a_fatigued_drivers_episode_ends_when_the_other_takes_over() -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    legs = [(4 * HOUR + 10 * MIN, 90.0, A), (5 * MIN, 0.0, B), (HOUR, 90.0, B)]
    rows = shifts(10, CST_0800, legs)
    # B's card in at the coach's first stopped fix: taken at the next, the coach standing
    took_over = CST_0800 + 4 * HOUR + 10 * MIN + STEP
    assert [e[1:3] for e in run(table, rows)] == [
        (EventKind.FATIGUE_CONTINUOUS, CST_0800 + 4 * HOUR + STEP),
        (EventKind.FATIGUE_CONTINUOUS_END, took_over),
    ]
    # both are A's: the raise his driving, the end his leaving (not B's, who took over)
    _, events = evaluate_fleet(table, FleetState.new(len(table)), batch(rows), rows[-1][1])
    assert events.driver.tolist() == [A, A]


def test_a_card_swapped_while_moving_waits_for_a_stop() -> None:
    """One driver 10 h at 90 km/h, swapping IC cards A and B every 25 min without stopping:
    nothing was raised (helper-86). A change is taken at a stop only: the swaps count for
    nothing, the driving is the one driver's, and fatigue comes at 4 h as without cards."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    legs = [(25 * MIN, 90.0, A if k % 2 == 0 else B) for k in range(24)]
    rows = shifts(10, CST_0800 - 2 * HOUR, legs)
    got = run(table, rows)
    assert kinds(got) == [EventKind.FATIGUE_CONTINUOUS, EventKind.FATIGUE_DAILY]
    assert got[0][2] == CST_0800 - 2 * HOUR + 4 * HOUR + STEP


@pytest.mark.parametrize("where", ["first stopped fix", "while moving"])
def test_a_driver_said_once_is_taken_at_the_stop(where: str) -> None:
    """docs/mqtt.md lets a feed say the driver once, on the first record after the change: said
    on the coach's first stopped fix (its previous moving) it was dropped, and the fresh driver
    got the other's fatigue (helper-89). A driver said once waits for a stop, in the same batch
    or a later one without drivers at all."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    legs = [(3 * HOUR + 50 * MIN, 75.0, A), (10 * MIN, 0.0, 0), (HOUR, 75.0, 0)]
    rows = shifts(10, CST_0800 - 2 * HOUR, legs)
    said = next(
        i
        for i, r in enumerate(rows)
        if (r[4] == 0.0 if where == "first stopped fix" else r[1] >= CST_0800 + HOUR)
    )
    rows = [(*r[:5], B if i == said else (A if i == 0 else 0)) for i, r in enumerate(rows)]
    assert run(table, rows) == []
    # the same with the stop in a later batch that says no driver at all
    cut = said + 1
    state = FleetState.new(len(table))
    state, first = evaluate_fleet(table, state, batch(rows[:cut]), rows[cut - 1][1])
    state, then = evaluate_fleet(table, state, batch([r[:5] for r in rows[cut:]]), rows[-1][1])
    assert first.rows() + then.rows() == []
    assert int(state.driver[0]) == B


def test_a_feed_flapping_between_ids_is_bounded() -> None:
    """A vehicle whose driver id alternates at every fix, standing: one round per change made
    one message of 10,000 take 5.7 s for the whole fleet (helper-86). At most MAX_CHANGES a
    vehicle are taken in one batch."""
    from alerts.vehicles.crew import MAX_CHANGES

    table = compile_fleet(FleetSettings(), fleet("coach", "coach"))
    rows = [(10, CST_0800 + k * 1000, LAT0, LON0, 0.0, A if k % 2 else B) for k in range(2000)]
    state = FleetState.new(len(table))
    state, _ = evaluate_fleet(table, state, batch(rows), CST_0800 + 2_000_000)
    ref = ReferenceFleet(table)
    ref.evaluate(batch(rows), CST_0800 + 2_000_000)
    # the driver after the last change taken is the same in both
    assert int(state.driver[0]) == ref.vehicles[0].driver == rows[MAX_CHANGES - 1][5]


def test_a_driver_back_after_a_short_break_goes_on_counting() -> None:
    """A hands over for 15 min and takes the wheel again: not a 20 min rest, so his 3 h 50 min
    go on and he is fatigued 10 min later; a new driver C in his place would not be."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    first = [(3 * HOUR + 50 * MIN, 90.0, A), (5 * MIN, 0.0, B), (10 * MIN, 90.0, B)]
    back = CST_0800 + 3 * HOUR + 65 * MIN
    for driver, fatigued in ((A, True), (C, False)):
        legs = [*first, (2 * MIN, 0.0, driver), (30 * MIN, 90.0, driver)]
        events = run(table, shifts(10, CST_0800, legs))
        assert kinds(events) == ([EventKind.FATIGUE_CONTINUOUS] if fatigued else [])
        if fatigued:
            assert back + 10 * MIN <= events[0][2] <= back + 13 * MIN


CALENDAR = FleetSettings.model_validate(
    {c: {"daily_window": "calendar"} for c in ("hazmat", "coach", "charter")}
)


def test_more_than_8h_in_a_day() -> None:
    table = compile_fleet(CALENDAR, fleet("charter"))
    legs = [(3 * HOUR, 80.0), (30 * MIN, 0.0)] * 2 + [(2 * HOUR + 10 * MIN, 80.0)]
    events = run(table, drive(10, CST_0800 - 2 * HOUR, legs))
    assert kinds(events) == [EventKind.FATIGUE_DAILY]
    # it ends at local midnight (16:00 UTC), found by the first fix of the next day
    night = CST_0800 + 16 * HOUR
    rows = drive(10, CST_0800 - 2 * HOUR, legs)
    later = run(table, [*rows, (10, night + HOUR, rows[-1][2], rows[-1][3], 0)])  # where it stood
    ended = (EventKind.FATIGUE_DAILY_END, night, 8 * 3600.0 + 600)  # 8 h 10 min that day
    assert [e[1:4] for e in later[1:]] == [ended]


DAILY = (EventKind.FATIGUE_DAILY, EventKind.FATIGUE_DAILY_END)


def daily_events(table: FleetTable, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [e for e in run(table, rows) if e[1] in DAILY]


def coach_night(days: int = 1) -> list[tuple[int, int, float, float, float]]:
    """A coach driving 16:00-24:00 and 00:00-08:00 (China Standard Time) with a 20-minute rest
    every 3 h 40 min: 7 h 20 min in each calendar day, 14 h 40 min in 16 h."""
    legs = [(3 * HOUR + 40 * MIN, 90.0), (20 * MIN, 0.0)] * 2
    start = CST_0800 + 8 * HOUR  # 16:00
    return [*drive(10, start, legs), *drive(10, start + 8 * HOUR, legs)]


def test_the_rolling_24h_raises_a_night_coach_the_calendar_day_does_not() -> None:
    """DOMAIN 3.1: a passenger driver at most 8 h in 24 h. 16:00-24:00 and 00:00-08:00 stay
    within 8 h in each calendar day (JT/T 808 bit 18 never raises) but pass 8 h in 24 h at
    00:40; the episode ends at the 5-minute boundary at which the 24 h fell back to 8 h, found
    by the vehicle's next fix."""
    rows = coach_night()
    assert daily_events(compile_fleet(CALENDAR, fleet("coach")), rows) == []
    table = compile_fleet(FleetSettings(), fleet("coach"))
    assert bool(table.daily_rolling[0])
    [(_, kind, ts, value, _)] = daily_events(table, rows)
    midnight = CST_0800 + 16 * HOUR
    assert kind == EventKind.FATIGUE_DAILY
    # 7 h 20 min, then from 00:00:30 (the fix at 24:00 is the stop's) 40 min 30 s
    assert ts == midnight + 41 * MIN
    assert value == 8 * 3600 + 30
    # parked until 22:00 that day: the 24 h still hold more than 8 h (yesterday's driving
    # from 23:00 on, and today's 7 h 20 min); a fix at 23:30 finds the end
    parked = (10, midnight + 22 * HOUR, rows[-1][2], rows[-1][3], 0.0)
    assert daily_events(table, [*rows, parked])[1:] == []
    late = (10, midnight + 23 * HOUR + 30 * MIN, rows[-1][2], rows[-1][3], 0.0)
    [_, (_, kind, ts, value, _)] = daily_events(table, [*rows, late])
    assert kind == EventKind.FATIGUE_DAILY_END
    # 14 h 39 min 30 s in all; the driving before 23:00 the day before (6 h 39 min 30 s) has
    # left the 24 h at 23:00: the slots from 23:00 on hold 8 h
    assert (ts, value) == (midnight + 23 * HOUR, 8 * 3600)
    assert ts % ROLL_SLOT_MS == 0
    # one slot earlier it was still above the limit (the end is its first boundary)
    st, _ = evaluate_fleet(table, FleetState.new(1), batch(rows), rows[-1][1])
    before = ts - ROLL_SLOT_MS
    _, events = evaluate_fleet(table, st, batch([(10, before, *late[2:])]), before)
    assert [e[1] for e in events.rows()] == []
    _, events = evaluate_fleet(table, st, batch([(10, ts, *late[2:])]), ts)
    assert [e[1:3] for e in events.rows()] == [(EventKind.FATIGUE_DAILY_END, ts)]


def _every_day(last_leg_min: int, days: int = 4) -> list[tuple[int, int, float, float, float]]:
    """A coach on a fixed timetable every day: 08:00-11:50, 12:10-16:00 and 16:20 for
    `last_leg_min` minutes (7 h 40 min and that); each day on from where it stopped."""
    legs = [(3 * HOUR + 50 * MIN, 60.0), (20 * MIN, 0.0)] * 2 + [(last_leg_min * MIN, 60.0)]
    rows: list[tuple[int, int, float, float, float]] = []
    for d in range(days):
        shift = (rows[-1][3] - LON0) if rows else 0.0
        rows += [
            (v, t, la, lo + shift, x)
            for v, t, la, lo, x in drive(10, CST_0800 + d * 24 * HOUR, legs)
        ]
    return rows


def test_a_driver_keeping_to_8h_in_24h_every_day_is_never_raised() -> None:
    """helper-159: the 24 h at a fix counted the slot 24 h before whole (up to 24 h 5 min), at
    a boundary exactly 24 h: a driver on a timetable of 7 h 58 min a day was raised at a fix and
    ended at the next boundary, 99 times a day, each an orange alarm and a reminder to stop. At
    a fix the 24 h are its slot and the 287 before it (never more than the next boundary's)."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    assert daily_events(table, _every_day(18)) == []  # 7 h 58 min in any 24 h
    # 8 h 2 min a day: over the limit from the first day's 16:40 on, one episode, no flapping
    events = daily_events(table, _every_day(22))
    assert [e[1] for e in events] == [EventKind.FATIGUE_DAILY]
    assert events[0][2] == CST_0800 + 8 * HOUR + 40 * MIN + STEP


def test_a_late_position_that_adds_driving_raises_the_rolling_24h() -> None:
    """A late position within the lateness window that turns a stop into driving is judged in
    event-time order: the 24 h it adds raise the rolling rule at the fix after it."""
    limits = {"daily_driving_s": 3600, "continuous_day_s": 14400, "continuous_night_s": 14400}
    settings = FleetSettings.model_validate({"coach": limits, "lateness_s": 1800})
    table = compile_fleet(settings, fleet("coach"))
    # 57 min of driving, a stop, then a fix 10 min later moving
    rows = drive(10, CST_0800, [(57 * MIN, 60.0)])
    stop = rows[-1][1]
    then = (10, stop + 10 * MIN, rows[-1][2], rows[-1][3] + 0.001, 60.0)
    state, hist = FleetState.new(1), FleetHistory.new(1)
    state, events = evaluate_late(table, state, hist, batch([*rows, then]), then[1])
    assert [e for e in events.rows() if e[1] in DAILY] == []
    # ... but it was moving at stop + 5 min: 5 more minutes of driving, 62 min in 24 h
    missed = (10, stop + 5 * MIN, rows[-1][2], rows[-1][3] + 0.0005, 60.0)
    state, events = evaluate_late(table, state, hist, batch([missed]), then[1] + 1000)
    assert hist.rewound == 1
    assert [(e[1], e[2]) for e in events.rows() if e[1] in DAILY] == [
        (EventKind.FATIGUE_DAILY, then[1])
    ]
    assert int(state.roll_ms[0].sum()) == 62 * MIN
    assert bool(state.daily_raised[0])


def test_a_state_saved_without_the_rolling_24h_starts_it_from_the_days_driving() -> None:
    """A state saved by an older hub has no slots (`snapshot.load` gives them as new): the
    day's driving so far goes into the slot of the vehicle's last fix (on the safe side: it
    stays in the 24 h until 24 h after that fix), so the next 8 h raise as they would have."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    first = drive(10, CST_0800, [(3 * HOUR + 40 * MIN, 80.0), (20 * MIN, 0.0)] * 2)
    more = drive(10, first[-1][1] + 10 * MIN, [(HOUR, 80.0)])
    whole, _ = evaluate_fleet(table, FleetState.new(1), batch(first), first[-1][1])
    old = whole.copy()
    fresh = FleetState.new(1)
    old.roll_ms, old.roll_slot = fresh.roll_ms, fresh.roll_slot
    assert int(old.daily_ms[0]) == int(whole.roll_ms[0].sum()) == 7 * HOUR + 20 * MIN
    _, want = evaluate_fleet(table, whole, batch(more), more[-1][1])
    st, got = evaluate_fleet(table, old, batch(more), more[-1][1])
    assert [e[1:4] for e in got.rows()] == [e[1:4] for e in want.rows()]
    assert [e[1] for e in got.rows() if e[1] in DAILY] == [EventKind.FATIGUE_DAILY]
    assert int(st.roll_ms[0].sum()) == 8 * HOUR + 20 * MIN
    slot = first[-1][1] // ROLL_SLOT_MS
    assert int(st.roll_ms[0, slot % ROLL_SLOTS]) == 7 * HOUR + 20 * MIN  # all at the last fix
    # the reference does the same
    ref = ReferenceFleet(table)
    for f in dataclasses.fields(old):
        value = getattr(old, f.name)[0]
        setattr(ref.vehicles[0], f.name, value.tolist() if value.ndim else value.item())
    assert [e[1:4] for e in ref.evaluate(batch(more), more[-1][1])] == [e[1:4] for e in got.rows()]
    assert ref.vehicles[0].roll_ms == st.roll_ms[0].tolist()


def test_a_state_saved_without_the_rolling_24h_after_midnight_keeps_the_evening() -> None:
    """helper-159: a hub upgraded after midnight seeded the 24 h with the day's driving only:
    the night coach's 7 h 20 min of the evening before were lost and its 8 h in 24 h never
    raised. The day before's driving (kept for the 7 days' rule) goes in the last slot before
    its midnight: the coach raises at 00:41 as on a hub that had the slots."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    rows = coach_night()
    midnight = CST_0800 + 16 * HOUR
    cut = next(i for i, r in enumerate(rows) if r[1] >= midnight + 20 * MIN)
    whole, _ = evaluate_fleet(table, FleetState.new(1), batch(rows[:cut]), rows[cut - 1][1])
    old = whole.copy()
    fresh = FleetState.new(1)
    old.roll_ms, old.roll_slot, old.roll_sum = fresh.roll_ms, fresh.roll_slot, fresh.roll_sum
    rest = rows[cut:]
    _, want = evaluate_fleet(table, whole, batch(rest), rest[-1][1])
    _, got = evaluate_fleet(table, old, batch(rest), rest[-1][1])
    daily = [e[1:3] for e in got.rows() if e[1] in DAILY]
    assert daily == [e[1:3] for e in want.rows() if e[1] in DAILY]
    assert daily == [(EventKind.FATIGUE_DAILY, midnight + 41 * MIN)]
    ref = ReferenceFleet(table)
    for f in dataclasses.fields(old):
        value = getattr(old, f.name)[0]
        setattr(ref.vehicles[0], f.name, value.tolist() if value.ndim else value.item())
    assert [e[1:3] for e in ref.evaluate(batch(rest), rest[-1][1]) if e[1] in DAILY] == daily


def test_each_driver_keeps_his_own_24h() -> None:
    """Per driver: the 24 h of a driver who left are kept with him (crew.py). Two drivers of
    5 h 30 min each raise nothing (the vehicle's 11 h are no one's); the first, back at the
    wheel, passes 8 h in his 24 h after 2 h 30 min."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    legs = [(HOUR + 50 * MIN, 80.0), (20 * MIN, 0.0)] * 3 + [(30 * MIN, 0.0)]
    a = [(*r, 1) for r in drive(10, CST_0800, legs)]
    b = [(*r, 2) for r in drive(10, a[-1][1] + STEP, legs)]
    back = [(*r, 1) for r in drive(10, b[-1][1] + STEP, [(2 * HOUR + 40 * MIN, 80.0)])]
    events = [e for e in run(table, [*a, *b, *back]) if e[1] in DAILY]
    assert [e[1:4] for e in events] == [
        (EventKind.FATIGUE_DAILY, back[0][1] + 2 * HOUR + 30 * MIN + STEP, 8 * 3600 + 30)
    ]


def test_a_coach_over_44h_in_7_days_and_the_midnight_that_ends_it() -> None:
    """DOMAIN 3.1: a passenger driver at most 44 h in any 7 consecutive days. Seven hours a
    day (within the daily 8 h, rested every 3.5 h) make 42 h in six days; on the seventh the
    week passes 44 h after two hours. The episode ends at the first midnight whose six days
    before are within 44 h. Hazmat has no weekly rule; 0 turns it off."""
    day_ms = 24 * HOUR
    legs = [(3 * HOUR + 30 * MIN, 60.0), (30 * MIN, 0.0), (3 * HOUR + 30 * MIN, 60.0)]
    rows = [r for d in range(7) for r in drive(10, CST_0800 + d * day_ms, legs)]
    weekly = (EventKind.FATIGUE_WEEKLY, EventKind.FATIGUE_WEEKLY_END)

    def week_events(cls: str, settings: FleetSettings | None = None) -> list:
        table = compile_fleet(settings or FleetSettings(), fleet(cls))
        return [e for e in run(table, rows) if e[1] in weekly]

    [(vehicle, kind, ts, value, _)] = week_events("coach")
    assert (vehicle, kind) == (10, EventKind.FATIGUE_WEEKLY)
    assert CST_0800 + 6 * day_ms + 2 * HOUR <= ts <= CST_0800 + 6 * day_ms + 2 * HOUR + STEP
    assert value > 44 * 3600
    # the next day's first fix finds the end: at its midnight the six days before hold 42 h
    later = (10, rows[-1][1] + day_ms, rows[-1][2], rows[-1][3], 0.0)
    table = compile_fleet(FleetSettings(), fleet("coach"))
    events = [e for e in run(table, [*rows, later]) if e[1] in weekly]
    midnight = CST_0800 + 7 * day_ms - 8 * HOUR  # 00:00 China Standard Time of day 8
    assert [(e[1], e[2]) for e in events][1:] == [(EventKind.FATIGUE_WEEKLY_END, midnight)]
    assert events[1][3] == pytest.approx(6 * 7 * 3600, abs=120)  # days 2-7: 42 h
    assert week_events("hazmat") == []
    off = FleetSettings(coach=ClassLimits(speed_kmh=100, expressway_kmh=100, weekly_driving_s=0))
    assert week_events("coach", off) == []
    # raised, then the limit turned off (a reload): it ends at the next day turn, not after six
    # days without driving (helper-70)
    state, _ = evaluate_fleet(table, FleetState.new(len(table)), batch(rows), rows[-1][1])
    assert bool(state.weekly_raised[0])
    turned_off = compile_fleet(off, fleet("coach"))
    _, ends = evaluate_fleet(turned_off, state, batch([later]), later[1])
    assert [(e[1], e[2]) for e in ends.rows() if e[1] in weekly] == [
        (EventKind.FATIGUE_WEEKLY_END, midnight)
    ]


def test_fatigue_carries_over_batches() -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    rows = drive(10, CST_0800, [(4 * HOUR + 10 * MIN, 90.0)])
    state = FleetState.new(len(table))
    got: list[tuple[int, EventKind, int, float, int]] = []
    for i in range(0, len(rows), 37):
        part = rows[i : i + 37]
        state, events = evaluate_fleet(table, state, batch(part), part[-1][1])
        got += events.rows()
    assert got == run(table, rows)


# overspeed -------------------------------------------------------------------------------------


def test_hazmat_overspeed_off_expressway_with_minimum_duration() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    assert kinds(run(table, drive(10, CST_0800, [(30 * MIN, 55.0), (STEP, 70.0)]))) == []
    events = run(table, drive(10, CST_0800, [(30 * MIN, 55.0), (2 * MIN, 70.0)]))
    assert [e[1:4] for e in events] == [
        (EventKind.OVERSPEED, CST_0800 + 30 * MIN + STEP, 70.0),  # the run lasted 30 s >= 10 s
        (EventKind.OVERSPEED_END, CST_0800 + 32 * MIN, 0.0),  # the first fix back under
    ]


def test_expressway_zone_and_posted_limit() -> None:
    box = ((29.9, 103.9), (29.9, 104.5), (30.1, 104.5), (30.1, 103.9))
    express = SpeedZone(id="g4", polygon=box, expressway=True)
    cfg = FleetSettings(geofences=(express,))
    table = compile_fleet(cfg, fleet("hazmat"))
    assert run(table, drive(10, CST_0800, [(10 * MIN, 75.0)])) == []
    events = run(table, drive(10, CST_0800, [(10 * MIN, 85.0)]))
    assert kinds(events) == [EventKind.OVERSPEED, EventKind.OVERSPEED_END]
    posted = SpeedZone(id="works", polygon=box, limit_kmh=40)
    table = compile_fleet(FleetSettings(geofences=(express, posted)), fleet("hazmat"))
    events = run(table, drive(10, CST_0800, [(10 * MIN, 45.0)]))
    assert kinds(events) == [EventKind.OVERSPEED, EventKind.OVERSPEED_END]


def test_night_limit_is_80_percent_for_passenger_vehicles_only() -> None:
    night = CST_0800 + 15 * HOUR  # 23:00
    table = compile_fleet(FleetSettings(), fleet("coach"))  # 100 km/h by day: 80 at night
    assert run(table, drive(10, CST_0800, [(10 * MIN, 90.0)])) == []
    events = run(table, drive(10, night, [(10 * MIN, 90.0)]))
    assert kinds(events) == [EventKind.OVERSPEED, EventKind.OVERSPEED_END]
    # a hazmat truck's 60 km/h off expressways holds by night too (DOMAIN 3.1: the 80 % rule
    # is for passenger vehicles)
    given = FleetSettings.model_validate({"hazmat": {"speed_kmh": 60, "expressway_kmh": 80}})
    assert given.night_factor("hazmat") == 1.0 == FleetSettings().night_factor("hazmat")
    assert FleetSettings().night_factor("coach") == 0.8
    # the file is read as written: nothing is added to it (its digest decides which revision
    # of the configuration runs: docs/api.md)
    assert given.model_dump(exclude_unset=True) == {
        "hazmat": {"speed_kmh": 60, "expressway_kmh": 80}
    }
    table = compile_fleet(given, fleet("hazmat"))
    assert run(table, drive(10, night, [(10 * MIN, 55.0)])) == []
    events = run(table, drive(10, night, [(10 * MIN, 65.0)]))
    assert kinds(events) == [EventKind.OVERSPEED, EventKind.OVERSPEED_END]


# banned hours ----------------------------------------------------------------------------------


def test_coach_moving_at_0300_unless_exempt() -> None:
    three = CST_0800 - 5 * HOUR
    rows = drive(10, three, [(20 * MIN, 60.0)]) + drive(11, three, [(20 * MIN, 60.0)])
    table = compile_fleet(FleetSettings(), fleet("coach", "coach"))
    events = run(table, rows)
    assert [(e[0], e[1], e[2]) for e in events] == [
        (10, EventKind.BANNED_HOURS, three),
        (11, EventKind.BANNED_HOURS, three),
    ]
    table = compile_fleet(FleetSettings(exempt=("t/v1",)), fleet("coach", "coach"))
    assert [(e[0], e[1]) for e in run(table, rows)] == [(10, EventKind.BANNED_HOURS)]
    assert run(compile_fleet(FleetSettings(), fleet("charter")), rows[: len(rows) // 2]) == []


def test_coach_parked_at_0300_is_fine() -> None:
    table = compile_fleet(FleetSettings(), fleet("coach"))
    assert run(table, drive(10, CST_0800 - 5 * HOUR, [(HOUR, 0.0)])) == []


# geofences -------------------------------------------------------------------------------------


def test_tanker_leaving_and_rejoining_its_corridor() -> None:
    route = CorridorFence(
        id="r1", polyline=((LAT0, 103.9), (LAT0, 105.0)), buffer_m=500, vehicles=("v0",)
    )
    table = compile_fleet(FleetSettings(geofences=(route,)), fleet("hazmat"))
    rows = drive(10, CST_0800, [(10 * MIN, 50.0)])
    off = 0.01  # ~1.1 km north of the route
    rows = [
        (v, t, lat + (off if 10 <= i < 15 else 0.0), lon, s)
        for i, (v, t, lat, lon, s) in enumerate(rows)
    ]
    events = run(table, rows)
    assert [(e[1], e[2], e[4]) for e in events] == [
        (EventKind.CORRIDOR_LEAVE, CST_0800 + 10 * STEP, 0),
        (EventKind.CORRIDOR_ENTER, CST_0800 + 15 * STEP, 0),
    ]
    assert events[0][3] == pytest.approx(off * M_PER_DEG_LAT, rel=1e-3)


def test_forbidden_area_during_its_window_only() -> None:
    box = ((29.99, 103.99), (29.99, 104.2), (30.01, 104.2), (30.01, 103.99))
    area = ForbiddenArea(id="city", polygon=box, windows=(TimeWindow(start="07:00", end="09:00"),))
    table = compile_fleet(FleetSettings(geofences=(area,)), fleet("hazmat", "coach"))
    rows = drive(10, CST_0800, [(5 * MIN, 40.0)]) + drive(11, CST_0800, [(5 * MIN, 40.0)])
    assert [(e[0], e[1]) for e in run(table, rows)] == [(10, EventKind.FORBIDDEN_ENTER)]
    assert run(table, drive(10, CST_0800 + 2 * HOUR, [(5 * MIN, 40.0)])) == []


def test_forbidden_area_ends_on_leaving_or_when_its_window_closes() -> None:
    box = ((29.99, 103.99), (29.99, 104.01), (30.01, 104.01), (30.01, 103.99))
    area = ForbiddenArea(id="city", polygon=box, windows=(TimeWindow(start="07:00", end="09:00"),))
    table = compile_fleet(FleetSettings(geofences=(area,)), fleet("hazmat"))
    rows = drive(10, CST_0800, [(10 * MIN, 40.0)])  # 40 km/h east: out of the box after 1.5 km
    out = next(r for r in rows if r[3] > 104.01)
    events = run(table, rows)
    assert [e[1:4] for e in events] == [
        (EventKind.FORBIDDEN_ENTER, CST_0800, 40.0),
        (EventKind.FORBIDDEN_END, out[1], 40.0),
    ]
    # parked inside, one fix every 7 min over 09:00: the episode ended when the window closed
    parked = [(10, CST_0800 + 50 * MIN + k * 7 * MIN, LAT0, LON0, 0.0) for k in range(3)]
    assert [e[1:3] for e in run(table, parked)] == [
        (EventKind.FORBIDDEN_ENTER, CST_0800 + 50 * MIN),
        (EventKind.FORBIDDEN_END, CST_0800 + HOUR),
    ]


# offline and drift -----------------------------------------------------------------------------


def test_offline_by_now_once_and_only_after_moving() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat", "hazmat"))
    rows = [(10, CST_0800, LAT0, LON0, 50.0), (11, CST_0800, LAT0, LON0, 0.0)]
    state = FleetState.new(len(table))
    state, events = evaluate_fleet(table, state, batch(rows), CST_0800)  # live: arrived at once
    state, events = evaluate_fleet(table, state, batch([]), CST_0800 + 19 * MIN)
    assert len(events) == 0
    state, events = evaluate_fleet(table, state, batch([]), CST_0800 + 25 * MIN)
    assert events.rows() == [(10, EventKind.OFFLINE, CST_0800 + 20 * MIN, 25 * 60.0, -1)]
    state, events = evaluate_fleet(table, state, batch([]), CST_0800 + 30 * MIN)
    assert len(events) == 0
    back = [(10, CST_0800 + 40 * MIN, LAT0, LON0, 50.0)]
    state, events = evaluate_fleet(table, state, batch(back), CST_0800 + 40 * MIN)
    # the silence was already reported; it ends with this fix
    assert events.rows() == [(10, EventKind.OFFLINE_END, CST_0800 + 40 * MIN, 40 * 60.0, -1)]


def test_a_replay_or_backlog_arriving_hours_late_raises_no_offline_while_it_flows() -> None:
    """Fixes taken hours ago (a replay, a blind-area backlog) arriving batch after batch: the
    clock found the vehicle silent between two batches (its newest fix was hours old) and each
    next fix ended that `OFFLINE`: 788 open alarms after three replays (helper-66). Silent is
    silent on the hub's clock too: only once fixes stop arriving for `offline_s`."""
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = drive(10, CST_0800 - 5 * HOUR, [(20 * MIN, 60.0)])[:-1]  # five hours ago, moving
    state = FleetState.new(len(table))
    hub = CST_0800
    for i in range(0, len(rows), 4):  # four fixes a second of the hub's clock, ticks between
        state, events = evaluate_fleet(table, state, batch(rows[i : i + 4]), hub)
        assert len(events) == 0, events.rows()
        state, events = evaluate_fleet(table, state, batch([]), hub + 500)
        assert len(events) == 0, events.rows()
        hub += 1000
    state, events = evaluate_fleet(table, state, batch([]), hub + 19 * MIN)
    assert len(events) == 0
    state, events = evaluate_fleet(table, state, batch([]), hub + 20 * MIN)
    # stamped in event time, after the last fix; the value: the silence so far
    [(vehicle, kind, ts, _, _)] = events.rows()
    assert (vehicle, kind, ts) == (10, EventKind.OFFLINE, rows[-1][1] + 20 * MIN)


def test_offline_found_in_backfill() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = [(10, CST_0800, LAT0, LON0, 50.0), (10, CST_0800 + 30 * MIN, LAT0, LON0, 50.0)]
    assert run(table, rows) == [
        (10, EventKind.OFFLINE, CST_0800 + 20 * MIN, 1800.0, -1),
        (10, EventKind.OFFLINE_END, CST_0800 + 30 * MIN, 1800.0, -1),
    ]


def test_a_vehicle_that_moved_while_silent_raises_offline_moved() -> None:
    """离线位移 (DOMAIN 3.1, a KPI of hazmat supervision): a tanker parked, silent for 3 h, that
    is next seen 100 km away moved without being watched; parked it raised no `OFFLINE`."""
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    away = LAT0 + 100_000 / M_PER_DEG_LAT
    rows = [(10, CST_0800, LAT0, LON0, 0.0), (10, CST_0800 + 3 * HOUR, away, LON0, 0.0)]
    [(vehicle, kind, ts, value, _)] = run(table, rows)
    assert (vehicle, kind, ts) == (10, EventKind.OFFLINE_MOVED, CST_0800 + 3 * HOUR)
    assert value == pytest.approx(100_000, rel=1e-3)
    # 300 m in 3 h (a yard, GPS scatter), or 20 km within the offline time: nothing
    near, drove = LAT0 + 300 / M_PER_DEG_LAT, LAT0 + 20_000 / M_PER_DEG_LAT
    assert run(table, [rows[0], (10, CST_0800 + 3 * HOUR, near, LON0, 0.0)]) == []
    assert run(table, [rows[0], (10, CST_0800 + 19 * MIN, drove, LON0, 0.0)]) == []
    # moving into the silence: `offline` tells it (a tunnel's blind-area fixes come after the
    # live fix that ends it: no orange alarm for every long tunnel)
    moving = [(10, CST_0800, LAT0, LON0, 60.0), (10, CST_0800 + 3 * HOUR, away, LON0, 60.0)]
    assert kinds(run(table, moving)) == [EventKind.OFFLINE, EventKind.OFFLINE_END]
    off = compile_fleet(FleetSettings(offline_move_m=0), fleet("hazmat"))
    assert run(off, rows) == []
    # an alarm of its own, a moment (raised and returned at once) to acknowledge
    alarms = FleetAlarms(table)
    got = alarms.judge(batch(rows), CST_0800 + 3 * HOUR)  # parked, then far away
    moved = [(c.kind, c.level, c.ts) for c in got if c.kind == "offline_moved"]
    assert moved == [("offline_moved", 1, rows[1][1]), ("offline_moved", 0, rows[1][1])]


def test_position_jump_is_drift() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = drive(10, CST_0800, [(5 * MIN, 50.0)])
    v, t, lat, lon, s = rows[5]
    rows[5] = (v, t, lat + 0.05, lon, s)  # 5.5 km in 30 s, and back: two implausible fixes
    events = run(table, rows)
    # one episode, raised at the first (its end needs 300 s of plausible fixes: none yet)
    assert [(e[1], e[2]) for e in events] == [(EventKind.DRIFT, t)]
    assert events[0][3] > 600


def test_unknown_late_and_duplicate_positions_are_ignored() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = [(99, CST_0800, LAT0, LON0, 200.0), (10, CST_0800, LAT0, LON0, 10.0)]
    state, _ = evaluate_fleet(table, FleetState.new(1), batch(rows), CST_0800)
    again = [(10, CST_0800, LAT0, LON0, 200.0), (10, CST_0800 - 1, LAT0, LON0, 200.0)]
    state2, events = evaluate_fleet(table, state, batch(again), CST_0800)
    assert len(events) == 0
    assert int(state2.last_ts[0]) == CST_0800


# config ----------------------------------------------------------------------------------------


def test_config_errors() -> None:
    line = ((LAT0, 104.0), (LAT0, 104.1))
    with pytest.raises(FleetConfigError, match="no vehicle 'nope'"):
        compile_fleet(
            FleetSettings(
                geofences=(CorridorFence(id="r", polyline=line, buffer_m=50, vehicles=("nope",)),)
            ),
            fleet("hazmat"),
        )
    two = tuple(
        CorridorFence(id=f"r{i}", polyline=line, buffer_m=50, vehicles=("v0",)) for i in range(2)
    )
    with pytest.raises(FleetConfigError, match="two corridors"):
        compile_fleet(FleetSettings(geofences=two), fleet("hazmat"))
    with pytest.raises(ValueError, match="buffer_m"):
        CorridorFence(id="r", polyline=line, vehicles=("v0",))
    with pytest.raises(ValueError, match="exactly one"):
        SpeedZone(id="z", expressway=True)
    with pytest.raises(ValueError, match="extra"):
        ClassLimits.model_validate({"speed_kmh": 60, "sped": 1})


def test_a_class_block_given_in_part_keeps_its_class_defaults() -> None:
    """helper-116: `charter: {banned: ...}` alone judged charters at hazmat's 60/80 km/h, and
    `coach: {continuous_day_s: ...}` dropped the coaches' 02:00-05:00 ban, and `hazardhub check`
    said ok."""
    ban = {"start": "02:00", "end": "05:00"}
    settings = FleetSettings.model_validate(
        {"charter": {"banned": ban}, "coach": {"continuous_day_s": 14400}, "hazmat": {}}
    )
    assert (settings.charter.speed_kmh, settings.charter.expressway_kmh) == (100, 100)
    assert settings.charter.banned is not None and settings.charter.banned.start == "02:00"
    assert (settings.coach.speed_kmh, settings.coach.continuous_day_s) == (100, 14400)
    assert settings.coach.banned == FleetSettings().coach.banned is not None
    assert settings.hazmat == FleetSettings().hazmat
    # an explicit null lifts a default
    assert FleetSettings.model_validate({"coach": {"banned": None}}).coach.banned is None


# KPIs ------------------------------------------------------------------------------------------


def test_kpis() -> None:
    table = compile_fleet(
        FleetSettings(track_gap_s=60), fleet("hazmat", "coach", "charter", "coach")
    )
    one = drive(10, CST_0800, [(10 * MIN, 60.0)])  # 10 km, every 30 s
    two = drive(11, CST_0800, [(10 * MIN, 60.0)])[::4]  # 10 km, every 2 min: incomplete
    three = drive(12, CST_0800, [(5 * MIN, 60.0)])
    v, t, lat, lon, s = three[3]
    three[3] = (v, t, lat + 1.0, lon, s)  # two drift intervals
    rows = one + two + three + [(10, CST_0800 + 5 * HOUR, LAT0, LON0, 0.0)]  # outside the period
    k = fleet_kpis(table, batch(rows), CST_0800, CST_0800 + HOUR)
    assert (k.vehicles, k.online, k.online_rate) == (4, 3, 0.75)
    assert k.positions == len(one) + len(two) + len(three)
    assert k.drift == 2
    assert k.intervals == len(one) + len(two) + len(three) - 3
    assert k.drift_rate == pytest.approx(2 / k.intervals)
    assert k.total_km == pytest.approx(10 + 10 + 4, rel=1e-3)  # three: 5 km less the drift's 1
    assert k.completeness == pytest.approx(14 / 24, rel=1e-3)


# the reference ---------------------------------------------------------------------------------

SMALL = ClassLimits(
    speed_kmh=60,
    expressway_kmh=80,
    overspeed_min_s=60,
    continuous_day_s=1200,
    continuous_night_s=600,
    min_rest_s=300,
    daily_driving_s=2400,
    weekly_driving_s=4000,
)
BOX = ((30.0, 104.0), (30.0, 104.02), (30.02, 104.02), (30.02, 104.0))
PROPERTY_SETTINGS = FleetSettings(
    hazmat=SMALL,
    coach=SMALL.model_copy(update={"banned": TimeWindow(start="02:00", end="05:00")}),
    # the daily rule over the calendar day for charters, over the rolling 24 h for the others
    charter=SMALL.model_copy(
        update={"speed_kmh": 100, "night_speed_factor": 0.5, "daily_window": "calendar"}
    ),
    offline_s=900,
    max_drive_gap_s=600,
    lateness_s=0,
    exempt=("v3",),
    geofences=(
        SpeedZone(
            id="ex", polyline=((30.0, 104.0), (30.03, 104.03)), buffer_m=800, expressway=True
        ),
        SpeedZone(id="posted", polygon=BOX, limit_kmh=50),
        CorridorFence(
            id="r0", polyline=((30.0, 104.0), (30.0, 104.04)), buffer_m=1000, vehicles=("v0", "v2")
        ),
        CorridorFence(
            id="r1", polyline=((30.01, 104.0), (30.03, 104.04)), buffer_m=600, vehicles=("v1",)
        ),
        ForbiddenArea(id="f0", polygon=BOX, classes=("hazmat", "coach")),
        ForbiddenArea(
            id="f1",
            polygon=((30.01, 104.01), (30.04, 104.02), (30.02, 104.04)),
            classes=("hazmat", "charter"),
            windows=(
                TimeWindow(start="23:00", end="01:00"),
                TimeWindow(start="07:00", end="08:00"),
            ),
        ),
    ),
)
CLASSES = ("hazmat", "coach", "charter", "coach")
PROPERTY_TABLE = compile_fleet(PROPERTY_SETTINGS, fleet(*CLASSES))
# with the lateness window: skews of -21..21 s are within it, -140 s and -420 s often beyond
PROPERTY_TABLE_LATE = compile_fleet(
    PROPERTY_SETTINGS.model_copy(update={"lateness_s": 120.0}),
    fleet("hazmat", "coach", "charter", "coach"),
)
# drift_quiet_s drawn: 0 (the first plausible fix ends a drift episode), shorter than the
# streams' gaps, and the default
quiet = st.sampled_from([0.0, 30.0, 300.0])


@functools.cache
def property_table(quiet_s: float, window: bool = False, acc_off: bool = False) -> FleetTable:
    """PROPERTY_TABLE (PROPERTY_TABLE_LATE with `window`) with this drift_quiet_s; with
    `acc_off`, the rest of hazmat and coaches needs the engine off (`rest_needs_acc_off`), the
    charters' not."""
    base = PROPERTY_TABLE_LATE if window else PROPERTY_TABLE
    update: dict[str, Any] = {"drift_quiet_s": quiet_s}
    if acc_off:
        for name in ("hazmat", "coach"):
            limits = getattr(base.settings, name)
            update[name] = limits.model_copy(update={"rest_needs_acc_off": True})
    table = compile_fleet(base.settings.model_copy(update=update), fleet(*CLASSES))
    assert table.drift_quiet_ms == round(quiet_s * 1000)
    return table


step = st.tuples(
    st.integers(10, 14),  # 14: unknown vehicle
    st.one_of(st.integers(5, 60), st.integers(0, 400), st.integers(0, 1500), st.just(0)),
    st.floats(29.99, 30.05),
    st.floats(103.99, 104.05),
    st.one_of(
        st.sampled_from([0.0, 5.0, 5.5, 40.0, 50.0, 60.0, 80.0, 100.0]),
        st.floats(30, 130),
        st.floats(0, 130),
    ),
    st.integers(0, 4),  # batch cut after this position when 0
    st.one_of(st.integers(-3, 3), st.sampled_from([-20, -60])),  # skew: out-of-order arrival
    st.sampled_from([0, 0, 0, 0, 11, 12, 13, 14]),  # the driver (0: not said); 4 > CREW + 1
    st.sampled_from([0, 0, 0, 1, 2, 3]),  # held back this many batches: most streams rewind
    st.sampled_from([-1, -1, 0, 1, 1, 1]),  # ACC: on (idling at a stop), off, not said
)


RESTORABLE = (
    "overspeed",
    "fatigue",
    "fatigue_daily",
    "fatigue_weekly",
    "offline",
    "corridor",
    "forbidden_area",
    "drift",
)
restored = st.lists(st.tuples(st.integers(10, 13), st.sampled_from(RESTORABLE)), max_size=6)


def restored_start(
    table: FleetTable, active: list[tuple[int, str]]
) -> tuple[FleetState, ReferenceFleet]:
    """Both cores as after a restart without a saved state, with these alarms still active."""
    alarms = FleetAlarms(table)
    alarms.restore(active)
    ref = ReferenceFleet(table)
    for slot, veh in enumerate(ref.vehicles):
        for f in dataclasses.fields(alarms.state):
            value = getattr(alarms.state, f.name)[slot]
            setattr(veh, f.name, value.tolist() if value.ndim else value.item())
    return alarms.state, ref


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 24 * 3600),
    st.lists(step, min_size=1, max_size=400),
    st.integers(0, 2000),
    restored,
    st.booleans(),
    quiet,
    st.booleans(),
)
def test_vectorized_core_matches_reference(
    start_s: int,
    steps: list[tuple[int, int, float, float, float, int, int, int, int, int]],
    idle_s: int,
    active: list[tuple[int, str]],
    window: bool,
    quiet_s: float,
    acc_off: bool,
) -> None:
    """Random positions (out of order, held back a few batches, duplicates, unknown vehicles,
    drivers taking turns; most of them far from the one before: runs of drift) in random
    batches, from a fresh start or after a restart with some alarms active, without and with
    a lateness window (late positions within it and beyond it), with ACC on, off or not said
    and classes whose rest needs the engine off or not: the same events, ends included, and
    the same counts of late positions."""
    table = property_table(quiet_s, window, acc_off)
    state, ref = restored_start(table, active)
    hist = FleetHistory.new(len(table))
    clock = CST_0800 + start_s * 1000
    chunk: list[tuple[int, int, float, float, float, int, int]] = []
    got: list[tuple[Any, ...]] = []
    want: list[tuple[Any, ...]] = []

    def flush(now: int) -> None:
        nonlocal state
        b = batch(chunk)
        if window:
            state, events = evaluate_late(table, state, hist, b, now)
        else:
            state, events = evaluate_fleet(table, state, b, now)
        got.extend(with_drivers(events))  # the driver each event is about, too
        want.extend(zip_drivers(ref.evaluate(b, now), ref.drivers))
        if window:
            counts = (hist.rewound, hist.late, hist.late_in_window)
            assert counts == (ref.rewound, ref.late, ref.late_in_window)
        chunk.clear()

    held: dict[int, list[tuple[int, int, float, float, float, int, int]]] = {}
    nows: list[int] = []
    for vehicle, gap, lat, lon, speed, cut, skew, driver, back, acc in steps:
        clock += gap * 1000
        held.setdefault(len(nows) + back, []).append(
            (vehicle, clock + skew * 7000, lat, lon, speed, driver, acc)
        )
        if cut == 0:
            nows.append(clock)
    for k in range(max(held) + 1):
        chunk.extend(held.get(k, []))
        flush(nows[k] if k < len(nows) else clock)
    flush(clock + idle_s * 1000)
    assert_same(got, want)


def assert_same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    """The same events (vehicle, kind, ts, ref, and the driver when given), values close."""
    assert [(*e[:3], *e[4:]) for e in got] == [(*e[:3], *e[4:]) for e in want]
    for g, w in zip(got, want, strict=True):
        assert _same(g[3], w[3])


def with_drivers(events: FleetEvents) -> list[tuple[Any, ...]]:
    return [(*r, d) for r, d in zip(events.rows(), events.driver.tolist(), strict=True)]


def zip_drivers(rows: list[Any], drivers: list[int]) -> list[tuple[Any, ...]]:
    return [(*r, d) for r, d in zip(rows, drivers, strict=True)]


def test_events_are_columns() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    _, events = evaluate_fleet(
        table, FleetState.new(1), batch(drive(10, CST_0800, [(5 * MIN, 90.0)])), CST_0800
    )
    assert isinstance(events, FleetEvents)
    columns: list[npt.NDArray[Any]] = [
        events.vehicle,
        events.kind,
        events.ts,
        events.value,
        events.ref,
        events.driver,
    ]
    assert [c.dtype.str for c in columns] == ["<i4", "|i1", "<i8", "<f8", "<i4", "<i8"]


leg = st.tuples(
    st.integers(10, 13),
    st.integers(1, 80),  # fixes
    st.sampled_from([10, 30, 60, 120, 400]),  # seconds between them
    st.one_of(st.sampled_from([0.0, 3.0, 50.0, 60.0, 61.0, 90.0]), st.floats(0, 130)),
    st.floats(-0.0005, 0.0005),  # degrees per fix
    st.floats(-0.0005, 0.0005),
    st.booleans(),  # cut the batch after the leg
    st.sampled_from([0, 21, 22, 23]),  # the driver of the leg (0: not said)
    # every other fix this far north (degrees): runs of GPS drift at the shorter steps
    st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.05]),
)
Leg = tuple[int, int, int, float, float, float, bool, int, float]


# the ACC of a trip's fixes, by 10 minutes of event time: runs of idling at stops
acc_cycle = st.one_of(st.none(), st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=6))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 24 * 3600), st.lists(leg, min_size=1, max_size=40), quiet, acc_cycle)
def test_vectorized_core_matches_reference_on_trips(
    start_s: int, legs: list[Leg], quiet_s: float, cycle: list[int] | None
) -> None:
    """Longer stretches per vehicle, so that the fatigue and daily rules fire too; with ACC
    said (in runs), the rest of hazmat and coaches needs the engine off."""
    _trips(start_s, legs, quiet_s, cycle)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 24 * 3600), st.lists(leg, min_size=1, max_size=40), quiet)
def test_vectorized_core_matches_reference_through_the_fence_grid(
    start_s: int, legs: list[Leg], quiet_s: float
) -> None:
    """The same with every batch's geofence candidates found by the grid over the fences (the
    index of batches above `SCAN_MAX` positions) and corridors tested segment by segment."""
    with mock.patch.object(areas, "SCAN_MAX", 0), mock.patch.object(geo, "_FEW", 0):
        _trips(start_s, legs, quiet_s)


def legs_rows(
    legs: list[Leg], clock: int
) -> tuple[list[tuple[int, int, float, float, float, int]], list[int], int]:
    """The legs' fixes, the number of fixes after which each leg cuts its batch, the clock at
    the end."""
    pos = {v: (30.0 + (v - 10) * 0.005, 104.0) for v in range(10, 14)}
    rows: list[tuple[int, int, float, float, float, int]] = []
    cuts = []
    for vehicle, count, step_s, speed, dlat, dlon, cut, driver, jump in legs:
        lat, lon = pos[vehicle]
        for i in range(count):
            clock += step_s * 1000
            lat, lon = lat + dlat, lon + dlon
            rows.append((vehicle, clock, lat + jump * (i % 2), lon, speed, driver))
        pos[vehicle] = (lat, lon)
        if cut:
            cuts.append(len(rows))
    return rows, cuts, clock


def _trips(start_s: int, legs: list[Leg], quiet_s: float, cycle: list[int] | None = None) -> None:
    table = property_table(quiet_s, acc_off=cycle is not None)
    ref = ReferenceFleet(table)
    state = FleetState.new(len(table))
    clock = CST_0800 + start_s * 1000
    rows: list[tuple[Any, ...]]
    rows, cuts, clock = legs_rows(legs, clock)
    if cycle is not None:
        rows = [(*r, cycle[(r[1] // (10 * MIN)) % len(cycle)]) for r in rows]
    got: list[tuple[Any, ...]] = []
    want: list[tuple[Any, ...]] = []
    for lo, hi in itertools.pairwise([0, *cuts]):
        b = batch(rows[lo:hi])
        now = rows[hi - 1][1]  # the clock at the end of the leg that cut the batch
        state, events = evaluate_fleet(table, state, b, now)
        got.extend(with_drivers(events))
        want.extend(zip_drivers(ref.evaluate(b, now), ref.drivers))
    b = batch(rows[cuts[-1] if cuts else 0 :])
    state, events = evaluate_fleet(table, state, b, clock + 3600_000)
    got.extend(with_drivers(events))
    want.extend(zip_drivers(ref.evaluate(b, clock + 3600_000), ref.drivers))
    assert_same(got, want)


# a vehicle's shift: it waits this long (s) after the fix before, then drives `count` fixes
# `step_s` apart, a few minutes parked in the middle; waits around 24 h let the driving leave
# the rolling 24 h at slot boundaries between fixes
shift = st.tuples(
    st.integers(10, 13),
    st.sampled_from([0, 300, 1800, 3 * 3600, 20 * 3600, 23 * 3600 + 1800, 86_100, 86_400]),
    st.integers(0, 600),  # and this many seconds more
    st.integers(1, 60),  # fixes
    st.sampled_from([30, 60, 290, 300, 310, 900]),  # seconds between them
    st.sampled_from([0.0, 40.0, 90.0]),
    st.booleans(),  # cut the batch after the shift
    st.sampled_from([0, 0, 0, 21, 22]),  # the driver (0: not said)
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 24 * 3600), st.lists(shift, min_size=1, max_size=30), st.booleans())
def test_vectorized_core_matches_reference_over_days(
    start_s: int, shifts: list[tuple[int, int, int, int, int, float, bool, int]], window: bool
) -> None:
    """Vehicles driving shifts over days, hours or about 24 h apart (without and with a
    lateness window): the rolling 24 h's raises and ends (at slot boundaries between fixes,
    found by the next fix) and the calendar day's (charters) are the same."""
    table = property_table(300.0, window)
    ref = ReferenceFleet(table)
    state, hist = FleetState.new(len(table)), FleetHistory.new(len(table))
    last = dict.fromkeys(range(10, 14), CST_0800 + start_s * 1000)
    rows: list[tuple[int, int, float, float, float, int]] = []
    cuts = []
    for vehicle, wait, more, count, step_s, speed, cut, driver in shifts:
        t = last[vehicle] + (wait + more) * 1000
        for i in range(count):
            t += step_s * 1000
            moving = speed if i != count // 2 else 0.0  # a stop in the middle
            rows.append((vehicle, t, 30.0 + (vehicle - 10) * 0.01, 104.0, moving, driver))
        last[vehicle] = t
        if cut:
            cuts.append(len(rows))
    rows.sort(key=lambda r: r[1])  # arrival in time order (each vehicle's in its order)
    got: list[tuple[Any, ...]] = []
    want: list[tuple[Any, ...]] = []
    for lo, hi in itertools.pairwise([0, *sorted(set(cuts)), len(rows)]):
        if hi <= lo:
            continue
        b = batch(rows[lo:hi])
        now = rows[hi - 1][1]
        if window:
            state, events = evaluate_late(table, state, hist, b, now)
        else:
            state, events = evaluate_fleet(table, state, b, now)
        got.extend(with_drivers(events))
        want.extend(zip_drivers(ref.evaluate(b, now), ref.drivers))
    assert_same(got, want)
    for slot, veh in enumerate(ref.vehicles):
        assert state.roll_ms[slot].tolist() == veh.roll_ms
        assert int(state.roll_slot[slot]) == veh.roll_slot
        assert int(state.roll_sum[slot]) == veh.roll_sum == sum(veh.roll_ms)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 24 * 3600),
    st.lists(leg, min_size=1, max_size=40),
    st.sets(st.integers(1, 3199), max_size=12),
    restored,
    quiet,
)
def test_events_do_not_depend_on_how_positions_are_batched(
    start_s: int,
    legs: list[Leg],
    cuts: set[int],
    active: list[tuple[int, str]],
    quiet_s: float,
) -> None:
    """A stream in arrival order, judged as one batch or cut into consecutive batches (each
    judged at its newest position's time): the same events at the same event times, ends
    included. Only the value of an `OFFLINE` differs: the silence so far when the clock finds
    it, the whole silence when the next fix does."""
    table = property_table(quiet_s)
    rows, _, clock = legs_rows(legs, CST_0800 + start_s * 1000)
    end = clock + 3600_000
    # the whole stream arrives at `end`: its vehicles are silent on the hub's clock only from
    # then on (`heard`), so the clock looks again when that silence is over too
    later = end + table.offline_ms

    state, _ = restored_start(table, active)
    state, first = evaluate_fleet(table, state, batch(rows), end)
    _, then = evaluate_fleet(table, state, batch([]), later)
    whole = first.rows() + then.rows()
    whole.sort(key=lambda e: (e[0], e[2], int(RANK[e[1]]), e[4]))
    one = FleetAlarms(table)
    one.restore(active)
    alarms_whole = one.judge(batch(rows), end) + one.judge(batch([]), later)

    state, _ = restored_start(table, active)
    split = FleetAlarms(table)
    split.restore(active)
    parts: list[tuple[int, EventKind, int, float, int]] = []
    alarms_split: list[FleetChange] = []
    bounds = [0, *sorted(c for c in cuts if c < len(rows)), len(rows)]
    for lo, hi in [*itertools.pairwise(bounds), (len(rows), len(rows)), (-1, -1)]:
        part = batch(rows[lo:hi]) if lo >= 0 else batch([])
        now = rows[hi - 1][1] if hi > lo else (end if lo >= 0 else later)
        state, events = evaluate_fleet(table, state, part, now)
        parts += events.rows()
        alarms_split += split.judge(part, now)

    got = sorted(parts, key=lambda e: (e[0], e[2], int(RANK[e[1]]), e[4]))
    assert [(v, k, t, r) for v, k, t, _, r in got] == [(v, k, t, r) for v, k, t, _, r in whole]
    for g, w in zip(got, whole, strict=True):
        if g[1] != EventKind.OFFLINE:
            assert _same(g[3], w[3]), (g, w)

    # and so the alarms: raised and cleared at the same event times, one alarm at a time
    def by_alarm(changes: list[FleetChange]) -> list[tuple[int, str, int, int, float]]:
        out = [
            (c.vehicle, c.kind, c.level, c.ts, 0.0 if c.kind == "offline" and c.level else c.value)
            for c in changes
        ]
        return sorted(out, key=lambda c: c[:2])  # stable: each alarm's changes in their order

    assert by_alarm(alarms_split) == by_alarm(alarms_whole)


ZIGZAG_LINE = tuple((30.0 + 0.004 * (i % 2), 104.0 + 0.03 * i) for i in range(8))
ZIGZAG = Zone("zigzag", compile_shape(None, ZIGZAG_LINE, 150))


def near_zigzag(seg: int, along: float, off: float) -> tuple[float, float]:
    (la1, lo1), (la2, lo2) = ZIGZAG_LINE[seg], ZIGZAG_LINE[seg + 1]
    return la1 + (la2 - la1) * along + off, lo1 + (lo2 - lo1) * along


point = st.one_of(
    st.tuples(st.floats(29.98, 30.06), st.floats(103.98, 104.06)),
    st.builds(near_zigzag, st.integers(0, 6), st.floats(0, 1), st.floats(-0.002, 0.002)),
    st.tuples(st.floats(-60, 60), st.floats(-170, 170)),  # far from the fences' grid
    st.tuples(  # not a coordinate: outside every fence, and no warning
        st.sampled_from([math.nan, math.inf, -math.inf, 30.02]),
        st.sampled_from([math.nan, math.inf, -math.inf, 104.02]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(point, min_size=1, max_size=300))
def test_both_position_indexes_find_every_position_inside_a_fence(
    points: list[tuple[float, float]],
) -> None:
    """The scan (small batches) and the grid over the fences (larger ones) find, with the fence
    test, exactly the positions the reference finds one by one."""
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    fences = (*PROPERTY_TABLE.zones, *PROPERTY_TABLE.corridors, *PROPERTY_TABLE.forbidden, ZIGZAG)
    grid = FenceGrid.build(fences)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        indexes = (ScanIndex(grid, lat, lon), FenceIndex(grid, lat, lon))
    for index, few in itertools.product(indexes, (geo._FEW, 0)):  # 0: segment by segment
        for zone in fences:
            cand = index.candidates(zone)
            assert np.all(np.diff(cand) > 0)
            with mock.patch.object(geo, "_FEW", few):
                got = cand[zone.shape.contains(lat[cand], lon[cand], distance=False)[0]]
            want = [
                i
                for i, (la, lo) in enumerate(points)
                if zone.shape.in_bbox_one(la, lo) and zone.shape.contains_one(la, lo)[0]
            ]
            assert got.tolist() == want, zone.id


@settings(max_examples=100, deadline=None)
@given(st.lists(point, min_size=1, max_size=200), st.randoms(use_true_random=False))
def test_corridor_distances_at_once_match_one_by_one(
    points: list[tuple[float, float]], rnd: Any
) -> None:
    """The corridors' segments concatenated measure each point against its own corridor as the
    call per corridor did, bit for bit, and as the reference does for finite points (a NaN
    point's distance is NaN in both vector forms, inf in the scalar one: left as it was)."""
    shapes = [z.shape for z in (*PROPERTY_TABLE.corridors, ZIGZAG)]
    which = np.array([rnd.randrange(len(shapes)) for _ in points], dtype=np.int32)
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inf and nan among the points
        got = ShapeSet.build(shapes).distance2(which, lat, lon)
        want = np.zeros(lat.shape)  # a call per corridor, as the core measured before
        for c, shape in enumerate(shapes):
            at = which == c
            want[at] = shape.contains(lat[at], lon[at])[1]
    np.testing.assert_array_equal(got, want)
    finite = np.isfinite(lat) & np.isfinite(lon)
    pairs = zip(which.tolist(), lat.tolist(), lon.tolist(), strict=True)
    one = [shapes[w].contains_one(la, lo)[1] for w, la, lo in pairs]
    np.testing.assert_array_equal(got[finite], np.array(one)[finite])  # and the reference's


def test_fence_grid_cells_are_coarser_for_fences_far_apart() -> None:
    """Fences across the globe: the grid stays within its number of cells and still finds them."""
    far = (
        Zone("a", compile_shape(((-60.0, -170.0), (-60.0, -169.9), (-59.9, -170.0)), None, None)),
        Zone("b", compile_shape(((60.0, 170.0), (60.0, 170.1), (60.1, 170.0)), None, None)),
    )
    grid = FenceGrid.build(far)
    assert grid.rows * grid.cols <= 1 << 20
    lat = np.array([-59.98, 60.02, 0.0])
    lon = np.array([-169.98, 170.02, 0.0])
    index = FenceIndex(grid, lat, lon)
    assert index.candidates(far[0]).tolist() == [0]
    assert index.candidates(far[1]).tolist() == [1]


def test_a_move_while_the_terminal_was_silent_names_no_driver() -> None:
    """Driver A parks, the terminal is silent 40 minutes, the coach is found 33 km away standing
    with B's card: the 离线位移 alarm named B (helper-97), who may not have moved it. It names
    no one; a raise of the driving names its driver."""
    table = compile_fleet(FleetSettings(), fleet("coach"))
    rows = shifts(10, CST_0800, [(30 * MIN, 90.0, A)])
    t, lat, lon = rows[-1][1], rows[-1][2], rows[-1][3]
    rows += [(10, t + (40 + k) * MIN, lat + 0.3, lon, 0.0, B) for k in range(3)]
    alarms = FleetAlarms(table)
    b = dataclasses.replace(batch(rows), driver_names={A: "A-17", B: "B-18"})
    changes = alarms.judge(b, rows[-1][1])
    moved = [c for c in changes if c.kind == "offline_moved" and c.level == 1]
    assert len(moved) == 1 and moved[0].driver is None
    # A's overspeed in the same fleet names A
    rows = shifts(10, rows[-1][1] + MIN, [(5 * MIN, 130.0, A)])
    b = dataclasses.replace(batch(rows), driver_names={A: "A-17"})
    over = [c for c in alarms.judge(b, rows[-1][1]) if c.kind == "overspeed" and c.level == 1]
    assert [c.driver for c in over] == ["A-17"]


def test_a_backlog_after_the_clocks_offline_ends_it_no_earlier_than_its_raise() -> None:
    """The hub's clock raised a silent moving vehicle's offline at its last fix + offline_s;
    its blind area then came in order (fixes older than that raise): the end was stamped with
    the backlog's first fix, before the raise (an alarm that ended before it started; found by
    the lateness property test's fuzzing). It ends at the raise at the earliest."""
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    off = table.offline_ms
    st = FleetState.new(1)
    moving = (10, CST_0800, LAT0, LON0, 50.0)
    st, _ = evaluate_fleet(table, st, batch([moving]), CST_0800)
    st, ev = evaluate_fleet(table, st, batch([]), CST_0800 + off + 5000)  # the clock
    assert [(k, t) for _, k, t, *_ in ev.rows()] == [(EventKind.OFFLINE, CST_0800 + off)]
    backlog = [(10, CST_0800 + s * 1000, LAT0, LON0, 0.0) for s in (44, 134)]
    st, ev = evaluate_fleet(table, st, batch(backlog), CST_0800 + off + 10_000)
    assert [(k, t) for _, k, t, *_ in ev.rows()] == [(EventKind.OFFLINE_END, CST_0800 + off)]


def _same(got: float, want: float) -> bool:
    """Values of the core and the reference alike (a correction's unknown value: NaN both)."""
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
