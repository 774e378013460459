"""A simulated GPS recorder on a vehicle: where it is on its route at a scenario time, with GPS
noise, drift and detours, and the position record it makes of that instant (`SimulatedVehicle`).
Split from `simulators.fleet`, which re-exports these names; the fleets that send the records are
there (MQTT) and in `simulators.jt808fleet` (JT/T 808).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from simulators.quirks import TerminalQuirks
from simulators.route import Drive, Route, segment_m
from simulators.signals import Signal
from simulators.timeline import CompiledScenario

__all__ = ["GPS_DRIFT_M", "SimulatedVehicle", "attach_scenario", "position_at"]

GPS_DRIFT_M = 800.0  # how far east the position jumps in the mode `gps_drift`


def _noise(seed: int, t_s: float, axis: int) -> float:
    """Deterministic noise in [-1, 1) from (seed, t, axis)."""
    digest = hashlib.blake2b(f"{seed}:{t_s!r}:{axis}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def position_at(
    route: Sequence[tuple[float, float]], distance_m: float
) -> tuple[float, float, float]:
    """(lat, lon, heading) at a distance along a polyline. A closed route (its last point is its
    first) goes round again; an open one is driven back from its end, so that a vehicle never
    jumps (a jump is a GPS drift to the platform)."""
    lengths = [segment_m(route[i], route[i + 1]) for i in range(len(route) - 1)]
    total = sum(lengths)
    if total <= 0:
        return route[0][0], route[0][1], 0.0
    if route[0] != route[-1]:
        d = distance_m % (2 * total)
        if d > total:  # on the way back
            lat, lon, heading = position_at(route, 2 * total - d - 1e-9 * total)
            return lat, lon, (heading + 180.0) % 360
        distance_m = d
    d = distance_m % total if route[0] == route[-1] else distance_m
    for i, seg in enumerate(lengths):
        if d <= seg or i == len(lengths) - 1:
            f = d / seg if seg else 0.0
            (lat1, lon1), (lat2, lon2) = route[i], route[i + 1]
            heading = (
                math.degrees(
                    math.atan2(
                        math.radians(lon2 - lon1) * math.cos(math.radians(lat1)),
                        math.radians(lat2 - lat1),
                    )
                )
                % 360
            )
            return lat1 + f * (lat2 - lat1), lon1 + f * (lon2 - lon1), heading
        d -= seg
    raise AssertionError("unreachable")


def driven_back(route: Sequence[tuple[float, float]], distance_m: float) -> bool:
    """Whether, at this distance along it, the vehicle drives an open route back from its end
    (`position_at`): its heading is then the route's as drawn, reversed."""
    if len(route) < 2 or route[0] == route[-1]:
        return False
    total = sum(segment_m(route[i], route[i + 1]) for i in range(len(route) - 1))
    return total > 0 and distance_m % (2 * total) > total


@dataclass(slots=True)
class SimulatedVehicle:
    """A GPS recorder on a vehicle driving `route` (points, or a `Route` with speed limits by
    segment) at `speed_kmh`: a plain signal, obeyed up to the route's limits, or a scenario's
    `Drive` (which knows when the driver speeds on purpose; its own limits, if it has any, win).
    Route and speed are fixed at construction."""

    tenant: str
    id: str
    route: Route | tuple[tuple[float, float], ...]
    speed_kmh: Signal
    distance_m: float = 0.0  # driven so far (the drive's, at the last record)
    seq: int = 0
    last_t: float | None = field(default=None)
    noise_m: float = 3.0  # GPS noise, deterministic from (seed, t)
    seed: int = 0
    drift_m: float = 0.0  # a satellite-positioning drift: the position jumps this far east
    offline: bool = False  # the recorder sends nothing (out of coverage, switched off)
    # its scenario's modes in scenario time, (t, "gps_drift" | "offline" | "link_loss" | None): the
    # scenario runner gives them, so that a fix taken late (`_Fleet._take`) has its own time's
    modes: tuple[tuple[float, str | None], ...] = ()
    jt808_version: int = 2013  # the JT/T 808 its terminal speaks (`Jt808Fleet`): 2013 or 2019
    # a detour: metres off the route, to the right of the route as drawn (first point to last;
    # driven back from an open route's end, to the left of travel: the same side of the road)
    offset_m: Signal | None = None
    epoch_ms: int | None = None  # stamp on the scenario clock: epoch + t (None: wall time)
    # its terminal's alarm bits, clock skew and position messages sent twice (the scenario's)
    quirks: TerminalQuirks = field(default_factory=TerminalQuirks)
    copies_due: float = 0.0  # the share of a message owed to `quirks.duplicates`
    start_m: float = 0.0  # where on its route it is at t=0 (resumed where a last run stopped)
    drive: Drive = field(init=False, repr=False, compare=False)
    _points: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        route = self.route if isinstance(self.route, Route) else Route(tuple(self.route))
        self._points = route.points
        if isinstance(self.speed_kmh, Drive):
            self.drive = self.speed_kmh.on(route)
        else:
            self.drive = Drive(self.speed_kmh, route)
        if self.start_m:
            self.drive = self.drive.from_m(self.start_m)
        self.distance_m = self.drive.start_m

    def mode_at(self, t_s: float) -> str | None:
        """The scenario's mode of the vehicle at `t_s` (None: normal)."""
        i = bisect.bisect_right([t for t, _ in self.modes], t_s)
        return self.modes[i - 1][1] if i else None

    def off_at(self, t_s: float) -> bool:
        """Whether the recorder is off at `t_s` (`offline`, or the scenario's mode)."""
        return self.offline or self.mode_at(t_s) == "offline"

    def send_twice(self) -> bool:
        """Whether the next position message goes twice (`quirks.duplicates`): deterministic,
        every 1/share-th message (a share of 0.25: the 4th, the 8th, ...)."""
        self.copies_due += self.quirks.duplicates
        if self.copies_due >= 1.0 - 1e-9:
            self.copies_due -= 1.0
            return True
        return False

    def link_down_at(self, t_s: float) -> bool:
        """Whether the vehicle's own link to its platform is down at `t_s`: the terminal off
        (`off_at`), or out of coverage (the mode `link_loss`: the recorder takes its fixes,
        sent as a blind-area backlog once the link is back)."""
        return self.off_at(t_s) or self.mode_at(t_s) == "link_loss"

    def record(self, t_s: float, start_wall_ms: int, accel: float = 1.0) -> dict[str, object]:
        """Advance to scenario time `t_s` and return the position record of that instant.

        The record's time is the wall time of that instant (`accel` scenario seconds pass per
        wall second), as a real recorder's clock would read; with an `epoch_ms`, the scenario
        time of that instant. The speed is the one driven: never above the limit obeyed."""
        self.distance_m, driven, limit = self.drive.state_at(t_s)
        speed = round(driven, 1)
        before = self.last_t
        if limit is not None and speed > limit:  # rounding must not lift it over the limit
            speed = math.floor(limit * 10) / 10
        self.last_t = t_s
        lat, lon, heading = position_at(self._points, self.distance_m)
        north = east = 0.0
        if self.offset_m is not None:
            side = self.offset_m.value_at(t_s)
            # the same side of the road both ways: a detour "to the right of travel" jumped
            # to the other side where an open route turns round (4.7 km in 30 s: a `drift`)
            drawn = heading + (180.0 if driven_back(self._points, self.distance_m) else 0.0)
            right = math.radians(drawn + 90.0)
            north, east = side * math.cos(right), side * math.sin(right)
        if self.noise_m:
            north += self.noise_m * _noise(self.seed, t_s, 0)
            east += self.noise_m * _noise(self.seed, t_s, 1)
        east += self.drift_m + (GPS_DRIFT_M if self.mode_at(t_s) == "gps_drift" else 0.0)
        if north or east:
            lat += north / 111_320.0
            lon += east / (111_320.0 * math.cos(math.radians(lat)))
        if self.epoch_ms is not None:
            ts = self.epoch_ms + round(t_s * 1000)
        else:
            ts = start_wall_ms + round(t_s * 1000 / accel)
        ts += self.quirks.clock_skew_ms  # its clock, as it reads
        rec: dict[str, object] = {
            "ts": ts,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "speed_kmh": speed,
            "heading_deg": round(heading, 1),
            "acc_on": True,
            "seq": self.seq,
        }
        alarm = self.quirks.alarm_at(t_s)
        if alarm:  # (absent: no bit set, as the contract reads it)
            rec["alarm_flags"] = alarm
        steps = self.quirks.safety_between(before, t_s) if self.quirks.safety else ()
        if steps:  # the 苏标 alarms since its last position, at this one's time
            rec["active_safety"] = [
                {"source": src, "alarm_id": aid, "flag": flag, "type": typ, "level": lvl, "ts": ts}
                for _, src, typ, lvl, flag, aid in steps
            ]
        self.seq += 1
        return rec


def attach_scenario(
    scenario: CompiledScenario, vehicles: Sequence[SimulatedVehicle], now_ms: int
) -> int:
    """Give the vehicles what the scenario says beyond their speeds: their detours, a noise seed
    from the scenario's seed, the JT/T 808 version of their terminals, their terminals' quirks
    (alarm bits, clock skew, copies), and (a scenario with a `start`) the scenario clock for
    their stamps. Returns the epoch ms of t=0 (`now_ms` without a `start`)."""
    epoch = scenario.spec.start_ms(now_ms)
    for k, vehicle in enumerate(sorted(vehicles, key=lambda v: (v.tenant, v.id))):
        vehicle.offset_m = scenario.vehicle_offsets.get(vehicle.id)
        vehicle.jt808_version = scenario.jt808_versions.get(vehicle.id, 2013)
        vehicle.quirks = scenario.terminal_quirks.get(vehicle.id, TerminalQuirks())
        vehicle.seed = scenario.spec.seed * 1000 + 500 + k
        vehicle.epoch_ms = epoch if scenario.spec.start is not None else None
    return epoch
