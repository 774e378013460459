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
import orjson

from services import MosquittoService

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "hazardhub/v1/+/vehicles/+/position"


async def first_fixes(
    config: Path, broker_port: int, expected: int, *args: str
) -> dict[str, dict[str, float]]:
    """Run `simulate fleet` on `config` until `expected` vehicles sent a fix (20 s at most);
    return each vehicle's first fix."""
    got: dict[str, dict[str, float]] = {}
    ready, done = asyncio.Event(), asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", broker_port) as client:
            await client.subscribe(TOPIC, qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                body = orjson.loads(msg.payload)
                first = body[0] if isinstance(body, list) else body
                got.setdefault(str(msg.topic).split("/")[-2], first)
                if len(got) >= expected:
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
    assert len(got) >= expected, (len(got), err.decode()[-2000:])
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
    fixes = await first_fixes(config, mosquitto.port, n, "--period", "5")
    # the Yangtze delta, give or take: inside China, on land
    off = {v: f for v, f in fixes.items() if not (29.5 < f["lat"] < 33.0 and 118 < f["lon"] < 122)}
    assert off == {}, (len(off), sorted(off.items())[:5])
    starts = {(round(f["lat"], 2), round(f["lon"], 2)) for f in fixes.values()}
    assert len(starts) == n  # each its own start: no two on top of each other
