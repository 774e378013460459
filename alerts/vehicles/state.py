"""Fleet state (arrays by vehicle slot), event columns and event kinds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "CREW",
    "NO_KEY",
    "RANK",
    "ROLL_SLOTS",
    "ROLL_SLOT_MS",
    "EventKind",
    "FleetEvents",
    "FleetState",
    "Positions",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
NO_KEY = -(1 << 62)
CREW = 2  # drivers kept per vehicle besides the one driving (a double crew, and one more)
# the rolling 24 h of the daily rule (`alerts.vehicles.fatigue`): driving per slot of event time
# (5 min, aligned on the epoch), the 288 slots of 24 h and the fix's own
ROLL_SLOT_MS = 300_000
ROLL_SLOTS = 289


class Positions(Protocol):
    """Vehicle positions as columns (`ingest.store.PositionBatch` is one); `vehicle` is the
    registry index of the vehicle's speed sensor, `ts` the event time in ms since the epoch."""

    @property
    def vehicle(self) -> npt.NDArray[np.int32]: ...
    @property
    def ts(self) -> I64: ...
    @property
    def lat(self) -> F64: ...
    @property
    def lon(self) -> F64: ...
    @property
    def speed_kmh(self) -> F64: ...

    # optional: `acc`, int8 ACC of each position (1 on, 0 off, -1 not said), read by the
    # classes whose rest needs the engine off (`alerts.vehicles.fatigue`); optional: `driver`,
    # int64 codes of the driver of each position (0: not said), whose fatigue is counted per
    # driver (`alerts.vehicles.crew`)


class EventKind(IntEnum):
    """What happened; the `_END` kinds end an episode raised before (or restored)."""

    OVERSPEED = 1  # value: speed km/h; ref: the limit applied, 0.1 km/h
    FATIGUE_CONTINUOUS = 2  # value: continuous driving s
    FATIGUE_DAILY = 3  # value: driving s in the local day, or in 24 h (`daily_window: rolling`)
    BANNED_HOURS = 4  # value: speed km/h (coaches 02:00-05:00)
    CORRIDOR_LEAVE = 5  # value: distance to the route m; ref: corridor number
    CORRIDOR_ENTER = 6  # value: distance to the route m; ref: corridor number
    FORBIDDEN_ENTER = 7  # value: speed km/h; ref: forbidden area number
    OFFLINE = 8  # value: silence s so far (to the next fix, or to `now`)
    DRIFT = 9  # at the first implausible fix of an episode; value: implied speed km/h
    OVERSPEED_END = 10  # at the first fix not above the limit; value: its speed km/h
    FATIGUE_CONTINUOUS_END = 11  # when the rest reached `min_rest_s`; value: rest s at the fix
    # at the local midnight ending the day, value: driving s that day; rolling: at the slot
    # boundary the 24 h fell to the limit, value: the 24 h's driving s then
    FATIGUE_DAILY_END = 12
    FORBIDDEN_END = 13  # out of every forbidden area (or window); value: speed km/h
    OFFLINE_END = 14  # at the fix ending the silence; value: silence s
    OFFLINE_MOVED = 15  # at the fix after a silence, far from the last one; value: distance m
    FATIGUE_WEEKLY = 16  # value: driving s in the 7 local days ending with the fix's
    FATIGUE_WEEKLY_END = 17  # at the local midnight the window fell to the limit; value: its s
    DRIFT_END = 18  # at the first plausible fix `drift_quiet_s` after the episode's last
    # implausible one; value: the implausible fixes in the episode (a count)


# Events of one vehicle at one event time are ordered by this rank, then by ref: the kind's
# number, except that a day's end comes before anything of the next day (an interval longer
# than the daily limit ends a day and raises the next at the same fix).
RANK: npt.NDArray[np.int8] = np.arange(max(EventKind) + 1, dtype=np.int8) + 2
RANK[EventKind.FATIGUE_DAILY_END] = 0
RANK[EventKind.FATIGUE_WEEKLY_END] = 1


@dataclass(frozen=True, slots=True, eq=False)
class FleetEvents:
    """Events as columns, ordered by (vehicle, ts, RANK[kind], ref); `vehicle` is the registry
    index, `ts` the event time in ms, `ref` the geofence number within its kind or -1."""

    vehicle: npt.NDArray[np.int32]
    kind: npt.NDArray[np.int8]
    ts: I64
    value: F64
    ref: npt.NDArray[np.int32]
    # the vehicle's driver (code; 0: not known) when the event was made: the one whose driving
    # a fatigue alarm is about (`alerts.vehicles.crew`), the one at the wheel for the others
    driver: I64

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def rows(self) -> list[tuple[int, EventKind, int, float, int]]:
        return [
            (int(v), EventKind(int(k)), int(t), float(x), int(r))
            for v, k, t, x, r in zip(
                self.vehicle, self.kind, self.ts, self.value, self.ref, strict=True
            )
        ]


_CREW = (
    "driver",
    "driver_said",
    "crew_driver",
    "crew_out",
    "crew_cont",
    "crew_rest",
    "crew_day",
    "crew_daily",
    "crew_week_ms",
    "crew_week_day",
    "crew_roll_ms",
    "crew_roll_slot",
)
# copied on write (`FleetState.own_week`, `FleetState.own_crew`): they change rarely
_SHARED = frozenset({"week_ms", "week_day", *_CREW})


@dataclass(slots=True, eq=False)
class FleetState:
    """What the rules remember per vehicle slot between batches."""

    has_fix: B
    last_ts: I64
    last_lat: F64
    last_lon: F64
    last_moving: B
    last_acc: npt.NDArray[np.int8]  # the last fix's ACC: 1 on, 0 off, -1 not said
    cont_ms: I64  # continuous driving since the last qualifying rest
    rest_ms: I64  # length of the current stop so far
    cont_raised: B
    day: I64  # local day of `daily_ms`
    daily_ms: I64
    daily_raised: B  # a daily episode, of the day or of the rolling 24 h (the class's window)
    # the rolling 24 h: driving (ms) of the event-time slot q (`ROLL_SLOT_MS`) at [slot,
    # q % ROLL_SLOTS], of the slots up to `roll_slot`, the vehicle's last fix's (NO_KEY: none)
    roll_ms: npt.NDArray[np.int32]  # (vehicles, ROLL_SLOTS)
    roll_slot: I64
    roll_sum: I64  # the sum of `roll_ms` (the 24 h up to the last fix), kept with it
    over_active: B
    over_since: I64
    over_raised: B
    ban_key: I64  # local day of the window start of the last banned-hours event
    in_route: B  # unknown counts as inside: a first fix off the route raises a leave
    forbidden: npt.NDArray[np.uint64]  # bit f: inside forbidden area f during its window
    offline_raised: B
    heard: I64  # the hub's clock (ms) when a fix of the vehicle last arrived and was judged
    week_ms: I64  # (vehicles, 7): driving of local day d at [slot, d % 7] ...
    week_day: I64  # ... and which day that is (NO_KEY: none)
    weekly_raised: B
    # a GPS drift episode (`alerts.vehicles.drift`): open, the time of its last implausible fix
    # and their count (both 0 when not open)
    drift_open: B
    drift_last: I64
    drift_count: npt.NDArray[np.int32]
    # the driver of each vehicle (a code, 0: not known) and the drivers kept who drove it before,
    # with their fatigue as they left it (`alerts.vehicles.crew`): (vehicles, CREW) ...
    driver: I64
    driver_said: I64  # the driver a position said last (0: none), taken at a stop
    crew_driver: I64  # 0: an empty place
    crew_out: I64  # when the driver left (the vehicle's last fix before the change)
    crew_cont: I64
    crew_rest: I64
    crew_day: I64
    crew_daily: I64
    crew_week_ms: I64  # (vehicles, CREW, 7)
    crew_week_day: I64
    crew_roll_ms: npt.NDArray[np.int32]  # (vehicles, CREW, ROLL_SLOTS)
    crew_roll_slot: I64  # (vehicles, CREW)

    @classmethod
    def new(cls, n: int) -> FleetState:
        def z(dtype: type) -> npt.NDArray[np.generic]:
            return np.zeros(n, dtype=dtype)

        return cls(
            has_fix=z(np.bool_),  # type: ignore[arg-type]
            last_ts=z(np.int64),  # type: ignore[arg-type]
            last_lat=z(np.float64),  # type: ignore[arg-type]
            last_lon=z(np.float64),  # type: ignore[arg-type]
            last_moving=z(np.bool_),  # type: ignore[arg-type]
            last_acc=np.full(n, -1, dtype=np.int8),
            cont_ms=z(np.int64),  # type: ignore[arg-type]
            rest_ms=z(np.int64),  # type: ignore[arg-type]
            cont_raised=z(np.bool_),  # type: ignore[arg-type]
            day=np.full(n, NO_KEY, dtype=np.int64),
            daily_ms=z(np.int64),  # type: ignore[arg-type]
            daily_raised=z(np.bool_),  # type: ignore[arg-type]
            roll_ms=np.zeros((n, ROLL_SLOTS), dtype=np.int32),
            roll_slot=np.full(n, NO_KEY, dtype=np.int64),
            roll_sum=z(np.int64),  # type: ignore[arg-type]
            over_active=z(np.bool_),  # type: ignore[arg-type]
            over_since=z(np.int64),  # type: ignore[arg-type]
            over_raised=z(np.bool_),  # type: ignore[arg-type]
            ban_key=np.full(n, NO_KEY, dtype=np.int64),
            in_route=np.ones(n, dtype=np.bool_),
            forbidden=z(np.uint64),  # type: ignore[arg-type]
            offline_raised=z(np.bool_),  # type: ignore[arg-type]
            heard=z(np.int64),  # type: ignore[arg-type]
            week_ms=np.zeros((n, 7), dtype=np.int64),
            week_day=np.full((n, 7), NO_KEY, dtype=np.int64),
            weekly_raised=z(np.bool_),  # type: ignore[arg-type]
            drift_open=z(np.bool_),  # type: ignore[arg-type]
            drift_last=z(np.int64),  # type: ignore[arg-type]
            drift_count=z(np.int32),  # type: ignore[arg-type]
            driver=z(np.int64),  # type: ignore[arg-type]
            driver_said=z(np.int64),  # type: ignore[arg-type]
            crew_driver=np.zeros((n, CREW), dtype=np.int64),
            crew_out=np.zeros((n, CREW), dtype=np.int64),
            crew_cont=np.zeros((n, CREW), dtype=np.int64),
            crew_rest=np.zeros((n, CREW), dtype=np.int64),
            crew_day=np.full((n, CREW), NO_KEY, dtype=np.int64),
            crew_daily=np.zeros((n, CREW), dtype=np.int64),
            crew_week_ms=np.zeros((n, CREW, 7), dtype=np.int64),
            crew_week_day=np.full((n, CREW, 7), NO_KEY, dtype=np.int64),
            crew_roll_ms=np.zeros((n, CREW, ROLL_SLOTS), dtype=np.int32),
            crew_roll_slot=np.full((n, CREW), NO_KEY, dtype=np.int64),
        )

    def copy(self) -> FleetState:
        """A copy to change; the 7 days (`week_ms`, `week_day`) and the drivers are shared
        until written (`weekly` copies the days first: they change at day turns only;
        `alerts.vehicles.crew` the drivers, at a change of driver)."""
        return FleetState(
            **{
                f.name: getattr(self, f.name) if f.name in _SHARED else getattr(self, f.name).copy()
                for f in dataclasses.fields(self)
            }
        )

    def own_week(self) -> None:
        """Copy the shared 7 days before writing them."""
        self.week_ms = self.week_ms.copy()
        self.week_day = self.week_day.copy()

    def own_crew(self) -> None:
        """Copy the shared drivers before writing them (at a change of driver)."""
        for name in _CREW:
            setattr(self, name, getattr(self, name).copy())
