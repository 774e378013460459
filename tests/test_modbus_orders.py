"""Byte and word orders of every width: the vectors printed in docs/configuration.md, read from
the doc, against the gateway's decoder and the simulator's (independent) encoder; and round trips
from the encoder through both decoder paths for every order and dtype (hypothesis)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.decode import LAYOUTS, RequestDecoder, decode_reading
from simulators.encode import encode_point
from telemetry.config import PointSpec
from telemetry.quality import Quality

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def doc_vectors() -> list[tuple[str, float, str, list[int]]]:
    text = DOC.read_text(encoding="utf-8")
    marker = "<!-- test vector: word-orders "
    assert text.count(marker) == 1
    block = re.search(r"```text\n(.*?)\n```", text[text.index(marker) :], re.S)
    assert block is not None
    rows = []
    for line in block.group(1).splitlines():
        dtype, value, order, *words = line.split()
        rows.append((dtype, float(value), order, [int(w, 16) for w in words]))
    return rows


VECTORS = doc_vectors()


def point(dtype: str, order: str) -> PointSpec:
    return PointSpec(name="p", address=0, dtype=dtype, word_order=order)  # type: ignore[arg-type]


def test_the_doc_has_every_order_of_every_width() -> None:
    assert {(d, o) for d, _, o, _ in VECTORS} == {
        (d, o) for d in ("uint16", "uint32", "float32", "float64") for o in ORDERS
    }


@pytest.mark.parametrize(("dtype", "value", "order", "words"), VECTORS)
def test_the_docs_vectors(dtype: str, value: float, order: str, words: list[int]) -> None:
    p = point(dtype, order)
    assert decode_reading(p, words) == (value, Quality.GOOD)
    got, quality = np.empty(1), np.zeros(1, dtype=np.uint8)
    RequestDecoder([p], [0], len(words)).decode(
        b"".join(w.to_bytes(2, "big") for w in words), got, quality
    )
    assert got[0] == value
    assert encode_point(p, value) == words  # the simulator's encoder agrees


def test_the_layouts_say_what_the_64_bit_orders_are_called() -> None:
    # the names Telegraf's modbus input gives them
    assert [LAYOUTS[o][4] for o in ORDERS] == ["ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"]
    assert [LAYOUTS[o][2] for o in ORDERS] == list(ORDERS)


def values(dtype: str) -> st.SearchStrategy[float]:
    if dtype == "float64":
        return st.floats(allow_nan=False, allow_infinity=False)
    if dtype == "float32":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    bits, signed = int(dtype.removeprefix("u").removeprefix("int")), not dtype.startswith("u")
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return st.integers(lo, hi).map(float)


CASES = st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64"]).flatmap(
    lambda d: st.tuples(st.just(d), st.sampled_from(ORDERS), values(d))
)


@given(CASES)
def test_encode_then_decode_gives_the_value_back(case: tuple[str, str, float]) -> None:
    dtype, order, value = case
    p = point(dtype, order)
    words = encode_point(p, value)
    got, quality = decode_reading(p, words)
    if dtype == "float32":  # read as the shortest decimal of the same float32
        assert np.float32(got) == np.float32(value)
    else:
        assert got == value
    # a subnormal float is no measurement (a word order read wrong makes one): a sensor fault
    tiny = np.finfo(np.float32 if dtype == "float32" else np.float64).tiny
    subnormal = dtype.startswith("float") and value != 0 and abs(value) < tiny
    assert quality == (Quality.SENSOR_FAULT if subnormal else Quality.GOOD)
    fast, q = np.empty(1), np.zeros(1, dtype=np.uint8)
    RequestDecoder([p], [0], len(words)).decode(words, fast, q)
    assert (fast[0], int(q[0])) == (got, int(quality))
