"""A wrong word order must not hide a gas alarm (helper-237): a round reading (0, 25.0, 60.0)
has a zero low word, so read in the wrong word order it decodes to a subnormal float, which lay
inside `valid` and passed as a good reading near 0 (a panel at 60 %LEL read 2.38333e-41, no
alarm). A float that decodes to a subnormal number is a sensor fault, counted and said."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.decode import RequestDecoder, decode_reading, float32_decimal
from gateway.poller import DevicePoller
from gateway.runner import Gateway
from simulators.encode import encode_point
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.config import DeviceProfile, HubConfig, PointSpec
from telemetry.quality import Quality
from telemetry.registry import build_registry
from telemetry.topics import TopicLayout

from e2e_helpers import HubAccess, eventually, get_json, running_hub, shipped_profiles

# the word orders that put the high word first, and those that put the low word first: a value
# encoded in one of the first and decoded in one of the second (or the other way) has its words
# swapped
HIGH_FIRST = ("ABCD", "BADC")
LOW_FIRST = ("CDAB", "DCBA")
SWAPPED = [(a, b) for a in HIGH_FIRST for b in LOW_FIRST] + [
    (b, a) for a in HIGH_FIRST for b in LOW_FIRST
]


def _point(dtype: str, order: str, valid: tuple[float, float] | None) -> PointSpec:
    return PointSpec(name="gas", address=0, dtype=dtype, word_order=order, valid=valid)  # type: ignore[arg-type]


def _zero_low_word_float32(high: int) -> float:
    return float(struct.unpack(">f", high.to_bytes(2, "big") + b"\0\0")[0])


def _both_paths(point: PointSpec, words: list[int]) -> list[tuple[float, Quality]]:
    """What the per-point decoder and the request decoder (its fast ABCD path, or the slow one)
    make of the words."""
    value, quality = np.zeros(1), np.zeros(1, dtype=np.uint8)
    RequestDecoder([point], [0], len(words)).decode(words, value, quality)
    return [decode_reading(point, words), (float(value[0]), Quality(int(quality[0])))]


@settings(max_examples=400)
@given(
    high=st.integers(0, 0xFFFF).filter(lambda h: (h >> 7) & 0xFF != 0xFF),  # finite
    orders=st.sampled_from(SWAPPED),
    valid=st.sampled_from([None, (-5.0, 120.0), (-1e38, 1e38)]),
)
def test_a_round_float32_in_the_wrong_word_order_is_itself_or_a_fault(high, orders, valid):
    """For any finite float32 v with a zero low word, encoding in one word order and decoding
    in the other gives v itself or a fault: never a good reading that differs from v."""
    v = _zero_low_word_float32(high)
    sent, read = orders
    words = encode_point(_point("float32", sent, valid), v)
    for value, quality in _both_paths(_point("float32", read, valid), words):
        assert quality == Quality.SENSOR_FAULT or value == float32_decimal(v), (v, value)


@settings(max_examples=200)
@given(
    high=st.integers(0, 0xFFFF).filter(lambda h: (h >> 4) & 0x7FF != 0x7FF),
    orders=st.sampled_from(SWAPPED),
)
def test_a_round_float64_in_the_wrong_word_order_is_itself_or_a_fault(high, orders):
    v = float(struct.unpack(">d", high.to_bytes(2, "big") + bytes(6))[0])
    sent, read = orders
    words = encode_point(_point("float64", sent, None), v)
    for value, quality in _both_paths(_point("float64", read, None), words):
        assert quality == Quality.SENSOR_FAULT or value == v, (v, value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_and_the_smallest_normal_are_measurements(dtype):
    tiny = 1.1754943508222875e-38 if dtype == "float32" else 2.2250738585072014e-308
    for v in (0.0, -0.0, tiny, -tiny):
        point = _point(dtype, "ABCD", None)
        for _, quality in _both_paths(point, encode_point(point, v)):
            assert quality == Quality.GOOD, v


def _panel(order: str) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {
            "name": "acme-gas-panel",
            "points": [
                {"name": f"gas{n}", "address": 2 * (n - 1), "dtype": "float32"}
                | {"word_order": order, "unit": "%LEL", "range": [0, 100], "valid": [-5, 120]}
                for n in (1, 2)
            ],
        }
    )


def _site(port: int, poll_s: float) -> HubConfig:
    """A chemical site whose gateway's profile says ABCD for a panel that sends CDAB."""
    modbus = {"host": "127.0.0.1", "port": port, "unit": 1, "poll_s": poll_s, "timeout_s": 0.5}
    return HubConfig.model_validate(
        {
            "tenants": [
                {
                    "id": "acme-chem",
                    "sites": [
                        {
                            "id": "tank-farm",
                            "devices": [
                                {
                                    "id": "panel-1",
                                    "profile": "acme-gas-panel",
                                    "gateway": "gw1",
                                    "modbus": modbus,
                                    "sensors": [
                                        {"id": f"gd-0{n}", "point": f"gas{n}"}
                                        | {
                                            "kind": "flammable_gas",
                                            "rule": "chem-gas.flammable-lel",
                                        }
                                        for n in (1, 2)
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
            "device_profiles": [_panel("ABCD").model_dump()],
        }
    )


async def test_the_poller_reads_the_wrong_word_order_as_a_fault_and_says_so_once(caplog):
    """60 %LEL from a CDAB panel, read by a profile that says ABCD: a sensor fault (not a
    good 2.38333e-41), counted each time, logged once per point with the order that reads it."""
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                _panel("CDAB"), 1, {"gas1": Constant(60.0), "gas2": Constant(0.0)}, lambda: 0.0
            )
        ]
    )
    await sim.start()
    profiles, packs = shipped_profiles()
    info = next(iter(build_registry(_site(sim.port, 1.0), profiles, packs).devices.values()))
    counters: Counter[str] = Counter()
    poller = DevicePoller(info, _ignore, gateway="gw1", epoch=1, counters=counters)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.wordorder"):
            first = await poller.poll_once()
            second = await poller.poll_once()
    finally:
        await poller.close()
        await sim.stop()
    assert first is not None and second is not None
    got = dict(zip(first.keys, zip(first.value, first.quality, strict=True), strict=True))
    assert got["gas1"][1] == Quality.SENSOR_FAULT
    assert got["gas2"] == (0.0, Quality.GOOD)  # 0 reads 0 in every word order
    assert counters["subnormal_readings"] == 2
    said = [r.getMessage() for r in caplog.records if "subnormal" in r.getMessage()]
    assert len(said) == 1, said
    assert "gas1" in said[0] and "CDAB reads 60;" not in said[0], said[0]
    assert said[0].endswith("CDAB reads 60 (said once per point; counted in subnormal_readings)")


async def _ignore(_: object) -> None:
    return None


@pytest.mark.slow
async def test_a_wrong_word_order_raises_the_fault_alarm_not_silence(mosquitto, tmp_path):
    """The real gateway polls the simulated panel (CDAB) with a profile that says ABCD, the
    real hub judges: gd-01 at 60 %LEL raises its sensor-fault alarm, never a silent good 0."""
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                _panel("CDAB"), 1, {"gas1": Constant(60.0), "gas2": Constant(0.0)}, lambda: 0.0
            )
        ]
    )
    await sim.start()
    profiles, packs = shipped_profiles()
    registry = build_registry(_site(sim.port, 0.2), profiles, packs)
    access = HubAccess()
    hub = access.hub(registry, tmp_path / "hub", mosquitto.port)
    gw = Gateway(
        registry,
        tenant="acme-chem",
        gateway="gw1",
        broker_host="127.0.0.1",
        broker_port=mosquitto.port,
        layout=TopicLayout(),
        spool_dir=tmp_path / "spool",
    )
    gw_stop = asyncio.Event()
    try:
        async with running_hub(hub), access.client() as client:
            gw_task = asyncio.create_task(gw.run(gw_stop))
            try:

                async def fault_alarm():
                    return await get_json(client, "/api/v1/alarms", sensor="gd-01")

                alarms = await eventually(fault_alarm, 20, "gd-01's alarm")
                latest = await get_json(client, "/api/v1/sensors/gd-01/latest")
                other = await get_json(client, "/api/v1/alarms", sensor="gd-02")
            finally:
                gw_stop.set()
                await gw_task
        assert gw.metrics()[0]["subnormal_readings"] >= 1
    finally:
        await sim.stop()
    assert [a["side"] for a in alarms] == ["fault"], alarms
    assert latest["quality_name"] == "sensor_fault", latest
    assert other == []  # 0 %LEL reads 0 whatever the order: good, no alarm
