"""Repeated points and status rules of a device profile: a gas panel's 12, 32 or 64 channels
written as one point (`repeat: {count: 12, step: 2}`: gas1 at `address`, gas2 at `address` + 2,
...) and one status rule (`repeat: 12`: st{n} bit 0 is the fault of gas{n}), expanded into plain
points and rules when the profile is validated. Nothing downstream (gateway plans, registry,
simulators, the config API's export) ever sees a repeat. `register_width` lives here, for both
modules (`telemetry.deviceconfig` imports this one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field, field_validator

from telemetry.configbase import Frozen

if TYPE_CHECKING:
    from telemetry.deviceconfig import PointSpec, StatusSpec

__all__ = [
    "MAX_CHANNELS",
    "MAX_CONFIG_REPEATS",
    "MAX_PROFILE_REPEATS",
    "PointRepeat",
    "StatusRepeat",
    "bound_profile",
    "bound_repeats",
    "expand_points",
    "expand_status",
    "families",
    "register_width",
]

MAX_CHANNELS = 256  # a panel of 64 channels is large; 256 leaves room, 65536 would be a typo
# points made by repeats: in one profile, and in all the profiles of one configuration (the API
# takes 1 MiB: 11,000 one-line profiles of 256 channels each would be 3 million points, a
# minute of the hub's event loop, as a YAML alias bomb was)
MAX_PROFILE_REPEATS = 4096
MAX_CONFIG_REPEATS = 16384
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_M = TypeVar("_M", bound=BaseModel)


def _channels(count: int) -> int:
    if not 1 <= count <= MAX_CHANNELS:
        raise ValueError(f"repeat count {count}: give the number of channels, 1 to {MAX_CHANNELS}")
    return count


class StatusRepeat(Frozen):
    """Channels `first` .. `first` + `count` - 1 of repeated points (`repeat: 12` is `count`)."""

    count: int
    first: int = Field(default=1, ge=0, le=9999)

    @field_validator("count")
    @classmethod
    def _count(cls, count: int) -> int:
        return _channels(count)

    def numbers(self) -> range:
        return range(self.first, self.first + self.count)

    def said(self) -> str:
        return f"channels {self.first}-{self.first + self.count - 1}"


class PointRepeat(StatusRepeat):
    """`count` points named `name`{first}, `name`{first + 1}, ..., the k-th (from 0) at
    `address` + k * `step` (registers, or bits for coils and discrete inputs; unset: the
    point's own width, channels side by side)."""

    step: int | None = Field(default=None, ge=1, le=65535)

    def stride(self, width: int) -> int:
        return width if self.step is None else self.step

    def check(self, name: str, address: int, width: int, dtype: str) -> None:
        """Refuse a channel whose name is no identifier or that runs past register 65535."""
        last = self.first + self.count - 1
        if not _IDENT.match(f"{name}{last}"):
            raise ValueError(f"repeat: channel name {name}{last!s} is longer than 64 characters")
        end = address + (self.count - 1) * self.stride(width) + width
        if end > 65536:
            raise ValueError(
                f"repeat: channel {name}{last} ({dtype} at {end - width}) runs past register 65535"
            )


def _plain(model: _M, **changes: Any) -> _M:
    """`model` with `changes` and no repeat, its unset fields left unset (the export leaves
    them out, as the file did). Not validated again: only a name and an address change, and
    `PointRepeat.check` and the profile's own checks judge those."""
    copied = model.model_copy(update={**changes, "repeat": None})
    fields = (model.model_fields_set | set(changes)) - {"repeat"}
    object.__setattr__(copied, "__pydantic_fields_set__", fields)
    return copied


def register_width(dtype: str) -> int:
    """Registers (or bits) a value of `dtype` occupies."""
    return {"int32": 2, "uint32": 2, "float32": 2, "float64": 4}.get(dtype, 1)


def expand_points(points: Sequence[PointSpec]) -> tuple[PointSpec, ...]:
    """Every point, a repeated one as its channels in order. Raise ValueError for a name given
    twice (naming where each came from) and for channels of repeats that share a register."""
    out: list[PointSpec] = []
    origin: dict[str, str] = {}
    cells: dict[tuple[str, int, int | None], tuple[str, str]] = {}
    for i, point in enumerate(points):
        rep = point.repeat
        if rep is None:
            channels = [(point, f"points.{i}")]
        else:
            width = register_width(point.dtype)
            channels = [
                (
                    _plain(
                        point,
                        name=f"{point.name}{n}",
                        address=point.address + k * rep.stride(width),
                    ),
                    f"points.{i} ({point.name} repeated, {rep.said()})",
                )
                for k, n in enumerate(rep.numbers())
            ]
        for channel, where in channels:
            if channel.name in origin:
                raise ValueError(
                    f"point name {channel.name!r} is given twice, by {origin[channel.name]} and "
                    f"by {where}: point names must be unique within a profile"
                )
            origin[channel.name] = where
            if rep is not None:
                _claim(cells, channel, where)
            out.append(channel)
    return tuple(out)


def _claim(
    cells: dict[tuple[str, int, int | None], tuple[str, str]], point: PointSpec, where: str
) -> None:
    """Take the registers (and bit) of a repeated channel; refuse one another channel holds."""
    bit = point.bit if point.dtype == "bit" else None
    width = register_width(point.dtype)
    for address in range(point.address, point.address + width):
        name, held = cells.setdefault((point.table, address, bit), (point.name, where))
        if name != point.name:
            raise ValueError(
                f"channel {point.name} of {where}, {point.table} {point.address}-"
                f"{point.address + width - 1}, overlaps channel {name} of {held} at "
                f"{point.table} {address}: "
                f"give a step of at least the point's {width} register(s), or move the "
                "repeat's address"
            )


def families(points: Sequence[PointSpec]) -> dict[str, set[int]]:
    """The channel numbers of each repeated point's name (gas: 1-8 of one repeat, 9-12 of
    another)."""
    out: dict[str, set[int]] = {}
    for point in points:
        if point.repeat is not None:
            out.setdefault(point.name, set()).update(point.repeat.numbers())
    return out


def expand_status(
    status: Sequence[StatusSpec], repeated: Mapping[str, set[int]]
) -> tuple[StatusSpec, ...]:
    """Every status rule, a repeated one as one rule per channel: `point`{n} applied to each of
    `applies_to`{n}. Raise ValueError when a name it uses is not a repeated point having
    each of its channels."""
    out: list[StatusSpec] = []
    for i, rule in enumerate(status):
        rep = rule.repeat
        if rep is None:
            out.append(rule)
            continue
        where = f"status.{i} (repeated, {rep.said()})"
        if not rule.applies_to:
            raise ValueError(
                f"{where}: name the repeated points the rule applies to (applies_to): "
                f"{rule.point}{{n}} sets the quality of their channel n"
            )
        for name in (rule.point, *rule.applies_to):
            has = repeated.get(name)
            if has is None:
                raise ValueError(
                    f"{where}: {name!r} is not a repeated point: a repeated status rule "
                    "names repeated points, and applies channel n of its point to their "
                    "channel n"
                )
            missing = sorted(set(rep.numbers()) - has)
            if missing:
                raise ValueError(
                    f"{where}: the repeated point {name!r} has no channel "
                    f"{', '.join(map(str, missing[:8]))}{' ...' if len(missing) > 8 else ''}: "
                    f"it has channels {_spans(has)}"
                )
        out.extend(
            _plain(
                rule,
                point=f"{rule.point}{n}",
                applies_to=tuple(f"{a}{n}" for a in rule.applies_to),
            )
            for n in rep.numbers()
        )
    return tuple(out)


def _spans(numbers: set[int]) -> str:
    """1-8, 10-12"""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def _made(points: object) -> int:
    """Points the repeats of raw `points` (a profile's, as given) make; malformed items 0."""
    total = 0
    for point in points if isinstance(points, list | tuple) else ():
        rep = point.get("repeat") if isinstance(point, dict) else None
        count = rep.get("count") if isinstance(rep, dict) else rep
        if type(count) is int and count > 0:
            total += count
    return total


def bound_repeats(profiles: object) -> object:
    """Refuse raw device profiles whose repeats make more than MAX_CONFIG_REPEATS points in
    all (before any is expanded); `profiles` unchanged otherwise."""
    items = profiles if isinstance(profiles, list | tuple) else ()
    total = sum(_made(p.get("points")) for p in items if isinstance(p, dict))
    if total > MAX_CONFIG_REPEATS:
        raise ValueError(
            f"the device profiles repeat points {total} times, more than {MAX_CONFIG_REPEATS} "
            "in one configuration: put large panels' profiles under profiles/devices/"
        )
    return profiles


def bound_profile(points: object) -> object:
    """Refuse a profile's raw points whose repeats make more than MAX_PROFILE_REPEATS points."""
    total = _made(points)
    if total > MAX_PROFILE_REPEATS:
        raise ValueError(
            f"the repeats make {total} points, more than {MAX_PROFILE_REPEATS} in one profile"
        )
    return points
