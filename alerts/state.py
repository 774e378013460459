"""The core's value types: columnar readings in, state arrays keyed by sensor, transitions out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alerts.segments import by_sensor_time, ring_offsets
from alerts.table import RUN_CAP, SIDES, SLOTS, TREND_DEPTH

__all__ = [
    "CK_FIELDS",
    "I64",
    "NO_TS",
    "RUN_START0",
    "Columns",
    "CoreState",
    "Outcome",
    "Part",
    "Readings",
    "Transitions",
    "as_part",
    "assemble",
    "level_changes",
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
    """Arrays keyed by sensor index (so that the state can be partitioned by device).

    Every array has the sensor as first axis (n rows), except: the trend buffers `hist_*`, keyed
    by trend row (`RuleTable.trend_of`), and the lateness window's arrays `ring_*` and `ck_*`,
    which have n rows only when the table has a lateness window and 0 rows otherwise (they are
    set up on the first batch judged with a window: see `with_lateness`).
    """

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
    # row (`RuleTable.trend_of`), in a ring per row: slot (head + q) % depth holds the reading
    # -q-th from the newest (q = -1 the newest, down to -n); head 0 is right-aligned, oldest
    # first (`trend_readings` reads a row in order)
    # times as offsets from the row's `hist_base` (int32: half the bytes of int64; an offset
    # below -2**31, a reading more than 24 days older than the base, is kept as -2**31: never in
    # a window, windows and the lateness window being shorter, see `compile_table`)
    hist_ts: npt.NDArray[np.int32]  # (m, depth)
    hist_v: npt.NDArray[np.float64]  # (m, depth)
    hist_n: npt.NDArray[np.int16]  # (m,) how many readings the ring holds
    hist_head: npt.NDArray[np.int16]  # (m,) the slot the next reading goes to
    # the lateness window (alerts.lateness): the sensor's last processed readings after its
    # checkpoint, oldest first and right-aligned (`ring_n` of them), and the checkpoint: the
    # sensor's state (fields as above) just before the oldest of them
    ring_ts: I64  # (n, K)
    ring_v: npt.NDArray[np.float64]  # (n, K)
    ring_q: npt.NDArray[np.uint8]  # (n, K)
    ring_n: npt.NDArray[np.uint8]  # (n,)
    ck_raw: npt.NDArray[np.bool_]  # (n, 8)
    ck_active: npt.NDArray[np.bool_]  # (n, 8)
    ck_run_start: I64  # (n, 8)
    ck_run_count: npt.NDArray[np.uint16]  # (n, 8)
    ck_level: npt.NDArray[np.int8]  # (n, SIDES); ACTION unused (judged on arrival only)
    ck_last_ts: I64  # (n,) the checkpoint's time: readings at or before it are late
    ck_last_data: I64  # (n,)
    ck_last_value: npt.NDArray[np.float64]  # (n,)
    # the hub's clock (`now`) when a reading of the sensor with a value (good or out of range)
    # last arrived, NO_TS before: a feedback sensor heard from within a plan's grace is in
    # transit, not silent (alerts.verify)
    last_arrival: I64  # (n,)
    # frozen value (alerts.frozen): the event time of the first reading of the sensor's current
    # run of unmoved values, NO_TS before one; and its checkpoint (lateness window, as above)
    frozen_since: I64  # (n,)
    ck_frozen_since: I64  # (n,) or (0,)
    # maintenance held too long (alerts.maintenance): the event time of the first reading of the
    # sensor's current run of calibration or manual readings, NO_TS outside one; its checkpoint
    maint_since: I64  # (n,)
    ck_maint_since: I64  # (n,) or (0,)
    # the event time the trend rows' `hist_ts` offsets are from (a row's newest reading when it
    # was last rebased: `alerts.trend`)
    hist_base: I64  # (m,)
    # calibration due (alerts.calibration): the event time of the sensor's last calibration
    # reading, or of its first judged reading when none was seen, NO_TS before either; its
    # checkpoint (lateness window, as above)
    calib_at: I64  # (n,)
    ck_calib_at: I64  # (n,) or (0,)
    # the lateness window's: per sensor and side, the event time of the last transition that
    # came out (what a consumer was last told of the side), NO_TS when none or unknown (a state
    # saved before it); a rewind tells nothing from before it (`alerts.lateness`)
    told: I64 = field(default_factory=lambda: np.zeros((0, SIDES), dtype=np.int64))  # (n, SIDES)
    # a held action (`VerifySpec.hold`, alerts.verify): the event time from which a confirmed
    # action no longer holds (a feedback reading past the bound again while the demand lasts),
    # NO_TS while it holds or nothing is held; (0,) until a table with a held action judges the
    # state (`evaluate` sets it up: no bytes for it without one), and in a state saved before it
    broke: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (n,)

    @staticmethod
    def empty(n: int, trends: int = 0, depth: int = TREND_DEPTH, late_depth: int = 0) -> CoreState:
        """A fresh state; the trend buffers are sized on the first batch if `trends` is not, and
        the lateness window's arrays if `late_depth` is 0."""
        m = n if late_depth else 0
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
            np.zeros((trends, depth), dtype=np.int32),
            np.full((trends, depth), np.nan),
            np.zeros(trends, dtype=np.int16),
            np.zeros(trends, dtype=np.int16),
            np.zeros((m, late_depth), dtype=np.int64),
            np.full((m, late_depth), np.nan),
            np.zeros((m, late_depth), dtype=np.uint8),
            np.zeros(m, dtype=np.uint8),
            np.zeros((m, 2 * SLOTS), dtype=np.bool_),
            np.zeros((m, 2 * SLOTS), dtype=np.bool_),
            np.full((m, 2 * SLOTS), RUN_START0, dtype=np.int64),
            np.full((m, 2 * SLOTS), RUN_CAP, dtype=np.uint16),
            np.zeros((m, SIDES), dtype=np.int8),
            np.full(m, NO_TS, dtype=np.int64),
            np.full(m, NO_TS, dtype=np.int64),
            np.full(m, np.nan),
            np.full(n, NO_TS, dtype=np.int64),
            np.full(n, NO_TS, dtype=np.int64),
            np.full(m, NO_TS, dtype=np.int64),
            np.full(n, NO_TS, dtype=np.int64),
            np.full(m, NO_TS, dtype=np.int64),
            np.zeros(trends, dtype=np.int64),
            np.full(n, NO_TS, dtype=np.int64),
            np.full(m, NO_TS, dtype=np.int64),
            np.full((m, SIDES), NO_TS, dtype=np.int64),
        )

    def with_lateness(self, late_depth: int) -> CoreState:
        """This state with a lateness window of `late_depth` readings per sensor (0: none): no
        readings kept, the checkpoint at the state as it is (nothing before now can be rewound);
        for a fresh state, a restored one, or a table whose window changed."""
        n = self.last_ts.shape[0]
        if not late_depth:
            fresh = CoreState.empty(0)
            return replace(self, **{f: getattr(fresh, f) for f in _LATE_FIELDS})
        return replace(
            self,
            ring_ts=np.zeros((n, late_depth), dtype=np.int64),
            ring_v=np.full((n, late_depth), np.nan),
            ring_q=np.zeros((n, late_depth), dtype=np.uint8),
            ring_n=np.zeros(n, dtype=np.uint8),
            ck_raw=self.raw.copy(),
            ck_active=self.active.copy(),
            ck_run_start=self.run_start.copy(),
            ck_run_count=self.run_count.copy(),
            ck_level=self.level.copy(),
            ck_last_ts=self.last_ts.copy(),
            ck_last_data=self.last_data.copy(),
            ck_last_value=self.last_value.copy(),
            ck_frozen_since=self.frozen_since.copy(),
            ck_maint_since=self.maint_since.copy(),
            ck_calib_at=self.calib_at.copy(),
            told=np.full((n, SIDES), NO_TS, dtype=np.int64),
        )

    def with_trends(self, trends: int, depth: int) -> CoreState:
        """This state with empty trend buffers of `trends` rows (a new table, or a fresh state)."""
        fresh = CoreState.empty(0, trends, depth)
        return replace(
            self,
            hist_ts=fresh.hist_ts,
            hist_v=fresh.hist_v,
            hist_n=fresh.hist_n,
            hist_head=fresh.hist_head,
            hist_base=fresh.hist_base,
        )

    def with_ring_offsets(self) -> CoreState:
        """This state with its trend times as offsets (`hist_ts` int32 from `hist_base`): a
        state saved before them holds absolute int64 times and no `hist_base` (and, older
        still, right-aligned rows without `hist_head`); each row is based at its newest."""
        m = self.hist_n.shape[0]
        if self.hist_ts.dtype == np.int32 and self.hist_base.shape == (m,):
            return self
        absolute = self.hist_ts.astype(np.int64)
        if self.hist_base.shape == (m,):
            absolute += self.hist_base[:, None]
        keep = absolute.shape[1]
        head = self.hist_head if self.hist_head.shape == (m,) else np.zeros(m, np.int16)
        newest = (head.astype(np.int64) - 1) % max(keep, 1)
        base = np.zeros(m, dtype=np.int64)
        if keep:
            has = self.hist_n > 0
            base[has] = absolute[np.flatnonzero(has), newest[has]]
        offsets = ring_offsets(absolute, base[:, None])
        return replace(self, hist_ts=offsets, hist_base=base, hist_head=head)

    def aligned(self, rows: I64) -> tuple[I64, npt.NDArray[np.float64], I64]:
        """The trend buffers of `rows` right-aligned (oldest first, the newest in the last
        column): ts, values (columns before the kept ones are garbage) and the counts."""
        keep = self.hist_ts.shape[1]
        slots = (self.hist_head[rows].astype(np.int64)[:, None] + np.arange(keep)[None, :]) % keep
        hts: I64 = np.take_along_axis(self.hist_ts[rows], slots, axis=1).astype(np.int64)
        hts += self.hist_base[rows][:, None]
        hv: npt.NDArray[np.float64] = np.take_along_axis(self.hist_v[rows], slots, axis=1)
        return hts, hv, self.hist_n[rows].astype(np.int64)

    def trend_readings(self, row: int) -> list[tuple[int, float]]:
        """The readings trend row `row` keeps, oldest first."""
        ts, v, n = self.aligned(np.array([row], dtype=np.int64))
        k = ts.shape[1] - int(n[0])
        return [(int(t), float(x)) for t, x in zip(ts[0, k:], v[0, k:], strict=True)]

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
    late: int  # readings not judged for being late (too late for the lateness window)
    skipped: int  # the others: unwatched sensors, bad quality, duplicates
    rewound: int = 0  # late readings judged in order within the lateness window
    late_in_window: int = 0  # of `late`: within the window's time but before the checkpoint


_LATE_FIELDS = (
    "ring_ts",
    "ring_v",
    "ring_q",
    "ring_n",
    "ck_raw",
    "ck_active",
    "ck_run_start",
    "ck_run_count",
    "ck_level",
    "ck_last_ts",
    "ck_last_data",
    "ck_last_value",
    "ck_frozen_since",
    "ck_maint_since",
    "ck_calib_at",
    "told",
)
# the per-sensor fields a checkpoint keeps (as `ck_<name>`)
CK_FIELDS = (
    "raw",
    "active",
    "run_start",
    "run_count",
    "level",
    "last_ts",
    "last_data",
    "last_value",
    "frozen_since",
    "maint_since",
    "calib_at",
)

Part = tuple[I64, I64, npt.NDArray[np.float64], int | npt.NDArray[np.int64], I64, I64]


def level_changes(
    s: I64,
    t: I64,
    v: npt.NDArray[np.float64],
    after: I64,
    seed: I64,
    starts: npt.NDArray[np.intp],
    side: int,
) -> Part:
    """The transitions of a side over sorted segments: the rows whose level `after` differs
    from the row's before in its segment (`seed`, the level before the batch, at a segment's
    first row `starts`)."""
    before = np.empty_like(after)
    before[1:] = after[:-1]
    before[starts] = seed
    rows = np.flatnonzero(after != before)
    return s[rows], t[rows], v[rows], side, before[rows], after[rows]


def as_part(tr: Transitions) -> Part:
    """Transitions as a part to `assemble` with others."""
    return (
        tr.sensor.astype(np.int64),
        tr.ts,
        tr.value,
        tr.side.astype(np.int64),
        tr.before.astype(np.int64),
        tr.after.astype(np.int64),
    )


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
    order = by_sensor_time(sensor, ts, side) if len(parts) > 1 else np.arange(ts.shape[0])
    return Transitions(
        sensor[order].astype(np.int32),
        ts[order],
        value[order],
        side[order].astype(np.uint8),
        before[order].astype(np.int8),
        after[order].astype(np.int8),
    )
