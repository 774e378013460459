"""Action verification over the demo's coal face: polls in simulated time through the core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alerts.evaluate import CoreState, Readings, evaluate
from alerts.table import ACTION, compile_table
from hazardhub.settings import load_registry
from simulators.scenario import demo_point_signals
from simulators.signals import Constant

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
