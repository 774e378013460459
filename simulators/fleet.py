"""GPS recorders: vehicles driving routes, publishing positions over MQTT (the public contract).

The clock is passed in (seconds since the scenario start) and so is the wall time of that start,
so event times stay consistent when a test accelerates time. A vehicle with an `epoch_ms` (a
scenario with a `start`) stamps its positions on the scenario clock instead: start + t, however
fast the scenario plays, so that a 4-hour drive or a drive at 03:00 can be replayed in seconds.
"""

from __future__ import annotations

import asyncio
import bisect
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

from simulators.jt808 import Fix, Jt808Terminal, TerminalError, terminal_id
from simulators.route import Drive, Route, segment_m
from simulators.signals import Signal
from simulators.timeline import CompiledScenario
from telemetry.jt808 import TextMessage
from telemetry.topics import TopicLayout

__all__ = [
    "GPS_DRIFT_M",
    "FleetPublisher",
    "Jt808Fleet",
    "SimulatedVehicle",
    "attach_scenario",
    "position_at",
    "terminal_ids",
    "terminal_phones",
]

log = logging.getLogger(__name__)

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
    # its scenario's modes in scenario time, (t, "gps_drift" | "offline" | None), sorted: the
    # scenario runner gives them, so that a fix taken late (`_Fleet._take`) has its own time's
    modes: tuple[tuple[float, str | None], ...] = ()
    jt808_version: int = 2013  # the JT/T 808 its terminal speaks (`Jt808Fleet`): 2013 or 2019
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

    def mode_at(self, t_s: float) -> str | None:
        """The scenario's mode of the vehicle at `t_s` (None: normal)."""
        i = bisect.bisect_right([t for t, _ in self.modes], t_s)
        return self.modes[i - 1][1] if i else None

    def off_at(self, t_s: float) -> bool:
        """Whether the recorder is off at `t_s` (`offline`, or the scenario's mode)."""
        return self.offline or self.mode_at(t_s) == "offline"

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
        east += self.drift_m + (GPS_DRIFT_M if self.mode_at(t_s) == "gps_drift" else 0.0)
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
    from the scenario's seed, the JT/T 808 version of their terminals, and (a scenario with a
    `start`) the scenario clock for their stamps. Returns the epoch ms of t=0 (`now_ms`
    without a `start`)."""
    epoch = scenario.spec.start_ms(now_ms)
    for k, vehicle in enumerate(sorted(vehicles, key=lambda v: (v.tenant, v.id))):
        vehicle.offset_m = scenario.vehicle_offsets.get(vehicle.id)
        vehicle.jt808_version = scenario.jt808_versions.get(vehicle.id, 2013)
        vehicle.seed = scenario.spec.seed * 1000 + 500 + k
        vehicle.epoch_ms = epoch if scenario.spec.start is not None else None
    return epoch


class _Fleet:
    """What both fleets share: the clock, the reporting period, pauses that end at `stop`, and
    the recorders' blind-area buffers. A recorder takes its fix every period of scenario time
    from the scenario's start (t=0, however late the fleet starts) to its end (`end_s` on the
    clock, the last fix at that instant), whether its link is up or not, and keeps it until the
    platform has acknowledged it. At most `buffer_max` fixes wait per vehicle; beyond that the
    oldest are dropped and counted (`dropped`). After `stop` and the last fix, the links try for
    `drain_s` more to send what waits."""

    def __init__(
        self,
        recorders: Sequence[SimulatedVehicle],
        *,
        host: str,
        port: int,
        clock: Callable[[], float],
        start_wall_ms: int,
        period_s: float = 1.0,
        accel: float = 1.0,
        end_s: float = math.inf,
        buffer_max: int = 10_000,
        drain_s: float = 5.0,
    ) -> None:
        self._host, self._port = host, port
        self._clock = clock
        self._start_wall_ms = start_wall_ms
        self._period = period_s
        self._accel = accel
        self._end_s = end_s
        self._buffer_max = buffer_max
        self._drain_s = drain_s
        self._recorders = list(recorders)
        # per recorder (in the order given): its fixes not yet acknowledged, oldest first
        self._waiting: list[deque[dict[str, Any]]] = [deque() for _ in self._recorders]
        if period_s <= 0 or accel <= 0:
            raise ValueError(f"period_s {period_s} and accel {accel} must be above 0")
        self._ready = asyncio.Event()
        # set once the last fix is taken and `stop` has come: the links' stop
        self._over = asyncio.Event()
        self.sent = 0
        self.dropped = 0  # fixes the full buffer lost
        self.backfills = 0  # batches of more than one fix sent

    @property
    def waiting(self) -> int:
        """Fixes taken and not yet acknowledged by the platform."""
        return sum(len(q) for q in self._waiting)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    async def _retry_pause(self, stop: asyncio.Event, deadline: float | None, s: float) -> None:
        """The pause before a retry: until `stop`, or (draining after it) until the deadline."""
        if deadline is None:
            await self._pause(stop, s)
        else:  # draining after the stop: `stop` no longer paces the retries
            loop = asyncio.get_running_loop()
            await asyncio.sleep(min(s, max(0.0, deadline - loop.time())))

    def _drain_deadline(self, deadline: float | None, left: int, who: str) -> float | None:
        """After `stop`, with `left` fixes waiting: the drain's deadline, or None when there
        is nothing to send or no more time."""
        loop = asyncio.get_running_loop()
        if not left:
            return None
        deadline = deadline if deadline is not None else loop.time() + self._drain_s
        if loop.time() > deadline:
            log.warning("%s: stopped with %d fixes not sent", who, left)
            return None
        return deadline

    async def _take(self, stop: asyncio.Event) -> None:
        """The fixes of every vehicle that is on, into its buffer: at the scenario times 0, s,
        2s, ... (s: `period_s` x `accel`) and at `end_s`, each once the clock has come to it,
        and stamped with its own time (`SimulatedVehicle.record`), so that the track starts at
        the scenario's start and ends at its very end whatever the latency: a process that
        starts its fleet after setting up (a farm, `--record`) or a busy machine takes the
        fixes it is late for at once. The fix at `end_s` is taken when `stop` comes with the
        clock at the end (a millisecond of wall time early counts: the caller's timer and this
        clock read the same loop). Then it waits for `stop`, and the links finish (`_over`)."""
        step = self._period * self._accel
        early = 1e-3 * self._accel  # scenario seconds in a millisecond of wall time
        k = 0
        try:
            while True:
                now = self._clock()
                while (t := k * step) < self._end_s and t <= now + early:
                    self._record(t)
                    k += 1
                if now + early >= self._end_s:
                    self._record(self._end_s)  # the scenario is over, and so is the drive
                    break
                if stop.is_set():
                    break
                wake = min(k * step, self._end_s)
                await self._pause(stop, max(0.0, (wake - now) / self._accel))
            await stop.wait()
        finally:
            self._over.set()
            self._ready.set()

    def _record(self, t: float) -> None:
        """The fix of every vehicle at scenario time `t` (none of one that is off)."""
        for v, q in zip(self._recorders, self._waiting, strict=True):
            if v.off_at(t):
                continue  # the terminal is off: no fix at all
            q.append(v.record(t, self._start_wall_ms, self._accel))
            if len(q) > self._buffer_max:
                q.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("fleet: blind-area buffer full, %d fixes dropped", self.dropped)
        self._ready.set()


class FleetPublisher(_Fleet):
    """Publishes one position per vehicle every `period_s` of the clock, QoS 1, as a recorder
    with a blind-area buffer does (`_Fleet`): a backlog goes up as arrays of up to
    `backfill_max` fixes (the contract's backfill), oldest first."""

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
        end_s: float = math.inf,
        buffer_max: int = 10_000,
        backfill_max: int = 100,
        timeout_s: float = 3.0,
        drain_s: float = 5.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(
            vehicles,
            host=host,
            port=port,
            clock=clock,
            start_wall_ms=start_wall_ms,
            period_s=period_s,
            accel=accel,
            end_s=end_s,
            buffer_max=buffer_max,
            drain_s=drain_s,
        )
        self.vehicles = list(vehicles)
        self._layout = layout
        self._backfill_max = backfill_max
        self._timeout_s = timeout_s
        self._username, self._password = username, password

    async def run(self, stop: asyncio.Event) -> None:
        self._over = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._take(stop), name="fleet-fixes")
            tg.create_task(self._send(self._over), name="fleet-uplink")

    async def _send(self, stop: asyncio.Event) -> None:
        """Keep a connection and send what waits; after `stop` (`_over`: stopped, the last fix
        taken), try for `drain_s` more to send the rest. An operation unanswered for
        `timeout_s` counts as a lost link (a broken TCP connection is not always noticed
        sooner)."""
        backoff = 0.2
        deadline: float | None = None
        while True:
            if stop.is_set():
                deadline = self._drain_deadline(deadline, self.waiting, "fleet")
                if deadline is None:
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
                            if self.waiting:  # taken while flushing, for a vehicle passed
                                continue
                            return
                        self._ready.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._ready.wait(), timeout=self._period)
            except aiomqtt.MqttError as exc:
                log.warning("fleet: broker unreachable (%s); %d fixes wait", exc, self.waiting)
                await self._retry_pause(stop, deadline, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _flush(self, client: aiomqtt.Client) -> None:
        """Publish what waits, per vehicle in order; a fix leaves its buffer once acknowledged."""
        for v, q in zip(self.vehicles, self._waiting, strict=True):
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


def terminal_ids(vehicles: Sequence[str]) -> list[str]:
    """The terminal id (0x0100's, 7 capital letters and digits) of each vehicle, by its
    "tenant/vehicle": derived from the vehicle, not its phone number, so that it is the same at
    every run, whatever number the terminal has (a generated one moves when the configuration
    gains a vehicle; a configured SIM may be changed), and a platform's binding of the vehicle
    to its terminal holds; unique in the fleet (one that another vehicle's took, in the order of
    their names, steps aside with a salt: the only case where one vehicle's id depends on
    another's)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for key in sorted(set(vehicles)):
        salt = 0
        while (tid := terminal_id(key, salt)) in taken:
            salt += 1
        taken.add(tid)
        ids[key] = tid
    return [ids[key] for key in vehicles]


class Jt808Fleet(_Fleet):
    """The same vehicles as JT/T 808 terminals: each registers, authenticates and reports its
    fixes to a JT/T 808 platform (hazardhub's `jt808` gateway or any other). Each records from
    power-on (`_Fleet`), so the fixes taken before it is authenticated (a platform not up yet,
    a refused login, a lost link) are kept and sent after: one waiting fix as 0x0200, a backlog
    as 0x0704 blind-area uploads of up to `backfill_max` fixes, oldest first. Each terminal
    registers with maker HZHUB, model SIM-808 and the terminal id of its vehicle
    (`terminal_ids`), and speaks its vehicle's `jt808_version` (a scenario's `jt808`, given by
    the scenario runner when it connects), or 2019 when its number has more than 12 digits
    (leading zeros aside), which a 2013 header cannot carry. A text message (0x8300: the hub's
    reminders to the driver) is shown and read to the driver: logged at info level with the
    plate and the text (`simulators.jt808`), answered 0x0001 and counted (`texts`)."""

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
        end_s: float = math.inf,
        buffer_max: int = 10_000,
        backfill_max: int = 30,  # 0x0704 of 30 plain fixes: one package (1023 bytes at most)
        drain_s: float = 5.0,
    ) -> None:
        super().__init__(
            [v for v, _, _ in vehicles],
            host=host,
            port=port,
            clock=clock,
            start_wall_ms=start_wall_ms,
            period_s=period_s,
            accel=accel,
            end_s=end_s,
            buffer_max=buffer_max,
            drain_s=drain_s,
        )
        self.vehicles = list(vehicles)
        self.terminal_ids = terminal_ids([f"{v.tenant}/{v.id}" for v, _, _ in self.vehicles])
        self._backfill_max = backfill_max
        self.texts = 0  # text messages (0x8300) the terminals received

    def _heard(self, _msg: TextMessage) -> None:
        self.texts += 1

    async def run(self, stop: asyncio.Event) -> None:
        self._over = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._take(stop), name="jt808-fixes")
            for (vehicle, phone, plate), tid, q in zip(
                self.vehicles, self.terminal_ids, self._waiting, strict=True
            ):
                link = self._link(vehicle, q, phone, plate, tid, self._over)
                tg.create_task(link, name=f"jt808-{phone}")

    async def _link(
        self,
        vehicle: SimulatedVehicle,
        q: deque[dict[str, Any]],
        phone: str,
        plate: str,
        tid: str,
        stop: asyncio.Event,
    ) -> None:
        """One terminal's connection: log in, send what waits, again after a failure; after
        `stop` (`_over`: stopped, the last fix taken), try for `drain_s` more to send the
        rest."""
        backoff = 0.2
        deadline: float | None = None
        while True:
            if stop.is_set():
                deadline = self._drain_deadline(deadline, len(q), f"terminal {phone}")
                if deadline is None:
                    return
            try:
                digits = phone.lstrip("0") or "0"  # as a header carries it, zero-padded
                v2019 = vehicle.jt808_version == 2019 or len(digits) > 12
                async with Jt808Terminal(
                    self._host,
                    self._port,
                    digits,
                    plate,
                    v2019=v2019,
                    terminal_id=tid,
                    on_text=self._heard,
                ) as terminal:
                    await terminal.login()
                    backoff = 0.2
                    while True:
                        await self._flush(terminal, q)
                        if stop.is_set():
                            return
                        await self._pause(stop, self._period)
            except (OSError, TerminalError) as exc:
                log.warning("terminal %s: %s; %d fixes wait", phone, exc, len(q))
                await self._retry_pause(stop, deadline, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _flush(self, terminal: Jt808Terminal, q: deque[dict[str, Any]]) -> None:
        """Send what waits, oldest first; a fix leaves the buffer once the platform said OK."""
        while q:
            n = min(len(q), self._backfill_max)
            part = [q[k] for k in range(n)]
            fixes = [_fix(rec) for rec in part]
            answer = await (terminal.report(fixes[0]) if n == 1 else terminal.backfill(fixes))
            if answer is None or answer.result != answer.OK:
                raise TerminalError(f"the platform refused {n} fixes: {answer}")
            for item in part:  # (the full buffer may have dropped some meanwhile)
                if q and q[0] is item:
                    q.popleft()
            self.sent += n
            self.backfills += n > 1


def _fix(rec: dict[str, Any]) -> Fix:
    """A position record as the terminal measured it."""
    return Fix(
        ts_ms=int(rec["ts"]),
        lat=float(rec["lat"]),
        lon=float(rec["lon"]),
        speed_kmh=float(rec["speed_kmh"]),
        heading_deg=round(float(rec["heading_deg"])) % 360,
    )
