"""An alarm that ended after the analytics state was saved (`snapshot.afresh`): the clear proves
its condition ended, so the next excess after a restart starts its delay afresh instead of
continuing the saved episode (helper-241: an overspeed raised 1.5 s into a new excess after a
`kill -9`). A side whose alarm is still active, and what is no alarm's delay, are kept."""

from __future__ import annotations

import numpy as np
import pytest
from test_fleet_alarms import LAT0, LON0, T0, registry
from test_snapshot import Node, delayed_registry

from alerts import snapshot
from alerts.state import RUN_START0, CoreState
from alerts.table import ABOVE, SLOTS
from alerts.vehicles.alarms import FleetAlarms, fleet_side
from alerts.vehicles.table import compile_fleet
from ingest.store.base import ReadingBatch

SEC = 1000


def fixes(v: int, legs: list[tuple[int, int, float]]) -> list[tuple[int, int, float, float, float]]:
    """A fix a second from T0 + `start` s to T0 + `end` s at each leg's speed."""
    return [
        (v, T0 + t * SEC, LAT0, LON0 + t * 1e-5, speed) for a, b, speed in legs for t in range(a, b)
    ]


# a hazmat tanker at 75 km/h (its limit off expressways 60, raised after 10 s of it) from T0 to
# T0 + 20 s, at 50 from then, at 75 again from T0 + 30 s
LEGS = [(0, 20, 75.0), (20, 30, 50.0), (30, 60, 75.0)]


@pytest.mark.parametrize("saved_at", [5, 15])  # the episode running; raised
async def test_an_overspeed_cleared_after_the_save_starts_afresh(tmp_path, saved_at):
    v = registry().sensor("tanker.speed").index
    rows = fixes(v, LEGS)
    cut = next(i for i, r in enumerate(rows) if r[1] == T0 + 30 * SEC)  # the new excess
    async with Node(tmp_path) as first:
        await first.feed(rows[: saved_at + 1], chunk=1)
        await first.dispatcher.tick(rows[saved_at][1])  # the periodic save
        await first.dispatcher.wait_saved()
        await first.feed(rows[saved_at + 1 : cut], chunk=1)  # raised and cleared: not saved
        assert [a.state for a in first.fleet("overspeed")] == ["cleared"]
        # killed
    async with Node(tmp_path) as second:
        await second.feed(rows[cut:], chunk=1)
        alarms = second.fleet("overspeed")
    # 10 s into the new excess, not at its first fix (the old episode going on)
    assert sorted(a.started_ts for a in alarms) == [T0 + 10 * SEC, T0 + 40 * SEC]


async def test_an_overspeed_still_active_is_kept(tmp_path):
    """Raised after the save and not cleared: the alarm goes on, not raised twice."""
    v = registry().sensor("tanker.speed").index
    rows = fixes(v, [(0, 40, 75.0), (40, 45, 50.0)])
    async with Node(tmp_path) as first:
        await first.feed(rows[:6], chunk=1)
        await first.dispatcher.tick(rows[5][1])
        await first.dispatcher.wait_saved()
        await first.feed(rows[6:20], chunk=1)
    async with Node(tmp_path) as second:
        await second.feed(rows[20:], chunk=1)
        (alarm,) = second.fleet("overspeed")
    assert (alarm.state, alarm.started_ts, alarm.ended_ts) == (
        "cleared",
        T0 + 10 * SEC,
        T0 + 40 * SEC,
    )


def test_afresh_ends_an_episode_ended_after_the_save_and_keeps_the_rest():
    reg = registry()
    tanker, coach = reg.sensor("tanker.speed").index, reg.sensor("coach.speed").index
    fleet = FleetAlarms(compile_fleet(reg.config.fleet, reg.vehicles.values()))
    st = fleet.state
    t, c = int(fleet.table.slot_of[tanker]), int(fleet.table.slot_of[coach])
    for s in (t, c):
        st.has_fix[s], st.last_ts[s] = True, T0 + 15 * SEC
        st.over_active[s], st.over_since[s] = True, T0
        st.cont_ms[s] = 3 * 3600 * SEC
    core = CoreState.empty(len(reg.sensors))
    side = fleet_side("overspeed")
    # the tanker's ended at a fix after the state's last; the coach's before it (the state knows)
    ended = ([], [(tanker, side, T0 + 20 * SEC, 0), (coach, side, T0 + 15 * SEC, 0)])
    snapshot.afresh(core, fleet, ended, T0 + 15 * SEC)
    assert (bool(st.over_active[t]), int(st.over_since[t])) == (False, 0)
    assert (bool(st.over_active[c]), int(st.over_since[c])) == (True, T0)
    assert st.cont_ms.tolist() == [3 * 3600 * SEC] * 2  # driving time is no alarm's delay
    # recorded by the hub at or after the save: ended after it, whatever its event time
    snapshot.afresh(core, fleet, ([], [(coach, side, T0, T0 + 15 * SEC)]), T0 + 15 * SEC)
    assert not st.over_active[c]


def test_afresh_ends_a_sensor_delay_ended_after_the_save():
    core = CoreState.empty(2)
    core.raw[:, :] = True
    core.run_start[:, :] = T0
    core.last_ts[:] = T0 + 5 * SEC
    fleet = FleetAlarms(compile_fleet(registry().config.fleet, []))
    snapshot.afresh(core, fleet, ([(0, ABOVE, T0 + 12 * SEC, 0)], []), T0 + 5 * SEC)
    assert core.raw[0].tolist() == [False] * SLOTS + [True] * SLOTS  # below: no alarm ended
    assert core.run_start[0, :SLOTS].tolist() == [RUN_START0] * SLOTS
    assert core.raw[1].all() and (core.run_start[1] == T0).all()  # another sensor


async def test_a_sensor_delay_cleared_after_the_save_starts_afresh(tmp_path):
    reg = delayed_registry()
    i = reg.sensor("slow").index

    def judge(node: Node, t: int, value: float):
        batch = ReadingBatch(
            np.array([i], np.int32),
            np.array([T0 + t * SEC], np.int64),
            np.array([value]),
            np.zeros(1, np.uint8),
            np.zeros(1, np.int64),
            np.array([t], np.int64),
        )
        return node.dispatcher.judge(batch, [], T0 + t * SEC)

    async with Node(tmp_path, reg=reg) as first:
        await judge(first, 0, 1.5)
        await judge(first, 5, 1.6)
        await first.dispatcher.save_state()  # the delay running
        assert [e.kind for e in await judge(first, 10, 1.6)] == ["raised"]
        assert [e.kind for e in await judge(first, 12, 0.5)] == ["cleared"]
        # killed
    async with Node(tmp_path, reg=reg) as second:
        assert await judge(second, 20, 1.6) == []  # not the run of T0 going on
        events = await judge(second, 30, 1.6)
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 30 * SEC)]
