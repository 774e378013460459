"""`hazardhub simulate fleet` without scenario routes: every vehicle of a large fleet drives a
generated route of plausible positions (the 1,150th vehicle's started past 90 degrees north, and
the hub refused 42 % of a 2,000-vehicle fleet's positions), and a vehicle with a corridor
geofence drives its corridor (the demo tanker's generated route was 144 km off it). Real
Mosquitto, the simulator as a process."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import aiomqtt
from positionpayload import records_of
from test_sim_vehicle_scenarios import metres_off

from hazardhub.settings import load
from simulators.route import segment_m

from services import MosquittoService

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.yaml"
PLANT_ONLY = ROOT / "examples" / "scenarios" / "tank-farm-leak.yaml"
TOPIC = "hazardhub/v1/+/vehicles/+/position"


async def tracks(
    config: Path, broker_port: int, vehicles: int, fixes: int, *args: str
) -> dict[str, list[dict[str, float]]]:
    """Run `simulate fleet` on `config` until `vehicles` vehicles sent `fixes` fixes each (20 s
    at most); return each vehicle's fixes."""
    got: dict[str, list[dict[str, float]]] = {}
    ready, done = asyncio.Event(), asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", broker_port) as client:
            await client.subscribe(TOPIC, qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                track = got.setdefault(str(msg.topic).split("/")[-2], [])
                track.extend(records_of(msg.payload))
                if sum(len(t) >= fixes for t in got.values()) >= vehicles:
                    done.set()

    sub = asyncio.create_task(collect())
    await asyncio.wait_for(ready.wait(), 5)
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hazardhub",
        "simulate",
        "fleet",
        "-c",
        str(config),
        "--broker",
        f"127.0.0.1:{broker_port}",
        "--duration",
        "20",
        *args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 20)
    finally:
        sim.terminate()
        _, err = await sim.communicate()
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub
    assert len(got) >= vehicles, (len(got), err.decode()[-2000:])
    return got


async def test_a_large_fleet_drives_distinct_plausible_routes(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    n = 1300  # the 1,150th vehicle's generated route used to start past 90 N
    rows = "\n".join(
        f"      - {{id: v{k:04d}, plate: 苏A·{k:05d}, class: hazmat}}" for k in range(n)
    )
    config = tmp_path / "fleet.yaml"
    config.write_text(f"version: 1\ntenants:\n  - id: big\n    vehicles:\n{rows}\n", "utf-8")
    fixes = {
        v: t[0] for v, t in (await tracks(config, mosquitto.port, n, 1, "--period", "5")).items()
    }
    # the Yangtze delta, give or take: inside China, on land
    off = {v: f for v, f in fixes.items() if not (29.5 < f["lat"] < 33.0 and 118 < f["lon"] < 122)}
    assert off == {}, (len(off), sorted(off.items())[:5])
    starts = {(round(f["lat"], 2), round(f["lon"], 2)) for f in fixes.values()}
    assert len(starts) == n  # each its own start: no two on top of each other


async def test_a_vehicle_without_a_scenario_route_drives_its_corridor(
    mosquitto: MosquittoService,
) -> None:
    # a plant-only scenario against the demo: the tanker has a corridor and no scenario route
    fence = next(g for g in load(DEMO).config.fleet.geofences if g.kind == "corridor")
    assert fence.polyline is not None and fence.buffer_m is not None
    got = await tracks(
        DEMO,
        mosquitto.port,
        3,
        10,
        "--scenario",
        str(PLANT_ONLY),
        "--accel",
        "60",
        "--period",
        "0.1",
    )
    track = got["tanker-01"]
    off = [metres_off(fence.polyline, p["lat"], p["lon"]) for p in track]
    assert max(off) < 50, off  # on the polyline, give or take the GPS noise
    assert segment_m((track[0]["lat"], track[0]["lon"]), (track[-1]["lat"], track[-1]["lon"])) > 500
