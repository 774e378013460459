"""Fleet analytics settings: per-class limits and geofences (pydantic v2, frozen, validated once).

Defaults follow DOMAIN.md section 3.1: hazmat 60 km/h (80 on expressways), coaches and charter
buses 100 on expressways; at night (22:00-06:00 China Standard Time) coaches and charters 80 % of
the day limit (the passenger rule), hazmat its day limits;
continuous driving 4 h by day and 2 h at night, a rest of 20 min or more; 8 h in any 24 h (or in
the calendar day: `daily_window`); long-distance coaches stop between 02:00 and 05:00. Every
number is configurable.

`remind` (per class, or per vehicle in its `VehicleSpec`) says what the driver hears when the hub
raises one of the vehicle's alarms: a text the JT/T 808 gateway sends to the terminal (0x8300,
shown and read aloud), GBK as the standard says; off unless configured.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from telemetry.activesafety import EVENT_TYPES, SAFETY_KINDS
from telemetry.configbase import Frozen as _Frozen
from telemetry.configbase import Label, some

__all__ = [
    "REMIND_MAX_CHARS",
    "ActiveSafety",
    "ClassLimits",
    "CorridorFence",
    "FleetSettings",
    "ForbiddenArea",
    "LatLon",
    "RemindKind",
    "RemindText",
    "Reminders",
    "SpeedZone",
    "TimeWindow",
    "VehicleClass",
]

VehicleClass = Literal["hazmat", "coach", "charter"]
# the fleet's lateness window's default (s): none, as the sensors' `lateness_s`: with one, the
# fleet's core keeps each vehicle's recent fixes and a checkpoint (about 5.4 KB a vehicle) and
# judges positions in order about a fifth slower; 1800 covers the blind-area backlog (0x0704) of
# a long tunnel sent after the live fixes (docs/vehicles.md)
LATENESS_S = 0.0
HHMM = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
FenceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
LatLon = tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]

# the alarms of the hub's own judgement a driver can act on at once: a reminder for them
# (offline, drift and offline_moved are not the driver's to mend; the terminal's own alarms,
# terminal_*, it announces itself)
RemindKind = Literal[
    "overspeed",
    "fatigue",
    "fatigue_daily",
    "fatigue_weekly",
    "night_ban",
    "corridor",
    "forbidden_area",
    "above",
]
# a reminder is heard while driving: a sentence or two (a terminal's TTS reads ~4 characters a
# second), far within one 0x8300 (1021 bytes of text, 2 a character in GBK)
REMIND_MAX_CHARS = 100


def _remind_text(text: str) -> str:
    """One line of GBK text: the 0x8300 text is GBK (JT/T 808 STRING), a character GBK cannot
    encode (an emoji, a rare character) would never reach the driver."""
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError("a reminder is one line without control characters")
    bad = [c for c in text if not _gbk(c)]
    if bad:
        raise ValueError(
            f"a reminder goes to the terminal in GBK (JT/T 808 0x8300), which cannot encode "
            f"{', '.join(repr(c) for c in dict.fromkeys(bad))}: use other characters"
        )
    return text


def _gbk(char: str) -> bool:
    try:
        char.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


RemindText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=REMIND_MAX_CHARS),
    AfterValidator(_remind_text),
]
Reminders = dict[RemindKind, RemindText]


class TimeWindow(_Frozen):
    """A daily window of local time [start, end); it may wrap midnight; start == end is all day."""

    start: HHMM
    end: HHMM

    def minutes(self) -> tuple[int, int]:
        def to_min(text: str) -> int:
            hh, mm = text.split(":")
            return int(hh) * 60 + int(mm)

        return to_min(self.start), to_min(self.end)


class ClassLimits(_Frozen):
    """The rules of one vehicle class."""

    speed_kmh: float = Field(default=60.0, gt=0, le=250, description="off expressways")
    expressway_kmh: float = Field(default=80.0, gt=0, le=250, description="in expressway zones")
    night_speed_factor: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="the night limit's share of the day's; default by class: 0.8 for coaches "
        "and charters (the passenger rule), 1.0 for hazmat (its 80/60 km/h hold at night)",
    )
    overspeed_min_s: float = Field(default=10.0, ge=0, le=3600, description="JT/T 808 0x0056")
    continuous_day_s: float = Field(default=4 * 3600.0, gt=0, le=86400)
    continuous_night_s: float = Field(default=2 * 3600.0, gt=0, le=86400)
    min_rest_s: float = Field(default=1200.0, gt=0, le=86400)
    rest_needs_acc_off: bool = Field(
        default=False,
        description="a stop counts as rest only with the engine off (熄火休息): a stopped fix "
        "saying acc_on true neither starts nor extends a rest, nor is it driving; off by "
        "default (a coach idling for its air conditioning while its driver rests)",
    )
    daily_driving_s: float = Field(default=8 * 3600.0, gt=0, le=86400)
    daily_window: Literal["rolling", "calendar"] = Field(
        default="rolling",
        description="what daily_driving_s limits: the driving in the last 24 h at each "
        "fix (rolling: the passenger rule, 24小时内累计驾驶时间不超过8小时) or in the local "
        "calendar day (calendar: JT/T 808 alarm bit 18, 当天累计驾驶超时)",
    )
    weekly_driving_s: float | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description="driving in any 7 consecutive local days; default by class: 44 h for "
        "coaches and charters (the passenger rule), none for hazmat; 0: none",
    )
    banned: TimeWindow | None = Field(default=None, description="no moving at all in this window")
    remind: Reminders = Field(
        default_factory=dict,
        description="alarm kind -> the text the driver hears (JT/T 808 0x8300, display and "
        "TTS) when the hub raises that alarm of a vehicle of the class; none by default",
    )


# what a class block leaves out is its class's default, not hazmat's (`ClassLimits`' own): a
# `charter: {banned: ...}` alone judged charters at 60/80 km/h (helper-116)
_CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "hazmat": {},
    "coach": {
        "speed_kmh": 100.0,
        "expressway_kmh": 100.0,
        "banned": {"start": "02:00", "end": "05:00"},
    },
    "charter": {"speed_kmh": 100.0, "expressway_kmh": 100.0},
}


def _coach() -> ClassLimits:
    return ClassLimits.model_validate(_CLASS_DEFAULTS["coach"])


def _charter() -> ClassLimits:
    return ClassLimits.model_validate(_CLASS_DEFAULTS["charter"])


class _Shape(_Frozen):
    """A polygon (closed implicitly) or a corridor: `buffer_m` metres around a polyline."""

    polygon: tuple[LatLon, ...] | None = None
    polyline: tuple[LatLon, ...] | None = None
    buffer_m: float | None = Field(default=None, gt=0, le=100_000)
    name: Label = Field(default="", description="for people: an alarm of the area names it")

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if (self.polygon is None) == (self.polyline is None):
            raise ValueError("a geofence sets exactly one of 'polygon' and 'polyline'")
        if self.polygon is not None and len(set(self.polygon)) < 3:
            raise ValueError("a polygon needs at least three distinct vertices")
        if self.polyline is not None:
            if self.buffer_m is None:
                raise ValueError("a polyline needs 'buffer_m'")
            if len(set(self.polyline)) < 2:
                raise ValueError("a polyline needs at least two distinct points")
        elif self.buffer_m is not None:
            raise ValueError("'buffer_m' goes with 'polyline' only")
        return self


class SpeedZone(_Shape):
    """Inside: the class's expressway limit applies (`expressway`), and a posted `limit_kmh`
    caps it (a lower posted limit prevails)."""

    kind: Literal["speed_zone"] = "speed_zone"
    id: FenceId
    expressway: bool = False
    limit_kmh: float | None = Field(default=None, gt=0, le=250)

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not self.expressway and self.limit_kmh is None:
            raise ValueError("a speed zone sets 'expressway', 'limit_kmh' or both")
        return self


class CorridorFence(_Shape):
    """An approved route: the listed vehicles ("vehicle" in any tenant or "tenant/vehicle") raise
    an alarm on leaving it and on coming back."""

    kind: Literal["corridor"] = "corridor"
    id: FenceId
    vehicles: tuple[str, ...]

    @field_validator("vehicles")
    @classmethod
    def _some_vehicles(cls, vehicles: tuple[str, ...]) -> tuple[str, ...]:
        return some(vehicles, "at least 1 vehicle is needed: a corridor of no vehicle judges none")


class ForbiddenArea(_Shape):
    """Vehicles of `classes` raise an alarm on entering during one of `windows` (none: always)."""

    kind: Literal["forbidden"] = "forbidden"
    id: FenceId
    classes: tuple[VehicleClass, ...] = ("hazmat",)
    windows: tuple[TimeWindow, ...] = ()


SafetyTier = Literal["blue", "yellow", "orange", "red"]
_SAFETY_EVENTS = frozenset(k for (_, t), k in SAFETY_KINDS.items() if t in EVENT_TYPES)


def _safety_kind(kind: str) -> str:
    if kind not in SAFETY_KINDS.values():
        raise ValueError(f"{kind!r} is no active-safety kind ({', '.join(SAFETY_KINDS.values())})")
    return kind


class ActiveSafety(_Frozen):
    """The alarms of the ADAS and DSM events of 苏标 terminals (docs/vehicles.md)."""

    tiers: dict[Annotated[str, AfterValidator(_safety_kind)], tuple[SafetyTier, SafetyTier]] = (
        Field(
            default_factory=dict,
            description="kind -> [tier of a first-level alarm, tier of a second-level one]; "
            "default [yellow, orange] for every kind",
        )
    )
    alarm_events: tuple[Annotated[str, AfterValidator(_safety_kind)], ...] = Field(
        default=(),
        description="the event kinds (adas_road_sign, adas_capture, dsm_capture, "
        "dsm_driver_change) raised as alarms too; by default they are counted, not alarmed",
    )

    end_timeout_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="an episode (a 苏标 alarm id) whose end has not come this long after its "
        "start, in the vehicle's event time, ends then: 'end not received'",
    )

    @field_validator("alarm_events")
    @classmethod
    def _events_only(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        alarms = sorted(set(kinds) - _SAFETY_EVENTS)
        if alarms:
            raise ValueError(f"{', '.join(alarms)}: alarms already (list events here)")
        return kinds

    def tier(self, kind: str, level: int) -> str:
        """The tier of an alarm of `kind` at the block's `level` (2 and above: second)."""
        first, second = self.tiers.get(kind, ("yellow", "orange"))
        return second if level >= 2 else first

    def alarmed(self, kind: str) -> bool:
        return kind not in _SAFETY_EVENTS or kind in self.alarm_events


Geofence = Annotated[SpeedZone | CorridorFence | ForbiddenArea, Field(discriminator="kind")]


class FleetSettings(_Frozen):
    hazmat: ClassLimits = ClassLimits()
    coach: ClassLimits = Field(default_factory=_coach)
    charter: ClassLimits = Field(default_factory=_charter)
    utc_offset_min: int = Field(default=480, ge=-720, le=840, description="China Standard Time")
    night: TimeWindow = TimeWindow(start="22:00", end="06:00")
    moving_kmh: float = Field(default=5.0, ge=0, le=50, description="driving: speed above this")
    max_drive_gap_s: float = Field(
        default=1200.0, gt=0, le=86400, description="a gap while moving counts this much driving"
    )
    offline_s: float = Field(default=1200.0, gt=0, le=7 * 86400)
    offline_move_m: float = Field(
        default=1000.0,
        ge=0,
        le=1_000_000,
        description="离线位移: a fix after a silence of offline_s or more, this far from the "
        "last one, raises offline_moved (0: never)",
    )
    drift_kmh: float = Field(default=160.0, gt=0, le=2000)
    drift_quiet_s: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="a GPS drift is one alarm per episode: it clears at the first plausible "
        "fix this long after the episode's last implausible one (0: the first plausible fix)",
    )
    track_gap_s: float = Field(default=300.0, gt=0, le=86400, description="KPI: complete track")
    lateness_s: float = Field(
        default=LATENESS_S,
        ge=0,
        le=3600,
        description="the fleet's lateness window: a position this much older than its "
        "vehicle's newest is still judged in event-time order (0: late positions are stored "
        "and counted, not judged); the sensors' own is the top-level lateness_s",
    )
    exempt: tuple[str, ...] = Field(default=(), description="coaches exempt from the night ban")
    geofences: tuple[Geofence, ...] = ()
    active_safety: ActiveSafety = Field(
        default_factory=ActiveSafety,
        description="the alarms of 苏标 terminals' ADAS and DSM events (tiers, events alarmed)",
    )

    @model_validator(mode="before")
    @classmethod
    def _class_defaults(cls, data: Any) -> Any:
        """A class block given in part keeps its class's defaults for the rest (`banned: null`
        says no ban)."""
        if isinstance(data, dict):
            data = dict(data)
            for name, base in _CLASS_DEFAULTS.items():
                given = data.get(name)
                if isinstance(given, dict):
                    data[name] = {**base, **given}
        return data

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [g.id for g in self.geofences]
        if len(set(ids)) != len(ids):
            raise ValueError("geofence ids must be unique")
        if sum(isinstance(g, ForbiddenArea) for g in self.geofences) > 64:
            raise ValueError("at most 64 forbidden areas (a 64-bit mask per vehicle)")
        return self

    def limits(self, vehicle_class: VehicleClass) -> ClassLimits:
        limits: ClassLimits = getattr(self, vehicle_class)
        return limits

    def reminder(self, vehicle_class: VehicleClass, own: Reminders | None, kind: str) -> str | None:
        """The text the driver hears when an alarm of `kind` is raised: the vehicle's own
        `remind` when it has one (it replaces the class's whole: `{}` is none), else its
        class's; None when there is none."""
        texts = own if own is not None else self.limits(vehicle_class).remind
        return texts.get(kind)  # type: ignore[call-overload, no-any-return]

    def weekly_s(self, vehicle_class: VehicleClass) -> float:
        """Driving allowed in any 7 consecutive local days (0: no limit): as set, else 44 h for
        passenger vehicles (道路旅客运输企业安全管理规范 Art. 38) and none for hazmat."""
        given = self.limits(vehicle_class).weekly_driving_s
        if given is not None:
            return given
        return 0.0 if vehicle_class == "hazmat" else 44 * 3600.0

    def night_factor(self, vehicle_class: VehicleClass) -> float:
        """The night limit's share of the day's: as set, else 1.0 for hazmat (危险货物道路运输
        安全管理办法 Art. 46: 80 / 60 km/h day and night) and 0.8 for passenger vehicles."""
        given = self.limits(vehicle_class).night_speed_factor
        if given is not None:
            return given
        return 1.0 if vehicle_class == "hazmat" else 0.8
