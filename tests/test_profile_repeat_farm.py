"""A repeated device profile over real sockets: the 12-channel gas panel of
docs/configuration.md (written with `repeat`) served by the simulators' Modbus farm and polled
by the gateway; channel 7 reads its value from holding registers 12-13 (float32 CDAB) and its
status word's bits from input register 106: bit 0 makes it a sensor fault, bit 1 calibration,
and channels 6 and 8 stay good."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_profile_repeat import doc_example

from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.farm import Farm, build_farm
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.codec import TelemetryBatch
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import build_registry
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")
DEVICE = "acme/tank-farm/gp-1"


@pytest.fixture
async def panel() -> AsyncIterator[tuple[DevicePoller, Farm]]:
    """A poller of channels 6-8 of the panel, served by the farm built from the configuration."""
    sensors = [
        {
            "id": f"gd-{n}",
            "point": f"gas{n}",
            "kind": "flammable_gas",
            "rule": "chem-gas.flammable-lel",
        }
        for n in (6, 7, 8)
    ]
    config = HubConfig.model_validate(
        {
            "device_profiles": [doc_example()],
            "tenants": [
                {
                    "id": "acme",
                    "sites": [
                        {
                            "id": "tank-farm",
                            "devices": [
                                {
                                    "id": "gp-1",
                                    "profile": "acme-gas-panel-12",
                                    "modbus": {"port": free_port(), "timeout_s": 0.5},
                                    "sensors": sensors,
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )
    reg = build_registry(config, SHIPPED, PACKS)
    farm = build_farm(
        reg, compile_scenario(ScenarioSpec(name="steady", duration_s=60), reg), lambda: 0.0
    )
    await farm.start()

    async def sink(batch: TelemetryBatch) -> None:
        pass

    poller = DevicePoller(next(iter(reg.devices.values())), sink, gateway="gw", epoch=1)
    try:
        yield poller, farm
    finally:
        await poller.close()
        await farm.stop()


def readings(batch: TelemetryBatch | None) -> dict[str, tuple[float, Quality]]:
    assert batch is not None
    return {
        batch.keys[k]: (v, Quality(q))
        for k, v, q in zip(
            batch.key.tolist(), batch.value.tolist(), batch.quality.tolist(), strict=True
        )
    }


async def test_channel_7_reads_its_value_and_its_status_bits(
    panel: tuple[DevicePoller, Farm],
) -> None:
    poller, farm = panel
    # the three channels' values in one read; their three status words in another (not the
    # twelve of the panel: the other channels' words set the quality of no sensor configured)
    assert sorted((r.table, r.address, r.count) for r in poller.requests) == [
        ("holding", 10, 6),
        ("input", 105, 3),
    ]
    device = farm.devices[DEVICE]
    want = device.values_at(0.0)
    got = readings(await poller.poll_once())
    assert set(got) == {"gas6", "gas7", "gas8"}
    for name, (value, quality) in got.items():
        assert quality == Quality.GOOD, name
        assert math.isclose(value, want[name], rel_tol=1e-6, abs_tol=1e-6), (name, value)
    assert got["gas7"][0] > 0  # a steady reading, not a register left at 0
    device.set_mode("gas7", "fault")  # st7 bit 0
    assert device.values_at(0.0)["st7"] == 1
    got = readings(await poller.poll_once())
    assert got["gas7"][1] == Quality.SENSOR_FAULT
    assert (got["gas6"][1], got["gas8"][1]) == (Quality.GOOD, Quality.GOOD)
    device.set_mode("gas7", "calibration")  # st7 bit 1
    assert device.values_at(0.0)["st7"] == 2
    got = readings(await poller.poll_once())
    assert got["gas7"][1] == Quality.CALIBRATION
    assert math.isclose(got["gas7"][0], want["gas7"], rel_tol=1e-6, abs_tol=1e-6)
    assert (got["gas6"][1], got["gas8"][1]) == (Quality.GOOD, Quality.GOOD)
