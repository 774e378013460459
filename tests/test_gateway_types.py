"""Every data type and byte/word order, 4-20 mA NAMUR NE 43 judgement and status-word quality,
polled by the gateway from the simulator over real sockets."""

from __future__ import annotations

import itertools
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.decode import RequestDecoder, decode_reading, float32_decimal
from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.codec import TelemetryBatch
from telemetry.config import DeviceProfile, HubConfig, PointSpec
from telemetry.quality import Quality
from telemetry.registry import build_registry

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")

DTYPES = {
    "int16": -1234,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3_000_000_000,
    "float32": 1234.5625,
    "float64": -98765.4321,
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def every_type_profile() -> tuple[DeviceProfile, dict[str, float]]:
    points, expected, address = [], {}, 0
    for (dtype, value), order in itertools.product(DTYPES.items(), ORDERS):
        name = f"{dtype}_{order}"
        points.append({"name": name, "address": address, "dtype": dtype, "word_order": order})
        expected[name] = value
        address += {"int32": 2, "uint32": 2, "float32": 2, "float64": 4}.get(dtype, 1)
    for bit in (0, 5, 15):
        points.append({"name": f"bit{bit}", "address": address, "dtype": "bit", "bit": bit})
        expected[f"bit{bit}"] = 1.0 if bit != 5 else 0.0
    points.append(
        {"name": "scaled", "address": address + 1, "dtype": "int16", "scale": 0.1, "offset": -40}
    )
    expected["scaled"] = 21.7
    points.append({"name": "coil", "table": "coil", "address": 3, "dtype": "bool"})
    expected["coil"] = 1.0
    return DeviceProfile.model_validate({"name": "every-type", "points": points}), expected


async def poll(profiles, devices_cfg, sims):
    config = HubConfig.model_validate(
        {
            "tenants": [{"id": "t", "sites": [{"id": "s", "devices": devices_cfg}]}],
            "device_profiles": [p.model_dump() for p in profiles],
        }
    )
    reg = build_registry(config, SHIPPED, PACKS)
    out: dict[str, TelemetryBatch] = {}

    async def sink(b: TelemetryBatch) -> None:
        out[b.device] = b

    for info in reg.devices.values():
        poller = DevicePoller(info, sink, gateway="gw", epoch=1)
        try:
            await poller.poll_once()
        finally:
            await poller.close()
    for sim in sims:
        await sim.stop()
    return out


def readings(batch: TelemetryBatch) -> dict[str, tuple[float, int]]:
    return {
        batch.keys[int(k)]: (float(v), int(q))
        for k, v, q in zip(batch.key, batch.value, batch.quality, strict=True)
    }


async def test_every_dtype_and_byte_order_over_the_wire():
    profile, expected = every_type_profile()
    sim = ModbusSimServer(
        [SimulatedDevice(profile, 1, {k: Constant(v) for k, v in expected.items()}, lambda: 0.0)]
    )
    await sim.start()
    got = await poll(
        [profile],
        [
            {
                "id": "d",
                "profile": "every-type",
                "modbus": {"port": sim.port, "timeout_s": 0.5},
                "sensors": [
                    {"id": p.name, "point": p.name, "kind": "other"} for p in profile.points
                ],
            }
        ],
        [sim],
    )
    values = readings(got["d"])
    for name, want in expected.items():
        value, quality = values[name]
        assert quality == Quality.GOOD
        exact = float(np.float32(want)) if name.startswith("float32") else want
        assert value == pytest.approx(exact, rel=1e-12, abs=1e-12), name


NAMUR_CASES = [  # engineering value of a 0-100 %LEL transmitter -> (mA, quality)
    (-10.0, Quality.SENSOR_FAULT),  # 2.4 mA: wire break
    (-1.5, Quality.OUT_OF_RANGE),  # 3.76 mA: saturated low
    (50.0, Quality.GOOD),  # 12 mA
    (-1.0, Quality.GOOD),  # 3.84 mA: under-range but still a measurement
    (103.0, Quality.GOOD),  # 20.48 mA
    (105.0, Quality.OUT_OF_RANGE),  # 20.8 mA: saturated high
    (120.0, Quality.SENSOR_FAULT),  # 23.2 mA: transmitter failure
    (-2.5, Quality.SENSOR_FAULT),  # 3.6 mA itself: NE 43's failure signal (<= 3.6)
    (106.25, Quality.SENSOR_FAULT),  # 21.0 mA itself (>= 21)
]


async def test_namur_ne43_judges_the_loop_current():
    profile = next(p for p in SHIPPED if p.name == "gas-transmitter-4-20ma")
    sim = ModbusSimServer(
        [
            SimulatedDevice(profile, unit, {"gas": Constant(v)}, lambda: 0.0)
            for unit, (v, _) in enumerate(NAMUR_CASES, start=1)
        ]
    )
    await sim.start()
    got = await poll(
        [],
        [
            {
                "id": f"gd{unit}",
                "profile": "gas-transmitter-4-20ma",
                "modbus": {"port": sim.port, "unit": unit, "timeout_s": 0.5},
                "sensors": [{"id": f"gd{unit}", "point": "gas", "kind": "flammable_gas"}],
            }
            for unit in range(1, len(NAMUR_CASES) + 1)
        ],
        [sim],
    )
    for unit, (value, quality) in enumerate(NAMUR_CASES, start=1):
        got_value, got_quality = readings(got[f"gd{unit}"])["gas"]
        assert got_quality == quality, (value, got_quality)
        assert got_value == pytest.approx(value, abs=0.01)


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (0, Quality.GOOD),
        (1, Quality.SENSOR_FAULT),
        (2, Quality.CALIBRATION),
        (4, Quality.OUT_OF_RANGE),
        (3, Quality.SENSOR_FAULT),  # fault outranks calibration
    ],
)
async def test_status_word_sets_quality(status, quality):
    profile = next(p for p in SHIPPED if p.name == "lel-detector-status")
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                profile, 1, {"lel": Constant(12.5), "status": Constant(status)}, lambda: 0.0
            )
        ]
    )
    await sim.start()
    got = await poll(
        [],
        [
            {
                "id": "gd",
                "profile": "lel-detector-status",
                "modbus": {"port": sim.port, "timeout_s": 0.5},
                "sensors": [{"id": "gd", "point": "lel", "kind": "flammable_gas"}],
            }
        ],
        [sim],
    )
    assert readings(got["gd"]) == {"lel": (12.5, quality)}


async def test_a_calibration_on_one_methane_head_leaves_the_others_judged():
    """标校 of T0 (the simulator sets the shipped substation's status bit for it) must not turn
    T1's 1.6 % into calibration readings that never alarm: one calibration bit each."""
    profile = next(p for p in SHIPPED if p.name == "coal-substation")
    device = SimulatedDevice(
        profile,
        1,
        {
            n: Constant(v)
            for n, v in (("ch4_t0", 2.0), ("ch4_t1", 1.6), ("ch4_t2", 0.3), ("co", 30))
        },
        lambda: 0.0,
    )
    device.set_mode("ch4_t0", "calibration")
    sim = ModbusSimServer([device])
    await sim.start()
    points = ("ch4_t0", "ch4_t1", "ch4_t2", "co")
    got = await poll(
        [],
        [
            {
                "id": "kj",
                "profile": "coal-substation",
                "modbus": {"port": sim.port, "timeout_s": 0.5},
                "sensors": [{"id": p, "point": p, "kind": "methane"} for p in points],
            }
        ],
        [sim],
    )
    qualities = {k: q for k, (_, q) in readings(got["kj"]).items()}
    assert qualities == {
        "ch4_t0": Quality.CALIBRATION,
        "ch4_t1": Quality.GOOD,
        "ch4_t2": Quality.GOOD,
        "co": Quality.GOOD,
    }


async def test_wire_break_bit_marks_only_its_channel_and_diagnostic_bit_marks_all():
    pt100 = next(p for p in SHIPPED if p.name == "pt100-module")
    pressure = next(p for p in SHIPPED if p.name == "pressure-transmitter")
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                pt100,
                1,
                {"t1": Constant(21.3), "t3": Constant(-5.2), "wire_break": Constant(0b0100)},
                lambda: 0.0,
            ),
            SimulatedDevice(
                pressure, 2, {"pressure": Constant(1.25), "fault": Constant(1)}, lambda: 0.0
            ),
        ]
    )
    await sim.start()
    got = await poll(
        [],
        [
            {
                "id": "rtd",
                "profile": "pt100-module",
                "modbus": {"port": sim.port, "unit": 1},
                "sensors": [
                    {"id": f"r{i}", "point": f"t{i}", "kind": "temperature"} for i in (1, 3)
                ],
            },
            {
                "id": "pt",
                "profile": "pressure-transmitter",
                "modbus": {"port": sim.port, "unit": 2},
                "sensors": [{"id": "p", "point": "pressure", "kind": "pressure"}],
            },
        ],
        [sim],
    )
    assert readings(got["rtd"]) == {"t1": (21.3, Quality.GOOD), "t3": (-5.2, Quality.SENSOR_FAULT)}
    assert readings(got["pt"]) == {"pressure": (1.25, Quality.SENSOR_FAULT)}


@st.composite
def requests(draw):
    """Random points packed into one request, with random register contents."""
    points, offsets, address = [], [], 0
    for i in range(draw(st.integers(1, 12))):
        dtype = draw(
            st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64", "bit"])
        )
        spec = {
            "name": f"p{i}",
            "address": address,
            "dtype": dtype,
            "word_order": draw(st.sampled_from(ORDERS)),
            "scale": draw(st.sampled_from([1.0, 0.1, 0.01, 2.5, -1.0])),
            "offset": draw(st.sampled_from([0.0, -40.0, 3.5])),
        }
        if dtype == "bit":
            spec["bit"] = draw(st.integers(0, 15))
        elif draw(st.booleans()) and dtype in ("uint16", "int32", "float32"):
            spec["current"] = {"eng_min": 0, "eng_max": draw(st.sampled_from([100.0, 1.6]))}
        if draw(st.booleans()):
            lo = draw(st.floats(-1e6, 1e6))
            spec["valid"] = (lo, lo + draw(st.floats(1e-3, 1e6)))
        if draw(st.booleans()):  # the instrument's span: within `valid` when both are set
            span_lo, span_hi = spec.get("valid", (-1e6, 1e6))
            cut = draw(st.floats(0.0, 0.4))
            width_ = span_hi - span_lo
            if span_lo + cut * width_ < span_hi - cut * width_:
                spec["range"] = (span_lo + cut * width_, span_hi - cut * width_)
        width = {"int32": 2, "uint32": 2, "float32": 2, "float64": 4}.get(dtype, 1)
        points.append(PointSpec.model_validate(spec))
        offsets.append(address)
        address += width + draw(st.integers(0, 3))
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=address, max_size=address))
    return points, offsets, words


@settings(max_examples=300, deadline=None)
@given(requests())
def test_request_decoder_agrees_with_point_decoder(case):
    points, offsets, words = case
    decoder = RequestDecoder(points, offsets, len(words))
    value = np.empty(len(points))
    quality = np.zeros(len(points), np.uint8)
    decoder.decode(words, value, quality)
    for i, p in enumerate(points):
        want, want_q = decode_reading(p, words[offsets[i] :])
        assert int(quality[i]) == int(want_q), p
        if math.isnan(want):
            assert math.isnan(value[i])
        else:
            assert value[i] == want or value[i] == pytest.approx(want, rel=1e-12), p


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("meant", [9.2, 1.4, 0.8, 0.1, 20.0, -40.7, 123.456, 1e-5, 3.0e38])
def test_a_float32_reads_as_the_decimal_the_transmitter_means(meant: float, order: str) -> None:
    """The float32 nearest 9.2 is 9.19999980926...: read as is, a tank at its 9.2 m HIHI would
    not raise it (>=). Both decoders read the decimal it stands for."""
    if meant != 20.0:  # exact in float32; every other one differs as read
        assert float(np.float32(meant)) != meant
    regs = list(struct.unpack(">2H", struct.pack(">f", meant)))
    if order in ("CDAB", "DCBA"):
        regs.reverse()
    if order in ("BADC", "DCBA"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    point = PointSpec(name="level", address=0, dtype="float32", word_order=order)
    assert decode_reading(point, regs) == (meant, Quality.GOOD)
    value, quality = np.empty(1), np.zeros(1, np.uint8)
    RequestDecoder([point], [0], 2).decode(regs, value, quality)
    assert float(value[0]) == meant


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_float32_decimal_is_the_same_float32(bits: int) -> None:
    x = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
    d = float32_decimal(x)
    if math.isfinite(x):
        assert struct.pack(">f", d) == struct.pack(">f", x)
        mantissa = repr(d).lstrip("-").split("e")[0].replace(".", "").strip("0")
        assert len(mantissa) <= 9, d  # a decimal of float32's precision, not float64's
    else:
        assert d == x or (math.isnan(d) and math.isnan(x))


def test_a_value_outside_the_points_valid_range_is_a_sensor_fault() -> None:
    """A tank level read from the wrong address (the manual's 40001 taken as address 1) came as
    17,727,076 m, quality good, and raised red alarms that flapped; with `valid` it is a sensor
    fault: a fault alarm, never a process one."""
    level = PointSpec(name="level", address=0, dtype="float32", valid=(0.0, 20.0))
    for value, quality in ((9.2, Quality.GOOD), (17_727_076.0, Quality.SENSOR_FAULT)):
        regs = list(struct.unpack(">2H", struct.pack(">f", value)))
        assert decode_reading(level, regs)[1] == quality
        got, q = np.empty(1), np.zeros(1, np.uint8)
        RequestDecoder([level], [0], 2).decode(regs, got, q)
        assert int(q[0]) == quality
    nan = list(struct.unpack(">2H", struct.pack(">f", math.nan)))
    assert decode_reading(level, nan)[1] == Quality.SENSOR_FAULT
    # on a 4-20 mA point it judges the engineering value; NAMUR's own verdict stands inside
    gas = PointSpec(
        name="gas", address=0, current={"eng_min": 0, "eng_max": 100}, valid=(0.0, 100.0)
    )
    assert decode_reading(gas, [12_000])[1] == Quality.GOOD  # 50 %LEL
    # above full scale but saturated (20.8 mA): a measurement still, judged against the levels
    assert decode_reading(gas, [20_800])[1] == Quality.OUT_OF_RANGE
    wide = gas.model_copy(update={"valid": (0.0, 50.0)})
    assert decode_reading(wide, [16_000])[1] == Quality.SENSOR_FAULT  # 75: a good reading out
    with pytest.raises(ValueError, match="min < max"):
        PointSpec(name="x", address=0, valid=(5.0, 5.0))


def test_a_value_beyond_the_instruments_range_is_a_measurement_out_of_range() -> None:
    """A 0-4 % catalytic methane head at 4.5 %: with `valid: [0, 4]` it was a sensor fault
    alone (orange "check the sensor"), and the face kept its power (helper-72). With the span
    as `range` it is out of range, judged against the power-cut level; only garbage beyond
    `valid` is a fault."""
    ch4 = PointSpec(name="ch4", address=0, scale=0.01, range=(0.0, 4.0), valid=(0.0, 40.0))
    for raw, quality in (
        (150, Quality.GOOD),
        (400, Quality.GOOD),
        (450, Quality.OUT_OF_RANGE),
        (4000, Quality.OUT_OF_RANGE),
        (4001, Quality.SENSOR_FAULT),
    ):
        assert decode_reading(ch4, [raw]) == (pytest.approx(raw / 100), quality)
        got, q = np.empty(1), np.zeros(1, np.uint8)
        RequestDecoder([ch4], [0], 1).decode([raw], got, q)
        assert (float(got[0]), int(q[0])) == (pytest.approx(raw / 100), quality)
    below = PointSpec(name="o2", address=0, dtype="int16", scale=0.1, range=(0.0, 25.0))
    assert decode_reading(below, [-5])[1] == Quality.OUT_OF_RANGE  # no valid: a measurement
    # but not a number, or infinite, is a fault, never a measurement out of range (helper-76)
    f32 = PointSpec(name="x", address=0, dtype="float32", range=(0.0, 4.0))
    for special in (math.inf, -math.inf, math.nan):
        regs = list(struct.unpack(">2H", struct.pack(">f", special)))
        assert decode_reading(f32, regs)[1] == Quality.SENSOR_FAULT
        got, q = np.empty(1), np.zeros(1, np.uint8)
        RequestDecoder([f32], [0], 2).decode(regs, got, q)
        assert int(q[0]) == Quality.SENSOR_FAULT
    with pytest.raises(ValueError, match="must lie within valid"):
        PointSpec(name="x", address=0, range=(0.0, 50.0), valid=(0.0, 40.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
def test_a_float_that_is_not_a_number_is_a_fault_without_valid_or_range(dtype, special) -> None:
    """The shipped tank-rtu, radar-level-gauge and pressure-transmitter profiles set no `valid`:
    a float32 transmitter's NaN or infinity came as a good reading, which the hub refused
    (non_finite), no fault alarm, the tile kept its last good value (helper-81)."""
    fmt, n = (">f", 2) if dtype == "float32" else (">d", 4)
    regs = list(struct.unpack(f">{n}H", struct.pack(fmt, special)))
    plain = PointSpec(name="level", address=0, dtype=dtype)
    current = PointSpec(name="gas", address=0, dtype=dtype, current={"eng_min": 0, "eng_max": 100})
    for point in (plain, current):
        assert decode_reading(point, regs)[1] == Quality.SENSOR_FAULT, point
        got, q = np.empty(1), np.zeros(1, np.uint8)
        RequestDecoder([point], [0], n).decode(regs, got, q)
        assert int(q[0]) == Quality.SENSOR_FAULT, point
    profiles, _ = load_profiles(ROOT / "profiles")
    rtu = next(p for p in profiles if p.name == "tank-rtu")
    level = next(p for p in rtu.points if p.name == "level")
    assert level.valid is None and level.dtype == "float32"  # as shipped: the case it was
    if dtype == "float32":
        assert decode_reading(level, regs)[1] == Quality.SENSOR_FAULT


def test_a_4_20_ma_reading_at_a_set_point_is_the_set_point() -> None:
    """5600 µA of a 0-100 %LEL transmitter read 9.999999999999998 (through mA in floating
    point): a level `above: 10` was never reached, a recovery at 45 counted as below it
    (helper-81). Every whole number of the span reads as itself."""
    gas = PointSpec(name="gas", address=0, current={"eng_min": 0, "eng_max": 100})
    for percent in range(101):
        raw = 4000 + percent * 160  # µA
        assert decode_reading(gas, [raw])[0] == percent
        got, q = np.empty(1), np.zeros(1, np.uint8)
        RequestDecoder([gas], [0], 1).decode([raw], got, q)
        assert got[0] == percent
    # a span not from 0, set points in tenths: -40..60 °C missed 1,728 of them, 0.5-2.5 MPa
    # 322 (helper-85)
    for lo, hi, digits in ((-40, 60, 1), (0.5, 2.5, 1), (-0.1, 0.9, 3)):
        temp = PointSpec(name="t", address=0, current={"eng_min": lo, "eng_max": hi})
        steps = round((hi - lo) * 10**digits)
        for k in range(steps + 1):
            meant = float(f"{lo + k / 10**digits:.{digits}f}")
            raw = 4000 + k * 16000 // steps
            assert (k * 16000) % steps == 0
            assert decode_reading(temp, [raw])[0] == meant, (lo, hi, raw)
