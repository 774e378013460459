"""The Modbus read plan (golden plans, limits, a coverage property) and the register decoder
(golden values, and agreement with the simulators' independent encoder)."""

from __future__ import annotations

import itertools
import math
import struct
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.decode import decode_point
from gateway.errors import DeviceError, GatewayError, PlanError
from gateway.plan import MAX_BITS, MAX_REGISTERS, compile_plan, point_width
from simulators.encode import FLOAT32_MAX, decode_words, encode_point
from telemetry.config import DeviceProfile, PointSpec
from telemetry.registry import parse_document

ROOT = Path(__file__).resolve().parent.parent
_BIT_TABLES = ("coil", "discrete")


def P(table: str, address: int, dtype: str | None = None, name: str | None = None) -> PointSpec:
    if dtype is None:
        dtype = "bool" if table in _BIT_TABLES else "uint16"
    return PointSpec(
        name=name or f"{table}{address}{dtype}", table=table, address=address, dtype=dtype
    )


def shape(plan: tuple) -> list[tuple[str, int, int]]:  # type: ignore[type-arg]
    return [(r.table, r.address, r.count) for r in plan]


# --- golden plans --------------------------------------------------------------------------------

GOLDEN: list[tuple[str, list[PointSpec], dict[str, int], list[tuple[str, int, int]]]] = [
    ("empty", [], {}, []),
    ("single", [P("holding", 7)], {}, [("holding", 7, 1)]),
    ("tank-rtu-floats", [P("holding", a, "float32") for a in (0, 2, 4)], {}, [("holding", 0, 6)]),
    (
        "unsorted-input",
        [P("holding", 4, "float32"), P("holding", 0, "float32")],
        {},
        [("holding", 0, 6)],
    ),
    ("gap-8-merges-hole-of-8", [P("holding", 0), P("holding", 9)], {}, [("holding", 0, 10)]),
    (
        "gap-8-splits-hole-of-9",
        [P("holding", 0), P("holding", 10)],
        {},
        [("holding", 0, 1), ("holding", 10, 1)],
    ),
    (
        "gap-0-merges-adjacent",
        [P("input", 0), P("input", 1), P("input", 2)],
        {"gap": 0},
        [("input", 0, 3)],
    ),
    (
        "gap-0-splits-any-hole",
        [P("input", 0), P("input", 2)],
        {"gap": 0},
        [("input", 0, 1), ("input", 2, 1)],
    ),
    (
        "gap-0-after-32bit",
        [P("holding", 0, "int32"), P("holding", 2)],
        {"gap": 0},
        [("holding", 0, 3)],
    ),
    (
        "hole-measured-from-end-of-32bit",
        [P("holding", 0, "float32"), P("holding", 10)],
        {},
        [("holding", 0, 11)],
    ),
    (
        "hole-too-big-after-32bit",
        [P("holding", 0, "float32"), P("holding", 11)],
        {},
        [("holding", 0, 2), ("holding", 11, 1)],
    ),
    ("exactly-125", [P("holding", 0), P("holding", 124)], {"gap": 200}, [("holding", 0, 125)]),
    (
        "126-splits",
        [P("holding", 0), P("holding", 125)],
        {"gap": 200},
        [("holding", 0, 1), ("holding", 125, 1)],
    ),
    (
        "float-ends-at-125",
        [P("holding", 0), P("holding", 123, "float32")],
        {"gap": 200},
        [("holding", 0, 125)],
    ),
    (
        "float-straddles-125",
        [P("holding", 0), P("holding", 124, "float32")],
        {"gap": 200},
        [("holding", 0, 1), ("holding", 124, 2)],
    ),
    (
        "contiguous-run-of-130",
        [P("input", a) for a in range(130)],
        {},
        [("input", 0, 125), ("input", 125, 5)],
    ),
    (
        "contiguous-floats-of-130",
        [P("input", a, "float32") for a in range(0, 130, 2)],
        {},
        [("input", 0, 124), ("input", 124, 6)],
    ),
    ("coils-2000", [P("coil", 0), P("coil", 1999)], {"gap": 5000}, [("coil", 0, 2000)]),
    (
        "coils-2001-split",
        [P("coil", 0), P("coil", 2000)],
        {"gap": 5000},
        [("coil", 0, 1), ("coil", 2000, 1)],
    ),
    (
        "discrete-gap",
        [P("discrete", 0), P("discrete", 8), P("discrete", 18)],
        {},
        [("discrete", 0, 9), ("discrete", 18, 1)],
    ),
    (
        "gap-chains-from-current-end",
        [P("discrete", 0), P("discrete", 8), P("discrete", 17)],
        {},
        [("discrete", 0, 18)],
    ),
    (
        "mixed-tables-same-address",
        [P("input", 0), P("holding", 0), P("discrete", 0), P("coil", 0)],
        {},
        [("coil", 0, 1), ("discrete", 0, 1), ("holding", 0, 1), ("input", 0, 1)],
    ),
    (
        "tables-never-merge",
        [P("holding", 0), P("input", 1), P("holding", 2)],
        {},
        [("holding", 0, 3), ("input", 1, 1)],
    ),
    (
        "overlapping-points",
        [P("holding", 10, "float32"), P("holding", 11, "uint16", "lo")],
        {},
        [("holding", 10, 2)],
    ),
    (
        "same-register-twice",
        [P("holding", 3, "int16", "a"), P("holding", 3, "uint16", "b")],
        {},
        [("holding", 3, 1)],
    ),
    (
        "custom-max-registers",
        [P("holding", a) for a in range(10)],
        {"max_registers": 4},
        [("holding", 0, 4), ("holding", 4, 4), ("holding", 8, 2)],
    ),
    (
        "custom-max-bits",
        [P("coil", a) for a in range(5)],
        {"max_bits": 2},
        [("coil", 0, 2), ("coil", 2, 2), ("coil", 4, 1)],
    ),
    (
        "top-of-address-space",
        [P("holding", 65534, "float32"), P("holding", 65530)],
        {},
        [("holding", 65530, 6)],
    ),
]


@pytest.mark.parametrize(
    ("points", "kwargs", "expected"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN]
)
def test_golden_plans(
    points: list[PointSpec], kwargs: dict[str, int], expected: list[tuple[str, int, int]]
) -> None:
    assert shape(compile_plan(points, **kwargs)) == expected


def test_offsets_point_back_to_the_caller_order() -> None:
    points = [
        P("holding", 4, "float32", "c"),
        P("input", 0, name="x"),
        P("holding", 0, "float32", "a"),
        P("holding", 2, "float32", "b"),
    ]
    plan = compile_plan(points)
    assert shape(plan) == [("holding", 0, 6), ("input", 0, 1)]
    assert plan[0].points == ((2, 0), (3, 2), (0, 4))
    assert plan[1].points == ((1, 0),)


def test_limits_are_the_protocol_limits() -> None:
    assert (MAX_REGISTERS, MAX_BITS) == (125, 2000)


def test_plan_errors() -> None:
    with pytest.raises(PlanError, match="gap must be >= 0"):
        compile_plan([P("holding", 0)], gap=-1)
    with pytest.raises(PlanError, match="'wide' is wider than one request"):
        compile_plan([P("holding", 0, "float32", "wide")], max_registers=1)
    with pytest.raises(PlanError, match="wider"):
        compile_plan([P("coil", 0)], max_bits=0)
    assert issubclass(PlanError, GatewayError)


@pytest.mark.parametrize(
    ("dtype", "width"),
    [("bool", 1), ("int16", 1), ("uint16", 1), ("int32", 2), ("uint32", 2), ("float32", 2)],
)
def test_point_width(dtype: str, width: int) -> None:
    table = "coil" if dtype == "bool" else "holding"
    assert point_width(P(table, 0, dtype)) == width


@pytest.mark.parametrize(
    "path", sorted((ROOT / "profiles" / "devices").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_profile_compiles_to_one_request_per_table(path: Path) -> None:
    prof = parse_document(path.read_text(encoding="utf-8"), DeviceProfile, str(path))
    plan = compile_plan(prof.points)
    assert len(plan) == len({p.table for p in prof.points})
    assert sorted(i for r in plan for i, _ in r.points) == list(range(len(prof.points)))


# --- plan property -------------------------------------------------------------------------------

_REG_DTYPES = ("int16", "uint16", "int32", "uint32", "float32")


@st.composite
def point_lists(draw: st.DrawFn) -> list[PointSpec]:
    n = draw(st.integers(0, 40))
    span = draw(st.sampled_from([20, 300, 5000, 65536]))
    out = []
    for i in range(n):
        table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
        dtype = "bool" if table in _BIT_TABLES else draw(st.sampled_from(_REG_DTYPES))
        width = 2 if dtype in ("int32", "uint32", "float32") else 1
        address = draw(st.integers(0, min(span, 65536) - width))
        out.append(PointSpec(name=f"p{i}", table=table, address=address, dtype=dtype))
    return out


def _points_overlap(points: list[PointSpec]) -> bool:
    cells = [(p.table, p.address + k) for p in points for k in range(point_width(p))]
    return len(cells) != len(set(cells))


@settings(max_examples=60, deadline=None)
@given(point_lists(), st.integers(0, 20), st.integers(2, 125), st.integers(1, 2000))
def test_plan_covers_each_point_once_within_limits(
    points: list[PointSpec], gap: int, max_registers: int, max_bits: int
) -> None:
    plan = compile_plan(points, gap=gap, max_registers=max_registers, max_bits=max_bits)
    seen: list[int] = []
    for req in plan:
        limit = max_bits if req.table in _BIT_TABLES else max_registers
        assert 1 <= req.count <= limit
        assert req.points, "a request reads at least one point"
        ends = []
        for i, offset in req.points:
            p = points[i]
            seen.append(i)
            assert p.table == req.table
            assert offset == p.address - req.address
            assert offset >= 0 and offset + point_width(p) <= req.count
            ends.append(p.address + point_width(p))
        # the request is exactly the extent of its points: no dead registers at either end
        assert req.address == min(points[i].address for i, _ in req.points)
        assert req.address + req.count == max(ends)
    assert sorted(seen) == list(range(len(points)))
    # requests of one table come in address order, and overlap only where points overlap
    for a, b in itertools.pairwise(plan):
        if a.table == b.table:
            assert a.address < b.address
            if not _points_overlap([points[i] for i, _ in (*a.points, *b.points)]):
                assert a.address + a.count <= b.address
    # greedy is tight: the first point of a request could not have joined the previous one
    for a, b in itertools.pairwise(plan):
        if a.table != b.table:
            continue
        first = points[min(b.points, key=lambda ip: (points[ip[0]].address, ip[0]))[0]]
        limit = max_bits if a.table in _BIT_TABLES else max_registers
        end = a.address + a.count
        assert (
            first.address - end > gap
            or max(end, first.address + point_width(first)) - a.address > limit
        )


@settings(max_examples=50)
@given(point_lists())
def test_plan_is_independent_of_input_order(points: list[PointSpec]) -> None:
    forward = compile_plan(points)
    backward = compile_plan(points[::-1])
    assert shape(forward) == shape(backward)


# --- decoder golden values -----------------------------------------------------------------------


def R(dtype: str, order: str = "ABCD", scale: float = 1.0, offset: float = 0.0) -> PointSpec:
    table = "coil" if dtype == "bool" else "holding"
    return PointSpec(
        name="x", table=table, address=0, dtype=dtype, word_order=order, scale=scale, offset=offset
    )


@pytest.mark.parametrize(
    ("point", "words", "expected"),
    [
        (R("float32"), [0x3FC0, 0x0000], 1.5),
        (R("float32", "CDAB"), [0x0000, 0x3FC0], 1.5),
        # the float32 nearest -123.456 reads as the -123.456 it stands for
        (R("float32"), [0xC2F6, 0xE979], -123.456),
        (R("int16"), [0xFFFF], -1.0),
        (R("int16"), [0x8000], -32768.0),
        (R("uint16"), [0xFFFF], 65535.0),
        (R("uint16", scale=0.01), [150], 1.5),
        (R("uint16", scale=0.1, offset=-40), [653], 25.3),
        (R("int32"), [0xFFFF, 0xFFFE], -2.0),
        (R("int32", "CDAB"), [0xFFFE, 0xFFFF], -2.0),
        (R("uint32"), [0x0001, 0x0000], 65536.0),
        (R("uint32", "CDAB"), [0x0000, 0x0001], 65536.0),
        (R("uint32"), [0xFFFF, 0xFFFF], 4294967295.0),
        (R("int16", "CDAB"), [0xFFFE], -2.0),  # word order means nothing for one register
        (R("bool"), [True], 1.0),
        (R("bool"), [False], 0.0),
        (R("bool"), [1, 0, 0], 1.0),
        (R("uint16"), [0x1_0005], 5.0),  # only the low 16 bits of a word count
        (R("uint16"), [7, 99], 7.0),  # extra words are ignored
    ],
)
def test_decode_golden_values(point: PointSpec, words: list[int], expected: float) -> None:
    assert decode_point(point, words) == pytest.approx(expected, rel=1e-12)


def test_decimal_scales_read_back_exactly() -> None:
    """70 * 0.01 is 0.7000000000000001 in binary floating point; the decoder reads 0.7."""
    assert decode_point(R("uint16", scale=0.01), [70]) == 0.7
    assert decode_point(R("uint16", scale=0.01), [150]) == 1.5
    assert decode_point(R("uint16", scale=0.1), [253]) == 25.3
    assert decode_point(R("int16", scale=0.1), [0xFFFD]) == -0.3
    assert decode_point(R("uint16", scale=0.5), [3]) == 1.5


def test_decode_nan_float() -> None:
    assert math.isnan(decode_point(R("float32"), [0x7FC0, 0x0000]))
    assert decode_point(R("float32"), [0x7F80, 0x0000]) == math.inf


def test_encode_golden_values() -> None:
    assert encode_point(R("float32"), 1.5) == [0x3FC0, 0x0000]
    assert encode_point(R("float32", "CDAB"), 1.5) == [0x0000, 0x3FC0]
    assert encode_point(R("int16"), -1) == [0xFFFF]
    assert encode_point(R("uint16", scale=0.01), 1.5) == [150]


@pytest.mark.parametrize(
    ("point", "words"),
    [(R("float32"), [0x3FC0]), (R("int32"), []), (R("uint16"), []), (R("bool"), [])],
)
def test_short_response_is_device_error(point: PointSpec, words: list[int]) -> None:
    with pytest.raises(DeviceError, match="'x'"):
        decode_point(point, words)


# --- decoder agrees with the independent encoder -------------------------------------------------

_INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_scales = st.one_of(
    st.just(1.0),
    st.just(0.1),
    st.just(0.01),
    st.floats(0.001, 1000).flatmap(lambda s: st.sampled_from([s, -s])),
)
_offsets = st.one_of(st.just(0.0), st.floats(-1000, 1000))
_orders = st.sampled_from(["ABCD", "CDAB"])


@settings(max_examples=100)
@given(st.sampled_from(sorted(_INT_RANGES)), _orders, _scales, _offsets, st.data())
def test_integer_points_agree_with_encoder(
    dtype: str, order: str, scale: float, offset: float, data: st.DataObject
) -> None:
    lo, hi = _INT_RANGES[dtype]
    raw = data.draw(st.integers(lo, hi), label="raw")
    point = R(dtype, order, scale, offset)
    value = raw * scale + offset
    words = encode_point(point, value)
    assert len(words) == point_width(point)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_point(point, words) == pytest.approx(value, rel=1e-12, abs=1e-9)


@settings(max_examples=100)
@given(_orders, _scales, _offsets, st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float_points_agree_with_encoder(
    order: str, scale: float, offset: float, raw: float
) -> None:
    point = R("float32", order, scale, offset)
    value = raw * scale + offset
    got = decode_point(point, encode_point(point, value))
    # float32 keeps 24 bits of the raw value: the error is relative to |value - offset|
    assert math.isclose(
        got,
        value,
        rel_tol=0,
        abs_tol=1e-7 * abs(value - offset) + 1e-9 * (abs(value) + abs(offset)) + 1e-30,
    )


@given(_orders, st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip_is_exact_without_scaling(order: str, value: float) -> None:
    """The value read is the shortest decimal of the same float32 (9.2 for 9.1999998...)."""
    point = R("float32", order)
    got = decode_point(point, encode_point(point, value))
    assert struct.unpack(">f", struct.pack(">f", got)) == (value,)  # -0.0 reads 0.0, as before


@given(st.sampled_from(sorted(_INT_RANGES)), _orders, st.integers(-(2**40), 2**40))
def test_out_of_range_values_saturate(dtype: str, order: str, raw: int) -> None:
    lo, hi = _INT_RANGES[dtype]
    point = R(dtype, order)
    assert decode_point(point, encode_point(point, float(raw))) == float(min(max(raw, lo), hi))


def test_float32_saturates_at_its_maximum() -> None:
    point = R("float32")
    assert decode_point(point, encode_point(point, 1e300)) == pytest.approx(FLOAT32_MAX)
    assert decode_point(point, encode_point(point, -1e300)) == pytest.approx(-FLOAT32_MAX)


@settings(max_examples=100)
@given(
    st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"]),
    _orders,
    _scales,
    _offsets,
    st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2),
)
@example("float32", "ABCD", 1.0, 0.0, [0, 1])  # the smallest subnormal: 1.4013e-45
def test_decoder_agrees_with_simulator_decoder_for_any_words(
    dtype: str, order: str, scale: float, offset: float, words: list[int]
) -> None:
    point = R(dtype, order, scale, offset)
    words = words[: point_width(point)]
    got = decode_point(point, words)
    want = decode_words(point, words)
    if math.isnan(want) or math.isinf(want):
        assert got == want or (math.isnan(got) and math.isnan(want))
    else:
        # the gateway divides by 10**k for decimal scales: equal up to rounding of the last bit;
        # a float32 reads as its shortest decimal: within half a float32 step of it, which for
        # a subnormal one (1.4013e-45 for 1.401298e-45) is an absolute step, not a relative one
        near = 6e-8 if dtype == "float32" else 1e-12
        tiny = 1e-45 * abs(scale) if dtype == "float32" else 0.0
        tol = near * abs(want - offset) + 1e-12 * abs(offset) + tiny + 1e-300
        assert math.isclose(got, want, rel_tol=0, abs_tol=tol)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_bool_points_agree_with_encoder_at_unit_scale(value: float) -> None:
    point = R("bool")
    assert decode_point(point, encode_point(point, value)) == value


@given(st.sampled_from([0.0, 1.0]), st.sampled_from([2.0, -1.0, 0.5]), st.sampled_from([1.0, -3.0]))
def test_bool_points_agree_with_encoder_for_any_scale_and_offset(
    bit: float, scale: float, offset: float
) -> None:
    point = R("bool", scale=scale, offset=offset)
    value = bit * scale + offset
    assert decode_point(point, encode_point(point, value)) == value
