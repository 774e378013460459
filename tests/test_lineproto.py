"""Line protocol encoding: golden lines, escaping round trips against a model of the v1 parser, and
the vectorized encoder against the plain-Python reference."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ingest.store.lineproto import (
    MAX_TS_MS,
    MIN_TS_MS,
    Encoded,
    FieldColumn,
    encode_columns,
    encode_reference,
    escape_key,
    escape_measurement,
    format_field_value,
    format_line,
    quote_string,
    series_key,
    series_table,
)
from ingest.store.numtext import float_text, int_text

# --- a model of the InfluxDB 1.x parser (models/points.go), enough to read our lines back --------


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split at `sep` where it is not escaped; a backslash escapes the next character (scanner)."""
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def unescape_key(text: str) -> str:
    for c in ", =":
        text = text.replace("\\" + c, c)
    return text


def unescape_measurement(text: str) -> str:
    for c in ", ":
        text = text.replace("\\" + c, c)
    return text


def parse_string_field(text: str) -> tuple[str, str]:
    """(value, rest) of a quoted string field at the start of `text`."""
    assert text[0] == '"'
    out, i = [], 1
    while True:
        c = text[i]
        if c == "\\" and text[i + 1] in '\\"':
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), text[i + 1 :]
        else:
            out.append(c)
            i += 1


def parse_value(text: str) -> bool | int | float | str:
    if text.startswith('"'):
        value, rest = parse_string_field(text)
        assert rest == ""
        return value
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, bool | int | float | str], int]:
    """Parse a line without string fields holding spaces or commas (enough for these tests)."""
    key, fields, ts = split_unescaped(line, " ")
    name, *tag_parts = split_unescaped(key, ",")
    tags = {}
    for part in tag_parts:
        k, v = split_unescaped(part, "=")
        tags[unescape_key(k)] = unescape_key(v)
    values = {}
    for part in split_unescaped(fields, ","):
        k, v = split_unescaped(part, "=")
        values[unescape_key(k)] = parse_value(v)
    return unescape_measurement(name), tags, values, int(ts)


def same_float(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


# --- golden --------------------------------------------------------------------------------------


def test_escaping_golden() -> None:
    assert escape_measurement("my meas,1=a") == r"my\ meas\,1=a"
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    assert quote_string('say "hi" \\ bye') == r'"say \"hi\" \\ bye"'
    assert quote_string("") == '""'
    key = series_key(
        "reading", {"tenant": "t 1", "site": "a,b", "device": "d=1", "sensor": "s1", "kind": "co"}
    )
    assert key == r"reading,device=d\=1,kind=co,sensor=s1,site=a\,b,tenant=t\ 1"
    assert series_key("m", {"b": "", "a": "x"}) == "m,a=x"  # no empty tag values


def test_field_values_golden() -> None:
    assert format_field_value(1) == "1i"
    assert format_field_value(-(2**63)) == "-9223372036854775808i"
    assert format_field_value(True) == "true"
    assert format_field_value(0.1) == "0.1"
    assert format_field_value(1e16) == "1e+16"
    assert format_field_value(-0.0) == "-0.0"
    assert format_field_value(5e-324) == "5e-324"
    assert format_field_value('a"b') == '"a\\"b"'
    for bad in (math.nan, math.inf, -math.inf, 2**63):
        with pytest.raises(ValueError, match=r"cannot carry|int64"):
            format_field_value(bad)
    line = format_line("m,t=a", {"f": 1.5, "n": 2, "s": "x y", "b": False}, 1700000000000)
    assert line == 'm,t=a f=1.5,n=2i,s="x y",b=false 1700000000000'


@pytest.mark.parametrize("bad", ["", "a\nb", "a\\", "a\\ b", "a\\,b", "a\\=b", "nul\x00"], ids=repr)
def test_unwritable_names_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        escape_key(bad)


def test_backslash_not_before_a_special_character_is_kept() -> None:
    assert escape_key("a\\b") == "a\\b"
    assert escape_measurement("a\\=b") == "a\\=b"  # "=" needs no escape in a measurement


def test_encode_columns_golden() -> None:
    table = series_table(["reading,sensor=a", "reading,sensor=b\\ 2", ""])
    encoded = encode_columns(
        table,
        np.array([0, 1, 0, 1, 0], np.int32),
        np.array([1000, 2000, 3000, -5, MAX_TS_MS + 1], np.int64),
        [
            FieldColumn("value", np.array([1.5, np.nan, np.inf, -0.0, 1.0]), optional=True),
            FieldColumn("quality", np.array([0, 3, 0, 255, 0], np.uint8)),
            FieldColumn("seq", np.array([2**63 - 1, -(2**63), 0, -1, 7], np.int64)),
        ],
    )
    assert encoded == Encoded(
        b"reading,sensor=a quality=0i,seq=9223372036854775807i,value=1.5 1000\n"
        b"reading,sensor=b\\ 2 quality=3i,seq=-9223372036854775808i 2000\n"
        b"reading,sensor=b\\ 2 quality=255i,seq=-1i,value=-0.0 -5\n",
        lines=3,
        skipped=2,  # +inf value, time beyond InfluxDB's range
    )


def test_encode_columns_rejects_bad_input() -> None:
    table = series_table(["m", ""])
    ts = np.array([1], np.int64)
    with pytest.raises(ValueError, match="required"):
        encode_columns(table, np.array([0]), ts, [FieldColumn("v", np.ones(1), optional=True)])
    with pytest.raises(ValueError, match="empty series key"):
        encode_columns(table, np.array([1]), ts, [FieldColumn("v", np.ones(1))])
    with pytest.raises(ValueError, match="outside"):
        encode_columns(table, np.array([2]), ts, [FieldColumn("v", np.ones(1))])
    with pytest.raises(ValueError, match="one length"):
        encode_columns(table, np.array([0]), ts, [FieldColumn("v", np.ones(2))])
    with pytest.raises(ValueError, match="repeat"):
        encode_columns(table, np.array([0]), ts, [FieldColumn("v", np.ones(1))] * 2)
    empty = encode_columns(table, np.array([], np.int32), ts[:0], [FieldColumn("v", np.ones(0))])
    assert empty == Encoded(b"", 0, 0)


def test_required_nan_skips_the_line_and_counts_it() -> None:
    encoded = encode_columns(
        series_table(["position,vehicle=v1"]),
        np.zeros(3, np.int32),
        np.array([1, 2, 3], np.int64),
        [
            FieldColumn("lat", np.array([30.0, np.nan, 31.0])),
            FieldColumn("speed_kmh", np.array([np.nan, 5.0, np.nan]), optional=True),
        ],
    )
    assert encoded.data == b"position,vehicle=v1 lat=30.0 1\nposition,vehicle=v1 lat=31.0 3\n"
    assert (encoded.lines, encoded.skipped) == (2, 1)


# --- properties ----------------------------------------------------------------------------------

chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
names = st.text(chars, max_size=20)


def _writable(text: str, special: str) -> bool:
    return bool(text) and not (
        "\n" in text
        or "\r" in text
        or text.endswith("\\")
        or any("\\" + c in text for c in special)
    )


@given(names)
def test_key_escaping_round_trips(text: str) -> None:
    if not _writable(text, ", ="):
        with pytest.raises(ValueError):
            escape_key(text)
        return
    escaped = escape_key(text)
    for sep in ", =":
        assert len(split_unescaped(escaped, sep)) == 1
    assert unescape_key(escaped) == text


@given(names)
def test_measurement_escaping_round_trips(text: str) -> None:
    if not _writable(text, ", "):
        with pytest.raises(ValueError):
            escape_measurement(text)
        return
    escaped = escape_measurement(text)
    assert len(split_unescaped(escaped, ",")) == len(split_unescaped(escaped, " ")) == 1
    assert unescape_measurement(escaped) == text


@given(st.text(chars))
def test_string_field_round_trips(text: str) -> None:
    assert parse_string_field(quote_string(text) + " 123") == (text, " 123")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_is_exact(x: float) -> None:
    assert same_float(float(format_field_value(x)), x)


@given(
    tags=st.dictionaries(
        names.filter(lambda t: _writable(t, ", =")),
        names.filter(lambda t: _writable(t, ", =")),
        max_size=4,
    ),
    fields=st.dictionaries(
        names.filter(lambda t: _writable(t, ", =")),
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**63 - 1),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    ),
    ts=st.integers(MIN_TS_MS, MAX_TS_MS),
)
def test_line_round_trips(
    tags: dict[str, str], fields: dict[str, bool | int | float], ts: int
) -> None:
    line = format_line(series_key("m x", tags), fields, ts)
    name, got_tags, got_fields, got_ts = parse_line(line)
    assert (name, got_tags, got_ts) == ("m x", {k: v for k, v in tags.items() if v}, ts)
    assert got_fields.keys() == fields.keys()
    for k, v in fields.items():
        assert type(got_fields[k]) is type(v)
        assert same_float(got_fields[k], v) if isinstance(v, float) else got_fields[k] == v


special_floats = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e16, 1e-5])


@settings(max_examples=100)
@given(
    data=st.data(),
    n=st.integers(0, 30),
    optional_value=st.booleans(),
)
def test_columns_agree_with_reference(data: st.DataObject, n: int, optional_value: bool) -> None:
    keys = ["reading,sensor=a", "reading,sensor=b\\,c", "position,vehicle=v\\ 1"]
    index = data.draw(hnp.arrays(np.int32, n, elements=st.integers(0, 2)))
    ts = data.draw(hnp.arrays(np.int64, n, elements=st.integers(MIN_TS_MS - 2, MAX_TS_MS + 2)))
    value = data.draw(
        hnp.arrays(np.float64, n, elements=st.one_of(st.floats(width=64), special_floats))
    )
    quality = data.draw(hnp.arrays(np.uint8, n))
    seq = data.draw(hnp.arrays(np.int64, n))
    flag = data.draw(hnp.arrays(np.bool_, n))
    columns = [
        FieldColumn("value", value, optional=optional_value),
        FieldColumn("quality", quality),
        FieldColumn("seq", seq),
        FieldColumn("ok", flag),
    ]
    got = encode_columns(series_table(keys), index, ts, columns)
    want = encode_reference(
        keys,
        index.tolist(),
        ts.tolist(),
        [(c.key, c.values.tolist(), c.optional) for c in columns],
    )
    assert got == want
    assert got.lines + got.skipped == n
    for line, i in zip(
        got.data.decode().splitlines(),
        [
            i
            for i in range(n)
            if MIN_TS_MS <= ts[i] <= MAX_TS_MS
            and (math.isfinite(value[i]) or (optional_value and math.isnan(value[i])))
        ],
        strict=True,
    ):
        _, _, fields, t = parse_line(line)
        assert t == ts[i]
        if math.isnan(value[i]):
            assert "value" not in fields
        else:
            assert same_float(float(fields["value"]), float(value[i]))
        assert fields["quality"] == quality[i] and fields["seq"] == seq[i]
        assert fields["ok"] is bool(flag[i])


# --- number text (ingest.store.numtext) ----------------------------------------------------------


def _rows(matrix: np.ndarray) -> list[str]:
    return [bytes(r).replace(b"\x00", b"").decode() for r in matrix]


decimals = st.builds(
    lambda m, d, neg: (-1 if neg else 1) * m / 10**d,
    st.integers(0, 4 * 10**9),
    st.sampled_from([0, 1, 2, 3, 4, 6, 7]),
    st.booleans(),
)


@settings(max_examples=200)
@given(st.lists(st.one_of(decimals, st.floats(allow_nan=False, allow_infinity=False)), max_size=40))
def test_float_text_is_repr(values: list[float]) -> None:
    got = _rows(float_text(np.array(values, dtype=np.float64)))
    assert got == [repr(v) for v in values]


@settings(max_examples=200)
@given(
    st.one_of(
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40),
        st.lists(st.integers(1_790_000_000_000, 1_790_000_100_000), max_size=40),
        st.lists(st.integers(0, 3), max_size=60).map(lambda xs: sorted(xs * 5)),
    )
)
def test_int_text_is_str(values: list[int]) -> None:
    assert _rows(int_text(np.array(values, dtype=np.int64))) == [str(v) for v in values]


@given(st.lists(st.integers(0, 255), max_size=30))
def test_small_int_text(values: list[int]) -> None:
    assert _rows(int_text(np.array(values, dtype=np.uint8))) == [str(v) for v in values]
    signed = [v - 128 for v in values]
    assert _rows(int_text(np.array(signed, dtype=np.int8))) == [str(v) for v in signed]
