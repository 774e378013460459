"""A GPS drift is an episode: one alarm raised at the first implausible fix and returned after
`drift_quiet_s` of plausible fixes, whose clear counts the implausible fixes (a terminal with an
antenna fault gave a desk 157 alarms in 30 s, one per fix)."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError
from test_vehicle_analytics import CST_0800, LAT0, LON0, batch, fleet

from alerts.vehicles import EventKind, FleetSettings, FleetState, compile_fleet, evaluate_fleet
from alerts.vehicles.alarms import FleetAlarms
from alerts.vehicles.geo import step_m_one

SEC = 1000
FAR = 0.45  # degrees of latitude: 50 km


def flapping(
    start: int = CST_0800, plausible: int = 60
) -> list[tuple[int, int, float, float, float]]:
    """A parked terminal with an antenna fault: 20 fixes 10 s apart alternating between two
    places 50 km apart, then `plausible` fixes 10 s apart where the last one was."""
    rows = [(10, start + i * 10 * SEC, LAT0 + FAR * (i % 2), LON0, 0.0) for i in range(20)]
    t, lat = rows[-1][1], rows[-1][2]
    rows += [(10, t + (i + 1) * 10 * SEC, lat, LON0, 0.0) for i in range(plausible)]
    return rows


def implausible(rows: list[tuple[int, int, float, float, float]], drift_kmh: float) -> list[int]:
    """The times of the fixes whose implied speed from the fix before is above `drift_kmh`."""
    return [
        b[1]
        for a, b in itertools.pairwise(rows)
        if step_m_one(a[2], a[3], b[2], b[3]) * 3600.0 / (b[1] - a[1]) > drift_kmh
    ]


def expected(rows, quiet_s: float, drift_kmh: float = 160.0) -> tuple[int, int, int]:
    """(raise time, end time, implausible fixes) of the stream's one episode, by the rule."""
    jumps = implausible(rows, drift_kmh)
    end = next(r[1] for r in rows if r[1] not in jumps and r[1] - jumps[-1] >= quiet_s * SEC)
    return jumps[0], end, len(jumps)


@pytest.mark.parametrize("quiet_s", [300.0, 60.0, 0.0])
def test_a_terminal_jumping_back_and_forth_is_one_episode(quiet_s: float) -> None:
    table = compile_fleet(FleetSettings(drift_quiet_s=quiet_s), fleet("hazmat"))
    rows = flapping()
    up, end, count = expected(rows, quiet_s)
    assert count == 19  # every fix but the first: none before it
    _, events = evaluate_fleet(table, FleetState.new(1), batch(rows), rows[-1][1])
    got = events.rows()
    assert [(e[1], e[2]) for e in got] == [(EventKind.DRIFT, up), (EventKind.DRIFT_END, end)]
    assert got[0][3] > 10_000  # 50 km in 10 s, km/h
    assert got[1][3] == count
    # this stream's: the first plausible fix, or the last jump + the quiet (a fix every 10 s)
    assert end == max(rows[20][1], rows[19][1] + round(quiet_s * SEC))


def test_the_default_and_the_validation() -> None:
    assert FleetSettings().drift_quiet_s == 300
    assert compile_fleet(FleetSettings(drift_quiet_s=0), fleet("hazmat")).drift_quiet_ms == 0
    for bad in (-1, 86401, "soon"):
        with pytest.raises(ValidationError):
            FleetSettings(drift_quiet_s=bad)


def test_one_fix_batches_give_the_same_events_and_one_alarm() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = flapping()
    _, whole = evaluate_fleet(table, FleetState.new(1), batch(rows), rows[-1][1])
    state, parts = FleetState.new(1), []
    for r in rows:
        state, events = evaluate_fleet(table, state, batch([r]), r[1])
        parts += events.rows()
    assert parts == whole.rows()
    alarms = FleetAlarms(table)
    changes = [c for r in rows for c in alarms.judge(batch([r]), r[1])]
    up, end, count = expected(rows, 300.0)
    assert [(c.kind, c.level, c.ts) for c in changes] == [("drift", 1, up), ("drift", 0, end)]
    assert changes[1].value == count  # "19 implausible fixes"


def test_a_silent_vehicle_keeps_its_episode_until_its_next_fix() -> None:
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = flapping(plausible=0)
    state, events = evaluate_fleet(table, FleetState.new(1), batch(rows), rows[-1][1])
    assert [e[1] for e in events.rows()] == [EventKind.DRIFT]
    later = rows[-1][1] + 3600 * SEC  # the clock's tick ends nothing: event time
    state, events = evaluate_fleet(table, state, batch([]), later)
    assert EventKind.DRIFT_END not in [e[1] for e in events.rows()]
    back = (10, later + 60 * SEC, rows[-1][2], LON0, 0.0)
    _, events = evaluate_fleet(table, state, batch([back]), back[1])
    assert [(e[1], e[2], e[3]) for e in events.rows()] == [(EventKind.DRIFT_END, back[1], 19.0)]


def test_an_episode_restored_after_a_restart_is_not_raised_again() -> None:
    """A restart without a saved state, the drift alarm still active: the fixes that follow
    raise nothing, the quiet counts from the raise; the clear counts the fixes judged since."""
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = flapping()
    up, end, count = expected(rows, 300.0)
    cut = 8
    alarms = FleetAlarms(table)
    alarms.restore([(10, "drift", up)])
    changes = alarms.judge(batch(rows[cut:]), rows[-1][1])
    # the first fix after the restart has none before it: not implausible
    since = implausible(rows[cut:], 160.0)
    assert len(since) == count - cut
    assert [(c.kind, c.level, c.ts, c.value) for c in changes] == [("drift", 0, end, len(since))]
    # without the raise time (an older caller): from the vehicle's last fix known, none here
    alarms = FleetAlarms(table)
    alarms.restore([(10, "drift")])
    changes = alarms.judge(batch(rows[cut:]), rows[-1][1])
    assert [(c.level, c.ts) for c in changes][:1] == [(0, rows[cut][1])]


def test_a_restart_with_the_saved_state_ends_the_episode_as_without_one() -> None:
    """The saved state keeps the episode's last implausible fix and count (`snapshot.resume`
    lowers only its flag; the active alarm raises it again): the same end, the same count."""
    table = compile_fleet(FleetSettings(), fleet("hazmat"))
    rows = flapping()
    up, end, count = expected(rows, 300.0)
    cut = 12
    first = FleetAlarms(table)
    first.judge(batch(rows[:cut]), rows[cut - 1][1])
    second = FleetAlarms(table)
    second.state = first.state.copy()
    second.state.drift_open[:] = False  # as `snapshot.resume` leaves it
    second.restore([(10, "drift", up)])
    changes = second.judge(batch(rows[cut:]), rows[-1][1])
    assert [(c.kind, c.level, c.ts, c.value) for c in changes] == [("drift", 0, end, count)]


def test_a_correction_of_the_lateness_window_never_carries_the_other_ends_value() -> None:
    """helper-147: the lateness window's correcting end took the value of the episode's raise
    (an implied speed, 1801 km/h) as its count, a correcting raise the count as its speed; a
    drift's raise and end measure apart: such a correction carries no value (NaN)."""
    import math

    from alerts.vehicles.lateness import FleetHistory, evaluate_late

    table = compile_fleet(FleetSettings(lateness_s=600.0, drift_quiet_s=30.0), fleet("hazmat"))
    st, hist = FleetState.new(1), FleetHistory.new(1)
    a = (10, CST_0800, LAT0, LON0, 0.0)
    b = (10, CST_0800 + 100 * SEC, LAT0 + FAR, LON0, 0.0)  # 50 km in 100 s: a drift
    st, ev = evaluate_late(table, st, hist, batch([a, b]), b[1])
    assert [(k, t) for _, k, t, *_ in ev.rows()] == [(EventKind.DRIFT, b[1])]
    # late: at b's place already at +5 s (the jump) and +40 s (35 s quiet: the end)
    late = [(10, CST_0800 + s * SEC, LAT0 + FAR, LON0, 0.0) for s in (5, 40)]
    st, ev = evaluate_late(table, st, hist, batch(late), b[1] + SEC)
    ends = [r for r in ev.rows() if r[1] == EventKind.DRIFT_END]
    assert ends and all(math.isnan(r[3]) or r[3] == 1.0 for r in ends), ends
