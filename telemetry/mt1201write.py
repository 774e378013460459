"""MT/T 1201 files written (`telemetry.mt1201` reads them): the simulator's and the tests' files,
in the layout the parser takes: UTF-8 (or GB18030, as a KJ system writes GBK) without a
byte-order mark, ``;`` between fields, ``~`` and a
line break after each record, ``||`` at the end, ``-9999`` for no value, China time."""

from __future__ import annotations

import math
from collections.abc import Sequence

from telemetry.mt1201 import (
    BAD_TEXT,
    END,
    NO_VALUE,
    Header,
    PointDef,
    Reading,
    Record,
    format_time,
)
from telemetry.mt1201text import Encoding, encode

__all__ = ["write"]


def _num_out(value: float | None) -> str:
    if value is not None and (value == NO_VALUE or not math.isfinite(value)):
        raise ValueError(f"{value!r} cannot be written: give None for no value")
    return "-9999" if value is None else repr(float(value))


def _time_out(ms: int | None) -> str:
    return "" if ms is None else format_time(ms)


def _fields(record: Record) -> list[str]:
    if isinstance(record, PointDef):
        r = record
        return [
            r.point,
            r.type_code,
            r.type_name,
            r.device,
            r.location,
            r.unit,
            _num_out(r.range_high),
            _num_out(r.range_low),
            _num_out(r.alarm_high),
            _num_out(r.alarm_low),
            r.relation,
            _time_out(r.defined_ms),
        ]
    if isinstance(record, Reading):
        s = record
        return [
            s.point,
            s.type_code,
            s.type_name,
            s.device,
            _num_out(s.value),
            s.unit,
            s.status,
            format_time(s.data_ms),
        ]
    a = record
    return [
        a.point,
        a.type_code,
        a.name,
        a.device,
        a.alarm_status,
        _time_out(a.start_ms),
        _time_out(a.end_ms),
        a.level,
        _time_out(a.recovery_ms),
        _num_out(a.recovery_value),
        _time_out(a.peak_ms),
        _num_out(a.peak_value),
        format_time(a.data_ms),
    ]


def write(header: Header, records: Sequence[Record], encoding: Encoding = "utf-8") -> bytes:
    """A whole file (in `encoding`, no byte-order mark, ``\\n`` after each record). ValueError
    for a text field holding a separator, or a value of -9999 (that is "no value": give None)."""
    lines = []
    for fields in (
        [
            header.mine_code,
            header.mine_name,
            header.system_id,
            header.system_name,
            format_time(header.ts_ms),
        ],
        *(_fields(r) for r in records),
    ):
        for f in fields:
            if BAD_TEXT.search(f) or f != f.strip() or "||" in f:
                raise ValueError(f"field {f[:40]!r} holds a separator or surrounding blanks")
        lines.append(";".join(fields) + "~")
    lines.append(END)
    return encode("\n".join(lines) + "\n", encoding)
