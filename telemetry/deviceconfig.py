"""Devices in the configuration format: a device profile's register map (points, 4-20 mA scaling,
status registers), how to reach a device over Modbus (TCP, RTU over TCP, serial RTU) and how it
reports. Pure models; `telemetry.config` re-exports them.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from telemetry.configbase import Frozen, Ident, some
from telemetry.pointrepeat import (
    PointRepeat,
    StatusRepeat,
    bound_profile,
    bound_repeats,
    expand_points,
    expand_status,
    families,
    register_width,
)

__all__ = [
    "CurrentSpec",
    "DeviceProfile",
    "InlineProfiles",
    "ModbusSpec",
    "PointRepeat",
    "PointSpec",
    "ReportSpec",
    "SerialSpec",
    "StatusRepeat",
    "StatusSpec",
    "register_width",
]


class CurrentSpec(Frozen):
    """A 4-20 mA transmitter behind the register: the raw value is a current, judged by NAMUR
    NE 43 (below 3.6 mA or above 21 mA: sensor fault; 3.6-3.8 and 20.5-21 mA: saturated, out of
    range) and scaled linearly from 4-20 mA to eng_min-eng_max."""

    raw_4ma: float = Field(default=4000.0, description="raw value at 4 mA (default: µA)")
    raw_20ma: float = 20000.0
    eng_min: float
    eng_max: float

    @model_validator(mode="after")
    def _span(self) -> Self:
        if self.raw_20ma == self.raw_4ma or self.eng_max == self.eng_min:
            raise ValueError("the 4 mA and 20 mA points must differ, and so must eng_min/eng_max")
        return self


class PointSpec(Frozen):
    """One value a device exposes over Modbus (register addresses are 0-based).

    Byte and word order of multi-register values: ABCD big-endian, CDAB words swapped, BADC bytes
    swapped in each word, DCBA little-endian. The value is raw * scale + offset, or, with
    `current`, the 4-20 mA scaling."""

    name: Ident
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    dtype: Literal["bool", "bit", "int16", "uint16", "int32", "uint32", "float32", "float64"] = (
        "uint16"
    )
    bit: int | None = Field(default=None, ge=0, le=15, description="for dtype 'bit'")
    word_order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    current: CurrentSpec | None = None
    valid: tuple[float, float] | None = Field(
        default=None,
        description="[min, max] the point can physically read (after scaling): a value outside "
        "is a sensor fault, never a process value (garbage from a wrong address or word order, "
        "a failed transmitter)",
    )
    range: tuple[float, float] | None = Field(
        default=None,
        description="[min, max] the instrument measures (its span, 量程, after scaling): a value "
        "outside it but within `valid` is over or under range (quality out_of_range), still a "
        "measurement judged against the levels: a 0-4 % methane head reading 4.5 % is above "
        "its power-cut level, not merely faulty",
    )
    unit: str = ""
    description: str = ""
    repeat: PointRepeat | None = Field(
        default=None,
        description="one point per channel of a panel: `name` numbered from `first`, "
        "`address` moved by `step` per channel; expanded when the profile is loaded",
    )

    @field_validator("repeat", mode="before")
    @classmethod
    def _repeat_count(cls, repeat: object) -> object:
        return {"count": repeat} if type(repeat) is int else repeat

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale: float) -> float:
        # 0 would make every reading the offset, whatever the device sends: a methane channel
        # that can never alarm
        if scale == 0 or not math.isfinite(scale):
            raise ValueError(
                f"scale {scale:g} would make every reading the offset, whatever the device sends: "
                "give the register's resolution (e.g. 0.01), or leave scale out (1)"
            )
        return scale

    @model_validator(mode="after")
    def _table_type(self) -> Self:
        bit_table = self.table in ("coil", "discrete")
        if bit_table != (self.dtype == "bool"):
            raise ValueError("coils and discrete inputs are dtype 'bool', registers are not")
        if (self.dtype == "bit") != (self.bit is not None):
            raise ValueError("dtype 'bit' needs 'bit' (0-15), and only it does")
        if self.current is not None and self.dtype in ("bool", "bit"):
            raise ValueError("a 4-20 mA point needs a numeric dtype")
        if self.address + register_width(self.dtype) > 65536:
            raise ValueError("point runs past register 65535")
        if self.valid is not None:
            lo, hi = self.valid
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"valid [{lo:g}, {hi:g}]: give a finite [min, max], min < max")
        if self.range is not None:
            lo, hi = self.range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"range [{lo:g}, {hi:g}]: give a finite [min, max], min < max")
            if self.valid is not None and not (self.valid[0] <= lo and hi <= self.valid[1]):
                raise ValueError(
                    f"range [{lo:g}, {hi:g}] must lie within valid "
                    f"[{self.valid[0]:g}, {self.valid[1]:g}]: what the instrument measures is "
                    "among what it can read"
                )
        if self.repeat is not None:
            self.repeat.check(self.name, self.address, register_width(self.dtype), self.dtype)
        return self


class StatusSpec(Frozen):
    """A status register (or bit) that sets the quality of points: e.g. a detector's fault bit."""

    point: Ident
    bit: int | None = Field(default=None, ge=0, le=15, description="None: the whole value")
    equals: int | None = Field(default=None, description="None: any non-zero value")
    quality: Literal["sensor_fault", "out_of_range", "calibration", "manual"]
    applies_to: tuple[Ident, ...] = Field(default=(), description="empty: every point")
    repeat: StatusRepeat | None = Field(
        default=None,
        description="one rule per channel: `point`{n} applies to each of `applies_to`{n}, "
        "for the channels of repeated points; expanded when the profile is loaded",
    )

    @field_validator("repeat", mode="before")
    @classmethod
    def _repeat_count(cls, repeat: object) -> object:
        return {"count": repeat} if type(repeat) is int else repeat


class DeviceProfile(Frozen):
    """A device's register map, shipped under ``profiles/devices/``."""

    name: Ident
    description: str = ""
    points: tuple[PointSpec, ...]
    status: tuple[StatusSpec, ...] = ()

    @field_validator("points", mode="before")
    @classmethod
    def _bounded(cls, points: object) -> object:
        return bound_profile(points)

    @field_validator("points")
    @classmethod
    def _some_points(cls, points: tuple[PointSpec, ...]) -> tuple[PointSpec, ...]:
        return some(points, "at least 1 item is needed: a profile without points reads nothing")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        # repeated points and status rules become plain ones here, once: the gateway's plans,
        # the registry, the simulators and the config API's export see every channel
        repeated = families(self.points)
        # a frozen model's fields set while it is validated, before anyone sees it
        object.__setattr__(self, "status", expand_status(self.status, repeated))
        object.__setattr__(self, "points", expand_points(self.points))
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise ValueError("point names must be unique within a profile")
        by_name = {p.name: p for p in self.points}
        for st in self.status:
            unknown = [n for n in (st.point, *st.applies_to) if n not in names]
            if unknown:
                made = [
                    f"{n!r} is repeated: {n}{min(repeated[n])}..{n}{max(repeated[n])}"
                    for n in unknown
                    if n in repeated
                ]
                hint = (
                    f" ({'; '.join(made)}; give the rule `repeat:`, one rule per channel, or "
                    "name a channel)"
                    if made
                    else ""
                )
                raise ValueError(f"status refers to unknown point(s) {unknown}{hint}")
            word = by_name[st.point]
            # its bits and values are tested on the value read: a scaled or float status word
            # would test the bits of the engineering value (helper-96)
            if (
                word.dtype not in ("bool", "bit", "int16", "uint16", "int32", "uint32")
                or word.scale != 1
                or word.offset != 0
                or word.current is not None
            ):
                raise ValueError(
                    f"status point {st.point!r} must be an integer word read as it is (no "
                    "scale, offset, 4-20 mA or float): its bits are tested"
                )
        return self


# a configuration's own profiles: their repeats bounded in all, before any is expanded
InlineProfiles = Annotated[tuple[DeviceProfile, ...], BeforeValidator(bound_repeats)]


class SerialSpec(Frozen):
    """An RS-485/RS-232 line for Modbus RTU."""

    port: str = Field(min_length=1, description="e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class ModbusSpec(Frozen):
    """How to reach a device. Devices with the same endpoint share one connection (a bus) and
    one request queue."""

    transport: Literal["tcp", "rtu-over-tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=0, le=65535)
    serial: SerialSpec | None = None
    unit: int = Field(default=1, ge=0, le=247)
    poll_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int | None = Field(
        default=None,
        ge=0,
        le=5,
        description="re-sends of an unanswered request; unset: a request unanswered by a unit "
        "that answers (a frame lost on the line) is sent again once at once, before its points "
        "are said comm loss, and one of a silent unit or a block it ignores is not",
    )
    backoff_max_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a silent unit, or a request a live unit leaves unanswered, is asked again "
        "at most this late (the delay doubles from 1 s)",
    )

    @model_validator(mode="after")
    def _serial(self) -> Self:
        if (self.transport == "rtu") != (self.serial is not None):
            raise ValueError("transport 'rtu' needs 'serial' (and only it does)")
        return self

    def endpoint(self) -> tuple[str, str]:
        """What identifies the bus: devices with equal endpoints share one connection."""
        if self.serial is not None:
            return ("rtu", self.serial.port)
        return (self.transport, f"{self.host}:{self.port}")


class ReportSpec(Frozen):
    """Report-on-change: a reading is sent when it moved by more than the sensor's deadband,
    when its quality changed, or when the sensor has been silent for `max_silent_s`."""

    on_change: bool = False
    max_silent_s: float = Field(default=60.0, gt=0, le=86400)
