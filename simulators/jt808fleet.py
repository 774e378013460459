"""The fleet as JT/T 808 terminals (`Jt808Fleet`), and the phone numbers and terminal ids they
register with (`terminal_phones`, `terminal_ids`). Split from `simulators.fleet`, which re-exports
these names; the code moved as it was and logs under `simulators.fleet` as before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from simulators.blindarea import _Fleet
from simulators.jt808 import Fix, Jt808Terminal, TerminalError, terminal_id
from simulators.jt808fix import safety_block
from simulators.linkreport import LinkReport
from simulators.vehicle import SimulatedVehicle
from telemetry.activesafety import read_events
from telemetry.jt808 import TextMessage

__all__ = ["Jt808Fleet", "terminal_ids", "terminal_phones"]

log = logging.getLogger("simulators.fleet")  # the fleet's logger, as before the split
_SERIAL = re.compile(r"serial \d+")  # a failure's serial: the same failure for the summary


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
        answer_timeout_s: float = 5.0,
        retransmissions: int = 2,
        report_every_s: float = 60.0,
        heartbeat_s: float = 30.0,
    ) -> None:
        """`answer_timeout_s` and `retransmissions`: each terminal's parameters 0x0002 and
        0x0003 (`Jt808Terminal`): a message not answered is sent again after 5 s, then 10 s,
        and the link is given up 15 s later. Terminals that cannot reach the platform are
        said in one line at most every `report_every_s` (`LinkReport`); each failure is
        logged at debug level. `heartbeat_s`: the terminal parameter 0x0001, a heartbeat
        (0x0002) when nothing else was sent for that long."""
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
        self._terminal_of = {
            (v.tenant, v.id): tid
            for (v, _, _), tid in zip(self.vehicles, self.terminal_ids, strict=True)
        }
        self._backfill_max = backfill_max
        self.texts = 0  # text messages (0x8300) the terminals received
        self._answer_timeout_s, self._retransmissions = answer_timeout_s, retransmissions
        self.registrations = 0  # registrations (0x0100) the platform answered
        self.logins = 0  # authentications the platform accepted
        self.retransmitted = 0  # messages sent again for want of an answer
        self.report = LinkReport(log, f"{host}:{port}", report_every_s)
        self._heartbeat_s = heartbeat_s
        self.heartbeats = 0  # heartbeats (0x0002) answered
        self.links_dropped = 0  # connections closed for a vehicle's `link_loss` or `offline`
        self.copies = 0  # position messages sent twice on purpose (a vehicle's `duplicates`)
        # sub-packages lost on purpose (`lose_packages`); the platform's requests (0x8003)
        # answered 0, and the sub-packages they had sent again
        self.packages_lost = self.packages_asks = self.packages_resent = 0
        # per terminal (phone): when its drain ends, from the first time it saw the stop
        self._drain_ends: dict[str, float] = {}

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
            tg.create_task(self._reporting(), name="jt808-report")
        self.report.due(math.inf, self.waiting)
        if self.packages_lost or self.packages_resent:
            log.info(
                "fleet: %d sub-packages lost on purpose, %d sent again on %d requests (0x8003)",
                self.packages_lost,
                self.packages_resent,
                self.packages_asks,
            )
        if self.waiting:
            left = sum(1 for q in self._waiting if q)
            log.warning("fleet: stopped with %d fixes of %d terminals not sent", self.waiting, left)

    async def _reporting(self) -> None:
        """The links' summary, when one is due, until the fleet stops (`_over`)."""
        loop = asyncio.get_running_loop()
        while not self._over.is_set():
            self.report.due(loop.time(), self.waiting)
            await self._pause(self._over, min(1.0, self.report.gather_s))

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
        rest. The auth code is kept across connections: the terminal registers once and
        authenticates on each connection, again only when the platform refuses its code."""
        backoff = 0.2
        deadline: float | None = None
        code: str | None = None
        while True:
            if stop.is_set():
                deadline = self._drain_deadline(
                    self._drain_ends.get(phone), len(q), f"terminal {phone}", say=False
                )
                if deadline is None:
                    return
                self._drain_ends[phone] = deadline
            elif vehicle.link_down_at(self._clock()):
                await self._while_down(vehicle, stop)
                continue
            try:
                digits = phone.lstrip("0") or "0"  # as a header carries it, zero-padded
                v2019 = vehicle.jt808_version == 2019 or len(digits) > 12
                async with Jt808Terminal(
                    self._host,
                    self._port,
                    digits,
                    plate,
                    v2019=v2019,
                    timeout_s=self._answer_timeout_s,
                    retransmissions=self._retransmissions,
                    terminal_id=tid,
                    on_text=self._heard,
                    max_body=vehicle.quirks.package_body,
                    lose_packages=vehicle.quirks.lose_packages,
                    new_serials=vehicle.quirks.new_serials,
                ) as terminal:
                    terminal.auth_code = code  # kept from the connection before
                    try:
                        await terminal.login()
                        self.logins += 1
                        self.report.reached(phone)
                        backoff = 0.2
                        if await self._session(terminal, vehicle, q, phone, stop):
                            return
                    finally:
                        code = terminal.auth_code
                        self.registrations += terminal.registrations
                        self.retransmitted += terminal.retransmitted
                        self.packages_lost += terminal.packages.lost
                        self.packages_resent += terminal.packages.resent
                        self.packages_asks += terminal.packages.asks
            except (OSError, TerminalError) as exc:
                log.debug("terminal %s: %s; %d fixes wait", phone, exc, len(q))
                why = _SERIAL.sub("serial n", str(exc) or type(exc).__name__)
                self.report.failed(asyncio.get_running_loop().time(), phone, why)
                await self._retry_pause(stop, deadline, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _session(
        self,
        terminal: Jt808Terminal,
        vehicle: SimulatedVehicle,
        q: deque[dict[str, Any]],
        phone: str,
        stop: asyncio.Event,
    ) -> bool:
        """Send what waits every period, and a heartbeat (0x0002) when nothing was sent for
        `heartbeat_s`, until `stop` (True) or the vehicle's own link goes down (False: the
        connection is then closed, as a terminal out of coverage or switched off loses it)."""
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            if not stop.is_set() and vehicle.link_down_at(self._clock()):
                self.links_dropped += 1
                return False
            if await self._flush(terminal, vehicle, q, phone, stop):
                quiet_since = loop.time()
            if stop.is_set():
                return True
            if loop.time() >= quiet_since + self._heartbeat_s:
                await terminal.heartbeat()
                self.heartbeats += 1
                quiet_since = loop.time()
            due = quiet_since + self._heartbeat_s - loop.time()
            await self._pause(stop, max(0.0, min(self._period, due)))

    async def _while_down(self, vehicle: SimulatedVehicle, stop: asyncio.Event) -> None:
        """Wait while the vehicle's own link is down (`link_loss`, `offline`), or for `stop`."""
        while not stop.is_set() and vehicle.link_down_at(self._clock()):
            await self._pause(stop, self._period)

    async def _flush(
        self,
        terminal: Jt808Terminal,
        vehicle: SimulatedVehicle,
        q: deque[dict[str, Any]],
        phone: str,
        stop: asyncio.Event,
    ) -> int:
        """Send what waits, oldest first; a fix leaves the buffer once the platform said OK.
        A share of the messages (the vehicle's `duplicates`) goes twice, the same frame with
        the same serial. How many fixes were sent. Once `stop` has come, it sends for the
        terminal's `drain_s` more and leaves the rest waiting (the fleet says how many): a
        message whose sub-packages were lost on purpose waits up to 30 s for the platform's
        0x8003, and a drain that waited for each one ran minutes past the end, deaf to SIGINT."""
        sent = 0
        while q:
            n = min(len(q), self._backfill_max)
            part = [q[k] for k in range(n)]
            tid = self._terminal_of[(vehicle.tenant, vehicle.id)]
            fixes = [_fix(rec, tid) for rec in part]
            twice = vehicle.send_twice()
            send = asyncio.ensure_future(
                terminal.report(fixes[0], twice=twice)
                if n == 1
                else terminal.backfill(fixes, twice=twice)
            )
            if not await self._in_time(send, phone, stop):
                log.debug("terminal %s: drain over with %d fixes not sent", phone, len(q))
                return sent
            answer = send.result()
            self.copies += twice
            if answer is None or answer.result != answer.OK:
                raise TerminalError(f"the platform refused {n} fixes: {answer}")
            for item in part:  # (the full buffer may have dropped some meanwhile)
                if q and q[0] is item:
                    q.popleft()
            self.sent += n
            self.backfills += n > 1
            sent += n
        return sent

    async def _in_time(self, send: asyncio.Future[Any], phone: str, stop: asyncio.Event) -> bool:
        """Wait for `send`; once `stop` has come, until the terminal's drain ends (`drain_s`
        after it first saw the stop). False: cancelled, the drain is over."""
        loop = asyncio.get_running_loop()
        try:
            if not stop.is_set():
                stopping = asyncio.create_task(stop.wait(), name=f"jt808-{phone}-stop")
                try:
                    await asyncio.wait({send, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
            if not send.done():
                end = self._drain_ends.setdefault(phone, loop.time() + self._drain_s)
                await asyncio.wait({send}, timeout=max(0.0, end - loop.time()))
            return send.done()
        finally:
            if not send.done():  # (its connection is closed as the session ends)
                send.cancel()


def _fix(rec: dict[str, Any], terminal: str) -> Fix:
    """A position record as the terminal measured it; `terminal`: its terminal id, which its
    active-safety blocks' identification numbers (报警标识号) carry."""
    fix = Fix(
        ts_ms=int(rec["ts"]),
        lat=float(rec["lat"]),
        lon=float(rec["lon"]),
        speed_kmh=float(rec["speed_kmh"]),
        heading_deg=round(float(rec["heading_deg"])) % 360,
        alarm=int(rec.get("alarm_flags", 0)),
    )
    events, _ = read_events(rec.get("active_safety", []), fix.ts_ms)
    blocks = tuple(safety_block(fix, ev, terminal) for ev in events)
    return replace(fix, safety=blocks) if events else fix
