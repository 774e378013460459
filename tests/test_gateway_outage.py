"""The gateway as its own process through a broker outage and a kill -9: every batch polled
reaches the subscriber once, in order per device, with its original event time."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Ramp
from telemetry.codec import decode

ROOT = Path(__file__).resolve().parent.parent
OUTAGE_S = 30.0


def config(port: int) -> str:
    return f"""
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: sub-a
            profile: coal-substation
            modbus: {{port: {port}, unit: 1, poll_s: 0.25, timeout_s: 0.5}}
            sensors: [{{id: a-t1, point: ch4_t1, kind: methane}}]
          - id: sub-b
            profile: coal-substation
            modbus: {{port: {port}, unit: 2, poll_s: 0.25, timeout_s: 0.5}}
            sensors: [{{id: b-t1, point: ch4_t1, kind: methane}}]
"""


def start_gateway(cfg: Path, port: int, spool: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hazardhub",
            "gateway",
            "-c",
            str(cfg),
            "--tenant",
            "north-coal",
            "--broker",
            f"127.0.0.1:{port}",
            "--spool-dir",
            str(spool),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def subscriber(
    port: int, got: list[tuple[str, int, int, list[int], float]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="outage-sub", clean_session=False
            ) as client:
                await client.subscribe("hazardhub/v1/+/+/+/telemetry", qos=1)
                async for msg in client.messages:
                    b = decode(bytes(msg.payload))  # type: ignore[arg-type]
                    got.append((b.device, b.epoch, b.seq, b.ts.tolist(), time.time()))
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


# waits out the broker's 30 s outage, nearly idle: run beside the two workers (`make pytest`)
@pytest.mark.outage
@pytest.mark.slow
async def test_broker_outage_and_kill_9_lose_nothing(mosquitto, tmp_path):
    profiles, _ = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "coal-substation")
    t0 = time.monotonic()
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                prof, u, {"ch4_t1": Ramp(0, 120, 0.2, 1.4)}, lambda: time.monotonic() - t0
            )
            for u in (1, 2)
        ]
    )
    await sim.start()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(config(sim.port))
    spool, log = tmp_path / "spool", tmp_path / "gw.log"
    got: list[tuple[str, int, int, list[int], float]] = []
    stop_sub = asyncio.Event()
    sub = asyncio.create_task(subscriber(mosquitto.port, got, stop_sub))
    gw = start_gateway(cfg, mosquitto.port, spool, log)
    try:
        deadline = time.monotonic() + 20
        while len(got) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(got) >= 8, log.read_text()
        mosquitto.stop()
        outage_start_ms = time.time() * 1000
        await asyncio.sleep(OUTAGE_S / 3)
        gw.send_signal(signal.SIGKILL)  # mid-outage, with batches in the spool
        gw.wait(timeout=10)
        gw = start_gateway(cfg, mosquitto.port, spool, log)
        await asyncio.sleep(OUTAGE_S * 2 / 3)
        mosquitto.start()
        outage_end_ms = time.time() * 1000
        # wait until the subscriber has caught up with what the new gateway polls now
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            recent = [g for g in got if g[4] * 1000 > outage_end_ms + 2000]
            if len({g[0] for g in recent}) == 2:
                break
        gw.send_signal(signal.SIGINT)
        assert gw.wait(timeout=20) == 0, log.read_text()[-3000:]
        await asyncio.sleep(0.5)
    finally:
        if gw.poll() is None:
            gw.kill()
        stop_sub.set()
        sub.cancel()
        await sim.stop()

    for device in ("sub-a", "sub-b"):
        mine = [g for g in got if g[0] == device]
        firsts = list(dict.fromkeys((e, s) for _, e, s, _, _ in mine))
        assert len(mine) - len(firsts) <= 1, "at most the batch in flight at a fault is repeated"
        assert firsts == sorted(firsts), "in order per device"
        epochs = sorted({e for e, _ in firsts})
        assert len(epochs) == 2, "the killed gateway and its successor"
        for epoch in epochs:
            seqs = [s for e, s in firsts if e == epoch]
            assert seqs == list(range(len(seqs))), f"no gap in epoch {epoch} of {device}"
        ts = [t for _, e, s, tss, _ in sorted(mine, key=lambda g: (g[1], g[2])) for t in tss]
        assert all(a <= b for a, b in itertools.pairwise(ts))
        during = [t for t in ts if outage_start_ms < t < outage_end_ms]
        assert len(during) >= OUTAGE_S / 0.25 * 0.5, (
            "readings polled during the outage arrive with the time they were measured"
        )
