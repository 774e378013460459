"""The hub killed (SIGKILL) after it cleared a tanker's overspeed but before its next save of the
analytics state, positions coming on through the broker: after the restart the tanker's new
excess is raised after its own `overspeed_min_s` (10 s), not at its first fix as the episode the
saved state still held running (helper-241). Through the hub's process and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from alerts.vehicles.alarms import fleet_side
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, start_hub_process
from services import free_port

CONFIG = """version: 1
tenants:
  - id: acme
    vehicles:
      - {id: tanker, plate: 川A00001, class: hazmat}
"""
SEC = 1000


def _overspeeds(db: Path) -> list[tuple[str, int]]:
    """(state, started_ts) of the tanker's overspeed alarms, oldest first."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        try:
            rows = con.execute(
                "SELECT state, started_ts FROM alarms WHERE rule = 'fleet' AND side = ? "
                "ORDER BY id",
                (fleet_side("overspeed"),),
            ).fetchall()
        except sqlite3.OperationalError:  # the schema not made yet
            return []
    return [(str(s), int(t)) for s, t in rows]


async def _publish(port: int, base: int, start_s: int, end_s: int, speed: float) -> None:
    """A fix a second from `base` + `start_s` s to `base` + `end_s` s."""
    topic = TopicLayout().position("acme", "tanker")
    async with aiomqtt.Client("127.0.0.1", port) as mq:
        for t in range(start_s, end_s):
            fix = {
                "ts": base + t * SEC,
                "lat": 30.0,
                "lon": 104.0 + t * 2e-4,
                "speed_kmh": speed,
                "heading_deg": 90,
            }
            await mq.publish(topic, json.dumps(fix), qos=1)


async def _until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    async def probe() -> object:
        return check()

    await eventually(probe, timeout_s, what, interval_s=0.05)


async def _subscribed(proc: Any, log: Path, times: int) -> None:
    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        return log.read_text().count("hub subscribed") >= times

    await _until(up, 60, "the hub to subscribe")


@pytest.mark.slow
async def test_a_new_excess_after_a_kill_is_raised_after_its_own_delay(mosquitto, tmp_path):
    cfg, data, log = tmp_path / "hub.yaml", tmp_path / "hazardhub", tmp_path / "hub.log"
    cfg.write_text(CONFIG)
    db, state = data / "state.db", data / "analytics-state.npz"
    base = (time.time_ns() // 1_000_000 // SEC - 300) * SEC  # 5 min ago, whole seconds
    proc = start_hub_process(cfg, mosquitto.port, data, free_port(), log)
    try:
        await _subscribed(proc, log, 1)
        # 75 km/h (hazmat: 60 off expressways) for 20 s: raised 10 s into it
        await _publish(mosquitto.port, base, 0, 20, 75.0)
        await _until(
            lambda: _overspeeds(db) == [("active", base + 10 * SEC)], 20, "the overspeed raised"
        )
        # the next save (every 10 s) holds the episode raised
        await _until(state.exists, 20, "a save")
        before = state.stat().st_mtime_ns
        await _until(lambda: state.stat().st_mtime_ns != before, 20, "a save after the raise")
        saved = state.stat().st_mtime_ns
        await _publish(mosquitto.port, base, 20, 30, 50.0)  # the clear, judged ...
        await _until(
            lambda: _overspeeds(db) == [("cleared", base + 10 * SEC)], 5, "the overspeed cleared"
        )
        proc.send_signal(signal.SIGKILL)  # ... and the hub killed before its next save
        proc.wait(timeout=10)
        assert state.stat().st_mtime_ns == saved, "saved after the clear: the test proves nothing"
        # the positions come on through the broker while the hub is down: a new excess
        await _publish(mosquitto.port, base, 30, 50, 75.0)
        proc = start_hub_process(cfg, mosquitto.port, data, free_port(), log)
        await _subscribed(proc, log, 2)
        await _until(lambda: len(_overspeeds(db)) == 2, 20, "the new excess raised")
        await asyncio.sleep(1)
        # 10 s into the new excess, not at its first fix (30 s after the old episode began)
        assert _overspeeds(db) == [("cleared", base + 10 * SEC), ("active", base + 40 * SEC)]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except Exception:
                proc.kill()
