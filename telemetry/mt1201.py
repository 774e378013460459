"""MT/T 1201 coal-mine networking files (煤矿感知数据联网接入): bytes in, header and records out.

Pure: no files, no clock. A mine's safety-monitoring system (KJ) uploads text files by FTP:

- name ``{mine code}_{type}_{yyyyMMddHHmmss}.txt``; the type ends in ``JC`` (point definitions,
  测点定义), ``SS`` (real-time values, 实时) or ``YC`` (abnormal/alarm records, 异常/报警); a
  two-letter system prefix may come before it (``TFSS``: MT/T 1201.2's main-fan system);
- UTF-8 (a byte-order mark is tolerated) or, as the mine is set, GB18030 (GBK:
  `telemetry.mt1201text`), first record the header
  ``煤矿编码;煤矿名称;系统标识;系统名称;时间戳~``;
- fields separated by ``;``, each record ends with ``~`` (a line break after it is usual), the
  file ends with ``||``; ``-9999`` is "no value"; times ``yyyy-MM-dd HH:mm:ss`` in China time
  (UTC+8, no daylight saving), returned as epoch ms.

Sources: one open MT/T 1201.2-2023 formatter and DOMAIN.md 1.4 (weak, see docs/minefiles.md);
the separators agree with Sun Jiping's 2009 KJ networking paper. A file without its ``||`` is
incomplete (`FileError`); a broken record is a `RecordError` naming its line and field, kept
beside the good records (`ParsedFile.errors`), never raised: the rest of the file is taken.
`parse` raises nothing but `Mt1201Error`; `telemetry.mt1201write` makes the files (the simulator,
the tests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from telemetry.mt1201text import Encoding, TextError, decode

__all__ = [
    "BAD_TEXT",
    "END",
    "NO_VALUE",
    "RECORD_FIELDS",
    "AlarmRecord",
    "FileError",
    "FileName",
    "Header",
    "Kind",
    "Mt1201Error",
    "ParsedFile",
    "PointDef",
    "Reading",
    "RecordError",
    "file_name",
    "format_time",
    "parse",
    "parse_name",
    "parse_time",
]

Kind = Literal["JC", "SS", "YC"]
NO_VALUE = -9999.0
END = "||"
CHINA = timezone(timedelta(hours=8))
_YEARS = (1970, 2199)  # a time outside is a broken field (and beyond what a clock can say)
_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")
_NAME_RE = re.compile(r"^([0-9A-Za-z]{6,32})_([A-Z]{0,4}(JC|SS|YC))_(\d{14})\.txt$")
BAD_TEXT = re.compile(r"[;~\r\n]")
# the fields of each record kind, in order (the header's are `Header`'s)
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "JC": (
        "point",
        "type_code",
        "type_name",
        "device",
        "location",
        "unit",
        "range_high",
        "range_low",
        "alarm_high",
        "alarm_low",
        "relation",
        "defined",
    ),
    "SS": ("point", "type_code", "type_name", "device", "value", "unit", "status", "data_time"),
    "YC": (
        "point",
        "type_code",
        "name",
        "device",
        "alarm_status",
        "start",
        "end",
        "level",
        "recovery_time",
        "recovery_value",
        "peak_time",
        "peak_value",
        "data_time",
    ),
}
_HEADER_FIELDS = ("mine_code", "mine_name", "system_id", "system_name", "timestamp")


class Mt1201Error(Exception):
    """Base of the MT/T 1201 file errors: all the sending mine's fault."""


class FileError(Mt1201Error):
    """The whole file cannot be taken (its name, encoding, header or end marker)."""


@dataclass(frozen=True, slots=True)
class RecordError(Mt1201Error):
    """One record cannot be taken: `line` (1-based, where the record starts), `field` (its
    name, or "record" for the record as a whole) and why."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FileName:
    mine_code: str
    file_type: str  # as named, e.g. "SS" or "TFSS"
    kind: Kind
    stamp_ms: int  # the name's time, China time -> epoch ms


@dataclass(frozen=True, slots=True)
class Header:
    mine_code: str
    mine_name: str
    system_id: str
    system_name: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class PointDef:
    """A JC record: one point as the mine's system defines it (thresholds in its unit)."""

    point: str
    type_code: str
    type_name: str
    device: str
    location: str
    unit: str
    range_high: float | None
    range_low: float | None
    alarm_high: float | None
    alarm_low: float | None
    relation: str
    defined_ms: int | None


@dataclass(frozen=True, slots=True)
class Reading:
    """An SS record: a point's value (None: -9999, no value) and status at its data time."""

    point: str
    type_code: str
    type_name: str
    device: str
    value: float | None
    unit: str
    status: str
    data_ms: int


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """A YC record: an alarm or abnormal state as the mine's own system judged it."""

    point: str
    type_code: str
    name: str
    device: str
    alarm_status: str
    start_ms: int | None
    end_ms: int | None
    level: str
    recovery_ms: int | None
    recovery_value: float | None
    peak_ms: int | None
    peak_value: float | None
    data_ms: int


Record = PointDef | Reading | AlarmRecord


@dataclass(frozen=True, slots=True)
class ParsedFile:
    kind: Kind
    header: Header
    records: tuple[Record, ...]
    errors: tuple[RecordError, ...]


def parse_time(text: str) -> int:
    """``yyyy-MM-dd HH:mm:ss`` China time -> epoch ms; ValueError if it is not one."""
    m = _TIME_RE.match(text)
    if m is None:
        raise ValueError(f"{text[:40]!r} is not a time yyyy-MM-dd HH:mm:ss")
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    if not _YEARS[0] <= y <= _YEARS[1]:
        raise ValueError(f"{text[:40]!r}: the year is not {_YEARS[0]}-{_YEARS[1]}")
    stamp = datetime(y, mo, d, h, mi, s, tzinfo=CHINA)  # ValueError for 2023-02-30 and the like
    return int(stamp.timestamp()) * 1000


def format_time(ms: int) -> str:
    """Epoch ms -> ``yyyy-MM-dd HH:mm:ss`` China time (the second's fraction is dropped)."""
    return (
        datetime.fromtimestamp(ms // 1000, tz=UTC).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
    )


def parse_name(name: str) -> FileName:
    """The parts of a file's name; FileError if it is not ``{mine}_{type}_{time}.txt`` with a
    JC, SS or YC type."""
    m = _NAME_RE.match(name)
    if m is None:
        raise FileError(
            f"file name {name[:80]!r} is not {{mine code}}_{{JC|SS|YC}}_{{yyyyMMddHHmmss}}.txt"
        )
    mine, file_type, kind, stamp = m.groups()
    try:
        when = parse_time(
            f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:]}"
        )
    except ValueError as exc:
        raise FileError(f"file name {name!r}: {exc}") from None
    kinds: dict[str, Kind] = {"JC": "JC", "SS": "SS", "YC": "YC"}
    return FileName(mine, file_type, kinds[kind], when)


def file_name(mine_code: str, kind: str, stamp_ms: int) -> str:
    stamp = datetime.fromtimestamp(stamp_ms // 1000, tz=UTC).astimezone(CHINA)
    return f"{mine_code}_{kind}_{stamp.strftime('%Y%m%d%H%M%S')}.txt"


def _number(text: str, line: int, field: str, *, optional: bool) -> float | None:
    if text == "" and optional:
        return None
    if not _NUMBER_RE.match(text):
        raise RecordError(line, field, f"{text[:40]!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise RecordError(line, field, f"{text[:40]!r} is not a finite number")
    return None if value == NO_VALUE else value


def _time(text: str, line: int, field: str, *, optional: bool) -> int | None:
    if optional and text in ("", "-9999"):
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise RecordError(line, field, str(exc)) from None


def _required_time(text: str, line: int, field: str) -> int:
    found = _time(text, line, field, optional=False)
    assert found is not None
    return found


def _text(text: str, line: int, field: str) -> str:
    if not text:
        raise RecordError(line, field, "empty")
    return text


def _record(kind: str, f: list[str], line: int) -> Record:
    if kind == "JC":
        return PointDef(
            point=_text(f[0], line, "point"),
            type_code=f[1],
            type_name=f[2],
            device=f[3],
            location=f[4],
            unit=f[5],
            range_high=_number(f[6], line, "range_high", optional=True),
            range_low=_number(f[7], line, "range_low", optional=True),
            alarm_high=_number(f[8], line, "alarm_high", optional=True),
            alarm_low=_number(f[9], line, "alarm_low", optional=True),
            relation=f[10],
            defined_ms=_time(f[11], line, "defined", optional=True),
        )
    if kind == "SS":
        return Reading(
            point=_text(f[0], line, "point"),
            type_code=f[1],
            type_name=f[2],
            device=f[3],
            value=_number(f[4], line, "value", optional=False),
            unit=f[5],
            status=f[6],
            data_ms=_required_time(f[7], line, "data_time"),
        )
    return AlarmRecord(
        point=_text(f[0], line, "point"),
        type_code=f[1],
        name=f[2],
        device=f[3],
        alarm_status=f[4],
        start_ms=_time(f[5], line, "start", optional=True),
        end_ms=_time(f[6], line, "end", optional=True),
        level=f[7],
        recovery_ms=_time(f[8], line, "recovery_time", optional=True),
        recovery_value=_number(f[9], line, "recovery_value", optional=True),
        peak_ms=_time(f[10], line, "peak_time", optional=True),
        peak_value=_number(f[11], line, "peak_value", optional=True),
        data_ms=_required_time(f[12], line, "data_time"),
    )


def _header(fields: list[str], line: int) -> Header:
    if len(fields) != len(_HEADER_FIELDS):
        raise FileError(
            f"line {line}: the header has {len(fields)} fields, expected 5 "
            "(煤矿编码;煤矿名称;系统标识;系统名称;时间戳)"
        )
    if not fields[0]:
        raise FileError(f"line {line}: the header's mine code is empty")
    try:
        ts = parse_time(fields[4])
    except ValueError as exc:
        raise FileError(f"line {line}, header field timestamp: {exc}") from None
    return Header(fields[0], fields[1], fields[2], fields[3], ts)


def _chunks(body: str) -> list[tuple[int, str, bool]]:
    """(line, text, ended) of each record of `body`: the text before each ``~``, stripped, and
    whether a ``~`` ended it (a last piece without one is kept, for the caller to refuse)."""
    out: list[tuple[int, str, bool]] = []
    line = 1
    pieces = body.split("~")
    for i, piece in enumerate(pieces):
        lead = len(piece) - len(piece.lstrip())
        text = piece.strip()
        if text:
            out.append((line + piece[:lead].count("\n"), text, i < len(pieces) - 1))
        line += piece.count("\n")
    return out


def parse(data: bytes, kind: str, encoding: Encoding = "utf-8") -> ParsedFile:
    """Parse a whole file of `kind` (JC, SS or YC: from its name) written in `encoding` (the
    mine's). FileError when the file cannot be taken at all (one that does not decode: its
    cause the `TextError`); each broken record is in `errors` instead of `records`."""
    if kind not in RECORD_FIELDS:
        raise FileError(f"file type {kind!r} is not one of JC, SS, YC")
    try:
        text = decode(data, encoding)
    except TextError as exc:
        raise FileError(str(exc)) from exc
    stripped = text.rstrip()
    if not stripped.endswith(END):
        raise FileError("incomplete: the file does not end with ||")
    body = stripped[: -len(END)]
    chunks = _chunks(body)
    if not chunks:
        raise FileError("no header record")
    head_line, head, ended = chunks[0]
    if not ended:
        raise FileError(f"line {head_line}: the header does not end with ~")
    header = _header([s.strip() for s in head.split(";")], head_line)
    expected = RECORD_FIELDS[kind]
    records: list[Record] = []
    errors: list[RecordError] = []
    for line, chunk, ended in chunks[1:]:
        if not ended:
            errors.append(RecordError(line, "record", "does not end with ~"))
            continue
        fields = [s.strip() for s in chunk.split(";")]
        if len(fields) != len(expected):
            errors.append(
                RecordError(
                    line, "record", f"has {len(fields)} fields, expected {len(expected)} ({kind})"
                )
            )
            continue
        try:
            records.append(_record(kind, fields, line))
        except RecordError as exc:
            errors.append(exc)
    kinds: dict[str, Kind] = {"JC": "JC", "SS": "SS", "YC": "YC"}
    return ParsedFile(kinds[kind], header, tuple(records), tuple(errors))
