"""The fleet's lateness window: a blind-area backlog sent after the live fixes is judged in
event-time order (overspeed in a tunnel raised with its event time), one older than the window
is counted late; the core against an in-order stream, and through the hub (mosquitto)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from typing import Any

import aiomqtt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_vehicle_analytics import (
    CST_0800,
    LAT0,
    LON0,
    M_PER_DEG_LAT,
    MIN,
    PROPERTY_TABLE_LATE,
    batch,
    fleet,
    property_table,
    quiet,
)

from alerts.vehicles import (
    ClassLimits,
    EventKind,
    FleetHistory,
    FleetSettings,
    FleetState,
    compile_fleet,
    evaluate_fleet,
    evaluate_late,
)
from alerts.vehicles.alarms import FleetAlarms
from alerts.vehicles.episodes import OF, levels
from alerts.vehicles.lateness import RING
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, eventually, running_hub
from services import free_port

SEC = 1000


def track(vehicle: int, start: int, legs: list[tuple[int, float]], step: int = 30 * SEC) -> list:
    """A fix every `step` eastwards along LAT0, positions consistent with the speeds."""
    rows, t, lon = [], start, LON0
    per_deg = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
    for duration, speed in legs:
        end = t + duration
        while t < end:
            rows.append((vehicle, t, LAT0, lon, speed))
            lon += speed / 3.6 * step / 1000 / per_deg
            t += step
    rows.append((vehicle, t, LAT0, lon, 0.0))
    return rows


def late_table(lateness_s: float, **limits: Any):
    settings = FleetSettings(lateness_s=lateness_s, hazmat=ClassLimits(**limits))
    return compile_fleet(settings, fleet("hazmat"))


def feed(table, rows_batches, nows=None):
    """Feed batches through `evaluate_late` (at `nows`, else each batch's newest time); the
    events, the state and the history."""
    state, hist = FleetState.new(len(table)), FleetHistory.new(len(table))
    out = []
    for k, rows in enumerate(rows_batches):
        at = nows[k] if nows is not None else max(r[1] for r in rows)
        state, events = evaluate_late(table, state, hist, batch(rows), at)
        out.append(events.rows())
    return out, state, hist


def test_the_setting_is_validated_at_load() -> None:
    assert FleetSettings().lateness_s == 0  # none by default, as the sensors' lateness_s
    assert compile_fleet(FleetSettings(lateness_s=1800), fleet("hazmat")).lateness_ms == 1_800_000
    for bad in (-1, 3601, "soon"):
        with pytest.raises(ValidationError, match="lateness_s"):
            FleetSettings.model_validate({"lateness_s": bad})


def test_a_tunnels_overspeed_sent_after_the_live_fixes_is_raised_in_event_time() -> None:
    """2 min at 50 km/h, a tunnel of 4 min at 90 (limit 60), 2 min at 50: the live fixes come
    first (one per batch), the tunnel's after them (0x0704). The overspeed is raised at the
    fix where the run had lasted 10 s, and ends at the first live fix after the tunnel; without
    a window the backlog is counted late and judged by no rule."""
    rows = track(0 + 10, CST_0800, [(2 * MIN, 50.0), (4 * MIN, 90.0), (2 * MIN, 50.0)])
    tunnel = [r for r in rows if 2 * MIN <= r[1] - CST_0800 < 6 * MIN]
    live = [r for r in rows if r not in tunnel]
    in_order = evaluate_fleet(late_table(0), FleetState.new(1), batch(rows), rows[-1][1])[1]
    want = [(e[1], e[2]) for e in in_order.rows()]
    assert want == [
        (EventKind.OVERSPEED, CST_0800 + 2 * MIN + 30 * SEC),
        (EventKind.OVERSPEED_END, CST_0800 + 6 * MIN),
    ]
    table = late_table(1800)
    out, _, hist = feed(table, [[r] for r in live] + [tunnel])
    assert [(e[1], e[2]) for e in out[-1]] == want
    assert not any(out[:-1])
    assert (hist.rewound, hist.late) == (len(tunnel), 0)
    out, _, hist = feed(late_table(0), [[r] for r in live] + [tunnel])
    assert not any(out)


def test_the_window_and_the_kept_fixes_bound_what_is_judged() -> None:
    """Late by exactly the window: judged; by a millisecond more: counted late. A duplicate of
    a kept fix is neither."""
    table = late_table(60)
    live = track(10, CST_0800, [(2 * MIN, 50.0)])  # every 30 s to 2 min, stopped
    last = live[-1][1]
    _, _, hist = feed(table, [live, [(10, last - 60 * SEC, LAT0, LON0, 50.0)]])
    assert (hist.rewound, hist.late, hist.late_in_window) == (0, 0, 0)  # a kept fix's time
    _, _, hist = feed(table, [live, [(10, last - 60 * SEC + 1, LAT0, LON0, 50.0)]])
    assert (hist.rewound, hist.late) == (1, 0)
    _, _, hist = feed(table, [live, [(10, last - 60 * SEC - 1, LAT0, LON0, 50.0)]])
    assert (hist.rewound, hist.late, hist.late_in_window) == (0, 1, 0)


def test_a_vehicle_heard_after_a_silence_keeps_the_fixes_after_it() -> None:
    """A terminal out of coverage for 5 min, then live fixes one at a time, then the backlog:
    the ring holds the last 32 fixes, so the backlog is judged even when it was nearly full
    before the silence."""
    table = late_table(1800)
    before = track(10, CST_0800, [(14 * MIN + 30 * SEC, 40.0)])[:-1]  # 29 fixes, moving
    assert len(before) == RING - 3
    t = before[-1][1]
    gap = [(10, t + k * 30 * SEC, LAT0, before[-1][3], 40.0) for k in range(1, 10)]
    live = [(10, t + k * 30 * SEC, LAT0, before[-1][3], 40.0) for k in range(10, 16)]
    _, _, hist = feed(table, [before] + [[r] for r in live] + [gap])
    assert (hist.rewound, hist.late, hist.late_in_window) == (len(gap), 0, 0)


@pytest.mark.parametrize("every_s", [30, 60, 120])
def test_a_fix_resent_late_is_judged_whatever_the_pace(every_s: int) -> None:
    """A fix lost in transit and sent again two fixes later is judged, at a fix every 30 s, 60 s
    or 120 s (the ring was thrown away at a fix a minute or more after the last: one fix kept,
    helper-129)."""
    table = late_table(1800)
    rows = [(10, CST_0800 + k * every_s * SEC, LAT0, LON0 + k * 0.001, 40.0) for k in range(10)]
    live = rows[:7] + rows[8:]
    _, _, hist = feed(table, [[r] for r in live] + [[rows[7]]])
    assert (hist.rewound, hist.late, hist.late_in_window) == (1, 0, 0)


def test_the_ring_holds_the_last_fixes_one_batch_at_a_time() -> None:
    """Fixes one a batch every 10 s: a fix sent 20 s late is judged whatever the number of fixes
    before it (the ring was emptied when it overflowed: from the 33rd fix on, one in 32 kept)."""
    table = late_table(1800)
    for n in (3, 33, 34, 66, 70):
        rows = [(10, CST_0800 + k * 10 * SEC, LAT0, LON0 + k * 0.001, 40.0) for k in range(n)]
        live = rows[:-3] + rows[-2:]
        _, _, hist = feed(table, [[r] for r in live] + [[rows[-3]]])
        assert (hist.rewound, hist.late_in_window) == (1, 0), n


def test_an_event_the_rerun_contradicts_is_ended_not_taken_back() -> None:
    """90 km/h at 0 s and 60 s raise an overspeed of a 60 s minimum at 60 s; a fix at 30 s at
    50 km/h, sent late, breaks that run: in order there was none. The raise was told: an end
    comes out, stamped with it, and the consumer ends where an in-order stream leaves it."""
    table = late_table(1800, overspeed_min_s=60)
    fast = [(10, CST_0800 + k * 60 * SEC, LAT0, LON0, 90.0) for k in range(2)]
    out, state, _ = feed(table, [fast, [(10, CST_0800 + 30 * SEC, LAT0, LON0, 50.0)]])
    assert [(e[1], e[2]) for e in out[0]] == [(EventKind.OVERSPEED, CST_0800 + 60 * SEC)]
    assert [(e[1], e[2], e[3]) for e in out[1]] == [
        (EventKind.OVERSPEED_END, CST_0800 + 60 * SEC, 90.0)
    ]
    assert not state.over_raised[0]


def test_a_raise_still_going_is_not_ended_and_raised_again_by_older_fixes() -> None:
    """90 km/h from 30 s raises an overspeed at 40 s (10 s minimum); a blind area's 5 and 15 s
    at 90 km/h and 20 s at 50 km/h, sent at 55 s: in order an overspeed from 5 s ended at 20
    and another raised at 40. The consumer was told the raise at 40 s and it still goes on:
    nothing older than that is told of it (it was ended at 20 s and raised again at 40 s: a
    new alarm, the operator notified and the driver reminded twice, helper-129)."""
    table = late_table(1800)
    fa = FleetAlarms(table)

    def fix(t: int, v: float) -> tuple[int, int, float, float, float]:
        return (10, CST_0800 + t * SEC, LAT0, LON0 + t * 2.5e-5, v)

    told = [
        fa.judge(batch([r]), r[1] + 2 * SEC)
        for r in [fix(0, 50.0), fix(30, 90.0), fix(40, 90.0), fix(50, 90.0)]
    ]
    assert [(c.kind, c.level) for cs in told for c in cs] == [("overspeed", 1)]
    late = [fix(5, 90.0), fix(15, 90.0), fix(20, 50.0)]
    assert fa.judge(batch(late), CST_0800 + 55 * SEC) == []
    assert fa.state.over_raised[0] and fa.last_rewound == len(late)


def test_an_end_older_than_what_was_told_is_stamped_after_it() -> None:
    """Left the corridor at 15 s (told); older fixes show it left at 5 s, came back at 10 s,
    left at 15 s and came back at 20 s: the consumer is told the end at 20 s, not one at 10 s
    before the raise it was told at 15 s."""
    table = PROPERTY_TABLE_LATE  # vehicle 10 on corridor r0 along 30.0 N

    def fix(t: int, lat: float, lon: float) -> tuple[int, int, float, float, float]:
        return (10, CST_0800 + t * SEC, lat, lon, 0.0)

    fa = FleetAlarms(table)
    first = fa.judge(batch([fix(10, 30.0, 104.030), fix(15, 30.05, 104.030)]), CST_0800)
    assert [(c.level, c.ts) for c in first if c.kind == "corridor"] == [(1, CST_0800 + 15 * SEC)]
    second = fa.judge(batch([fix(5, 30.05, 104.031), fix(20, 30.0, 104.035)]), CST_0800)
    ends = [(c.level, c.ts) for c in second if c.kind == "corridor"]
    assert ends == [(0, CST_0800 + 20 * SEC)]


def test_a_second_rewind_tells_nothing_older_than_the_first_told() -> None:
    """In a forbidden area at 5 and 10 s, out at 25 s (its end told at 25 s); a fix at 15 s
    outside, sent late, then one at 20 s inside: in order the area was left at 15 s, entered at
    20 s and left at 25 s, all older than the end told. The first rewind kept the end at 25 s
    from the consumer's view, its re-run does not: what was told is kept apart."""
    table = PROPERTY_TABLE_LATE
    rows = [(10, CST_0800 + k * SEC, 30.0, 104.0, 0.0) for k in (5, 10)]
    out = (10, CST_0800 + 25 * SEC, 29.9921875, 104.0, 0.0)
    back = [(10, CST_0800 + 15 * SEC, 29.9921875, 104.0, 0.0)]
    inside = [(10, CST_0800 + 20 * SEC, 30.0, 104.0, 0.0)]
    got, _, hist = feed(table, [rows[:1], rows[1:], [out], back, inside], [out[1]] * 5)
    area = {EventKind.FORBIDDEN_ENTER, EventKind.FORBIDDEN_END}
    assert [(e[1], e[2]) for e in got[2] if e[1] in area] == [(EventKind.FORBIDDEN_END, out[1])]
    assert [e for e in got[3] + got[4] if e[1] in area] == [] and hist.rewound == 1


def test_a_night_ban_is_told_once_per_window_whichever_fix_raised_it() -> None:
    """A coach moving at 02:10:30 raised the night ban; its fix at 02:10, sent late, is the
    first in the window in order: the ban was told, it is not told again (once per window)."""
    table = compile_fleet(FleetSettings(lateness_s=1800), fleet("coach"))
    at = CST_0800 - 6 * 60 * MIN + 10 * MIN  # 02:10 in China
    rows = [(10, at + k * 30 * SEC, LAT0, LON0 + k * 0.003, 40.0) for k in range(6)]
    out, _, hist = feed(table, [[r] for r in rows[1:]] + [rows[:1]])
    assert [(e[1], e[2]) for e in out[0]] == [(EventKind.BANNED_HOURS, rows[1][1])]
    assert out[-1] == [] and hist.rewound == 1


def test_a_batch_judged_again_after_a_failure_gives_the_same_alarms() -> None:
    """The dispatcher puts the state back when the alarms cannot be written and judges the
    batch again: the history forgets that batch's vehicles' kept fixes (no fix kept twice)."""
    table = late_table(1800)
    rows = track(10, CST_0800, [(2 * MIN, 50.0), (4 * MIN, 90.0), (2 * MIN, 50.0)])
    tunnel = [r for r in rows if 2 * MIN <= r[1] - CST_0800 < 6 * MIN]
    live = [r for r in rows if r not in tunnel]
    alarms = FleetAlarms(table)
    alarms.judge(batch(live[:4]), live[3][1])
    before = alarms.state
    first = alarms.judge(batch(live[4:]), live[-1][1])
    alarms.undo(before)
    assert alarms.judge(batch(live[4:]), live[-1][1]) == first
    before = alarms.state
    changes = alarms.judge(batch(tunnel), live[-1][1])
    assert [(c.kind, c.level) for c in changes] == [("overspeed", 1), ("overspeed", 0)]
    alarms.undo(before)  # the backlog's alarms not written: judged again
    assert alarms.judge(batch(tunnel), live[-1][1]) == changes
    assert alarms.last_rewound == len(tunnel)


step = st.tuples(
    st.integers(10, 13),
    st.one_of(st.integers(5, 40), st.integers(0, 100)),
    st.floats(29.99, 30.05),
    st.floats(103.99, 104.05),
    st.one_of(st.sampled_from([0.0, 5.5, 50.0, 60.0, 80.0, 100.0]), st.floats(0, 130)),
    st.integers(0, 3),  # batch cut after this position when 0
    st.sampled_from([0, 0, 0, 1, 2, 3]),  # held back this many batches: most streams rewind
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 24 * 3600), st.lists(step, min_size=1, max_size=150), quiet)
def test_late_positions_within_the_window_end_where_an_in_order_stream_ends(
    start_s: int, steps: list[tuple[int, int, float, float, float, int, int]], quiet_s: float
) -> None:
    """Positions held back a few batches (late within the window, sometimes beyond it): when
    none was too late to judge, the state is that of the same positions in event-time order
    (the silence found by the hub's clock aside), and a consumer applying every event ends at
    its episodes, never told a raise of what is raised nor an end of what is not (a second
    forbidden area entered is a raise of its own, as in order), nor anything of an episode
    older than what it was told of it last (an end before its raise: helper-129, whose
    generator this is). Most positions are far from the one before: runs of GPS drift, whose
    episodes end after `drift_quiet_s` (drawn)."""
    table = property_table(quiet_s, window=True)
    state, hist = FleetState.new(len(table)), FleetHistory.new(len(table))
    clock = CST_0800 + start_s * 1000
    told = {s: levels(lambda n, s=s: getattr(state, n)[s]) for s in range(len(table))}
    every: dict[tuple[int, int], tuple[int, int, float, float, float]] = {}
    late = 0
    last: dict[tuple[int, str], int] = {}  # per episode, the time of what was told last

    def flush(chunk: list[tuple[int, int, float, float, float]], now: int) -> None:
        nonlocal state, late
        state, events = evaluate_late(table, state, hist, batch(chunk), now)
        late += hist.late
        for v, kind, t, *_ in events.rows():
            of = OF.get(kind)
            if of is not None:  # each raise or end changes what the consumer was told
                assert of[0] == "area" or told[v - 10][of[0]] != of[1], kind
                told[v - 10][of[0]] = of[1]
                # nothing older than what was told of the episode: an end no earlier than
                # its raise, a raise no earlier than the end before it
                assert t >= last.get((v, of[0]), t), kind
                last[v, of[0]] = t

    batches: dict[int, list[tuple[int, int, float, float, float]]] = {}
    nows: dict[int, int] = {}
    k = 0
    for vehicle, gap, lat, lon, speed, cut, held in steps:
        clock += gap * 1000
        row = (vehicle, clock, lat, lon, speed)
        batches.setdefault(k + held, []).append(row)
        nows[k] = clock
        if cut == 0:
            k += 1
    for b in range(max(batches) + 1):
        chunk = batches.get(b, [])
        for row in chunk:
            every.setdefault(row[:2], row)  # of equal times the first counts
        flush(chunk, max(nows.get(b, clock), *(r[1] for r in chunk)) if chunk else clock)
    if late:
        return
    ordered = sorted(every.values(), key=lambda r: r[1])
    alone, _ = evaluate_fleet(table, FleetState.new(len(table)), batch(ordered), clock)
    for f in dataclasses.fields(FleetState):
        if f.name not in ("heard", "offline_raised"):
            assert np.array_equal(getattr(state, f.name), getattr(alone, f.name)), f.name
    for s in range(len(table)):
        assert told[s] == levels(lambda n, s=s: getattr(state, n)[s])


HUB_CONFIG = """
version: 1
fleet: {lateness_s: 600}
tenants:
  - id: acme
    vehicles:
      - {id: tanker-1, plate: 川A00001, class: hazmat}
      - {id: tanker-2, plate: 川A00002, class: hazmat}
"""


async def test_a_backlog_through_the_hub_raises_in_the_window_and_is_counted_beyond(
    mosquitto, tmp_path
):
    """Through mosquitto and the hub's ingest: tanker-1's live fixes, then its tunnel's
    backlog with an overspeed, 4 min older than its newest fix: the alarm is raised with the
    event time it started and ended at the fix after the tunnel. tanker-2's backlog is 12 min
    older than its newest fix, beyond the 10 min window: stored, counted late, no alarm."""
    profiles, packs = load_profiles(ROOT / "profiles")
    doc = parse_document(HUB_CONFIG, HubConfig, "lateness.yaml")
    registry = build_registry(doc, profiles, packs, "x")
    hub = Hub(
        registry, HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=free_port())
    )
    t0 = (time.time_ns() // 1_000_000 - 30 * MIN) // 1000 * 1000
    one = track(0, t0, [(2 * MIN, 50.0), (4 * MIN, 90.0), (2 * MIN, 50.0)])
    tunnel1 = [r for r in one if 2 * MIN <= r[1] - t0 < 6 * MIN]
    two = track(0, t0, [(2 * MIN, 50.0), (4 * MIN, 90.0), (14 * MIN, 50.0)])
    tunnel2 = [r for r in two if 2 * MIN <= r[1] - t0 < 6 * MIN]
    layout = TopicLayout()

    def payload(rows: list) -> bytes:
        return json.dumps(
            [
                {"ts": t, "lat": lat, "lon": lon, "speed_kmh": v, "heading_deg": 90}
                for _, t, lat, lon, v in rows
            ]
        ).encode()

    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for vid, rows, tunnel in (("tanker-1", one, tunnel1), ("tanker-2", two, tunnel2)):
            live = [r for r in rows if r not in tunnel]
            await client.publish(layout.position("acme", vid), payload(live), qos=1)
        sent = len(one) + len(two) - len(tunnel1) - len(tunnel2)
        await eventually(
            lambda: _async(hub.metrics.get("hazardhub_positions_total") >= sent),
            10,
            "the live fixes judged",
        )
        for vid, tunnel in (("tanker-1", tunnel1), ("tanker-2", tunnel2)):
            await client.publish(layout.position("acme", vid), payload(tunnel), qos=1)

        async def overspeed():
            rows = await asyncio.to_thread(hub.statedb.list_alarms, None)
            return [r for r in rows if r.level_name == "overspeed" and r.ended_ts] or None

        [alarm] = await eventually(overspeed, 10, "tanker-1's overspeed, raised and ended")
        assert alarm.sensor == "tanker-1.speed" and alarm.rule == "fleet"
        assert alarm.started_ts == t0 + 2 * MIN + 30 * SEC  # the run had lasted 10 s there
        assert alarm.ended_ts == t0 + 6 * MIN  # the first fix after the tunnel, at 50 km/h
        await eventually(
            lambda: _async(hub.metrics.get("hazardhub_positions_late_total") == len(tunnel2)),
            10,
            "tanker-2's backlog counted late",
        )
        assert hub.metrics.get("hazardhub_positions_rewound_total") == len(tunnel1)
        rows = await asyncio.to_thread(hub.statedb.list_alarms, None)
        assert not [r for r in rows if r.sensor == "tanker-2.speed" and r.rule == "fleet"]


async def _async(value: Any) -> Any:
    return value


def test_an_offline_the_clock_raised_stays_raised_when_older_fixes_come() -> None:
    """A tanker silent for 25 min after driving: the clock raises offline at 20 min. Fixes
    from before its last one, sent late, do not end the silence that goes on: no end, nothing
    raised again; the next live fix ends it."""
    table = late_table(1800)
    rows = track(10, CST_0800, [(3 * MIN, 50.0)])[:-1]  # moving at the last fix
    live = rows[::2]
    last = live[-1][1]
    late = [r for r in rows[1::2] if r[1] < last]
    out, _, hist = feed(table, [live, [], late], nows=[last, last + 25 * MIN, last + 25 * MIN])
    assert [(e[1], e[2]) for e in out[1]] == [(EventKind.OFFLINE, last + 20 * MIN)]
    assert out[2] == [] and hist.rewound == len(late)
