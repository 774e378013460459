"""The telemetry codec: a hand-built golden frame, round-trip properties, and every way a payload
can be malformed (each a DecodeError that names the problem; never any other exception)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from telemetry.codec import MAX_KEYS, MAX_READINGS, VERSION, TelemetryBatch, decode, encode
from telemetry.errors import DecodeError, TelemetryError
from telemetry.quality import Quality

# --- an independent writer of the wire format (from the module docstring, not from `encode`) ---


def _s8(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def frame(
    *,
    magic: bytes = b"HH",
    version: int = 1,
    flags: int = 0,
    epoch: int = 1_700_000_000_000,
    seq: int = 7,
    gateway: bytes = b"gw1",
    device: bytes = b"tank1-rtu",
    keys: tuple[bytes, ...] = (b"level", b"pressure"),
    nkeys: int | None = None,
    key: tuple[int, ...] = (0, 1),
    ts: tuple[int, ...] = (1_700_000_000_000, 1_700_000_000_500),
    value: tuple[float, ...] = (4.25, 1.5),
    quality: tuple[int, ...] = (0, 3),
    n: int | None = None,
    trailing: bytes = b"",
) -> bytes:
    """Bytes of a payload written field by field with struct, any field settable to a bad value."""
    out = struct.pack("<2sBBQQ", magic, version, flags, epoch, seq)
    out += _s8(gateway) + _s8(device)
    out += struct.pack("<H", len(keys) if nkeys is None else nkeys)
    out += b"".join(_s8(k) for k in keys)
    out += struct.pack("<I", len(ts) if n is None else n)
    out += struct.pack(f"<{len(key)}H", *key)
    out += struct.pack(f"<{len(ts)}q", *ts)
    out += struct.pack(f"<{len(value)}d", *value)
    out += bytes(quality)
    return out + trailing


def batch(
    keys: tuple[str, ...] = ("level", "pressure"),
    key: list[int] | None = None,
    ts: list[int] | None = None,
    value: list[float] | None = None,
    quality: list[int] | None = None,
    *,
    gateway: str = "gw1",
    device: str = "tank1-rtu",
    epoch: int = 1_700_000_000_000,
    seq: int = 7,
) -> TelemetryBatch:
    key = [0, 1] if key is None else key
    return TelemetryBatch(
        gateway,
        device,
        epoch,
        seq,
        keys,
        np.array(key, dtype=np.uint16),
        np.array([1_700_000_000_000, 1_700_000_000_500] if ts is None else ts, dtype=np.int64),
        np.array([4.25, 1.5] if value is None else value, dtype=np.float64),
        np.array([0, 3] if quality is None else quality, dtype=np.uint8),
    )


# --- golden frame --------------------------------------------------------------------------------


def test_encode_matches_hand_built_frame() -> None:
    assert encode(batch()) == frame()


def test_golden_frame_layout_bytes() -> None:
    data = frame()
    assert data[:2] == b"HH"
    assert data[2] == VERSION == 1
    assert data[3] == 0
    assert int.from_bytes(data[4:12], "little") == 1_700_000_000_000
    assert int.from_bytes(data[12:20], "little") == 7
    assert data[20] == 3 and data[21:24] == b"gw1"
    # header 20 + gw 4 + device 10 + nkeys 2 + keys 6 + 9 + count 4 + 2 readings * 19
    assert len(data) == 20 + 4 + 10 + 2 + 6 + 9 + 4 + 2 * 19


def test_decode_golden_frame() -> None:
    got = decode(frame())
    assert (got.gateway, got.device, got.epoch, got.seq) == (
        "gw1",
        "tank1-rtu",
        1_700_000_000_000,
        7,
    )
    assert got.keys == ("level", "pressure")
    assert got.key.tolist() == [0, 1]
    assert got.ts.tolist() == [1_700_000_000_000, 1_700_000_000_500]
    assert got.value.tolist() == [4.25, 1.5]
    assert got.quality.tolist() == [Quality.GOOD, Quality.COMM_LOSS]
    assert len(got) == 2
    assert got.key.dtype == np.uint16 and got.ts.dtype == np.int64
    assert got.value.dtype == np.float64 and got.quality.dtype == np.uint8


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = frame()
    assert decode(bytearray(data)).same_as(decode(data))
    assert decode(memoryview(data)).same_as(decode(data))


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(DecodeError, match="must be bytes, got str"):
        decode(frame().decode("latin-1"))  # type: ignore[arg-type]


def test_decode_error_is_a_telemetry_error() -> None:
    with pytest.raises(TelemetryError):
        decode(b"")


def test_empty_batch_round_trips_with_and_without_keys() -> None:
    for keys in ((), ("level",)):
        b = batch(keys, key=[], ts=[], value=[], quality=[])
        data = encode(b)
        assert data == frame(
            keys=tuple(k.encode() for k in keys), key=(), ts=(), value=(), quality=()
        )
        got = decode(data)
        assert len(got) == 0 and got.same_as(b)


def test_same_as_distinguishes_fields() -> None:
    base = batch()
    assert base.same_as(batch())
    assert not base.same_as(batch(seq=8))
    assert not base.same_as(batch(epoch=1))
    assert not base.same_as(batch(device="other"))
    assert not base.same_as(batch(keys=("level", "temperature")))
    assert not base.same_as(batch(value=[4.25, 1.25]))
    assert not base.same_as(batch(quality=[0, 4]))
    assert not base.same_as(batch(ts=[1, 2]))
    assert not base.same_as(batch(key=[1, 0]))
    assert batch(value=[math.nan, 1.5]).same_as(batch(value=[math.nan, 1.5]))
    assert not batch(value=[math.nan, 1.5]).same_as(batch(value=[0.0, 1.5]))


# --- round-trip properties -----------------------------------------------------------------------

_text = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode("utf-8")) <= 255)
_u64 = st.integers(0, 2**64 - 1)


@st.composite
def batches(draw: st.DrawFn, max_readings: int = 30) -> TelemetryBatch:
    keys = tuple(draw(st.lists(_text, max_size=8, unique=True)))
    n = draw(st.integers(0, max_readings)) if keys else 0
    key = draw(st.lists(st.integers(0, len(keys) - 1), min_size=n, max_size=n)) if n else []
    ts = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    value = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
    quality = draw(st.lists(st.sampled_from(list(Quality)), min_size=n, max_size=n))
    return TelemetryBatch(
        draw(_text),
        draw(_text),
        draw(_u64),
        draw(_u64),
        keys,
        np.array(key, dtype=np.uint16),
        np.array(ts, dtype=np.int64),
        np.array(value, dtype=np.float64),
        np.array([int(q) for q in quality], dtype=np.uint8),
    )


@settings(max_examples=60)
@given(batches())
def test_round_trip(b: TelemetryBatch) -> None:
    data = encode(b)
    got = decode(data)
    assert got.same_as(b)
    assert encode(got) == data


@given(st.lists(st.floats(allow_nan=True), min_size=1, max_size=10))
def test_round_trip_preserves_nan_and_signed_zero(values: list[float]) -> None:
    b = batch(
        ("x",),
        key=[0] * len(values),
        ts=list(range(len(values))),
        value=values,
        quality=[int(Quality.COMM_LOSS)] * len(values),
    )
    got = decode(encode(b))
    assert np.array_equal(np.isnan(got.value), np.isnan(np.array(values)))
    # bit-exact: -0.0 stays -0.0
    assert got.value.tobytes() == np.array(values, dtype="<f8").tobytes()


def test_round_trip_unicode_keys_and_names() -> None:
    b = batch(("甲烷_T0", "Ωmega", "🔥"), key=[2, 0], gateway="网关-1", device="设备·7")
    data = encode(b)
    assert "🔥".encode() in data
    got = decode(data)
    assert got.keys == ("甲烷_T0", "Ωmega", "🔥")
    assert got.gateway == "网关-1" and got.device == "设备·7"
    assert got.same_as(b)


def test_round_trip_extreme_numbers() -> None:
    b = batch(
        ("a",),
        key=[0, 0],
        ts=[-(2**63), 2**63 - 1],
        value=[math.inf, -math.inf],
        epoch=2**64 - 1,
        seq=2**64 - 1,
    )
    assert decode(encode(b)).same_as(b)


def test_round_trip_key_of_255_bytes_and_max_keys() -> None:
    long_key = "é" * 127 + "a"  # 255 bytes of UTF-8
    assert len(long_key.encode()) == 255
    b = batch((long_key,), key=[0], ts=[0], value=[1.0], quality=[0])
    assert decode(encode(b)).keys == (long_key,)
    many = tuple(f"k{i}" for i in range(MAX_KEYS))
    b = batch(many, key=[MAX_KEYS - 1], ts=[0], value=[1.0], quality=[0])
    assert decode(encode(b)).same_as(b)


# --- encode refuses inconsistent batches -----------------------------------------------------


@pytest.mark.parametrize(
    ("b", "match"),
    [
        (batch(key=[0, 2]), "past the key table"),
        (batch(key=[0]), "same length"),
        (batch(quality=[0]), "same length"),
        (batch(value=[1.0, 2.0, 3.0]), "same length"),
        (batch(keys=("",), key=[0, 0]), "sensor key must be 1-255 bytes"),
        (batch(keys=("x" * 256,), key=[0, 0]), "sensor key must be 1-255 bytes"),
        (batch(gateway=""), "gateway must be 1-255 bytes"),
        (batch(device="d" * 256), "device must be 1-255 bytes"),
        (batch(keys=tuple(f"k{i}" for i in range(MAX_KEYS + 1))), "at most"),
    ],
)
def test_encode_rejects_inconsistent_batch(b: TelemetryBatch, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode(b)


@pytest.mark.parametrize(
    "b",
    [
        batch(keys=("level", "level")),
        batch(quality=[0, 200]),
        batch(epoch=-1),
    ],
    ids=["duplicate-keys", "unknown-quality", "negative-epoch"],
)
def test_encode_output_is_always_decodable(b: TelemetryBatch) -> None:
    try:
        data = encode(b)
    except ValueError:
        return  # refusing the batch is fine
    decode(data)


# --- malformed payloads --------------------------------------------------------------------------


_MALFORMED = [
    (b"", r"truncated in header"),
    (frame(magic=b"HX"), r"bad magic b'HX'"),
    (frame(magic=b"\x00\x00"), r"bad magic"),
    (frame(version=2), r"unsupported telemetry version 2"),
    (frame(version=0), r"unsupported telemetry version 0"),
    (frame(flags=1), r"unknown flags 0x01"),
    (frame(flags=0x80), r"unknown flags 0x80"),
    (frame(trailing=b"\x00"), r"need 38 bytes of columns, payload has 39 \(trailing bytes\)"),
    (frame(trailing=b"x" * 19), r"trailing bytes"),
    (frame(key=(0, 2)), r"reading 1 names key 2 but there are 2 keys"),
    (frame(key=(65535, 0)), r"reading 0 names key 65535"),
    (
        frame(keys=(), key=(0,), ts=(0,), value=(1.0,), quality=(0,)),
        r"reading 0 names key 0 but there are 0 keys",
    ),
    (frame(quality=(0, 7)), r"reading 1 has unknown quality code 7"),
    (frame(quality=(255, 0)), r"reading 0 has unknown quality code 255"),
    (frame(gateway=b"\xff\xfe"), r"gateway is not valid UTF-8"),
    (frame(device=b"ab\xc3"), r"device is not valid UTF-8"),
    (frame(keys=(b"ok", b"\xed\xa0\x80")), r"sensor key 1 is not valid UTF-8"),  # surrogate
    (frame(gateway=b""), r"gateway is empty"),
    (frame(device=b""), r"device is empty"),
    (frame(keys=(b"level", b"")), r"sensor key 1 is empty"),
    (frame(keys=(b"level", b"level")), r"sensor keys are not unique"),
    (frame(nkeys=MAX_KEYS + 1, keys=()), rf"{MAX_KEYS + 1} sensor keys exceed the limit"),
    (
        frame(n=MAX_READINGS + 1, key=(), ts=(), value=(), quality=()),
        rf"{MAX_READINGS + 1} readings exceed the limit of {MAX_READINGS}",
    ),
    (frame(n=3), r"3 readings need 57 bytes of columns, payload has 38 \(truncated\)"),
    (frame(n=1), r"trailing bytes"),
    (frame(keys=(b"level",), nkeys=2)[:42], r"truncated in sensor key 1 length"),
    (frame()[:30], r"truncated in device: need 9 bytes at offset 25, have 5"),
]


@pytest.mark.parametrize(("data", "pattern"), _MALFORMED, ids=[p for _, p in _MALFORMED])
def test_malformed_payload_names_the_problem(data: bytes, pattern: str) -> None:
    with pytest.raises(DecodeError, match=pattern):
        decode(data)


def test_reading_count_at_limit_is_not_rejected_for_the_limit() -> None:
    """Exactly MAX_READINGS passes the limit check (and then fails only on missing columns)."""
    data = frame(n=MAX_READINGS, key=(), ts=(), value=(), quality=())
    with pytest.raises(DecodeError, match=r"truncated") as info:
        decode(data)
    assert "limit" not in str(info.value)


def test_unknown_quality_reports_first_offender() -> None:
    data = frame(key=(0, 1, 0), ts=(1, 2, 3), value=(1.0, 2.0, 3.0), quality=(0, 9, 8))
    with pytest.raises(DecodeError, match=r"reading 1 has unknown quality code 9"):
        decode(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(max_readings=12))
def test_truncated_at_every_byte_is_decode_error(b: TelemetryBatch) -> None:
    data = encode(b)
    for cut in range(len(data)):
        with pytest.raises(DecodeError, match="truncated"):
            decode(data[:cut])


@settings(max_examples=40)
@given(batches(max_readings=6), st.binary(min_size=1, max_size=30))
def test_trailing_bytes_are_decode_error(b: TelemetryBatch, extra: bytes) -> None:
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode(encode(b) + extra)


# --- robustness ----------------------------------------------------------------------------------


def _decode_or_error(data: bytes) -> TelemetryBatch | None:
    try:
        return decode(data)
    except DecodeError as exc:
        assert str(exc), "a DecodeError must say what is wrong"
        return None


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    got = _decode_or_error(data)
    if got is not None:
        assert encode(got) == data


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_behind_a_valid_header_only_raise_decode_error(tail: bytes) -> None:
    data = struct.pack("<2sBBQQ", b"HH", 1, 0, 1, 2) + tail
    got = _decode_or_error(data)
    if got is not None:
        assert encode(got) == data


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 8)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
)


@settings(max_examples=100, deadline=None)
@given(batches(max_readings=8), st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_valid_payloads_only_raise_decode_error(
    b: TelemetryBatch, mutations: list[tuple[str, int, int]]
) -> None:
    data = bytearray(encode(b))
    for op, where, arg in mutations:
        pos = where % (len(data) + 1)
        if op == "insert":
            data.insert(pos, arg)
        elif not data or pos == len(data):
            continue
        elif op == "flip":
            data[pos] ^= arg
        elif op == "set":
            data[pos] = arg
        else:
            del data[pos : pos + arg]
    got = _decode_or_error(bytes(data))
    if got is not None:
        # whatever decodes is canonical: re-encoding gives the very same bytes
        assert encode(got) == bytes(data)


@settings(max_examples=40)
@given(batches(max_readings=8), st.integers(0, 3), st.integers(1, 255))
def test_corrupting_the_fixed_header_is_rejected(b: TelemetryBatch, pos: int, xor: int) -> None:
    """Magic, version and flags are checked: any change of the first four bytes is refused."""
    data = bytearray(encode(b))
    data[pos] ^= xor
    assume(bytes(data[:2]) != b"HH" or pos >= 2)
    with pytest.raises(DecodeError, match=r"magic|version|flags"):
        decode(bytes(data))


# --- the quick path (a key table the device sent before) ----------------------------------------


@pytest.mark.parametrize(("data", "pattern"), _MALFORMED, ids=[p for _, p in _MALFORMED])
def test_malformed_payload_after_a_good_one_names_the_problem(data: bytes, pattern: str) -> None:
    """The device's key table is known (a good payload came first): a bad payload still gets
    the step-by-step reading and its reason."""
    decode(frame())
    with pytest.raises(DecodeError, match=pattern):
        decode(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(max_readings=12))
def test_known_key_table_round_trips_and_truncations_are_errors(b: TelemetryBatch) -> None:
    data = encode(b)
    assert decode(data).same_as(b)
    assert decode(data).same_as(b)  # the second time by the quick path
    assert decode(bytearray(data)).same_as(b)
    for cut in range(len(data)):
        with pytest.raises(DecodeError, match="truncated"):
            decode(data[:cut])
