"""The fleet simulator run as docs/jt808.md says (`hazardhub simulate fleet --jt808`, the
documented configuration: tanker-01 named by its terminal number, tanker-02 by its plate) against
the real JT/T 808 gateway and a real Mosquitto keeps each vehicle's positions its own: the number
generated for tanker-02 was tanker-01's. Each simulated terminal registers with a terminal id of
its own, the same at every run: the id was the phone's last 7 digits, so 13900000001 and a
generated 013800000001 were one terminal to the gateway's bindings, and the second vehicle was
refused (result 3) for as long as the fleet ran."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jt808_helpers import DOC_CONFIG, ROOT, VEHICLE_TOPIC, gateway_running, port_of, positions_on

from hazardhub.settings import load_registry
from simulators import jt808fleet as fleet_module
from simulators.fleet import terminal_ids, terminal_phones

from services import MosquittoService

# two routes 200 km apart: a position on the wrong track cannot pass for noise
SCENARIO = """
name: two-tankers
duration_s: 3600
routes:
  tanker-01: [[31.00, 120.00], [31.01, 120.01]]
  tanker-02: [[33.00, 118.00], [33.01, 118.01]]
"""

# a configured number and a generated one (tanker-03's, 013800000001) that end alike
ALIKE_CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13900000001"}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat}
      - {id: tanker-03, plate: 苏A·D9012, class: hazmat}
"""
ALIKE_SCENARIO = """
name: three-tankers
duration_s: 3600
routes:
  tanker-01: [[31.00, 120.00], [31.01, 120.01]]
  tanker-02: [[33.00, 118.00], [33.01, 118.01]]
  tanker-03: [[35.00, 116.00], [35.01, 116.01]]
"""


@pytest.fixture
def doc_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(DOC_CONFIG, encoding="utf-8")
    return cfg


def test_generated_numbers_miss_every_configured_number() -> None:
    # the documented case: the second vehicle's generated number was 013800000001
    assert terminal_phones(["13800000001", None]) == ["13800000001", "013800000000"]
    phones = terminal_phones([None, "0013800000000", None, "138000000002", None, None])
    assert phones[1] == "0013800000000" and phones[3] == "138000000002"
    stripped = [p.lstrip("0") for p in phones]
    assert len(set(stripped)) == len(phones)
    assert all(len(p) == 12 for k, p in enumerate(phones) if k not in (1, 3))


def test_terminal_ids_are_the_vehicles_own_unique_and_the_same_every_time() -> None:
    keys = [f"tenant-{k % 7}/vehicle-{k}" for k in range(20_000)]
    ids = terminal_ids(keys)
    assert len(set(ids)) == len(ids)
    assert all(len(t) == 7 and t.isalnum() and t == t.upper() for t in ids)  # BYTE[7] of 2013
    assert ids == terminal_ids(keys)  # the same at every run
    assert terminal_ids(list(reversed(keys))) == list(reversed(ids))  # whatever the order
    assert terminal_ids(keys[:3]) == ids[:3]  # a vehicle added takes no other's id


def test_a_terminal_id_taken_by_another_vehicle_steps_aside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = fleet_module.terminal_id
    # every vehicle's first choice is the same id: each but the first steps aside
    monkeypatch.setattr(
        fleet_module, "terminal_id", lambda key, salt=0: "SAMEONE" if salt == 0 else real(key, salt)
    )
    ids = terminal_ids(["t/b", "t/a", "t/c"])
    assert ids[1] == "SAMEONE" and len(set(ids)) == 3  # "t/a" first in the order of names
    assert terminal_ids(["t/c", "t/a", "t/b"]) == [ids[2], ids[1], ids[0]]


async def simulate_fleet(
    config: Path, scenario: Path, port: int, period: str, done: Callable[[], bool]
) -> str:
    """Run `hazardhub simulate fleet --jt808` against the gateway at `port` (a fix every
    `period` s) until `done()`, asked every 0.1 s, at most 20 s; its stderr."""
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hazardhub",
        "simulate",
        "fleet",
        "-c",
        str(config),
        "--jt808",
        f"127.0.0.1:{port}",
        "--scenario",
        str(scenario),
        "--period",
        period,
        "--duration",
        "20",
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while loop.time() < end and not done():
            await asyncio.sleep(0.1)
    finally:
        sim.terminate()
        _, err = await sim.communicate()
    return err.decode()


async def play_fleet(
    config: Path, scenario: Path, port: int, vehicles: list[str], got: dict[str, list[Any]]
) -> str:
    """Run `hazardhub simulate fleet --jt808` until each vehicle has 10 positions on the broker
    (at most 20 s); its stderr."""
    got.clear()
    # the 10 positions in half a second, not two
    return await simulate_fleet(
        config,
        scenario,
        port,
        "0.05",
        lambda: all(len(got.get(VEHICLE_TOPIC.format(v), [])) >= 10 for v in vehicles),
    )


async def test_terminals_whose_numbers_end_alike_are_two_terminals_run_after_run(
    mosquitto: MosquittoService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.jt808")
    config, scenario = tmp_path / "hub.yaml", tmp_path / "three-tankers.yaml"
    config.write_text(ALIKE_CONFIG, encoding="utf-8")
    scenario.write_text(ALIKE_SCENARIO, encoding="utf-8")
    vehicles = ["tanker-01", "tanker-02", "tanker-03"]
    assert terminal_phones(["13900000001", None, None])[2] == "013800000001"
    bound: list[dict[str, str]] = []
    async with positions_on(mosquitto.port) as got:
        # the bindings are kept in the spool folder: the second gateway has the first's
        for _ in range(2):
            async with gateway_running(
                load_registry(config), mosquitto.port, tmp_path / "spool"
            ) as gw:
                err = await play_fleet(config, scenario, port_of(gw), vehicles, got)
                for vehicle, lat in zip(vehicles, (31.0, 33.0, 35.0), strict=True):
                    track = got.get(VEHICLE_TOPIC.format(vehicle), [])
                    assert len(track) >= 10, (vehicle, len(track), err[-2000:])
                    assert all(abs(p["lat"] - lat) < 0.1 for p in track), (vehicle, track)
                assert gw.server.counters["binding_refused"] == 0, err[-2000:]
                bound.append(
                    {b.vehicle.vehicle: b.terminal.terminal_id for b in gw.server.bindings.all()}
                )
    assert sorted(bound[0]) == vehicles and len(set(bound[0].values())) == 3
    assert bound[1] == bound[0]  # the same terminals at the second run
    assert [r.getMessage() for r in caplog.records] == []


async def test_simulated_fleet_keeps_each_vehicle_its_own_track(
    mosquitto: MosquittoService,
    doc_config: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.jt808")
    scenario = tmp_path / "two-tankers.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    async with (
        positions_on(mosquitto.port) as got,
        gateway_running(load_registry(doc_config), mosquitto.port, tmp_path / "spool") as gw,
    ):
        err = await simulate_fleet(
            doc_config,
            scenario,
            port_of(gw),
            "0.2",
            lambda: all(
                len(got.get(VEHICLE_TOPIC.format(v), [])) >= 10 for v in ("tanker-01", "tanker-02")
            ),
        )
    for vehicle, lat in (("tanker-01", 31.0), ("tanker-02", 33.0)):
        track = got.get(VEHICLE_TOPIC.format(vehicle), [])
        assert len(track) >= 10, (vehicle, len(track), err[-2000:])
        assert all(abs(p["lat"] - lat) < 0.1 for p in track), (vehicle, track)
    assert gw.server.counters["replaced"] == 0
    assert gw.server.counters["terminal_conflict"] == 0
    assert [r.getMessage() for r in caplog.records] == []
