"""Modbus RTU over a real serial line: socat makes a pty pair, a pymodbus RTU server listens on
one end, and the gateway's serial transport (pyserial through pymodbus) polls the other. Skipped
when socat is missing (`make services` installs it)."""

from __future__ import annotations

import asyncio
import math
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.bus import ModbusBus
from gateway.poller import DevicePoller
from telemetry.codec import TelemetryBatch
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import build_registry

pytestmark = pytest.mark.skipif(
    shutil.which("socat") is None, reason="socat is not installed (make services installs it)"
)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals: what one end writes, the other reads (a null-modem cable)."""
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            assert proc.poll() is None, "socat exited"
            assert time.monotonic() < deadline, "socat made no pty pair"
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


def tank(unit: int, level: float, pressure: float) -> SimDevice:
    words = struct.unpack(">4H", struct.pack(">ff", level, pressure))
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(address=0, values=[False], datatype=DataType.BITS)],
            [SimData(address=0, values=[False], datatype=DataType.BITS)],
            [SimData(address=0, values=[*words, 0, 0], datatype=DataType.REGISTERS)],
            [SimData(address=0, count=1, datatype=DataType.INVALID)],
        ),
    )


async def test_rtu_over_a_serial_line_with_a_silent_unit(pty_pair):
    server_end, gateway_end = pty_pair
    server = ModbusSerialServer(
        [tank(1, 6.25, 0.5), tank(2, 1.75, 0.25)],
        framer=FramerType.RTU,
        port=server_end,
        baudrate=115200,
        # unit 3 is on the line but silent: its requests are dropped before they are handled
        trace_pdu=lambda sending, pdu: pdu if sending or pdu.dev_id in (1, 2) else None,
    )
    await server.serve_forever(background=True)
    serial = {"port": gateway_end, "baudrate": 115200}
    config = HubConfig.model_validate(
        {
            "tenants": [
                {
                    "id": "t",
                    "sites": [
                        {
                            "id": "s",
                            "devices": [
                                {
                                    "id": f"tank{u}",
                                    "profile": "tank-rtu-serial",
                                    "modbus": {
                                        "transport": "rtu",
                                        "serial": serial,
                                        "unit": u,
                                        # unit 3 waits longer than the line (made with
                                        # unit 1's 0.3 s): pymodbus's own timeout ends it
                                        "timeout_s": 0.3 if u < 3 else 0.6,
                                    },
                                    "sensors": [
                                        {"id": f"lvl{u}", "point": "level", "kind": "level"},
                                        {"id": f"p{u}", "point": "pressure", "kind": "pressure"},
                                    ],
                                }
                                for u in (1, 2, 3)
                            ],
                        }
                    ],
                }
            ],
            "device_profiles": [
                {
                    "name": "tank-rtu-serial",
                    "points": [
                        {"name": "level", "address": 0, "dtype": "float32"},
                        {"name": "pressure", "address": 2, "dtype": "float32"},
                    ],
                }
            ],
        }
    )
    reg = build_registry(config)
    infos = sorted(reg.devices.values(), key=lambda d: d.spec.id)
    sent: list[TelemetryBatch] = []

    async def sink(batch: TelemetryBatch) -> None:
        sent.append(batch)

    bus = ModbusBus(infos[0].spec.modbus)
    pollers = [DevicePoller(d, sink, gateway="gw", epoch=1, bus=bus) for d in infos]
    try:
        for _ in range(3):
            for p in pollers:
                await p.poll_once()
        by_device: dict[str, list[TelemetryBatch]] = {}
        for b in sent:
            by_device.setdefault(b.device, []).append(b)
        for device, want in (("tank1", [6.25, 0.5]), ("tank2", [1.75, 0.25])):
            assert [b.value.tolist() for b in by_device[device]] == [want] * 3
            assert all((b.quality == Quality.GOOD).all() for b in by_device[device])
        [lost] = by_device["tank3"]  # comm loss once, then nothing
        assert (lost.quality == Quality.COMM_LOSS).all()
        assert all(math.isnan(v) for v in lost.value.tolist())
        assert bus.silent(3) and not bus.silent(1)
        # the silent unit cost one timeout, not one per cycle: the line keeps its pace
        started = time.monotonic()
        for p in pollers:
            await p.poll_once()
        assert time.monotonic() - started < 0.3
    finally:
        bus.close()
        await server.shutdown()  # type: ignore[no-untyped-call]
        await asyncio.sleep(0)
