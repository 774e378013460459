"""The device simulator: register encoding, scenario signals, and Modbus TCP over real sockets."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from simulators.encode import FLOAT32_MAX, decode_words, encode_point, register_width
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant, Noisy, Piecewise, Ramp, Signal
from telemetry.config import DeviceProfile, PointSpec

IntDtype = Literal["int16", "uint16", "int32", "uint32"]
INT_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
SCALES = st.sampled_from([1.0, 0.1, 0.01, 0.5, 10.0, -0.1])
OFFSETS = st.integers(-1000, 1000).map(float)
ORDERS = st.sampled_from(["ABCD", "CDAB"])


def point(
    dtype: str, word_order: str = "ABCD", scale: float = 1.0, offset: float = 0.0
) -> PointSpec:
    table = "coil" if dtype == "bool" else "holding"
    return PointSpec.model_validate(
        {
            "name": "p",
            "table": table,
            "address": 0,
            "dtype": dtype,
            "word_order": word_order,
            "scale": scale,
            "offset": offset,
        }
    )


# --- encode: golden words -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "words"),
    [
        (point("float32", "ABCD"), 1.5, [0x3FC0, 0x0000]),
        (point("float32", "CDAB"), 1.5, [0x0000, 0x3FC0]),
        (point("float32", "ABCD"), -2.0, [0xC000, 0x0000]),
        (point("int16"), -1, [0xFFFF]),
        (point("int16"), 32767, [0x7FFF]),
        (point("uint16"), 65535, [0xFFFF]),
        (point("int32", "ABCD"), -2, [0xFFFF, 0xFFFE]),
        (point("int32", "CDAB"), -2, [0xFFFE, 0xFFFF]),
        (point("uint32", "ABCD"), 0x12345678, [0x1234, 0x5678]),
        (point("uint32", "CDAB"), 0x12345678, [0x5678, 0x1234]),
        (point("int16", scale=0.1), 25.3, [253]),
        (point("int16", scale=0.1), -0.5, [0xFFFB]),
        (point("uint16", scale=0.01, offset=-40.0), 20.0, [6000]),
        (point("bool"), 1.0, [1]),
        (point("bool"), 0.0, [0]),
    ],
)
def test_golden_words(spec: PointSpec, value: float, words: list[int]) -> None:
    assert encode_point(spec, value) == words
    assert decode_words(spec, words) == pytest.approx(value)


@pytest.mark.parametrize(
    ("spec", "value", "words"),
    [
        (point("int16"), 40000, [0x7FFF]),
        (point("int16"), -1e300, [0x8000]),
        (point("uint16"), -5, [0x0000]),
        (point("uint32"), math.inf, [0xFFFF, 0xFFFF]),
        (point("float32"), 1e40, [0x7F7F, 0xFFFF]),
        (point("float32"), -math.inf, [0xFF7F, 0xFFFF]),
        (point("bool"), 5.0, [1]),
        (point("bool"), -5.0, [0]),
    ],
)
def test_out_of_range_values_saturate(spec: PointSpec, value: float, words: list[int]) -> None:
    assert encode_point(spec, value) == words


def test_float32_saturates_at_the_largest_finite_value() -> None:
    assert decode_words(point("float32"), [0x7F7F, 0xFFFF]) == FLOAT32_MAX


def test_nan_and_zero_scale_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="NaN"):
        encode_point(point("float32"), math.nan)
    with pytest.raises(ValueError, match="scale 0"):
        encode_point(point("int16", scale=0.0), 1.0)


@pytest.mark.parametrize(
    ("spec", "words"),
    [(point("int32"), [1]), (point("int16"), [1, 2]), (point("bool"), [2]), (point("int16"), [-1])],
)
def test_decode_rejects_malformed_words(spec: PointSpec, words: list[int]) -> None:
    with pytest.raises(ValueError, match="point 'p'"):
        decode_words(spec, words)


# --- encode: round-trip properties ----------------------------------------------------------


@given(
    dtype=st.sampled_from(["bool", "int16", "uint16", "int32", "uint32"]),
    order=ORDERS,
    scale=SCALES,
    offset=OFFSETS,
    data=st.data(),
)
def test_integer_words_survive_decode_then_encode(
    dtype: str, order: str, scale: float, offset: float, data: st.DataObject
) -> None:
    spec = point(dtype, order, scale, offset)
    top = 1 if dtype == "bool" else 0xFFFF
    words = data.draw(st.lists(st.integers(0, top), min_size=register_width(dtype), max_size=2))
    words = words[: register_width(dtype)]
    assert encode_point(spec, decode_words(spec, words)) == words


@given(
    dtype=st.sampled_from(list(INT_RANGE)),
    order=ORDERS,
    scale=SCALES,
    offset=OFFSETS,
    data=st.data(),
)
def test_integer_values_round_trip_within_half_a_step(
    dtype: IntDtype, order: str, scale: float, offset: float, data: st.DataObject
) -> None:
    lo, hi = INT_RANGE[dtype]
    ends = sorted((lo * scale + offset, hi * scale + offset))
    value = data.draw(st.floats(ends[0], ends[1]))
    spec = point(dtype, order, scale, offset)
    assert abs(decode_words(spec, encode_point(spec, value)) - value) <= abs(scale) / 2 * (1 + 1e-9)


def finite_not_minus_zero(bits: int) -> bool:
    """Not NaN or inf; not -0.0 either, which decodes to 0.0 (-0.0 + offset 0.0 is +0.0)."""
    return (bits >> 23) & 0xFF != 0xFF and bits != 0x8000_0000


@given(bits=st.integers(0, 2**32 - 1).filter(finite_not_minus_zero), order=ORDERS)
def test_float32_words_survive_decode_then_encode(bits: int, order: str) -> None:
    spec = point("float32", order)
    words = [bits >> 16, bits & 0xFFFF]
    if order == "CDAB":
        words.reverse()
    assert encode_point(spec, decode_words(spec, words)) == words


@given(value=st.floats(-1e6, 1e6), order=ORDERS, scale=SCALES, offset=OFFSETS)
def test_float32_values_round_trip_to_float32_precision(
    value: float, order: str, scale: float, offset: float
) -> None:
    spec = point("float32", order, scale, offset)
    decoded = decode_words(spec, encode_point(spec, value))
    assert abs(decoded - value) <= abs(value - offset) * 2**-23 + 1e-9


@given(
    dtype=st.sampled_from(["int32", "uint32", "float32"]),
    value=st.floats(allow_nan=False),
)
def test_cdab_is_abcd_with_words_swapped(dtype: str, value: float) -> None:
    assert (
        encode_point(point(dtype, "CDAB"), value) == encode_point(point(dtype, "ABCD"), value)[::-1]
    )


# --- signals -------------------------------------------------------------------------------


def test_constant() -> None:
    assert Constant(4.5).value_at(-10.0) == Constant(4.5).value_at(1e9) == 4.5


def test_ramp_holds_v0_before_and_v1_after() -> None:
    ramp = Ramp(start_s=10.0, end_s=20.0, v0=1.0, v1=3.0)
    assert [ramp.value_at(t) for t in (0.0, 10.0, 15.0, 20.0, 99.0)] == [1.0, 1.0, 2.0, 3.0, 3.0]


def test_ramp_with_no_duration_is_a_step() -> None:
    step = Ramp(start_s=5.0, end_s=5.0, v0=0.0, v1=1.0)
    assert (step.value_at(4.999), step.value_at(5.0)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="before it starts"):
        Ramp(start_s=5.0, end_s=4.0, v0=0.0, v1=1.0)


def test_piecewise_interpolates_and_is_flat_outside() -> None:
    sig = Piecewise(((0.0, 0.0), (10.0, 1.0), (20.0, 0.5)))
    ts = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 30.0)
    assert [sig.value_at(t) for t in ts] == [0.0, 0.0, 0.5, 1.0, 0.75, 0.5, 0.5]
    assert Piecewise(((3.0, 7.0),)).value_at(100.0) == 7.0


@pytest.mark.parametrize("points", [(), ((0.0, 1.0), (0.0, 2.0)), ((1.0, 1.0), (0.0, 2.0))])
def test_piecewise_needs_rising_times(points: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError, match="piecewise"):
        Piecewise(points)


@given(t=st.floats(-1e6, 1e6), seed=st.integers(), amplitude=st.floats(0, 100))
def test_noise_is_bounded_and_a_function_of_seed_and_time(
    t: float, seed: int, amplitude: float
) -> None:
    sig = Noisy(Constant(50.0), amplitude, seed)
    v = sig.value_at(t)
    assert abs(v - 50.0) <= amplitude
    assert Noisy(Constant(50.0), amplitude, seed).value_at(t) == v


def test_noise_varies_over_time_and_seed() -> None:
    a, b = Noisy(Constant(0.0), 1.0, seed=1), Noisy(Constant(0.0), 1.0, seed=2)
    samples = [a.value_at(t / 10) for t in range(200)]
    assert len(set(samples)) == 200
    assert min(samples) < -0.5 < 0.5 < max(samples)
    assert samples != [b.value_at(t / 10) for t in range(200)]
    assert Noisy(Ramp(0.0, 1.0, 0.0, 1.0), 0.0, seed=1).value_at(0.5) == 0.5
    with pytest.raises(ValueError, match="amplitude"):
        Noisy(Constant(0.0), -1.0)


def test_signals_satisfy_the_protocol() -> None:
    signals: list[Signal] = [Constant(1.0), Ramp(0, 1, 0, 1), Piecewise(((0.0, 1.0),))]
    signals.append(Noisy(signals[0], 0.1, 7))
    assert all(isinstance(s.value_at(0.5), float) for s in signals)


# --- simulated devices over real sockets ---------------------------------------------------

PROFILE = DeviceProfile(
    name="gas-panel",
    points=(
        PointSpec(name="ch4", table="input", address=0, dtype="float32", word_order="CDAB"),
        PointSpec(name="o2", table="input", address=2, dtype="uint16", scale=0.1),
        PointSpec(name="co", table="holding", address=10, dtype="int16", scale=0.1),
        PointSpec(name="runtime", table="holding", address=12, dtype="uint32"),
        PointSpec(name="alarm", table="discrete", address=3, dtype="bool"),
        PointSpec(name="relay", table="coil", address=20, dtype="bool"),
    ),
)
BY_NAME = {p.name: p for p in PROFILE.points}
TIMEOUT_S = 0.25


class FakeClock:
    """Scenario time that only moves when a test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def devices(clock: FakeClock) -> tuple[SimulatedDevice, SimulatedDevice]:
    unit1 = SimulatedDevice(
        PROFILE,
        1,
        {
            "ch4": Ramp(start_s=0.0, end_s=10.0, v0=0.0, v1=2.5),
            "o2": Constant(20.9),
            "co": Piecewise(((0.0, -1.5), (10.0, 48.5))),
            "runtime": Ramp(0.0, 100.0, 0.0, 100.0),
            "alarm": Ramp(start_s=5.0, end_s=5.0, v0=0.0, v1=1.0),
            "relay": Constant(1.0),
        },
        clock,
    )
    unit2 = SimulatedDevice(PROFILE, 2, {"ch4": Constant(0.75)}, clock)
    return unit1, unit2


@pytest.fixture
async def server(
    devices: tuple[SimulatedDevice, SimulatedDevice],
) -> AsyncIterator[ModbusSimServer]:
    srv = ModbusSimServer(devices)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: ModbusSimServer) -> AsyncIterator[AsyncModbusTcpClient]:
    cli = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=TIMEOUT_S, retries=0)
    assert await cli.connect()
    yield cli
    cli.close()


async def read_point(cli: AsyncModbusTcpClient, name: str, unit: int) -> float:
    """Read one point the way a gateway would and decode it with the simulator's own decoder."""
    spec = BY_NAME[name]
    width = register_width(spec.dtype)
    if spec.table == "input":
        rr = await cli.read_input_registers(spec.address, count=width, device_id=unit)
    elif spec.table == "holding":
        rr = await cli.read_holding_registers(spec.address, count=width, device_id=unit)
    elif spec.table == "discrete":
        rr = await cli.read_discrete_inputs(spec.address, count=1, device_id=unit)
    else:
        rr = await cli.read_coils(spec.address, count=1, device_id=unit)
    assert not rr.isError(), rr
    words = [int(rr.bits[0])] if spec.dtype == "bool" else rr.registers
    return decode_words(spec, words)


async def test_server_reports_the_port_it_bound(server: ModbusSimServer) -> None:
    assert server.port != 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


async def test_values_follow_the_signals_as_the_clock_moves(
    client: AsyncModbusTcpClient, clock: FakeClock
) -> None:
    expected = {
        0.0: {"ch4": 0.0, "o2": 20.9, "co": -1.5, "runtime": 0.0, "alarm": 0.0, "relay": 1.0},
        4.0: {"ch4": 1.0, "o2": 20.9, "co": 18.5, "runtime": 4.0, "alarm": 0.0, "relay": 1.0},
        10.0: {"ch4": 2.5, "o2": 20.9, "co": 48.5, "runtime": 10.0, "alarm": 1.0, "relay": 1.0},
    }
    for t, values in expected.items():
        clock.t = t
        got = {name: await read_point(client, name, 1) for name in values}
        assert got == pytest.approx(values), f"at t={t}"


async def test_units_on_one_port_are_separate_devices(client: AsyncModbusTcpClient) -> None:
    assert await read_point(client, "ch4", 2) == 0.75
    assert await read_point(client, "ch4", 1) == 0.0
    # Unit 2 has no signals beyond ch4: its other points hold 0.
    assert [await read_point(client, n, 2) for n in ("o2", "co", "alarm", "relay")] == [0] * 4


async def test_a_batched_read_sees_one_instant(
    client: AsyncModbusTcpClient, clock: FakeClock
) -> None:
    clock.t = 4.0
    rr = await client.read_holding_registers(10, count=4, device_id=1)
    assert not rr.isError()
    assert rr.registers == [185, 0, 0, 4]  # co = 18.5 at scale 0.1, runtime = 4 (ABCD)


async def test_an_offline_unit_times_out_while_the_other_answers(
    client: AsyncModbusTcpClient, devices: tuple[SimulatedDevice, SimulatedDevice]
) -> None:
    unit1, _ = devices
    unit1.online = False
    with pytest.raises(ModbusIOException):
        await read_point(client, "ch4", 1)
    started = time.monotonic()
    assert await read_point(client, "ch4", 2) == 0.75
    assert time.monotonic() - started < TIMEOUT_S / 2
    # Out-of-map reads and writes get no answer either: the link is down, not the register.
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(500, count=1, device_id=1)
    with pytest.raises(ModbusIOException):
        await client.write_register(10, 1, device_id=1)
    unit1.online = True
    assert await read_point(client, "ch4", 1) == 0.0


async def test_an_unknown_unit_gets_no_answer(client: AsyncModbusTcpClient) -> None:
    with pytest.raises(ModbusIOException):
        await client.read_input_registers(0, count=2, device_id=9)
    assert await read_point(client, "ch4", 2) == 0.75


async def test_writes_are_refused_and_unmapped_reads_are_illegal(
    client: AsyncModbusTcpClient,
) -> None:
    illegal_function, illegal_address = 1, 2
    for rr, code in [
        (await client.write_register(10, 7, device_id=1), illegal_function),
        (await client.write_coil(20, False, device_id=1), illegal_function),
        (await client.read_holding_registers(0, count=1, device_id=1), illegal_address),
        (await client.read_input_registers(2, count=2, device_id=1), illegal_address),
        (await client.read_coils(0, count=1, device_id=1), illegal_address),
        (await client.read_discrete_inputs(0, count=1, device_id=1), illegal_address),
    ]:
        assert rr.isError() and rr.exception_code == code, rr
    assert await read_point(client, "relay", 1) == 1.0


async def test_a_nan_signal_reads_as_device_failure(clock: FakeClock) -> None:
    device = SimulatedDevice(PROFILE, 5, {"co": Constant(math.nan)}, clock)
    srv = ModbusSimServer([device])
    await srv.start()
    cli = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=TIMEOUT_S, retries=0)
    try:
        assert await cli.connect()
        rr = await cli.read_holding_registers(10, count=1, device_id=5)
        assert rr.isError() and rr.exception_code == 4
        assert not (await cli.read_input_registers(0, count=2, device_id=5)).isError()
    finally:
        cli.close()
        await srv.stop()


async def test_stop_frees_the_port_and_is_idempotent(
    devices: tuple[SimulatedDevice, SimulatedDevice],
) -> None:
    first = ModbusSimServer(devices)
    await first.start()
    port = first.port
    cli = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=TIMEOUT_S, retries=0)
    assert await cli.connect()
    await first.stop()
    await first.stop()
    cli.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    second = ModbusSimServer(devices, port=port)
    await second.start()
    try:
        assert second.port == port
        cli = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=TIMEOUT_S, retries=0)
        assert await cli.connect()
        assert await read_point(cli, "ch4", 2) == 0.75
        cli.close()
    finally:
        await second.stop()


async def test_start_on_a_busy_port_fails() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        other = ModbusSimServer(
            [SimulatedDevice(PROFILE, 1, {}, FakeClock())], port=busy.getsockname()[1]
        )
        with pytest.raises(OSError, match="cannot listen"):
            await other.start()


def test_device_and_server_validate_their_inputs(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="not in profile"):
        SimulatedDevice(PROFILE, 1, {"nope": Constant(1.0)}, clock)
    with pytest.raises(ValueError, match="unit id"):
        SimulatedDevice(PROFILE, 248, {}, clock)
    overlapping = DeviceProfile(
        name="bad",
        points=(
            PointSpec(name="a", address=0, dtype="uint32"),
            PointSpec(name="b", address=1, dtype="uint16"),
        ),
    )
    with pytest.raises(ValueError, match="overlap"):
        SimulatedDevice(overlapping, 1, {}, clock)
    # a one-register word and its flags share a register; two words, a flag of a wider value,
    # or one bit read twice would make it ambiguous
    word_and_flags = (
        PointSpec(name="w", address=0, dtype="uint16"),
        PointSpec(name="f0", address=0, dtype="bit", bit=0),
        PointSpec(name="f1", address=0, dtype="bit", bit=1),
    )
    SimulatedDevice(DeviceProfile(name="ok", points=word_and_flags), 1, {}, clock)
    for extra in (
        PointSpec(name="x", address=0, dtype="int16"),
        PointSpec(name="x", address=0, dtype="bit", bit=1),
    ):
        with pytest.raises(ValueError, match="overlap"):
            SimulatedDevice(
                DeviceProfile(name="bad", points=(*word_and_flags, extra)), 1, {}, clock
            )
    wide = (
        PointSpec(name="w", address=0, dtype="int32"),
        PointSpec(name="f", address=1, dtype="bit", bit=0),
    )
    with pytest.raises(ValueError, match="overlap"):
        SimulatedDevice(DeviceProfile(name="bad", points=wide), 1, {}, clock)
    one = SimulatedDevice(PROFILE, 1, {}, clock)
    with pytest.raises(ValueError, match="unique"):
        ModbusSimServer([one, SimulatedDevice(PROFILE, 1, {}, clock)])
    with pytest.raises(ValueError, match="at least one"):
        ModbusSimServer([])


def test_values_at_reports_what_the_device_holds(
    devices: tuple[SimulatedDevice, SimulatedDevice],
) -> None:
    unit1, unit2 = devices
    assert unit1.values_at(10.0)["co"] == 48.5
    assert unit2.values_at(10.0) == dict.fromkeys(BY_NAME, 0.0) | {"ch4": 0.75}


async def test_a_line_break_fails_only_the_requests_that_read_it(clock: FakeClock) -> None:
    """A KJ substation with a broken methane head answers its other channels (the tester's
    mbpoll -r 1, -r 3, -r 4 and -r 9 got exception 04 for a line break on ch4_t1 at register 1)."""
    path = Path(__file__).parents[1] / "profiles" / "devices" / "coal-substation.yaml"
    profile = DeviceProfile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    signals: dict[str, Signal] = {
        "ch4_t0": Constant(0.3),
        "ch4_t1": Constant(0.4),
        "ch4_t2": Constant(0.5),
        "co": Constant(12.0),
        "feed": Constant(1.0),
    }
    device = SimulatedDevice(profile, 1, signals, clock)
    device.set_mode("ch4_t1", "line_break")  # no 4-20 mA loop: the head reads as failed
    srv = ModbusSimServer([device])
    await srv.start()
    cli = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=TIMEOUT_S, retries=0)
    try:
        assert await cli.connect()
        for address, value in [(0, 30), (2, 50), (3, 12), (8, 0)]:
            rr = await cli.read_input_registers(address, count=1, device_id=1)
            assert not rr.isError() and rr.registers == [value], (address, rr)
        assert (await cli.read_input_registers(2, count=7, device_id=1)).registers[:2] == [50, 12]
        assert (await cli.read_discrete_inputs(0, count=1, device_id=1)).bits[0]
        for address, count in [(1, 1), (0, 2), (0, 4), (1, 8)]:
            rr = await cli.read_input_registers(address, count=count, device_id=1)
            assert rr.isError() and rr.exception_code == 4, (address, count, rr)
        device.set_mode("ch4_t1", None)
        rr = await cli.read_input_registers(0, count=4, device_id=1)
        assert rr.registers == [30, 40, 50, 12]
    finally:
        cli.close()
        await srv.stop()
