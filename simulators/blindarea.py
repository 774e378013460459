"""What both fleets share (`_Fleet`): the scenario's clock, the reporting period, pauses that
end at `stop`, and the recorders' blind-area buffers, from which `simulators.fleet.FleetPublisher`
(MQTT) and `simulators.jt808fleet.Jt808Fleet` (JT/T 808) send. Split from `simulators.fleet`; the
code moved as it was and logs under `simulators.fleet` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from simulators.vehicle import SimulatedVehicle

__all__ = ["_Fleet"]

log = logging.getLogger("simulators.fleet")  # the fleet's logger, as before the split


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

    def _drain_deadline(
        self, deadline: float | None, left: int, who: str, *, say: bool = True
    ) -> float | None:
        """After `stop`, with `left` fixes waiting: the drain's deadline, or None when there
        is nothing to send or no more time (then said at warning level with `say`, else at
        debug level: the JT/T 808 fleet says them all in one line)."""
        loop = asyncio.get_running_loop()
        if not left:
            return None
        deadline = deadline if deadline is not None else loop.time() + self._drain_s
        if loop.time() > deadline:
            log.log(
                logging.WARNING if say else logging.DEBUG,
                "%s: stopped with %d fixes not sent",
                who,
                left,
            )
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
