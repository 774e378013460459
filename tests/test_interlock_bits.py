"""The shipped `interlock-block` profile over real sockets: the simulator encodes the loop's
register and the gateway decodes its word and its two flags (bit 0 bypassed, bit 1 tripped) from
one read, and the two agree whichever a scenario drives, the word or a flag. The flags go to the
rules `chem-process.interlock-bypass` and `chem-process.interlock-trip` (the golden scenario
`interlock-bypass-and-trip-bits-judged-apart` judges them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from telemetry.codec import TelemetryBatch
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import build_registry

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")
PROFILE = next(p for p in SHIPPED if p.name == "interlock-block")
SENSORS = [
    {"id": "sis-state", "point": "state", "kind": "interlock", "rule": "chem-process.interlock"},
    {
        "id": "sis-bypass",
        "point": "bypassed",
        "kind": "interlock",
        "rule": "chem-process.interlock-bypass",
    },
    {
        "id": "sis-trip",
        "point": "tripped",
        "kind": "interlock",
        "rule": "chem-process.interlock-trip",
    },
]


class Held:
    """A signal a test sets by hand (a scenario's step)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def value_at(self, t_s: float) -> float:
        return self.value


def readings(batch: TelemetryBatch | None) -> dict[str, float]:
    assert batch is not None
    assert set(batch.quality.tolist()) == {Quality.GOOD}
    return {batch.keys[k]: v for k, v in zip(batch.key.tolist(), batch.value.tolist(), strict=True)}


@pytest.fixture
async def loop_block() -> AsyncIterator[tuple[DevicePoller, SimulatedDevice, dict[str, Held]]]:
    """A poller of the three points of one SIS loop, served by the simulator."""
    signals = {name: Held() for name in ("state", "bypassed", "tripped")}
    device = SimulatedDevice(PROFILE, 1, signals, lambda: 0.0)
    sim = ModbusSimServer([device])
    await sim.start()
    config = HubConfig.model_validate(
        {
            "tenants": [
                {
                    "id": "chem",
                    "sites": [
                        {
                            "id": "farm",
                            "devices": [
                                {
                                    "id": "sis",
                                    "profile": "interlock-block",
                                    "modbus": {"port": sim.port, "timeout_s": 0.5},
                                    "sensors": SENSORS,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )
    info = next(iter(build_registry(config, SHIPPED, PACKS).devices.values()))

    async def sink(batch: TelemetryBatch) -> None:
        pass

    poller = DevicePoller(info, sink, gateway="gw", epoch=1)
    try:
        yield poller, device, signals
    finally:
        await poller.close()
        await sim.stop()


async def test_the_word_and_its_flags_are_one_read_of_one_register(loop_block):
    poller, _, _ = loop_block
    assert [(r.table, r.address, r.count) for r in poller.requests] == [("holding", 0, 1)]


async def test_the_flags_read_the_bits_of_the_state_word(loop_block):
    poller, device, signals = loop_block
    for word, name in enumerate(("armed", "bypassed", "tripped", "tripped and bypassed")):
        signals["state"].value = word
        want = {"state": word, "bypassed": word & 1, "tripped": word >> 1}
        assert readings(await poller.poll_once()) == want, name
        assert device.values_at(0.0) == want, name


async def test_a_scenario_may_drive_the_flags_and_the_word_reads_them(loop_block):
    poller, device, signals = loop_block
    signals["bypassed"].value = 1
    assert readings(await poller.poll_once()) == {"state": 1, "bypassed": 1, "tripped": 0}
    signals["tripped"].value = 1
    assert readings(await poller.poll_once()) == {"state": 3, "bypassed": 1, "tripped": 1}
    signals["bypassed"].value = 0  # the bypass removed; the trip not reset yet
    assert readings(await poller.poll_once()) == {"state": 2, "bypassed": 0, "tripped": 1}
    assert device.values_at(0.0) == {"state": 2, "bypassed": 0, "tripped": 1}
    # a flag set by either reads set: the word's bypass with the tripped flag's signal
    signals["tripped"].value, signals["state"].value = 0, 1
    assert readings(await poller.poll_once()) == {"state": 1, "bypassed": 1, "tripped": 0}
