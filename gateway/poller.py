"""Poll one Modbus TCP device on its period and turn each cycle into one telemetry batch.

The event time of a reading is the time its request was sent. A device that stops answering yields
comm-loss quality (value NaN) for its points once, then nothing until it answers again: never a
repeated old value.

A cycle is several requests (the plan). A request that fails while the device answers others (an
exception response such as 02 for one block, no answer to one request, a malformed answer) costs
the points of that request alone: they read comm loss once, then are left out of the batches until
it answers again; the other points keep their values. A failed request that reads a status
register costs as well the points that register sets the quality of (they are not known to be
good). The whole device is a comm loss when no request of the cycle is answered, or its connection
fails. The requests that answered in the previous cycle go first, so that a block that is never
answered cannot make a live unit look silent.

One lost frame is no comm loss: with `retries` unset, a request the unit answered when last
asked, left unanswered (or garbled) by a unit that answered in its last cycle or earlier in this
one, is sent again at once before its points are said lost (once a cycle). `retries: 0` sends
nothing again; `retries: N` every request N times.

A unit that dies in the middle of a cycle: once it has answered in the cycle, a request it
answered when last asked and leaves unanswered now is forgiven (a frame lost on the line, or the
unit gone: not the block's fault, so not put in a backoff of its own); a second such request
unanswered with no answer between says the unit is down: its remaining requests are not sent
this cycle (their points comm loss, the readings already taken kept), and the next cycle probes
it with one request, whose timeout puts the unit in backoff. A block the unit has not answered
when last asked (one its firmware ignores) still goes in its own backoff at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import numpy as np

from gateway.bus import ModbusBus
from gateway.decode import RequestDecoder, apply_status
from gateway.errors import DeviceError, LinkError, NoAnswerError, NotSentError
from gateway.modbus.connection import Value
from gateway.plan import ReadRequest, compile_plan
from gateway.wordorder import SubnormalReport
from telemetry.clock import wall_ms
from telemetry.codec import TelemetryBatch
from telemetry.numbering import Numbering
from telemetry.quality import Quality
from telemetry.registry import DeviceInfo

__all__ = ["DevicePoller", "wall_ms"]

log = logging.getLogger(__name__)
Sink = Callable[[TelemetryBatch], Awaitable[None]]


class DevicePoller:
    """Owns one Modbus client (one device connection) and its sequence numbers."""

    def __init__(
        self,
        device: DeviceInfo,
        sink: Sink,
        *,
        gateway: str,
        epoch: int,
        bus: ModbusBus | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        gap: int = 8,
        coalesce: bool = True,
        phase_s: float = 0.0,
        counters: Counter[str] | None = None,
    ) -> None:
        """`phase_s` delays the first cycle: a gateway spreads its devices' cycles over the
        period so that they do not all start in the same instant (which shows as jitter).
        `counters` are the gateway's (its reports and metrics): the poller counts there the
        float readings that decoded to a subnormal number (``subnormal_readings``)."""
        self.device = device
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.phase_s = phase_s
        self._sink = sink
        self._gateway = gateway
        self._numbers = Numbering(epoch)
        self._clock = clock_ms
        # the sensors' points, then the status registers that set their quality
        self._keys = tuple(p.name for p in device.points)
        by_name = {p.name: p for p in device.profile.points}
        # the status rules that set the quality of a configured sensor's point: a register whose
        # rules name only points no sensor uses is not read (a 64-channel panel with 8 detectors
        # wired reads 8 status words, not 64)
        self._status = tuple(
            st
            for st in device.profile.status
            if not st.applies_to or any(k in st.applies_to for k in self._keys)
        )
        status_points = tuple(dict.fromkeys(st.point for st in self._status))
        extra = [by_name[n] for n in status_points if n not in self._keys]
        self._read_points = (*device.points, *extra)
        self._subnormal = SubnormalReport(device.spec.id, self._read_points, self.counters)
        self._plan: tuple[ReadRequest, ...] = compile_plan(
            self._read_points, gap=gap, coalesce=coalesce
        )
        # each request's decoder writes straight into the cycle's arrays (indexed by read point)
        self._steps = tuple(
            (
                req,
                RequestDecoder(
                    [self._read_points[i] for i, _ in req.points],
                    [off for _, off in req.points],
                    req.count,
                    index=[i for i, _ in req.points],
                ),
            )
            for req in self._plan
        )
        # which request read each point: its event time is that request's
        self._request_of = np.zeros(len(self._read_points), dtype=np.intp)
        for r, req in enumerate(self._plan):
            self._request_of[[i for i, _ in req.points]] = r
        self._all_keys = np.arange(len(self._keys), dtype=np.uint16)
        self._all_keys.flags.writeable = False
        self._status_index = {
            name: self._read_points.index(by_name[name]) for name in status_points
        }
        # per status register: the sensors' points its rules set the quality of (all, for a rule
        # without applies_to); when its request fails their quality is unknown, so they are lost
        self._status_of: list[tuple[int, np.ndarray]] = []
        for name, i in self._status_index.items():
            mask = np.zeros(len(self._keys), dtype=bool)
            for st in self._status:
                if st.point == name:
                    mask |= [not st.applies_to or k in st.applies_to for k in self._keys]
            self._status_of.append((i, mask))
        self._comm_lost = False
        # per request: it failed in the last cycle it was sent in (its points were reported lost)
        self._failed = np.zeros(len(self._plan), dtype=bool)
        # per request: the unit answered it (data, a refusal, or a malformed answer) when it was
        # last sent; a new poller knows of none
        self._heard = np.zeros(len(self._plan), dtype=bool)
        self._point_failed = np.zeros(len(self._keys), dtype=bool)
        self._answered = True  # in the last cycle (a new unit is given the benefit of the doubt)
        self._own_bus = bus is None
        self.bus = bus if bus is not None else ModbusBus(device.spec.modbus)
        # report-on-change: what was last sent per point, and when
        self._deadband = np.array([sen.deadband for sen in device.spec.sensors], dtype=np.float64)
        self._sent_value = np.full(len(self._keys), np.nan)
        self._sent_quality = np.full(len(self._keys), -1, dtype=np.int16)
        self._sent_ts = np.full(len(self._keys), np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.cycles = 0
        # how late each cycle started: behind its slot on the period's grid, an overrun included
        self.lateness_s: deque[float] = deque(maxlen=4096)
        self.failures = 0  # cycles in which the whole device was a comm loss
        self.failed_requests = 0  # requests that failed, in those cycles or alone

    @property
    def requests(self) -> tuple[ReadRequest, ...]:
        return self._plan

    async def close(self) -> None:
        if self._own_bus:
            self.bus.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on the device's period until `stop` is set; the schedule does not drift."""
        period = self.device.spec.modbus.poll_s
        loop = asyncio.get_running_loop()
        next_at = due = loop.time() + self.phase_s
        # one waiter on `stop` for the whole run; each pause is one future and one timer
        stopped = loop.create_task(stop.wait(), name=f"stop-{self.device.spec.id}")
        pause: asyncio.Future[None] | None = None

        def wake(_: object = None) -> None:
            if pause is not None and not pause.done():
                pause.set_result(None)

        stopped.add_done_callback(wake)
        try:
            while not stop.is_set():
                if next_at > loop.time():
                    pause = loop.create_future()
                    timer = loop.call_at(next_at, wake)
                    try:
                        await pause
                    finally:
                        timer.cancel()
                    continue  # stopped, or time for the cycle
                self.lateness_s.append(loop.time() - due)
                await self.poll_once()
                due = next_at + period
                # overran: skip the missed slots rather than bursting (the next cycle still
                # counts as late by the overrun)
                next_at = max(due, loop.time())
        finally:
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopped
            await self.close()

    def _resends(self, forgiven: bool, heard: bool) -> bool:
        """Whether a request is sent again at once when it goes unanswered: with `retries`
        unset, one that the unit answered when last asked and is forgiven now (it answers: a
        frame lost on the line then costs its points nothing). A block it ignores, or a unit
        already silent, is not."""
        return self.device.spec.modbus.retries is None and forgiven and heard

    async def _read(self, req: ReadRequest, *, alive: bool, forgiven: bool, resend: bool) -> Value:
        spec = self.device.spec.modbus
        return await self.bus.read(
            spec.unit,
            req.table,
            req.address,
            req.count,
            timeout_s=spec.timeout_s,
            retries=spec.retries or 0,
            backoff_max_s=spec.backoff_max_s,
            alive=alive,
            forgiven=forgiven,
            resend_lost=resend,
        )

    def _to_report(
        self, ts: np.ndarray, value: np.ndarray, quality: np.ndarray, among: np.ndarray
    ) -> np.ndarray:
        """Which readings (of those in `among`) to send with report-on-change: those that moved
        by more than their deadband, changed quality, or were silent for too long."""
        report = self.device.spec.report
        with np.errstate(invalid="ignore"):
            moved = ~(np.abs(value - self._sent_value) <= self._deadband)
        moved &= ~(np.isnan(value) & np.isnan(self._sent_value))
        keep: np.ndarray = among & (
            moved
            | (quality.astype(np.int16) != self._sent_quality)
            | (ts - self._sent_ts >= int(report.max_silent_s * 1000))
        )
        self._sent_value[keep] = value[keep]
        self._sent_quality[keep] = quality[keep]
        self._sent_ts[keep] = ts[keep]
        return keep

    async def _cycle(
        self, value: np.ndarray, quality: np.ndarray, sent_at: np.ndarray
    ) -> tuple[np.ndarray, DeviceError | None]:
        """Send every request (those that answered last time first) and decode the answers
        into `value`/`quality`. Returns which requests failed, and, when the device is lost
        whole (its link failed, or no request was answered), the error that says why."""
        n = len(self._steps)
        failed = np.ones(n, dtype=bool)
        alive = False  # the unit answered a request of this cycle
        # a unit that answered in the last cycle is forgiven one unanswered request before it is
        # put in backoff: the request may be one its firmware ignores, or lost on the line
        credit = self._answered
        # once alive: requests it answered when last asked, unanswered since its last answer
        lapses = 0
        sent = 0
        error: DeviceError | None = None
        changed: list[tuple[int, DeviceError | None]] = []
        for r in np.argsort(self._failed, kind="stable"):
            req, decoder = self._steps[r]
            heard = bool(self._heard[r])
            sent_at[r] = self._clock()
            sent += 1
            try:
                # alive, a request it answered last time is forgiven (lost, or the unit gone);
                # one it did not goes in its own backoff
                forgiven = heard if alive else credit
                # one re-send a cycle once it answered: a second lost request may be the unit dead
                resend = self._resends(forgiven, heard) and lapses == 0
                answer = await self._read(req, alive=alive, forgiven=forgiven, resend=resend)
                subnormal = decoder.decode(answer, value, quality)
                if subnormal:
                    self._subnormal.report(req, answer, subnormal, value)
            except LinkError as exc:
                self.failed_requests += n
                self._answered = False
                return np.ones(n, dtype=bool), exc  # nothing more can be read over it
            except NotSentError as exc:
                error = exc  # not sent (it, or the unit, in backoff): it keeps its place
                continue
            except DeviceError as exc:
                error = exc
                if isinstance(exc, NoAnswerError):
                    credit = False
                    if alive and heard:
                        lapses += 1  # re-sent or not: the unit may ignore this block now
                    self._heard[r] = False
                else:  # the unit answered, with a refusal or a malformed answer
                    alive, lapses = True, 0
                    self._heard[r] = True
                if not self._failed[r]:
                    changed.append((int(r), exc))
                self._failed[r] = True
                if lapses == 2:
                    break  # the unit is down: the rest are not sent (and keep their places)
                continue
            alive, lapses = True, 0
            self._heard[r] = True
            failed[r] = False
            if self._failed[r]:
                changed.append((int(r), None))
            self._failed[r] = False
        self.failed_requests += int(failed.sum())
        down = lapses == 2
        self._answered = alive and not down  # down: the next cycle's first timeout is backoff
        if not alive:
            return failed, error
        name = self.device.spec.id
        if down:
            log.warning(
                "device %s: unit stopped answering in the middle of a cycle (%s); %d reads not "
                "sent, asked again next cycle",
                name,
                error,
                n - sent,
            )
        for r, why in changed:  # the device answers: say which of its reads do not
            req = self._plan[r]
            where = f"{req.table} {req.address}+{req.count}"
            if why is None:
                log.info("device %s: read of %s answers again", name, where)
            elif not (down and isinstance(why, NoAnswerError)):
                log.warning("device %s: read of %s failed: %s", name, where, why)
        return failed, None

    async def poll_once(self) -> TelemetryBatch | None:
        """One cycle: read every request, hand one batch to the sink (or none when there is
        nothing new to say: the device, or the points of its failed requests, still lost)."""
        self.cycles += 1
        n = len(self._keys)
        m = len(self._read_points)
        value = np.full(m, np.nan)
        quality = np.zeros(m, dtype=np.uint8)
        sent_at = np.empty(len(self._steps), dtype=np.int64)
        failed, error = await self._cycle(value, quality, sent_at)
        if error is not None:
            self.failures += 1
            if not self._comm_lost:
                log.warning("device %s: comm loss: %s", self.device.spec.id, error)
            self._comm_lost = True
            ts = np.full(n, self._clock(), dtype=np.int64)
            value = np.full(n, np.nan)
            quality = np.full(n, Quality.COMM_LOSS, dtype=np.uint8)
            lost = np.ones(n, dtype=bool)
        else:
            if self._comm_lost:
                log.info("device %s answers again", self.device.spec.id)
            self._comm_lost = False
            ts = sent_at[self._request_of]
            lost_read = failed[self._request_of]
            for i, applies in self._status_of:
                if lost_read[i]:
                    lost_read[:n] |= applies
            if self._status_index:
                qualities = [Quality(int(q)) for q in quality[:n]]
                status = {
                    k: int(value[i]) for k, i in self._status_index.items() if not lost_read[i]
                }
                apply_status(self._status, status, self._keys, qualities)
                quality[:n] = qualities
            ts, value, quality, lost = ts[:n], value[:n], quality[:n], lost_read[:n]
            value[lost] = np.nan
            quality[lost] = Quality.COMM_LOSS
        # a lost point is reported once, then left out until it reads again
        send = ~(lost & self._point_failed)
        self._point_failed = lost
        if self.device.spec.report.on_change:
            send = self._to_report(ts, value, quality, send)
        if not send.any():
            return None
        if send.all():
            key = self._all_keys
        else:
            key = np.flatnonzero(send).astype(np.uint16)
            ts, value, quality = ts[send], value[send], quality[send]
        batch = TelemetryBatch(
            gateway=self._gateway,
            device=self.device.spec.id,
            epoch=self._numbers.epoch,
            seq=self._numbers.take(self.device.spec.id),
            keys=self._keys,
            key=key,
            ts=ts,
            value=value,
            quality=quality,
        )
        await self._sink(batch)
        return batch
