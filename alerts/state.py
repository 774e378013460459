"""The core's value types: columnar readings in, state arrays keyed by sensor, transitions out."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alerts.table import RUN_CAP, SIDES, SLOTS, TREND_DEPTH

__all__ = [
    "I64",
    "NO_TS",
    "RUN_START0",
    "Columns",
    "CoreState",
    "Outcome",
    "Part",
    "Readings",
    "Transitions",
    "assemble",
    "segment_ends",
    "segment_starts",
]

NO_TS = -(2**63)  # "no time": never seen, no deadline
RUN_START0 = -(2**62)  # run start of a state nobody has seen change: "long ago"
I64 = npt.NDArray[np.int64]


class Columns(Protocol):
    """A columnar batch of readings (e.g. `ingest.store.base.ReadingBatch`)."""

    @property
    def sensor(self) -> npt.NDArray[np.int32]: ...
    @property
    def ts(self) -> npt.NDArray[np.int64]: ...
    @property
    def value(self) -> npt.NDArray[np.float64]: ...
    @property
    def quality(self) -> npt.NDArray[np.uint8]: ...


@dataclass(frozen=True, slots=True)
class Readings:
    sensor: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True, eq=False)
class CoreState:
    """Arrays keyed by sensor index (so that the state can be partitioned by device)."""

    raw: npt.NDArray[np.bool_]  # (n, 8) hysteresis state per level slot
    active: npt.NDArray[np.bool_]  # (n, 8) the level state after delays
    run_start: I64  # (n, 8) event time of the reading that set the raw state
    run_count: npt.NDArray[np.uint16]  # (n, 8) judged readings since, up to RUN_CAP
    level: npt.NDArray[np.int8]  # (n, SIDES) level number per side
    last_ts: I64  # (n,) event time of the last processed reading
    last_data: I64  # (n,) event time of the last data (not comm-loss) reading
    last_value: npt.NDArray[np.float64]  # (n,) last judged value (feedback sensors)
    deadline: I64  # (n,) deadline of a demanded action, NO_TS when none
    met: npt.NDArray[np.bool_]  # (n,) the demanded action was confirmed
    # the last judged readings of the sensors with a rate of rise or an early warning, per trend
    # row (`RuleTable.trend_of`): oldest first and right-aligned, the newest in the last column
    hist_ts: I64  # (m, depth)
    hist_v: npt.NDArray[np.float64]  # (m, depth)
    hist_n: npt.NDArray[np.int16]  # (m,) how many of the last columns hold readings

    @staticmethod
    def empty(n: int, trends: int = 0, depth: int = TREND_DEPTH) -> CoreState:
        """A fresh state; the trend buffers are sized on the first batch if `trends` is not."""
        return CoreState(
            np.zeros((n, 2 * SLOTS), dtype=np.bool_),
            np.zeros((n, 2 * SLOTS), dtype=np.bool_),
            np.full((n, 2 * SLOTS), RUN_START0, dtype=np.int64),
            np.full((n, 2 * SLOTS), RUN_CAP, dtype=np.uint16),
            np.zeros((n, SIDES), dtype=np.int8),
            np.full(n, NO_TS, dtype=np.int64),
            np.full(n, NO_TS, dtype=np.int64),
            np.full(n, np.nan),
            np.full(n, NO_TS, dtype=np.int64),
            np.zeros(n, dtype=np.bool_),
            np.zeros((trends, depth), dtype=np.int64),
            np.full((trends, depth), np.nan),
            np.zeros(trends, dtype=np.int16),
        )

    def with_trends(self, trends: int, depth: int) -> CoreState:
        """This state with empty trend buffers of `trends` rows (a new table, or a fresh state)."""
        fresh = CoreState.empty(0, trends, depth)
        return replace(self, hist_ts=fresh.hist_ts, hist_v=fresh.hist_v, hist_n=fresh.hist_n)

    def copy(self) -> CoreState:
        return replace(self, **{f: getattr(self, f).copy() for f in self.__dataclass_fields__})

    @property
    def nbytes(self) -> int:
        return sum(int(getattr(self, f).nbytes) for f in self.__dataclass_fields__)


@dataclass(frozen=True, slots=True, eq=False)
class Transitions:
    sensor: npt.NDArray[np.int32]
    ts: I64
    value: npt.NDArray[np.float64]
    side: npt.NDArray[np.uint8]  # ABOVE, BELOW, FAULT, NO_DATA, ACTION, RATE, EARLY
    before: npt.NDArray[np.int8]
    after: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def rows(self) -> list[tuple[int, int, float, int, int, int]]:
        return list(
            zip(
                self.sensor.tolist(),
                self.ts.tolist(),
                self.value.tolist(),
                self.side.tolist(),
                self.before.tolist(),
                self.after.tolist(),
                strict=True,
            )
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    judged: int  # readings judged against process levels
    late: int  # readings at or before their sensor's last processed time
    skipped: int  # the others: unwatched sensors, bad quality, duplicates


Part = tuple[I64, I64, npt.NDArray[np.float64], int | npt.NDArray[np.int64], I64, I64]


def segment_starts(s: I64) -> npt.NDArray[np.bool_]:
    start = np.empty(s.shape[0], dtype=np.bool_)
    if s.shape[0]:
        start[0] = True
        np.not_equal(s[1:], s[:-1], out=start[1:])
    return start


def segment_ends(start: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    end = np.empty_like(start)
    if start.shape[0]:
        end[-1] = True
        end[:-1] = start[1:]
    return end


def assemble(parts: list[Part]) -> Transitions:
    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        return Transitions(
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0, np.uint8),
            np.zeros(0, np.int8),
            np.zeros(0, np.int8),
        )
    sensor = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    value = np.concatenate([p[2] for p in parts])
    side = np.concatenate([np.broadcast_to(np.asarray(p[3]), p[0].shape) for p in parts])
    before = np.concatenate([p[4] for p in parts])
    after = np.concatenate([p[5] for p in parts])
    order = np.lexsort((side, ts, sensor)) if len(parts) > 1 else np.arange(sensor.shape[0])
    return Transitions(
        sensor[order].astype(np.int32),
        ts[order],
        value[order],
        side[order].astype(np.uint8),
        before[order].astype(np.int8),
        after[order].astype(np.int8),
    )
