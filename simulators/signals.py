"""Scenario signals: what a simulated sensor reads at time t (seconds since scenario start).

Pure and deterministic: time is passed in and noise is a hash of (seed, t), so a scenario replays
identically and tests drive it with a fake clock.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Constant",
    "Diurnal",
    "Drift",
    "Noisy",
    "Piecewise",
    "Ramp",
    "Signal",
    "Step",
    "Stuck",
]


class Signal(Protocol):
    """Anything that gives an engineering value for a scenario time."""

    def value_at(self, t_s: float) -> float:
        """The value at `t_s` seconds since scenario start."""
        ...


@dataclass(frozen=True, slots=True)
class Constant:
    """The same value at every time."""

    value: float

    def value_at(self, t_s: float) -> float:
        """The constant value."""
        return self.value


@dataclass(frozen=True, slots=True)
class Ramp:
    """`v0` until `start_s`, linear to `v1` at `end_s`, `v1` after (a step when they are equal)."""

    start_s: float
    end_s: float
    v0: float
    v1: float

    def __post_init__(self) -> None:
        if not self.end_s >= self.start_s:
            raise ValueError(f"ramp ends at {self.end_s} before it starts at {self.start_s}")

    def value_at(self, t_s: float) -> float:
        """The ramp's value at `t_s`."""
        if t_s >= self.end_s:
            return self.v1
        if t_s <= self.start_s:
            return self.v0
        frac = (t_s - self.start_s) / (self.end_s - self.start_s)
        return self.v0 + (self.v1 - self.v0) * frac


@dataclass(frozen=True, slots=True)
class Piecewise:
    """Linear interpolation between `(t_s, value)` points; flat outside the first and last."""

    points: tuple[tuple[float, float], ...]
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a piecewise signal needs at least one point")
        times = tuple(t for t, _ in self.points)
        if any(not b > a for a, b in itertools.pairwise(times)):
            raise ValueError(f"piecewise times must strictly increase, got {times}")
        object.__setattr__(self, "_times", times)

    def value_at(self, t_s: float) -> float:
        """The interpolated value at `t_s`."""
        i = bisect.bisect_right(self._times, t_s)
        if i == 0:
            return self.points[0][1]
        if i == len(self.points):
            return self.points[-1][1]
        (t0, v0), (t1, v1) = self.points[i - 1], self.points[i]
        return v0 + (v1 - v0) * (t_s - t0) / (t1 - t0)


@dataclass(frozen=True, slots=True)
class Noisy:
    """`base` plus noise uniform in [-amplitude, amplitude), a pure function of (seed, t)."""

    base: Signal
    amplitude: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.amplitude) and self.amplitude >= 0):
            raise ValueError(f"noise amplitude must be finite and >= 0, got {self.amplitude}")

    def value_at(self, t_s: float) -> float:
        """The base value at `t_s` plus this signal's noise at `t_s`."""
        return self.base.value_at(t_s) + self.amplitude * _unit_noise(self.seed, t_s)


def _unit_noise(seed: int, t_s: float) -> float:
    """A value in [-1, 1) derived from a hash, so it is stable across runs and processes."""
    key = f"{seed}:{t_s + 0.0!r}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


@dataclass(frozen=True, slots=True)
class Drift:
    """`base` plus a slow linear drift of `per_hour` (a sensor losing its calibration)."""

    base: Signal
    per_hour: float
    start_s: float = 0.0

    def value_at(self, t_s: float) -> float:
        return self.base.value_at(t_s) + self.per_hour * max(0.0, t_s - self.start_s) / 3600.0


@dataclass(frozen=True, slots=True)
class Diurnal:
    """A daily cycle: `mean` +- `amplitude`, highest at `peak_hour` of scenario time."""

    mean: float
    amplitude: float
    peak_hour: float = 14.0

    def value_at(self, t_s: float) -> float:
        phase = 2 * math.pi * (t_s / 3600.0 - self.peak_hour) / 24.0
        return self.mean + self.amplitude * math.cos(phase)


@dataclass(frozen=True, slots=True)
class Step:
    """`before` until `at_s`, then `after`."""

    at_s: float
    before: float
    after: float

    def value_at(self, t_s: float) -> float:
        return self.after if t_s >= self.at_s else self.before


@dataclass(frozen=True, slots=True)
class Stuck:
    """`base` until `at_s`, then frozen at the value it had then (a stuck transmitter)."""

    base: Signal
    at_s: float

    def value_at(self, t_s: float) -> float:
        return self.base.value_at(min(t_s, self.at_s))
