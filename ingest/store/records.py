"""Batches as bytes for the spool, and back. Pure: no I/O, no clock.

A record names sensors by their *id*, not by the registry index: a restart with a changed
configuration renumbers the registry, and a spooled reading must still land on its sensor. Rows of
sensors that are no longer configured cannot be written; `decode` leaves them out and counts them.

Layout (little-endian)::

    kind (1 byte: b"R" readings, b"P" positions, b"A" alarm events) | version (1) | body

    R, P: rows (u32) | ids (u32) | id table bytes (u32) | id table: JSON list of sensor ids
          | columns
          R columns: id index i32, ts i64, value f64, quality u8, epoch i64, seq i64
          P columns: id index i32, ts i64, lat, lon, speed_kmh, heading_deg f64
    A:    orjson list of `AlarmEvent.to_json()` objects
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from alerts.alarms import AlarmEvent
from ingest.store.base import PositionBatch, ReadingBatch
from telemetry.registry import Registry

__all__ = [
    "Decoded",
    "RecordError",
    "decode",
    "encode_alarms",
    "encode_positions",
    "encode_readings",
]

READINGS = b"R"
POSITIONS = b"P"
ALARMS = b"A"
_VERSION = 1
_COUNTS = struct.Struct("<III")

_READING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "<i8"),
    ("value", "<f8"),
    ("quality", "u1"),
    ("epoch", "<i8"),
    ("seq", "<i8"),
)
_POSITION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "<i8"),
    ("lat", "<f8"),
    ("lon", "<f8"),
    ("speed_kmh", "<f8"),
    ("heading_deg", "<f8"),
)


class RecordError(ValueError):
    """A record that is not one of ours (the spool's CRC passed, so: a bug or a foreign file)."""


@dataclass(frozen=True, slots=True)
class Decoded:
    kind: bytes
    readings: ReadingBatch | None = None
    positions: PositionBatch | None = None
    alarms: tuple[AlarmEvent, ...] = ()
    unknown_rows: int = 0  # rows of sensors the registry no longer has, left out
    unknown_ids: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        if self.readings is not None:
            return len(self.readings)
        if self.positions is not None:
            return len(self.positions)
        return len(self.alarms)


def _ids(
    registry: Registry, index: npt.NDArray[np.int32]
) -> tuple[int, bytes, npt.NDArray[np.int32]]:
    used, local = np.unique(index, return_inverse=True)
    names = [registry.sensors[int(i)].id for i in used.tolist()]
    return len(names), orjson.dumps(names), local.astype("<i4")


def _columns(
    kind: bytes, registry: Registry, index: npt.NDArray[np.int32], cols: list[Any]
) -> bytes:
    count, names, local = _ids(registry, index)
    head = kind + bytes([_VERSION]) + _COUNTS.pack(index.shape[0], count, len(names))
    return b"".join([head, names, local.tobytes(), *(c.tobytes() for c in cols)])


def encode_readings(registry: Registry, batch: ReadingBatch) -> bytes:
    cols = [np.ascontiguousarray(getattr(batch, name), dtype=dt) for name, dt in _READING_COLUMNS]
    return _columns(READINGS, registry, batch.sensor, cols)


def encode_positions(registry: Registry, batch: PositionBatch) -> bytes:
    cols = [np.ascontiguousarray(getattr(batch, name), dtype=dt) for name, dt in _POSITION_COLUMNS]
    return _columns(POSITIONS, registry, batch.vehicle, cols)


def encode_alarms(events: Sequence[AlarmEvent]) -> bytes:
    return ALARMS + bytes([_VERSION]) + orjson.dumps([e.to_json() for e in events])


def _alarm(d: dict[str, Any]) -> AlarmEvent:
    value = d["value"]
    return AlarmEvent(
        alarm_id=int(d["alarm_id"]),
        kind=str(d["kind"]),
        tenant=str(d["tenant"]),
        site=str(d["site"]),
        device=str(d["device"]),
        sensor=str(d["sensor"]),
        rule=str(d["rule"]),
        side=str(d["side"]),
        level=int(d["level"]),
        level_name=str(d["level_name"]),
        tier=str(d["tier"]),
        action=str(d["action"]),
        value=math.nan if value is None else float(value),
        ts=int(d["ts"]),
        arrival=int(d["arrival"]),
    )


def decode(registry: Registry, data: bytes) -> Decoded:
    """The batch in a record, with sensor ids mapped to this registry's indices."""
    if len(data) < 2 or data[1] != _VERSION:
        raise RecordError(f"not a spool record of version {_VERSION}: {data[:8]!r}")
    kind = data[:1]
    try:
        if kind == ALARMS:
            return Decoded(kind, alarms=tuple(_alarm(d) for d in orjson.loads(data[2:])))
        if kind not in (READINGS, POSITIONS):
            raise RecordError(f"unknown record kind {kind!r}")
        rows, n_ids, names_len = _COUNTS.unpack_from(data, 2)
        at = 2 + _COUNTS.size
        names_end = at + names_len
        names: list[str] = orjson.loads(data[at:names_end])
        if len(names) != n_ids:
            raise RecordError("id table does not match its count")
        at = names_end
        local = np.frombuffer(data, "<i4", rows, at).astype(np.intp)
        at += 4 * rows
        spec = _READING_COLUMNS if kind == READINGS else _POSITION_COLUMNS
        cols: dict[str, npt.NDArray[Any]] = {}
        for name, dt in spec:
            col = np.frombuffer(data, dt, rows, at)
            at += col.nbytes
            cols[name] = col
        if at != len(data):
            raise RecordError(f"{len(data) - at} trailing bytes")
    except (ValueError, struct.error, orjson.JSONDecodeError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"malformed spool record: {exc}") from exc
    found = [registry.sensor(name) for name in names]
    mapping = np.array([-1 if s is None else s.index for s in found], dtype=np.int64)
    index = mapping[local] if rows else np.zeros(0, np.int64)
    keep = index >= 0
    unknown = tuple(name for name, s in zip(names, found, strict=True) if s is None)
    dropped = int(rows - keep.sum())
    sel = np.flatnonzero(keep) if dropped else slice(None)
    ix = index[sel].astype(np.int32)
    if kind == READINGS:
        batch = ReadingBatch(
            ix,
            cols["ts"][sel].astype(np.int64),
            cols["value"][sel].astype(np.float64),
            cols["quality"][sel].astype(np.uint8),
            cols["epoch"][sel].astype(np.int64),
            cols["seq"][sel].astype(np.int64),
        )
        return Decoded(kind, readings=batch, unknown_rows=dropped, unknown_ids=unknown)
    pos = PositionBatch(
        ix,
        cols["ts"][sel].astype(np.int64),
        cols["lat"][sel].astype(np.float64),
        cols["lon"][sel].astype(np.float64),
        cols["speed_kmh"][sel].astype(np.float64),
        cols["heading_deg"][sel].astype(np.float64),
    )
    return Decoded(kind, positions=pos, unknown_rows=dropped, unknown_ids=unknown)
