"""`hazardhub simulate modbus` serves each device in its configured `modbus.transport`: an
`rtu-over-tcp` device (behind a serial device server) in RTU frames over TCP, the units of one
endpoint on one server as on the RS-485 line behind the converter; a serial-line (`rtu`) device
is refused by name rather than served as Modbus TCP where no gateway looks (the farm served
everything as Modbus TCP: the gateway got CRC errors and raised comm loss)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.farm import build_farm
from simulators.timeline import CompiledScenario, ScenarioSpec, compile_scenario
from telemetry.codec import TelemetryBatch
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")


def tank(dev: str, modbus: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": dev,
        "profile": "tank-rtu",
        "modbus": {"timeout_s": 0.5, **modbus},
        "sensors": [
            {
                "id": f"{dev}-level",
                "point": "level",
                "kind": "level",
                "rule": "chem-process.tank-level-10m",
            }
        ],
    }


def plant(devices: list[dict[str, Any]]) -> Registry:
    config = HubConfig.model_validate(
        {"tenants": [{"id": "acme", "sites": [{"id": "farm", "devices": devices}]}]}
    )
    return build_registry(config, SHIPPED, PACKS)


def steady(reg: Registry) -> CompiledScenario:
    return compile_scenario(ScenarioSpec(name="steady", duration_s=3600), reg)


async def test_rtu_over_tcp_devices_are_served_in_rtu_frames_and_share_their_endpoint():
    rtu_port, tcp_port = free_port(), free_port()
    reg = plant(
        [
            tank("t3", {"transport": "rtu-over-tcp", "port": rtu_port, "unit": 3}),
            tank("t4", {"transport": "rtu-over-tcp", "port": rtu_port, "unit": 4}),
            tank("t9", {"port": tcp_port, "unit": 9}),
        ]
    )
    farm = build_farm(reg, steady(reg), lambda: 0.0)
    assert len(farm.servers) == 2  # the two units behind one device server: one server
    assert farm.transports == {
        ("127.0.0.1", rtu_port): "rtu-over-tcp",
        ("127.0.0.1", tcp_port): "tcp",
    }
    await farm.start()
    sent: list[TelemetryBatch] = []

    async def sink(batch: TelemetryBatch) -> None:
        sent.append(batch)

    pollers = [DevicePoller(d, sink, gateway="gw", epoch=1) for d in reg.devices.values()]
    try:
        for poller in pollers:
            await poller.poll_once()
    finally:
        for poller in pollers:
            await poller.close()
        await farm.stop()
    assert [b.device for b in sent] == ["t3", "t4", "t9"]
    for b in sent:
        assert b.quality.tolist() == [Quality.GOOD], (b.device, b.quality)
        expected = farm.devices[f"acme/farm/{b.device}"].values_at(0.0)["level"]
        assert math.isclose(b.value[0], expected, abs_tol=0.01), (b.device, b.value)
    assert all(p.failures == 0 and p.bus.crc_errors == 0 for p in pollers)


def test_a_serial_line_device_is_refused_by_name_not_served_as_tcp():
    reg = plant(
        [
            tank("t1", {"port": free_port(), "unit": 1}),
            tank("sis-line", {"transport": "rtu", "serial": {"port": "/dev/ttyUSB0"}, "unit": 3}),
        ]
    )
    with pytest.raises(ConfigError) as said:
        build_farm(reg, steady(reg), lambda: 0.0)
    text = str(said.value)
    assert "acme/farm/sis-line" in text and "'rtu'" in text
    assert "rtu-over-tcp" in text  # what to do instead


def test_two_transports_on_one_port_are_refused():
    port = free_port()
    reg = plant(
        [
            tank("a", {"port": port, "unit": 1}),
            tank("b", {"transport": "rtu-over-tcp", "port": port, "unit": 2}),
        ]
    )
    with pytest.raises(ConfigError, match=r"acme/farm/a.*'tcp'.*acme/farm/b.*'rtu-over-tcp'"):
        build_farm(reg, steady(reg), lambda: 0.0)
