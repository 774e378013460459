"""`FleetSettings` and the registry's vehicles compiled into per-vehicle numpy columns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerts.vehicles.errors import FleetConfigError
from alerts.vehicles.fencegrid import FenceGrid
from alerts.vehicles.geo import Shape, ShapeSet, compile_shape
from alerts.vehicles.settings import (
    CorridorFence,
    FleetSettings,
    ForbiddenArea,
    SpeedZone,
    VehicleClass,
)
from telemetry.registry import VehicleInfo

__all__ = [
    "CLASSES",
    "DAY_MS",
    "FleetTable",
    "Zone",
    "compile_fleet",
    "in_window",
    "in_window_one",
    "window_close",
    "window_close_one",
]

CLASSES: tuple[VehicleClass, ...] = ("hazmat", "coach", "charter")
DAY_MS = 86_400_000
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class Zone:
    """A compiled geofence; `windows` in ms of the local day, `classes` as a mask by class code."""

    id: str
    shape: Shape
    expressway: bool = False
    limit_kmh: float = np.inf
    classes: tuple[bool, bool, bool] = (True, True, True)
    windows: tuple[tuple[int, int], ...] = ()
    name: str = ""  # the geofence's `name:` ("" when none)

    @property
    def said(self) -> str:
        """How an alarm names it: `name (id)`, or the id."""
        return f"{self.name} ({self.id})" if self.name else self.id


def in_window(ts: I64, offset_ms: int, window: tuple[int, int]) -> B:
    """Whether each event time falls in a daily local-time window [start, end) (ms of the day)."""
    start, end = window
    tod = (ts + offset_ms) % DAY_MS
    if start == end:
        return np.ones(ts.shape, dtype=np.bool_)
    if start < end:
        return (tod >= start) & (tod < end)
    return (tod >= start) | (tod < end)


def in_window_one(ts: int, offset_ms: int, window: tuple[int, int]) -> bool:
    start, end = window
    tod = (ts + offset_ms) % DAY_MS
    if start == end:
        return True
    if start < end:
        return start <= tod < end
    return tod >= start or tod < end


def window_close(ts: I64, offset_ms: int, window: tuple[int, int]) -> I64:
    """The first time after each `ts` at which a daily local-time window ends (meaningful for
    times inside it: the moment it closes behind them)."""
    tod = (ts + offset_ms) % DAY_MS
    out: I64 = ts + (window[1] - tod) % DAY_MS
    return out


def window_close_one(ts: int, offset_ms: int, window: tuple[int, int]) -> int:
    return ts + (window[1] - (ts + offset_ms) % DAY_MS) % DAY_MS


@dataclass(frozen=True, slots=True, eq=False)
class FleetTable:
    """Per-vehicle columns by dense slot; `slot_of[registry index]` is the slot or -1."""

    settings: FleetSettings
    ids: tuple[str, ...]  # "tenant/vehicle" per slot
    index: I32  # registry index (the batches' `vehicle`) per slot
    slot_of: I32
    cls: npt.NDArray[np.int8]
    speed_kmh: F64
    expressway_kmh: F64
    night_factor: F64
    overspeed_ms: I64
    cont_day_ms: I64
    cont_night_ms: I64
    min_rest_ms: I64
    # a stopped fix with ACC on is no rest (`rest_needs_acc_off`; `alerts.vehicles.fatigue`)
    rest_needs_acc_off: B
    daily_ms: I64
    daily_rolling: B  # the daily limit is of the last 24 h (`daily_window: rolling`), not the day
    weekly_ms: I64  # 0: no limit
    ban_start_ms: I64  # -1: no ban
    ban_end_ms: I64
    route: I32  # corridor number or -1
    zones: tuple[Zone, ...]  # speed zones
    corridors: tuple[Zone, ...]
    forbidden: tuple[Zone, ...]
    offset_ms: int
    night: tuple[int, int]
    moving_kmh: float
    offline_ms: int
    offline_move_m: float  # 0: never
    drift_kmh: float
    drift_quiet_ms: int  # a drift episode ends this long after its last implausible fix
    drive_gap_ms: int
    track_gap_ms: int
    lateness_ms: int  # the lateness window (alerts.vehicles.lateness); 0: none
    fences: FenceGrid  # over the speed zones, forbidden areas and corridors, in that order
    corridor_set: ShapeSet  # the corridors' segments, by corridor number

    def __len__(self) -> int:
        return int(self.index.shape[0])


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _window_ms(start_end: tuple[int, int]) -> tuple[int, int]:
    return start_end[0] * 60_000, start_end[1] * 60_000


def compile_fleet(settings: FleetSettings, vehicles: Iterable[VehicleInfo]) -> FleetTable:
    """Give each vehicle a slot and its class's numbers; resolve vehicle references of the
    corridors and exemptions (``vehicle`` in any tenant, or ``tenant/vehicle``)."""
    infos = sorted(vehicles, key=lambda v: v.speed_sensor)
    n = len(infos)
    ids = tuple(f"{v.tenant}/{v.spec.id}" for v in infos)
    by_ref: dict[str, list[int]] = {}
    for slot, v in enumerate(infos):
        by_ref.setdefault(v.spec.id, []).append(slot)
        by_ref.setdefault(f"{v.tenant}/{v.spec.id}", []).append(slot)

    def resolve(ref: str, where: str) -> list[int]:
        slots = by_ref.get(ref)
        if slots is None:
            raise FleetConfigError(f"{where}: no vehicle {ref!r}")
        return slots

    index = np.array([v.speed_sensor for v in infos], dtype=np.int32)
    size = int(index.max()) + 1 if n else 0
    slot_of = np.full(size, -1, dtype=np.int32)
    slot_of[index] = np.arange(n, dtype=np.int32)
    cls = np.array([CLASSES.index(v.spec.vehicle_class) for v in infos], dtype=np.int8)
    lim = [settings.limits(c) for c in CLASSES]

    def fcol(values: list[float]) -> F64:
        out: F64 = np.asarray(values, dtype=np.float64)[cls]
        return out

    def icol(values: list[int]) -> I64:
        out: I64 = np.asarray(values, dtype=np.int64)[cls]
        return out

    ban = [_window_ms(x.banned.minutes()) if x.banned else (-1, -1) for x in lim]
    exempt = np.zeros(n, dtype=np.bool_)
    for ref in settings.exempt:
        exempt[resolve(ref, "exempt")] = True
    ban_start = np.where(exempt, -1, icol([b[0] for b in ban]))
    ban_end = np.where(exempt, -1, icol([b[1] for b in ban]))

    route = np.full(n, -1, dtype=np.int32)
    zones: list[Zone] = []
    corridors: list[Zone] = []
    forbidden: list[Zone] = []
    for gi, fence in enumerate(settings.geofences):
        shape = compile_shape(fence.polygon, fence.polyline, fence.buffer_m)
        if isinstance(fence, SpeedZone):
            limit = np.inf if fence.limit_kmh is None else fence.limit_kmh
            zones.append(Zone(fence.id, shape, fence.expressway, float(limit)))
        elif isinstance(fence, CorridorFence):
            for ref in fence.vehicles:
                for slot in resolve(ref, f"geofences.{gi}.vehicles"):
                    if route[slot] >= 0:
                        raise FleetConfigError(
                            f"geofences.{gi}.vehicles: {ids[slot]} is on two corridors"
                        )
                    route[slot] = len(corridors)
            corridors.append(Zone(fence.id, shape, name=fence.name))
        else:
            assert isinstance(fence, ForbiddenArea)
            mask = ("hazmat" in fence.classes, "coach" in fence.classes, "charter" in fence.classes)
            wins = tuple(_window_ms(w.minutes()) for w in fence.windows)
            forbidden.append(Zone(fence.id, shape, classes=mask, windows=wins, name=fence.name))

    return FleetTable(
        settings=settings,
        ids=ids,
        index=index,
        slot_of=slot_of,
        cls=cls,
        speed_kmh=fcol([x.speed_kmh for x in lim]),
        expressway_kmh=fcol([x.expressway_kmh for x in lim]),
        night_factor=fcol([settings.night_factor(c) for c in CLASSES]),
        overspeed_ms=icol([_ms(x.overspeed_min_s) for x in lim]),
        cont_day_ms=icol([_ms(x.continuous_day_s) for x in lim]),
        cont_night_ms=icol([_ms(x.continuous_night_s) for x in lim]),
        min_rest_ms=icol([_ms(x.min_rest_s) for x in lim]),
        rest_needs_acc_off=np.asarray([x.rest_needs_acc_off for x in lim], dtype=np.bool_)[cls],
        daily_ms=icol([_ms(x.daily_driving_s) for x in lim]),
        daily_rolling=np.asarray([x.daily_window == "rolling" for x in lim], dtype=np.bool_)[cls],
        weekly_ms=icol([_ms(settings.weekly_s(c)) for c in CLASSES]),
        ban_start_ms=ban_start,
        ban_end_ms=ban_end,
        route=route,
        zones=tuple(zones),
        corridors=tuple(corridors),
        forbidden=tuple(forbidden),
        offset_ms=settings.utc_offset_min * 60_000,
        night=_window_ms(settings.night.minutes()),
        moving_kmh=settings.moving_kmh,
        offline_ms=_ms(settings.offline_s),
        offline_move_m=settings.offline_move_m,
        drift_kmh=settings.drift_kmh,
        drift_quiet_ms=_ms(settings.drift_quiet_s),
        drive_gap_ms=_ms(settings.max_drive_gap_s),
        track_gap_ms=_ms(settings.track_gap_s),
        lateness_ms=_ms(settings.lateness_s),
        fences=FenceGrid.build((*zones, *forbidden, *corridors)),
        corridor_set=ShapeSet.build([c.shape for c in corridors]),
    )
