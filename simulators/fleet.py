"""GPS recorders: vehicles driving routes, publishing positions over MQTT (the public contract).

The clock is passed in (seconds since the scenario start) and so is the wall time of that start,
so event times stay consistent when a test accelerates time. A vehicle with an `epoch_ms` (a
scenario with a `start`) stamps its positions on the scenario clock instead: start + t, however
fast the scenario plays, so that a 4-hour drive or a drive at 03:00 can be replayed in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson

from simulators.route import Drive, Route, segment_m
from simulators.signals import Signal
from simulators.timeline import CompiledScenario
from telemetry.topics import TopicLayout

__all__ = [
    "FleetPublisher",
    "Jt808Fleet",
    "SimulatedVehicle",
    "attach_scenario",
    "position_at",
    "terminal_phones",
]

log = logging.getLogger(__name__)


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
    offset_m: Signal | None = None  # a detour: metres off the route, to the right of travel
    epoch_ms: int | None = None  # stamp on the scenario clock: epoch + t (None: wall time)
    drive: Drive = field(init=False, repr=False, compare=False)
    _points: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        route = self.route if isinstance(self.route, Route) else Route(tuple(self.route))
        self._points = route.points
        if isinstance(self.speed_kmh, Drive):
            self.drive = self.speed_kmh.on(route)
        else:
            self.drive = Drive(self.speed_kmh, route)

    def record(self, t_s: float, start_wall_ms: int, accel: float = 1.0) -> dict[str, object]:
        """Advance to scenario time `t_s` and return the position record of that instant.

        The record's time is the wall time of that instant (`accel` scenario seconds pass per
        wall second), as a real recorder's clock would read; with an `epoch_ms`, the scenario
        time of that instant. The speed is the one driven: never above the limit obeyed."""
        self.distance_m, driven, limit = self.drive.state_at(t_s)
        speed = round(driven, 1)
        if limit is not None and speed > limit:  # rounding must not lift it over the limit
            speed = math.floor(limit * 10) / 10
        self.last_t = t_s
        lat, lon, heading = position_at(self._points, self.distance_m)
        north = east = 0.0
        if self.offset_m is not None:
            side = self.offset_m.value_at(t_s)
            right = math.radians(heading + 90.0)
            north, east = side * math.cos(right), side * math.sin(right)
        if self.noise_m:
            north += self.noise_m * _noise(self.seed, t_s, 0)
            east += self.noise_m * _noise(self.seed, t_s, 1)
        east += self.drift_m
        if north or east:
            lat += north / 111_320.0
            lon += east / (111_320.0 * math.cos(math.radians(lat)))
        if self.epoch_ms is not None:
            ts = self.epoch_ms + round(t_s * 1000)
        else:
            ts = start_wall_ms + round(t_s * 1000 / accel)
        rec: dict[str, object] = {
            "ts": ts,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "speed_kmh": speed,
            "heading_deg": round(heading, 1),
            "acc_on": True,
            "seq": self.seq,
        }
        self.seq += 1
        return rec


def attach_scenario(
    scenario: CompiledScenario, vehicles: Sequence[SimulatedVehicle], now_ms: int
) -> int:
    """Give the vehicles what the scenario says beyond their speeds: their detours, a noise seed
    from the scenario's seed, and (a scenario with a `start`) the scenario clock for their
    stamps. Returns the epoch ms of t=0 (`now_ms` without a `start`)."""
    epoch = scenario.spec.start_ms(now_ms)
    for k, vehicle in enumerate(sorted(vehicles, key=lambda v: (v.tenant, v.id))):
        vehicle.offset_m = scenario.vehicle_offsets.get(vehicle.id)
        vehicle.seed = scenario.spec.seed * 1000 + 500 + k
        vehicle.epoch_ms = epoch if scenario.spec.start is not None else None
    return epoch


class _Fleet:
    """What both fleets share: the clock, the reporting period, and pauses that end at `stop`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        clock: Callable[[], float],
        start_wall_ms: int,
        period_s: float = 1.0,
        accel: float = 1.0,
    ) -> None:
        self._host, self._port = host, port
        self._clock = clock
        self._start_wall_ms = start_wall_ms
        self._period = period_s
        self._accel = accel
        self.sent = 0

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


class FleetPublisher(_Fleet):
    """Publishes one position per vehicle every `period_s` of the clock, QoS 1, as a recorder
    with a blind-area buffer does: a fix is taken every period whether the broker is reachable
    or not, kept until the broker acknowledged it, and a backlog goes up as arrays of up to
    `backfill_max` fixes (the contract's backfill), oldest first. At most `buffer_max` fixes
    wait per vehicle; beyond that the oldest are dropped and counted (`dropped`)."""

    def __init__(
        self,
        vehicles: Sequence[SimulatedVehicle],
        *,
        host: str,
        port: int,
        layout: TopicLayout,
        clock: Callable[[], float],
        start_wall_ms: int,
        period_s: float = 1.0,
        accel: float = 1.0,
        buffer_max: int = 10_000,
        backfill_max: int = 100,
        timeout_s: float = 3.0,
        drain_s: float = 5.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(
            host=host,
            port=port,
            clock=clock,
            start_wall_ms=start_wall_ms,
            period_s=period_s,
            accel=accel,
        )
        self.vehicles = list(vehicles)
        self._layout = layout
        self._buffer_max = buffer_max
        self._backfill_max = backfill_max
        self._timeout_s = timeout_s
        self._drain_s = drain_s
        self._username, self._password = username, password
        self._waiting: dict[str, deque[dict[str, Any]]] = {v.id: deque() for v in self.vehicles}
        self._ready = asyncio.Event()
        self.dropped = 0  # fixes the full buffer lost
        self.backfills = 0  # arrays published

    @property
    def waiting(self) -> int:
        """Fixes taken and not yet acknowledged by the broker."""
        return sum(len(q) for q in self._waiting.values())

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._take(stop), name="fleet-fixes")
            tg.create_task(self._send(stop), name="fleet-uplink")

    async def _take(self, stop: asyncio.Event) -> None:
        """A fix of every vehicle that is on, every period, into its buffer."""
        while not stop.is_set():
            t = self._clock()
            for v in self.vehicles:
                if v.offline:
                    continue  # the terminal is off: no fix at all
                q = self._waiting[v.id]
                q.append(v.record(t, self._start_wall_ms, self._accel))
                if len(q) > self._buffer_max:
                    q.popleft()
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        log.warning("fleet: blind-area buffer full, %d fixes dropped", self.dropped)
            self._ready.set()
            await self._pause(stop, self._period)

    async def _send(self, stop: asyncio.Event) -> None:
        """Keep a connection and send what waits; after `stop`, try for `drain_s` more to send
        the rest. An operation unanswered for `timeout_s` counts as a lost link (a broken TCP
        connection is not always noticed sooner)."""
        loop = asyncio.get_running_loop()
        backoff = 0.2
        deadline: float | None = None
        while True:
            if stop.is_set():
                if not self.waiting:
                    return
                deadline = deadline if deadline is not None else loop.time() + self._drain_s
                if loop.time() > deadline:
                    log.warning("fleet: stopped with %d fixes not sent", self.waiting)
                    return
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier="hazardhub-sim-fleet",
                    timeout=self._timeout_s,
                    username=self._username,
                    password=self._password,
                ) as client:
                    backoff = 0.2
                    while True:
                        await self._flush(client)
                        if stop.is_set():
                            return
                        self._ready.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._ready.wait(), timeout=self._period)
            except aiomqtt.MqttError as exc:
                log.warning("fleet: broker unreachable (%s); %d fixes wait", exc, self.waiting)
                if deadline is None:
                    await self._pause(stop, backoff)
                else:  # draining after the stop: `stop` no longer paces the retries
                    await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                backoff = min(backoff * 2, 5.0)

    async def _flush(self, client: aiomqtt.Client) -> None:
        """Publish what waits, per vehicle in order; a fix leaves its buffer once acknowledged."""
        for v in self.vehicles:
            q = self._waiting[v.id]
            while q:
                n = min(len(q), self._backfill_max)
                part = [q[k] for k in range(n)]
                body: object = part[0] if n == 1 else part
                await client.publish(
                    self._layout.position(v.tenant, v.id), orjson.dumps(body), qos=1
                )
                for item in part:  # (the full buffer may have dropped some meanwhile)
                    if q and q[0] is item:
                        q.popleft()
                self.sent += n
                self.backfills += n > 1


def terminal_phones(configured: Sequence[str | None]) -> list[str]:
    """The JT/T 808 phone number of each vehicle: its configured `terminal`, or a generated
    12-digit one (0138nnnnnnnn) that equals no configured number and no other generated one.
    Numbers compare as a platform compares them, without their leading zeros: a generated
    013800000001 would be a configured 13800000001, and that vehicle's terminal."""
    taken = {t.lstrip("0") or "0" for t in configured if t}
    phones: list[str] = []
    n = 0
    for terminal in configured:
        if terminal:
            phones.append(terminal)
            continue
        while (phone := f"0138{n:08d}").lstrip("0") in taken:
            n += 1
        taken.add(phone.lstrip("0"))
        phones.append(phone)
    return phones


class Jt808Fleet(_Fleet):
    """The same vehicles as JT/T 808 terminals: each registers, authenticates and reports 0x0200
    every `period_s` to a JT/T 808 platform (hazardhub's `jt808` gateway or any other)."""

    def __init__(
        self,
        vehicles: Sequence[tuple[SimulatedVehicle, str, str]],  # (vehicle, terminal phone, plate)
        *,
        host: str,
        port: int,
        clock: Callable[[], float],
        start_wall_ms: int,
        period_s: float = 1.0,
        accel: float = 1.0,
    ) -> None:
        super().__init__(
            host=host,
            port=port,
            clock=clock,
            start_wall_ms=start_wall_ms,
            period_s=period_s,
            accel=accel,
        )
        self.vehicles = list(vehicles)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for vehicle, phone, plate in self.vehicles:
                tg.create_task(self._drive(vehicle, phone, plate, stop), name=f"jt808-{phone}")

    async def _drive(
        self, vehicle: SimulatedVehicle, phone: str, plate: str, stop: asyncio.Event
    ) -> None:
        from simulators.jt808 import Fix, Jt808Terminal, TerminalError

        backoff = 0.2
        while not stop.is_set():
            try:
                async with Jt808Terminal(self._host, self._port, phone, plate) as terminal:
                    await terminal.login()
                    backoff = 0.2
                    while not stop.is_set():
                        rec = vehicle.record(self._clock(), self._start_wall_ms, self._accel)
                        if not vehicle.offline:
                            await terminal.report(
                                Fix(
                                    ts_ms=int(str(rec["ts"])),
                                    lat=float(str(rec["lat"])),
                                    lon=float(str(rec["lon"])),
                                    speed_kmh=float(str(rec["speed_kmh"])),
                                    heading_deg=round(float(str(rec["heading_deg"]))) % 360,
                                )
                            )
                            self.sent += 1
                        await self._pause(stop, self._period)
            except (OSError, TerminalError) as exc:
                log.warning("terminal %s: %s", phone, exc)
                await self._pause(stop, backoff)
                backoff = min(backoff * 2, 5.0)
