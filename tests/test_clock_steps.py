"""The hub's wall clock stepped an hour forward: a burst of overdue notifications, nothing
logged, `/readyz` ready, only the lag read 3600 (helper-195's sysadmin). Deadlines keep their
wall-clock meaning (a step by NTP is usually a correction), but a step of more than 30 s between
two ticks, either way, against the monotonic clock, is now said with its size and counted."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hazardhub.hub import Hub, HubSettings
from ingest.clocksteps import ClockSteps, clock_step
from ingest.metrics import Metrics

from e2e_helpers import eventually, mine_registry, running_hub
from services import MosquittoService, free_port


def test_a_step_is_the_wall_clock_moving_apart_from_the_monotonic_one() -> None:
    assert clock_step((1_000_000, 50), (1_001_000, 1050)) is None  # a tick, both 1 s on
    assert clock_step((1_000_000, 50), (1_031_000, 1050)) is None  # 30 s: the threshold
    assert clock_step((1_000_000, 50), (1_031_001, 1050)) == 30_001
    assert clock_step((1_000_000, 50), (1_000_000, 1050), 30_000) is None  # 1 s slewed
    assert clock_step((1_000_000, 50), (4_601_000, 1050)) == 3_600_000  # an hour forward
    assert clock_step((1_000_000, 50), (956_000, 1050)) == -45_000  # 45 s back
    # a tick late (the loop busy for a minute): both clocks moved alike, no step
    assert clock_step((1_000_000, 50), (1_061_000, 61_050)) is None


def test_clock_steps_are_said_counted_and_their_size_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    wall, mono = [1_800_000_000_000], [0]
    metrics = Metrics()
    steps = ClockSteps(metrics, wall=lambda: wall[0], mono=lambda: mono[0])
    assert steps.check() is None  # the first reading: nothing to compare
    for _ in range(5):
        wall[0] += 1000
        mono[0] += 1000
        assert steps.check() is None
    wall[0] += 3_601_000
    mono[0] += 1000
    assert steps.check() == 3_600_000
    wall[0] += 1000 - 45_000
    mono[0] += 1000
    assert steps.check() == -45_000
    assert metrics.get("hazardhub_clock_steps_total") == 2
    assert metrics.get("hazardhub_clock_last_step_seconds") == -45.0
    said = [r.getMessage() for r in caplog.records if "clock stepped" in r.getMessage()]
    assert len(said) == 2, said
    assert said[0].startswith("the hub's clock stepped forward by 3600.0 s"), said
    assert said[1].startswith("the hub's clock stepped back by 45.0 s"), said


async def test_a_running_hub_says_its_clock_stepped(
    mosquitto: MosquittoService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()),
    )
    steps = hub.ingest.clock_steps
    real = steps._wall
    async with running_hub(hub):
        await asyncio.sleep(1.5)  # a tick or two in step (the first is a second after ready)
        assert hub.metrics.get("hazardhub_clock_steps_total") == 0
        steps._wall = lambda: real() + 3_600_000  # the wall clock set an hour forward

        async def counted() -> bool:
            return hub.metrics.get("hazardhub_clock_steps_total") == 1

        await eventually(counted, 5, "the step counted at a tick")
        assert hub.metrics.get("hazardhub_clock_last_step_seconds") == pytest.approx(3600, abs=1)
        assert any("clock stepped forward by 3600" in r.getMessage() for r in caplog.records)
