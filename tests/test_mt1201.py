"""MT/T 1201 networking files: a recorded-style file, every broken record named by line and
field, and properties: any bytes raise nothing but the parser's error; write round-trips."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.mt1201 import (
    AlarmRecord,
    FileError,
    Header,
    Mt1201Error,
    PointDef,
    Reading,
    file_name,
    format_time,
    parse,
    parse_name,
    parse_time,
)
from telemetry.mt1201write import write

# 2026-03-01 08:00:00 China time = 00:00:00 UTC
T0 = 1772323200000

SS_FILE = """140211000001;北方一矿;AQ;安全监控系统;2026-03-01 08:00:10~
001A01;0001;甲烷;KJ-F01;0.42;%CH4;0;2026-03-01 08:00:00~
001A02;0001;甲烷;KJ-F01;-9999;%CH4;断线;2026-03-01 08:00:00~
001A03;0004;一氧化碳;KJ-F01;5;ppm;0;2026-03-01 08:00:00~
||
""".encode()


def test_a_real_time_file_parses_into_header_and_readings() -> None:
    parsed = parse(SS_FILE, "SS")
    assert parsed.header == Header("140211000001", "北方一矿", "AQ", "安全监控系统", T0 + 10_000)
    assert parsed.errors == ()
    assert parsed.records[0] == Reading("001A01", "0001", "甲烷", "KJ-F01", 0.42, "%CH4", "0", T0)
    assert isinstance(parsed.records[1], Reading) and parsed.records[1].value is None  # -9999
    assert parsed.records[1].status == "断线"
    assert len(parsed.records) == 3


def test_times_are_china_time() -> None:
    assert parse_time("2026-03-01 08:00:00") == T0
    assert format_time(T0) == "2026-03-01 08:00:00"
    with pytest.raises(ValueError):
        parse_time("2026-02-30 08:00:00")


def test_the_name_gives_mine_kind_and_time() -> None:
    name = parse_name("140211000001_SS_20260301080010.txt")
    assert (name.mine_code, name.kind, name.stamp_ms) == ("140211000001", "SS", T0 + 10_000)
    assert parse_name("140211000001_TFYC_20260301080010.txt").kind == "YC"
    assert file_name("140211000001", "SS", T0 + 10_000) == "140211000001_SS_20260301080010.txt"
    for bad in ("140211000001_JBSJ_20260301080010.txt", "x_SS_2026.txt", "a.txt"):
        with pytest.raises(FileError):
            parse_name(bad)


def test_broken_records_are_named_by_line_and_field_and_the_rest_is_taken() -> None:
    text = """140211000001;北方一矿;AQ;安全监控系统;2026-03-01 08:00:10~
001A01;0001;甲烷;KJ-F01;abc;%CH4;0;2026-03-01 08:00:00~
001A02;0001;甲烷;KJ-F01;0.3;%CH4;0~
001A03;0001;甲烷;KJ-F01;0.3;%CH4;0;2026-13-01 08:00:00~
001A04;0001;甲烷;KJ-F01;0.3;%CH4;0;2026-03-01 08:00:00~
001A05;0001;甲烷;KJ-F01;nan;%CH4;0;2026-03-01 08:00:00~
;0001;甲烷;KJ-F01;0.3;%CH4;0;2026-03-01 08:00:00~
001A06;0001;甲烷;KJ-F01;0.3;%CH4;0;2026-03-01 08:00:00
||"""
    parsed = parse(text.encode(), "SS")
    assert [r.point for r in parsed.records if isinstance(r, Reading)] == ["001A04"]
    got = [(e.line, e.field) for e in parsed.errors]
    assert got == [
        (2, "value"),
        (3, "record"),
        (4, "data_time"),
        (6, "value"),
        (7, "point"),
        (8, "record"),
    ]
    assert "expected 8" in str(parsed.errors[1])
    assert "does not end with ~" in str(parsed.errors[-1])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (SS_FILE.replace(b"||", b""), "does not end with ||"),  # still being written
        ("煤矿".encode("gbk") + b"~||", "not UTF-8"),
        (b"||", "no header"),
        (b"1;2;3~||", "header has 3 fields"),
        (b"1;a;b;c;yesterday~||", "timestamp"),
    ],
)
def test_a_file_that_cannot_be_taken_says_why(data: bytes, why: str) -> None:
    with pytest.raises(FileError, match=why):
        parse(data, "SS")


def test_a_byte_order_mark_and_crlf_are_taken() -> None:
    data = b"\xef\xbb\xbf" + SS_FILE.replace(b"\n", b"\r\n")
    assert len(parse(data, "SS").records) == 3


def test_point_definitions_and_alarm_records() -> None:
    jc = (
        "140211000001;北方一矿;AQ;安全监控系统;2026-03-01 08:00:10~\n"
        "001A01;0001;甲烷;KJ-F01;1301回风巷T2;%CH4;4;0;1.5;-9999;;2026-01-01 00:00:00~\n||"
    )
    point = parse(jc.encode(), "JC").records[0]
    assert isinstance(point, PointDef)
    assert (point.location, point.range_high, point.alarm_high, point.alarm_low) == (
        "1301回风巷T2",
        4.0,
        1.5,
        None,
    )
    yc = (
        "140211000001;北方一矿;AQ;安全监控系统;2026-03-01 08:00:10~\n"
        "001A01;0001;甲烷;KJ-F01;报警;2026-03-01 07:59:00;;1;;-9999;"
        "2026-03-01 07:59:30;1.62;2026-03-01 08:00:00~\n||"
    )
    alarm = parse(yc.encode(), "YC").records[0]
    assert isinstance(alarm, AlarmRecord)
    assert (alarm.alarm_status, alarm.end_ms, alarm.peak_value) == ("报警", None, 1.62)
    assert alarm.start_ms == T0 - 60_000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["JC", "SS", "YC", "XX"]))
def test_any_bytes_raise_only_the_parsers_error(data: bytes, kind: str) -> None:
    with contextlib.suppress(Mt1201Error):
        parse(data, kind)


_structure = st.lists(
    st.sampled_from(["~", ";", "\n", "||", "-9999", "2026-03-01 08:00:00", "0.5", "a", " "]),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_structure, st.sampled_from(["JC", "SS", "YC"]))
def test_structured_garbage_raises_only_the_parsers_error(parts: list[str], kind: str) -> None:
    with contextlib.suppress(Mt1201Error):
        parse("".join(parts).encode(), kind)


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=12
).filter(lambda s: not any(c in s for c in ";~|") and s == s.strip())
_ident = _text.filter(bool)
_ms = st.integers(946684800, 4102444799).map(lambda s: s * 1000)
_value = st.none() | st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != -9999.0)


def _readings() -> st.SearchStrategy[Reading]:
    return st.builds(Reading, _ident, _text, _text, _text, _value, _text, _text, _ms)


def _points() -> st.SearchStrategy[PointDef]:
    return st.builds(
        PointDef,
        _ident,
        _text,
        _text,
        _text,
        _text,
        _text,
        _value,
        _value,
        _value,
        _value,
        _text,
        st.none() | _ms,
    )


def _alarms() -> st.SearchStrategy[AlarmRecord]:
    opt_ms = st.none() | _ms
    return st.builds(
        AlarmRecord,
        _ident,
        _text,
        _text,
        _text,
        _text,
        opt_ms,
        opt_ms,
        _text,
        opt_ms,
        _value,
        opt_ms,
        _value,
        _ms,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.builds(Header, _ident, _text, _text, _text, _ms),
    st.sampled_from(["JC", "SS", "YC"]).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists({"JC": _points(), "SS": _readings(), "YC": _alarms()}[k], max_size=5),
        )
    ),
)
def test_write_then_parse_round_trips(header: Header, kind_records: tuple[str, list[Any]]) -> None:
    kind, records = kind_records
    parsed = parse(write(header, records), kind)
    assert parsed.errors == ()
    assert parsed.header == header
    assert list(parsed.records) == records


def test_write_refuses_what_it_cannot_say() -> None:
    head = Header("140211000001", "a", "AQ", "b", T0)
    with pytest.raises(ValueError):
        write(head, [Reading("p;1", "", "", "", 0.1, "", "0", T0)])
    with pytest.raises(ValueError):
        write(head, [Reading("p1", "", "", "", -9999.0, "", "0", T0)])


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=60)
    | st.from_regex(r"[0-9]{12}_[A-Z]{0,4}(JC|SS|YC)_[0-9]{14}\.txt", fullmatch=True)
)
def test_any_name_raises_only_the_parsers_error(name: str) -> None:
    with contextlib.suppress(FileError):
        parse_name(name)


def test_a_time_outside_what_a_clock_can_say_is_a_broken_field() -> None:
    text = (
        "140211000001;a;AQ;b;2026-03-01 08:00:10~\n"
        "001A01;0001;甲烷;KJ;0.4;%CH4;0;0001-01-01 00:00:00~\n||"
    )
    parsed = parse(text.encode(), "SS")
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "data_time")]
    assert "the year is not 1970-2199" in str(parsed.errors[0])
