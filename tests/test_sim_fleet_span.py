"""A simulated fleet's track covers its scenario from the first second to the last, whatever the
latency of its start: `hazardhub simulate scenario` set its clock going before its setting up
(`--record`, a Modbus farm) and its recorders took their first fix when they started, so some
0.4 s of wall time times `--accel` had no position (`coach-driven-tired` at 600x began at
08:01:48 and raised fatigue two minutes late), and the stop at the end came before the last fix
(12-22 s short). Over MQTT (a real Mosquitto) and JT/T 808 (the real gateway); fixes taken late
keep the vehicle modes (`offline`, `gps_drift`) of their own time."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from jt808_helpers import VEHICLE_TOPIC, gateway_running, port_of
from positionpayload import records_of

from hazardhub.settings import load_registry
from simulators.farm import ScenarioRunner
from simulators.fleet import GPS_DRIFT_M, FleetPublisher, SimulatedVehicle
from simulators.signals import Constant
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.topics import TopicLayout

from services import MosquittoService

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
      - {id: coach-07, plate: 苏B·K5678, class: coach}
"""
CST = dt.timezone(dt.timedelta(hours=8))
START_MS = round(dt.datetime(2026, 3, 3, 8, 0, tzinfo=CST).timestamp() * 1000)
# 50 min at 600x: 5 s of wall time; a fix every 0.05 s of wall time, 30 s of the scenario. Its
# end (2990 s) is no multiple of 30 s: the last fix is its own.
SCENARIO = """
name: span
start: "2026-03-03T08:00:00+08:00"
duration_s: 2990
routes:
  tanker-01: [[31.00, 120.00], [31.10, 120.10]]
  coach-07: [[32.00, 119.00], [32.10, 119.10]]
"""


async def _collect(port: int, got: dict[str, list[int]], ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(VEHICLE_TOPIC.format("+"), qos=1)
        ready.set()
        async for msg in client.messages:
            assert isinstance(msg.payload, bytes)
            items = records_of(msg.payload)
            got.setdefault(str(msg.topic).split("/")[-2], []).extend(int(p["ts"]) for p in items)


async def _simulate(args: list[str]) -> tuple[int, str]:
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hazardhub",
        "simulate",
        *args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(sim.communicate(), 60)
    assert sim.returncode is not None
    return sim.returncode, err.decode()


@pytest.mark.parametrize("via", ["mqtt", "jt808"])
async def test_the_track_runs_from_the_scenarios_start_to_its_very_end(
    via: str, mosquitto: MosquittoService, tmp_path: Path
) -> None:
    config, scenario = tmp_path / "hub.yaml", tmp_path / "span.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    scenario.write_text(SCENARIO, encoding="utf-8")
    got: dict[str, list[int]] = {}
    ready = asyncio.Event()
    sub = asyncio.create_task(_collect(mosquitto.port, got, ready))
    await asyncio.wait_for(ready.wait(), 5)
    args = ["scenario", str(scenario), "-c", str(config), "--accel", "600", "--period", "0.05"]
    args += ["--record", str(tmp_path / "truth.json")]  # set up after the clock starts
    try:
        if via == "mqtt":
            code, err = await _simulate([*args, "--broker", f"127.0.0.1:{mosquitto.port}"])
        else:
            async with gateway_running(
                load_registry(config), mosquitto.port, tmp_path / "spool"
            ) as gw:
                code, err = await _simulate([*args, "--jt808", f"127.0.0.1:{port_of(gw)}"])
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        while loop.time() < end and sum(map(len, got.values())) < 2 * 101:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # and nothing more
    finally:
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub
    assert code == 0, err[-2000:]
    expected = [START_MS + k * 30_000 for k in range(100)] + [START_MS + 2_990_000]
    for vehicle in ("tanker-01", "coach-07"):
        assert sorted(got.get(vehicle, [])) == expected, (vehicle, got.get(vehicle), err[-2000:])


async def test_fixes_taken_late_have_the_modes_of_their_own_time(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """The fleet starts 400 s of scenario time late: the fixes of 0-400 s are taken at once,
    the vehicle off from 100 s to 200 s and its position 800 m east from 250 s to 300 s, as
    the scenario says, though the runner has applied both modes, and ended them, by then."""
    spec = ScenarioSpec.model_validate(
        {
            "name": "late",
            "duration_s": 600,
            "events": [
                {"at_s": 100, "vehicle": "tanker-01", "mode": "offline", "for_s": 100},
                {"at_s": 250, "vehicle": "tanker-01", "mode": "gps_drift", "for_s": 50},
            ],
        }
    )
    config = tmp_path / "hub.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    reg = load_registry(config)
    compiled = compile_scenario(spec, reg)
    loop = asyncio.get_running_loop()
    accel, late_s = 100.0, 400.0
    t0 = loop.time() - late_s / accel

    def clock() -> float:
        return (loop.time() - t0) * accel

    truck = SimulatedVehicle(
        "chem-logistics", "tanker-01", ((31.0, 120.0), (31.0, 120.5)), Constant(0.0), noise_m=0
    )
    runner = ScenarioRunner(compiled, {}, clock, accel, {"tanker-01": truck})
    wall0 = 1_800_000_000_000
    publisher = FleetPublisher(
        [truck],
        host="127.0.0.1",
        port=mosquitto.port,
        layout=TopicLayout(),
        clock=clock,
        start_wall_ms=wall0,
        period_s=0.1,  # 10 s of the scenario
        accel=accel,
        end_s=spec.duration_s,
    )
    got: list[dict[str, Any]] = []

    async def listen(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(VEHICLE_TOPIC.format("+"), qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                got.extend(records_of(msg.payload))

    ready = asyncio.Event()
    sub = asyncio.create_task(listen(ready))
    await asyncio.wait_for(ready.wait(), 5)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(publisher.run(stop))]
    await asyncio.sleep(0.5)  # the fixes of 0-400 s are in, and some live ones
    stop.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.3)
    sub.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sub
    at = {round((p["ts"] - wall0) * accel / 1000): p for p in got}
    assert 0 in at and 390 in at, sorted(at)
    assert not [t for t in at if 100 <= t < 200], sorted(at)  # off: no fix at all
    assert all(t in at for t in range(0, 400, 10) if not 100 <= t < 200), sorted(at)
    still = at[0]["lon"]
    for t in range(0, 400, 10):
        if t in at:
            east_m = (at[t]["lon"] - still) * 111_320 * 0.857  # cos 31 deg
            jumped = 250 <= t < 300
            assert abs(east_m - (GPS_DRIFT_M if jumped else 0.0)) < 5, (t, east_m)


async def test_two_fleet_simulators_on_one_broker_do_not_knock_each_other_off(
    mosquitto: MosquittoService, caplog: pytest.LogCaptureFixture
) -> None:
    """helper-149: every fleet simulator connected as `hazardhub-sim-fleet`; two of them (one per
    tenant, as docs/simulators.md runs them with logins) took turns throwing each other off the
    broker for ever. Each has an id of its own: both fleets' positions arrive."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    fleets = [
        FleetPublisher(
            [
                SimulatedVehicle(
                    "chem-logistics", vid, ((31.0, 120.0), (31.0, 120.5)), Constant(60.0)
                )
            ],
            host="127.0.0.1",
            port=mosquitto.port,
            layout=TopicLayout(),
            clock=clock,
            start_wall_ms=1_800_000_000_000,
            period_s=0.1,
        )
        for vid in ("tanker-01", "tanker-02")
    ]
    assert fleets[0].client_id != fleets[1].client_id
    got: dict[str, int] = {}

    async def listen(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(VEHICLE_TOPIC.format("+"), qos=1)
            ready.set()
            async for msg in client.messages:
                vid = str(msg.topic).split("/")[-2]
                got[vid] = got.get(vid, 0) + 1

    ready = asyncio.Event()
    sub = asyncio.create_task(listen(ready))
    await asyncio.wait_for(ready.wait(), 5)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(f.run(stop)) for f in fleets]
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.3)
    sub.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sub
    assert got.get("tanker-01", 0) >= 10 and got.get("tanker-02", 0) >= 10, got
    thrown = [r.getMessage() for r in caplog.records if "broker unreachable" in r.getMessage()]
    assert thrown == []
