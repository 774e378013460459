"""Routes with speed limits by segment, and the motion of a vehicle along one.

A `Route` is a (lat, lon) polyline and, optionally, a speed limit per segment (between two
consecutive points; None: no limit). A `Drive` is how a vehicle moves along it: its speed signal,
obeyed up to the limit of the segment it is on, except in the windows where it speeds
deliberately (a scenario event with `ignore_limits`). Distance is the integral of that speed.

Both are pure: the time is passed in, and a drive integrates on a fixed grid of `step_s` that
does not depend on who asks when, so the fleet's positions and a scenario's ground truth agree
exactly and replay identically. An open route is driven to its end and back; a closed one (its
last point is its first) round and round, as `simulators.fleet.position_at` places the vehicle.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from simulators.signals import Signal

__all__ = ["Drive", "Route", "check_limits", "default_route", "segment_m"]

_EARTH_M = 6_371_000.0
_CHECKPOINT_STEPS = 64  # a stored distance every this many grid steps (random access)
# generated routes start on a grid over this box, (south, west) to (north, east): the Yangtze
# delta between Nanjing, Hangzhou and Nantong, where their 0.5 N and 1.4 E reach stays on land
_DEFAULT_STARTS = ((30.2, 118.5), (31.8, 119.6))


def segment_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle length of a segment, metres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_M * math.asin(math.sqrt(h))


def check_limits(n_points: int, limits: Sequence[float | None]) -> None:
    """Raise ValueError unless `limits` gives one limit (km/h > 0, or None) per segment."""
    if not limits:
        return
    if len(limits) != n_points - 1:
        raise ValueError(
            f"{len(limits)} speed limits for {max(n_points - 1, 0)} segments: give one per "
            "segment (between two consecutive points of the route), null for none"
        )
    for i, lim in enumerate(limits):
        if lim is not None and not (math.isfinite(lim) and lim > 0):
            raise ValueError(f"segment {i}: speed limit {lim} km/h must be a number above 0")


@dataclass(frozen=True, slots=True)
class Route:
    """A polyline of (lat, lon) points and its speed limits, one per segment (km/h or None)."""

    points: tuple[tuple[float, float], ...]
    limits_kmh: tuple[float | None, ...] = ()
    _edges: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _segments: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a route needs at least one point")
        check_limits(len(self.points), self.limits_kmh)
        lengths = [segment_m(a, b) for a, b in itertools.pairwise(self.points)]
        order = list(range(len(lengths)))
        if self.points[0] != self.points[-1]:
            order += order[::-1]  # an open route is driven back from its end
        edges = [0.0, *itertools.accumulate(lengths[i] for i in order)]
        object.__setattr__(self, "_edges", tuple(edges))
        object.__setattr__(self, "_segments", tuple(order))

    @property
    def limited(self) -> bool:
        """Whether any segment has a limit."""
        return any(lim is not None for lim in self.limits_kmh)

    def locate(self, distance_m: float) -> tuple[int, float]:
        """(segment index, metres to its end in the direction of travel) at a distance driven."""
        period = self._edges[-1]
        if period <= 0:
            return 0, math.inf
        r = distance_m % period
        j = min(bisect.bisect_right(self._edges, r) - 1, len(self._segments) - 1)
        return self._segments[j], self._edges[j + 1] - r

    def limit_at(self, distance_m: float) -> float | None:
        """The speed limit where the vehicle is after `distance_m` (None: none)."""
        if not self.limited:
            return None
        return self.limits_kmh[self.locate(distance_m)[0]]


def default_route(k: int, n: int) -> Route:
    """The generated route of the k-th of n vehicles: from a start point on a square grid over
    `_DEFAULT_STARTS`, as fine as n needs (every vehicle its own start, however large the
    fleet), north-east some 150 km. Every point is a plausible position in China."""
    if not 0 <= k < n:
        raise ValueError(f"vehicle {k} of a fleet of {n}")
    side = math.isqrt(n - 1) + 1  # the smallest square of at least n points
    (south, west), (north, east) = _DEFAULT_STARTS
    row, col = divmod(k, side)
    lat = south + (north - south) * row / side
    lon = west + (east - west) * col / side
    return Route(((lat, lon), (lat + 0.3, lon + 0.6), (lat + 0.5, lon + 1.4)))


class Drive:
    """A vehicle's motion along a route: `signal` is the speed it wants (km/h), capped by the
    limit of the segment it is on unless `t` is in a `free` window [from, to) (deliberate
    speeding). A `route` without limits (or None) leaves the signal as it is.

    The distance integrates on a grid of `step_s`: over each step the wanted speed is held at
    its value at the step's start, and the limit changes where a segment ends within the step.
    """

    __slots__ = ("_checkpoints", "_cursor", "free", "route", "signal", "step_s")

    def __init__(
        self,
        signal: Signal,
        route: Route | None = None,
        free: Sequence[tuple[float, float]] = (),
        step_s: float = 0.1,
        start_m: float = 0.0,
    ) -> None:
        """`start_m`: the distance along the route at t=0 (a fleet resumed where it stopped)."""
        if not (math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"a drive's step must be above 0 s, got {step_s}")
        if not (math.isfinite(start_m) and start_m >= 0):
            raise ValueError(f"a drive's start must be a distance >= 0 m, got {start_m}")
        self.signal = signal
        self.route = route if route is not None and route.limited else None
        self.free = tuple(sorted(free))
        self.step_s = step_s
        self._checkpoints: list[float] = [start_m]  # distance at grid step k * _CHECKPOINT_STEPS
        self._cursor: tuple[int, float] = (0, start_m)  # the last grid step computed

    @property
    def start_m(self) -> float:
        return self._checkpoints[0]

    def on(self, route: Route) -> Drive:
        """This drive on `route`'s limits, unless it already has limits of its own."""
        if self.route is not None or not route.limited:
            return self
        return Drive(self.signal, route, self.free, self.step_s, self.start_m)

    def from_m(self, start_m: float) -> Drive:
        """This drive, starting `start_m` along its route."""
        return Drive(self.signal, self.route, self.free, self.step_s, start_m)

    def speeding(self, t_s: float) -> bool:
        """Whether the driver ignores the limits at `t_s`."""
        return any(a <= t_s < b for a, b in self.free)

    def limit(self, t_s: float, distance_m: float) -> float | None:
        """The limit the driver obeys at `t_s`, at `distance_m` (None: none)."""
        if self.route is None or self.speeding(t_s):
            return None
        return self.route.limit_at(distance_m)

    def state_at(self, t_s: float) -> tuple[float, float, float | None]:
        """(distance m, speed km/h, the limit obeyed or None) at scenario time `t_s`."""
        d = self.distance_at(t_s)
        v = max(0.0, self.signal.value_at(t_s))
        lim = self.limit(t_s, d)
        return d, (v if lim is None else min(v, lim)), lim

    def value_at(self, t_s: float) -> float:
        """The speed driven at `t_s` (a `Signal`, so that it is the scenario's ground truth)."""
        if self.route is None:
            return max(0.0, self.signal.value_at(t_s))
        return self.state_at(t_s)[1]

    def distance_at(self, t_s: float) -> float:
        """Metres along the route at `t_s`: `start_m` and those driven since t=0."""
        t_s = max(0.0, t_s)
        k = math.floor(t_s / self.step_s + 1e-9)  # k * step_s itself is on step k, not k - 1
        d = self._grid(k)
        rest = t_s - k * self.step_s
        return self._advance(d, k * self.step_s, rest) if rest > 0 else d

    def _grid(self, k: int) -> float:
        """Distance at grid step k, from the cursor or the nearest checkpoint before it."""
        j, d = self._cursor
        if k < j:
            c = min(k // _CHECKPOINT_STEPS, len(self._checkpoints) - 1)
            j, d = c * _CHECKPOINT_STEPS, self._checkpoints[c]
        while j < k:
            d = self._advance(d, j * self.step_s, self.step_s)
            j += 1
            if j % _CHECKPOINT_STEPS == 0 and j // _CHECKPOINT_STEPS == len(self._checkpoints):
                self._checkpoints.append(d)
        self._cursor = (k, d)
        return d

    def _advance(self, d: float, t_s: float, dt: float) -> float:
        """Distance after `dt` s from `d` at `t_s`, the wanted speed held at its value at `t_s`."""
        want = max(0.0, self.signal.value_at(t_s)) / 3.6  # m/s
        if self.route is None or self.speeding(t_s):
            return d + want * dt
        remaining = dt
        while remaining > 0:
            seg, ahead = self.route.locate(d)
            lim = self.route.limits_kmh[seg]
            v = want if lim is None else min(want, lim / 3.6)
            if v <= 0:
                break
            ahead = max(ahead, 1e-6)  # past a boundary that rounding left a hair ahead
            need = ahead / v
            if need >= remaining:
                return d + v * remaining
            d += ahead
            remaining -= need
        return d
