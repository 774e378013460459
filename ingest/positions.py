"""Decode and validate the JSON position payload of GPS recorders (pure).

One object or an array of objects (backfill), each: ``ts`` (epoch ms or RFC 3339), ``lat``, ``lon``
(WGS-84 degrees), ``speed_kmh``, ``heading_deg``, optional ``alt_m``, ``acc_on``, ``driver_id``,
``alarm_flags``, ``seq``, ``active_safety`` (`telemetry.activesafety`); or such an array in an
envelope numbered by its publisher (`telemetry.posenvelope`). A bad record is rejected with its
reason; the good ones are kept.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from telemetry.activesafety import SafetyEvent, read_events
from telemetry.posenvelope import is_envelope, open_envelope

__all__ = ["MAX_RECORDS", "PositionColumns", "PositionError", "decode_positions", "driver_code"]

MAX_RECORDS = 10_000
_REQUIRED = ("ts", "lat", "lon", "speed_kmh", "heading_deg")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OPTIONAL = frozenset({"alt_m", "acc_on", "driver_id", "alarm_flags", "seq", "active_safety"})
_Row = tuple[int, float, float, float, float, int, int, int, int]


class PositionError(ValueError):
    """The payload as a whole cannot be read."""


@dataclass(frozen=True, slots=True, eq=False)
class PositionColumns:
    ts: npt.NDArray[np.int64]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    speed_kmh: npt.NDArray[np.float64]
    heading_deg: npt.NDArray[np.float64]
    seq: npt.NDArray[np.int64]  # -1 when absent
    rejected: tuple[tuple[int, str], ...]  # (record index, reason)
    alarm_flags: npt.NDArray[np.uint32]  # JT/T 808 alarm bits, 0 when absent
    driver: npt.NDArray[np.int64]  # `driver_code` of driver_id, 0 when absent
    driver_names: dict[int, str]  # code -> driver_id of the drivers said (alarms name them)
    acc: npt.NDArray[np.int8]  # acc_on: 1 true, 0 false, -1 absent
    # (epoch, seq) of an envelope (`telemetry.posenvelope`); None: a bare object or array
    numbered: tuple[int, int] | None = None
    # the active-safety events of the records kept: (index among them, event), in order
    safety: tuple[tuple[int, SafetyEvent], ...] = ()
    # the events of those records left out (the record kept): (index among them, why)
    safety_rejected: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def driver_code(driver_id: str) -> int:
    """A driver's id as the fleet rules key his fatigue by (a 63-bit digest, never 0): the
    same id is the same code in every process and after a restart, with no table to keep."""
    digest = hashlib.blake2b(driver_id.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") & ((1 << 63) - 1)) or 1


def _number(rec: dict[str, Any], name: str, lo: float, hi: float) -> float:
    v = rec[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{name} must be a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise ValueError(f"{name} {v!r} is outside [{lo:g}, {hi:g}]")
    return f


def _ts(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("ts must be epoch ms or an RFC 3339 string")
    if isinstance(v, float) and v.is_integer():  # 1795918080000.0, as many producers write it
        v = int(v)
    if isinstance(v, int):
        if not 0 <= v < 2**53:
            raise ValueError(f"ts {v} is not a plausible epoch in ms")
        return v
    if isinstance(v, str) and len(v) <= 40:
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"ts {v!r} is not RFC 3339") from exc
        if dt.tzinfo is None:
            raise ValueError(f"ts {v!r} has no time zone offset")
        return (dt - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    raise ValueError("ts must be epoch ms or an RFC 3339 string")


def _record(rec: Any) -> tuple[_Row, tuple[SafetyEvent, ...], list[str]]:
    if not isinstance(rec, dict):
        raise ValueError(f"a record must be an object, got {type(rec).__name__}")
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    unknown = sorted(set(rec) - set(_REQUIRED) - _OPTIONAL)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown[:5])}")
    seq = rec.get("seq", 0)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise ValueError("seq must be a non-negative integer")
    if "seq" not in rec:
        seq = -1  # absent
    flags = rec.get("alarm_flags", 0)
    if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags < 2**32:
        raise ValueError("alarm_flags must be a 32-bit unsigned integer")
    if "acc_on" in rec and not isinstance(rec["acc_on"], bool):
        raise ValueError("acc_on must be true or false")
    if "driver_id" in rec and not (
        isinstance(rec["driver_id"], str) and len(rec["driver_id"]) <= 64
    ):
        raise ValueError("driver_id must be a string of at most 64 characters")
    said = rec.get("driver_id", "").strip()
    driver = driver_code(said) if said else 0
    if "alt_m" in rec:
        _number(rec, "alt_m", -500, 9000)
    lat, lon = _number(rec, "lat", -90, 90), _number(rec, "lon", -180, 180)
    # a terminal without a GNSS fix sends its zeros: not a place. One that says its alarm bits
    # (an emergency, a collision, the antenna cut that caused it; or none any more, clearing
    # them) is kept for them
    if lat == 0 and lon == 0 and "alarm_flags" not in rec:
        raise ValueError(
            "lat 0, lon 0 is no position fix (send nothing without one, or alarm_flags alone)"
        )
    ts = _ts(rec["ts"])
    # an event that does not read is left out with its reason, never the position and its bits
    events, bad = read_events(rec["active_safety"], ts) if "active_safety" in rec else ((), [])
    if said and events:  # an alarm names its driver, as the fleet's do
        events = tuple(replace(ev, driver=said) for ev in events)
    row = (
        ts,
        lat,
        lon,
        _number(rec, "speed_kmh", 0, 300),
        _number(rec, "heading_deg", 0, 360),
        seq,
        flags,
        driver,
        int(rec["acc_on"]) if "acc_on" in rec else -1,
    )
    return row, events, bad


def decode_positions(payload: bytes) -> PositionColumns:
    """Decode a position payload; raise PositionError when nothing in it can be read, and
    `telemetry.posenvelope.EnvelopeError` (a ValueError too) for an envelope that does not
    read."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PositionError(f"not valid JSON (or not UTF-8): {exc}") from exc
    numbered = None
    if is_envelope(doc):
        envelope = open_envelope(doc)
        numbered, doc = (envelope.epoch, envelope.seq), envelope.records
    records = doc if isinstance(doc, list) else [doc]
    if not isinstance(doc, list | dict):
        raise PositionError(f"expected an object or an array of objects, got {type(doc).__name__}")
    if len(records) > MAX_RECORDS:
        raise PositionError(f"{len(records)} records exceed the limit of {MAX_RECORDS}")
    good: list[_Row] = []
    rejected: list[tuple[int, str]] = []
    names: dict[int, str] = {}
    safety: list[tuple[int, SafetyEvent]] = []
    safety_rejected: list[tuple[int, str]] = []
    for i, rec in enumerate(records):
        try:
            row, events, bad = _record(rec)
        except ValueError as exc:
            rejected.append((i, str(exc)))
            continue
        safety.extend((len(good), ev) for ev in events)
        safety_rejected.extend((len(good), f"record {i}: {why}") for why in bad)
        good.append(row)
        if good[-1][7]:
            names[good[-1][7]] = rec["driver_id"].strip()
    cols = list(zip(*good, strict=True)) if good else [()] * 9
    return PositionColumns(
        np.array(cols[0], dtype=np.int64),
        np.array(cols[1], dtype=np.float64),
        np.array(cols[2], dtype=np.float64),
        np.array(cols[3], dtype=np.float64),
        np.array(cols[4], dtype=np.float64),
        np.array(cols[5], dtype=np.int64),
        tuple(rejected),
        np.array(cols[6], dtype=np.uint32),
        np.array(cols[7], dtype=np.int64),
        names,
        np.array(cols[8], dtype=np.int8),
        numbered,
        tuple(safety),
        tuple(safety_rejected),
    )
