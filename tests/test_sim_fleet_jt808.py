"""The fleet simulator run as docs/jt808.md says (`hazardhub simulate fleet --jt808`, the
documented configuration: tanker-01 named by its terminal number, tanker-02 by its plate) against
the real JT/T 808 gateway and a real Mosquitto keeps each vehicle's positions its own: the number
generated for tanker-02 was tanker-01's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from gateway.jt808 import Jt808Gateway
from hazardhub.settings import load_registry
from simulators.fleet import terminal_phones
from telemetry.registry import Registry

from services import MosquittoService

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"test-secret-0123456789"

# the configuration of docs/jt808.md ("How terminals map to vehicles"), as it stands there
DOC_CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat}      # found by its plate
"""
# two routes 200 km apart: a position on the wrong track cannot pass for noise
SCENARIO = """
name: two-tankers
duration_s: 3600
routes:
  tanker-01: [[31.00, 120.00], [31.01, 120.01]]
  tanker-02: [[33.00, 118.00], [33.01, 118.01]]
"""
TOPIC = "hazardhub/v1/chem-logistics/vehicles/{}/position"


@pytest.fixture
def doc_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(DOC_CONFIG, encoding="utf-8")
    return cfg


@contextlib.asynccontextmanager
async def gateway(
    registry: Registry, broker_port: int, tmp_path: Path
) -> AsyncIterator[Jt808Gateway]:
    gw = Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", broker_port),
        spool_dir=tmp_path / "spool",
        secret=SECRET,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await asyncio.wait_for(gw.ready.wait(), 5)
    assert gw.server.address is not None
    try:
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def port_of(gw: Jt808Gateway) -> int:
    assert gw.server.address is not None
    return gw.server.address[1]


def test_generated_numbers_miss_every_configured_number() -> None:
    # the documented case: the second vehicle's generated number was 013800000001
    assert terminal_phones(["13800000001", None]) == ["13800000001", "013800000000"]
    phones = terminal_phones([None, "0013800000000", None, "138000000002", None, None])
    assert phones[1] == "0013800000000" and phones[3] == "138000000002"
    stripped = [p.lstrip("0") for p in phones]
    assert len(set(stripped)) == len(phones)
    assert all(len(p) == 12 for k, p in enumerate(phones) if k not in (1, 3))


async def test_simulated_fleet_keeps_each_vehicle_its_own_track(
    mosquitto: MosquittoService,
    doc_config: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.jt808")
    scenario = tmp_path / "two-tankers.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    got: dict[str, list[dict[str, float]]] = {}
    ready = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(TOPIC.format("+"), qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                got.setdefault(str(msg.topic), []).extend(orjson.loads(msg.payload))

    sub = asyncio.create_task(collect())
    await asyncio.wait_for(ready.wait(), 5)
    try:
        async with gateway(load_registry(doc_config), mosquitto.port, tmp_path) as gw:
            sim = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hazardhub",
                "simulate",
                "fleet",
                "-c",
                str(doc_config),
                "--jt808",
                f"127.0.0.1:{port_of(gw)}",
                "--scenario",
                str(scenario),
                "--period",
                "0.2",
                "--duration",
                "20",
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                loop = asyncio.get_running_loop()
                end = loop.time() + 20
                while loop.time() < end and not all(
                    len(got.get(TOPIC.format(v), [])) >= 10 for v in ("tanker-01", "tanker-02")
                ):
                    await asyncio.sleep(0.1)
            finally:
                sim.terminate()
                _, err = await sim.communicate()
    finally:
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub
    for vehicle, lat in (("tanker-01", 31.0), ("tanker-02", 33.0)):
        track = got.get(TOPIC.format(vehicle), [])
        assert len(track) >= 10, (vehicle, len(track), err.decode()[-2000:])
        assert all(abs(p["lat"] - lat) < 0.1 for p in track), (vehicle, track)
    assert gw.server.counters["replaced"] == 0
    assert gw.server.counters["terminal_conflict"] == 0
    assert [r.getMessage() for r in caplog.records] == []
