"""The time-series store contract used by ingest and the API.

Both stores (embedded SQLite, InfluxDB) implement `TimeSeriesStore`, and so does `BufferedStore`,
which wraps either with a disk spool. Writes are idempotent: a reading is identified by (sensor,
event time), a position by (vehicle, event time) and an alarm event by (sensor, rule, side, kind,
event time); writing it again overwrites it, so an at-least-once replay never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from telemetry.activesafety import SafetyEvent
from telemetry.registry import Registry

__all__ = [
    "MEASURED_QUALITIES",
    "Aggregate",
    "LatestValue",
    "PartialWriteError",
    "PositionBatch",
    "ReadingBatch",
    "StoreError",
    "StoreUnavailableError",
    "TimeSeriesStore",
    "no_fix",
    "positioned",
]

Aggregate = Literal["mean", "min", "max", "last", "count"]
# the qualities of a measurement (good, out of range): what history's aggregates are of
MEASURED_QUALITIES = (0, 2)


class StoreError(Exception):
    """A store failed; `retryable` says whether trying the same write again may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreUnavailableError(StoreError):
    """The store refuses every write for a cause of its surroundings, not of the data: InfluxDB
    answers 401/403 (a password or token rotated) or 404 (the database or bucket is gone), the
    embedded store's disk is full, its file read-only or unopenable, or an I/O error. Retryable:
    the same write succeeds once an operator fixes the cause, so ingest treats it as an outage
    (spooled, or held with the MQTT acknowledgement), never as a dead letter. `cause` names it in
    a word or two (the metric's label and `/readyz`); the message never holds a credential."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message, retryable=True)
        self.cause = cause


class PartialWriteError(StoreError):
    """The server kept part of a write and refused the rest: `dropped` lines for `reason`
    (InfluxDB's own words), `sample` a few of the refused lines where they can be told apart.
    Not retryable: the same lines would be refused again, and the others are stored."""

    def __init__(
        self, message: str, *, dropped: int, reason: str, sample: Sequence[str] = ()
    ) -> None:
        super().__init__(message, retryable=False)
        self.dropped = dropped
        self.reason = reason
        self.sample = tuple(sample)


@dataclass(frozen=True, slots=True, eq=False)
class ReadingBatch:
    """Readings as columns. `sensor` indexes `Registry.sensors`; (epoch, seq) name the telemetry
    message a reading came in, so that every reading can be accounted for by sequence number."""

    sensor: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    epoch: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def concat(batches: Sequence[ReadingBatch]) -> ReadingBatch:
        return ReadingBatch(
            np.concatenate([b.sensor for b in batches]).astype(np.int32, copy=False),
            np.concatenate([b.ts for b in batches]).astype(np.int64, copy=False),
            np.concatenate([b.value for b in batches]).astype(np.float64, copy=False),
            np.concatenate([b.quality for b in batches]).astype(np.uint8, copy=False),
            np.concatenate([b.epoch for b in batches]).astype(np.int64, copy=False),
            np.concatenate([b.seq for b in batches]).astype(np.int64, copy=False),
        )


@dataclass(frozen=True, slots=True, eq=False)
class PositionBatch:
    """Vehicle positions as columns; `vehicle` is the index of the vehicle's speed sensor."""

    vehicle: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    speed_kmh: npt.NDArray[np.float64]
    heading_deg: npt.NDArray[np.float64]
    # the terminal's JT/T 808 alarm bits per position (None: none reported)
    alarm_flags: npt.NDArray[np.uint32] | None = None
    # the driver of each position, a code (`ingest.positions.driver_code`; 0: not said; None:
    # none said): fatigue is counted per driver (`alerts.vehicles.crew`)
    driver: npt.NDArray[np.int64] | None = None
    # the drivers' ids by code, of the drivers the batch says (a fleet alarm names its driver)
    driver_names: Mapping[int, str] | None = None
    # the engine (ACC) of each position as its terminal said it: 1 on, 0 off, -1 not said
    # (None: none said); a class whose rest needs the engine off reads it (not stored)
    acc: npt.NDArray[np.int8] | None = None
    # the active-safety events (ADAS, DSM) the positions carried: (vehicle, event), judged by
    # `alerts.vehicles.safety`, not stored with the track
    safety: tuple[tuple[int, SafetyEvent], ...] = ()

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def flags(self) -> npt.NDArray[np.uint32]:
        if self.alarm_flags is None:
            return np.zeros(len(self), np.uint32)
        return self.alarm_flags

    @staticmethod
    def concat(batches: Sequence[PositionBatch]) -> PositionBatch:
        if len(batches) == 1:
            return batches[0]
        drivers = None
        if any(b.driver is not None for b in batches):
            drivers = np.concatenate(
                [np.zeros(len(b), np.int64) if b.driver is None else b.driver for b in batches]
            ).astype(np.int64)
        acc = None
        if any(b.acc is not None for b in batches):
            acc = np.concatenate(
                [np.full(len(b), -1, np.int8) if b.acc is None else b.acc for b in batches]
            ).astype(np.int8)
        return PositionBatch(
            np.concatenate([b.vehicle for b in batches]).astype(np.int32),
            np.concatenate([b.ts for b in batches]).astype(np.int64),
            np.concatenate([b.lat for b in batches]).astype(np.float64),
            np.concatenate([b.lon for b in batches]).astype(np.float64),
            np.concatenate([b.speed_kmh for b in batches]).astype(np.float64),
            np.concatenate([b.heading_deg for b in batches]).astype(np.float64),
            np.concatenate([b.flags() for b in batches]).astype(np.uint32),
            drivers,
            {k: v for b in batches for k, v in (b.driver_names or {}).items()} or None,
            acc,
            tuple(e for b in batches for e in b.safety),
        )


def no_fix(lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The reports at lat 0, lon 0: a terminal without a GNSS fix, kept for its alarm bits."""
    nowhere: npt.NDArray[np.bool_] = (lat == 0) & (lon == 0)
    return nowhere


def positioned(batch: PositionBatch) -> PositionBatch:
    """The positions of `batch` that have a place (`no_fix`): not the others, for the fleet's
    rules or the track."""
    nowhere = no_fix(batch.lat, batch.lon)
    if not nowhere.any():
        return batch
    keep = ~nowhere
    return PositionBatch(
        batch.vehicle[keep],
        batch.ts[keep],
        batch.lat[keep],
        batch.lon[keep],
        batch.speed_kmh[keep],
        batch.heading_deg[keep],
        None if batch.alarm_flags is None else batch.alarm_flags[keep],
        None if batch.driver is None else batch.driver[keep],
        batch.driver_names,
        None if batch.acc is None else batch.acc[keep],
        batch.safety,
    )


@dataclass(frozen=True, slots=True)
class LatestValue:
    ts: int
    value: float
    quality: int


class TimeSeriesStore(Protocol):
    """What ingest writes and the API reads. Sensor and vehicle ids are registry indices; a store
    receives the `Registry` at construction to name them (tags, columns)."""

    async def open(self) -> None:
        """Connect, create the database or schema where needed."""

    async def close(self) -> None:
        """Flush and release everything."""

    async def prepare_reload(self, registry: Registry) -> Callable[[], None]:
        """Get ready for a new configuration (its sensors renumbered); return the step that
        switches to it, run with no write in flight and nothing awaited beside it."""

    async def write_readings(self, batch: ReadingBatch) -> None:
        """Store readings; idempotent on (sensor, ts). Raise StoreError."""

    async def write_positions(self, batch: PositionBatch) -> None:
        """Store positions; idempotent on (vehicle, ts). Raise StoreError."""

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        """The newest reading (by event time) of each sensor that has one."""

    async def history(
        self,
        sensor: int,
        start_ms: int,
        end_ms: int,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[tuple[int, float]]:
        """Readings of one sensor with start <= ts < end, oldest first; with `every_ms`, one row
        per window (window start, aggregate) for the windows that have data: the aggregates
        are of the measurements only (quality good or out of range), never of a calibration
        gas, a failed transmitter's signal or a manual value."""

    async def readings(
        self, sensor: int, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[tuple[int, float, int]]:
        """Readings of one sensor with start <= ts < end, oldest first, with their quality; the
        first `limit` of them with one."""

    async def last_calibrations(
        self, sensors: Sequence[int], start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """The event time of each sensor's newest calibration reading (quality CALIBRATION) with
        start <= ts < end, of the sensors that have one: one query (one per few hundred sensors
        for InfluxDB), for the calibration intervals a hub starts without
        (`ingest.calibrations`)."""

    async def track(self, vehicle: int, start_ms: int, end_ms: int) -> PositionBatch:
        """Positions of one vehicle with start <= ts < end, oldest first."""

    async def last_positions(self, vehicles: Sequence[int]) -> PositionBatch:
        """The newest position (by event time, whenever it arrived) of each of `vehicles` (speed
        sensor indices) that has one, one row each, in no set order: one query for them all
        (one per few hundred vehicles for InfluxDB), for a map of the fleet."""

    async def count_by_seq(self, tenant: str, device: str) -> dict[tuple[int, int], int]:
        """Readings stored per (epoch, seq) for one device: the accounting of at-least-once."""

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        """Store alarm events as a time series (at their event time `ts`); idempotent on
        (sensor, rule, side, kind, ts). Raise StoreError."""

    async def alarm_events(
        self, tenants: Sequence[str] | None, start_ms: int, end_ms: int
    ) -> list[AlarmEvent]:
        """Alarm events with start <= ts < end of the given tenants (all with None), ordered by
        (ts, alarm_id)."""
