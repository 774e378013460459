"""Poll one Modbus TCP device on its period and turn each cycle into one telemetry batch.

The event time of a reading is the time its request was sent. A device that stops answering yields
comm-loss quality (value NaN) for its points once, then nothing until it answers again: never a
repeated old value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from gateway.bus import ModbusBus
from gateway.decode import RequestDecoder, apply_status
from gateway.errors import DeviceError
from gateway.plan import ReadRequest, compile_plan
from telemetry.codec import TelemetryBatch
from telemetry.quality import Quality
from telemetry.registry import DeviceInfo

__all__ = ["DevicePoller", "wall_ms"]

log = logging.getLogger(__name__)
Sink = Callable[[TelemetryBatch], Awaitable[None]]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


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
    ) -> None:
        self.device = device
        self._sink = sink
        self._gateway = gateway
        self._epoch = epoch
        self._clock = clock_ms
        # the sensors' points, then the status registers that set their quality
        self._keys = tuple(p.name for p in device.points)
        by_name = {p.name: p for p in device.profile.points}
        extra = [
            by_name[n]
            for n in dict.fromkeys(st.point for st in device.profile.status)
            if n not in self._keys
        ]
        self._read_points = (*device.points, *extra)
        self._plan: tuple[ReadRequest, ...] = compile_plan(
            self._read_points, gap=gap, coalesce=coalesce
        )
        self._decoders = [
            RequestDecoder(
                [self._read_points[i] for i, _ in req.points],
                [off for _, off in req.points],
                req.count,
            )
            for req in self._plan
        ]
        self._req_index = [
            np.array([i for i, _ in req.points], dtype=np.intp) for req in self._plan
        ]
        self._status_index = {
            name: self._read_points.index(by_name[name])
            for name in dict.fromkeys(st.point for st in device.profile.status)
        }
        self._seq = 0
        self._comm_lost = False
        self._own_bus = bus is None
        self.bus = bus if bus is not None else ModbusBus(device.spec.modbus)
        # report-on-change: what was last sent per point, and when
        self._deadband = np.array([sen.deadband for sen in device.spec.sensors], dtype=np.float64)
        self._sent_value = np.full(len(self._keys), np.nan)
        self._sent_quality = np.full(len(self._keys), -1, dtype=np.int16)
        self._sent_ts = np.full(len(self._keys), np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.cycles = 0
        self.lateness_s: deque[float] = deque(maxlen=4096)  # cycle start behind schedule
        self.failures = 0

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
        next_at = loop.time()
        try:
            while not stop.is_set():
                self.lateness_s.append(loop.time() - next_at)
                await self.poll_once()
                next_at += period
                delay = next_at - loop.time()
                if delay < 0:  # overran: skip the missed slots rather than bursting
                    next_at = loop.time()
                    delay = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            await self.close()

    async def _read(self, req: ReadRequest) -> list[Any]:
        spec = self.device.spec.modbus
        return await self.bus.read(
            spec.unit,
            req.table,
            req.address,
            req.count,
            timeout_s=spec.timeout_s,
            retries=spec.retries,
            backoff_max_s=spec.backoff_max_s,
        )

    def _to_report(self, ts: np.ndarray, value: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """Which readings to send: all of them, or with report-on-change those that moved by
        more than their deadband, changed quality, or were silent for too long."""
        report = self.device.spec.report
        if not report.on_change:
            keep = np.ones(len(self._keys), dtype=np.bool_)
        else:
            with np.errstate(invalid="ignore"):
                moved = ~(np.abs(value - self._sent_value) <= self._deadband)
            moved &= ~(np.isnan(value) & np.isnan(self._sent_value))
            keep = (
                moved
                | (quality.astype(np.int16) != self._sent_quality)
                | (ts - self._sent_ts >= int(report.max_silent_s * 1000))
            )
        self._sent_value[keep] = value[keep]
        self._sent_quality[keep] = quality[keep]
        self._sent_ts[keep] = ts[keep]
        return keep

    async def poll_once(self) -> TelemetryBatch | None:
        """One cycle: read every request, hand one batch to the sink (or none after comm loss)."""
        self.cycles += 1
        n = len(self._keys)
        ts = np.zeros(n, dtype=np.int64)
        value = np.full(n, np.nan)
        quality = np.zeros(n, dtype=np.uint8)
        m = len(self._read_points)
        all_ts = np.zeros(m, dtype=np.int64)
        all_value = np.full(m, np.nan)
        all_quality = np.zeros(m, dtype=np.uint8)
        try:
            for req, decoder, index in zip(
                self._plan, self._decoders, self._req_index, strict=True
            ):
                sent = self._clock()
                words = await self._read(req)
                rv = np.empty(len(index))
                rq = np.zeros(len(index), dtype=np.uint8)
                decoder.decode(words, rv, rq)
                all_ts[index] = sent
                all_value[index] = rv
                all_quality[index] = rq
            if self._status_index:
                qualities = [Quality(int(q)) for q in all_quality[:n]]
                status = {k: int(all_value[i]) for k, i in self._status_index.items()}
                apply_status(self.device.profile.status, status, self._keys, qualities)
                all_quality[:n] = qualities
            ts[:] = all_ts[:n]
            value[:] = all_value[:n]
            quality[:] = all_quality[:n]
        except DeviceError as exc:
            self.failures += 1
            if self._comm_lost:
                return None
            log.warning("device %s: comm loss: %s", self.device.spec.id, exc)
            self._comm_lost = True
            ts[:] = self._clock()
            value[:] = np.nan
            quality[:] = Quality.COMM_LOSS
        else:
            if self._comm_lost:
                log.info("device %s answers again", self.device.spec.id)
            self._comm_lost = False
        keep = self._to_report(ts, value, quality)
        if not keep.any():
            return None
        batch = TelemetryBatch(
            gateway=self._gateway,
            device=self.device.spec.id,
            epoch=self._epoch,
            seq=self._seq,
            keys=self._keys,
            key=np.flatnonzero(keep).astype(np.uint16),
            ts=ts[keep],
            value=value[keep],
            quality=quality[keep],
        )
        self._seq += 1
        await self._sink(batch)
        return batch
