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
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gateway.decode import decode_point
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
        clock_ms: Callable[[], int] = wall_ms,
        gap: int = 8,
    ) -> None:
        self.device = device
        self._sink = sink
        self._gateway = gateway
        self._epoch = epoch
        self._clock = clock_ms
        self._plan: tuple[ReadRequest, ...] = compile_plan(device.points, gap=gap)
        self._keys = tuple(p.name for p in device.points)
        self._seq = 0
        self._comm_lost = False
        spec = device.spec.modbus
        self._client = AsyncModbusTcpClient(
            spec.host,
            port=spec.port,
            timeout=spec.timeout_s,
            retries=0,
            reconnect_delay=0,
            name=f"modbus-{device.spec.id}",
        )
        self.cycles = 0
        self.failures = 0

    @property
    def requests(self) -> tuple[ReadRequest, ...]:
        return self._plan

    async def close(self) -> None:
        self._client.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on the device's period until `stop` is set; the schedule does not drift."""
        period = self.device.spec.modbus.poll_s
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while not stop.is_set():
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
        unit = self.device.spec.modbus.unit
        if not self._client.connected and not await self._client.connect():
            raise DeviceError(
                f"cannot connect to {self.device.spec.modbus.host}:{self.device.spec.modbus.port}"
            )
        call = {
            "holding": self._client.read_holding_registers,
            "input": self._client.read_input_registers,
            "coil": self._client.read_coils,
            "discrete": self._client.read_discrete_inputs,
        }[req.table]
        try:
            response = await call(req.address, count=req.count, device_id=unit)
        except (ModbusException, OSError, TimeoutError) as exc:
            raise DeviceError(f"unit {unit}: {exc}") from exc
        if response.isError():
            raise DeviceError(f"unit {unit}: exception response {response}")
        if req.table in ("coil", "discrete"):
            return list(response.bits)
        return list(response.registers)

    async def poll_once(self) -> TelemetryBatch | None:
        """One cycle: read every request, hand one batch to the sink (or none after comm loss)."""
        self.cycles += 1
        n = len(self._keys)
        ts = np.zeros(n, dtype=np.int64)
        value = np.full(n, np.nan)
        quality = np.zeros(n, dtype=np.uint8)
        try:
            for req in self._plan:
                sent = self._clock()
                words = await self._read(req)
                for point_index, offset in req.points:
                    point = self.device.points[point_index]
                    ts[point_index] = sent
                    value[point_index] = decode_point(point, words[offset:])
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
        batch = TelemetryBatch(
            gateway=self._gateway,
            device=self.device.spec.id,
            epoch=self._epoch,
            seq=self._seq,
            keys=self._keys,
            key=np.arange(n, dtype=np.uint16),
            ts=ts,
            value=value,
            quality=quality,
        )
        self._seq += 1
        await self._sink(batch)
        return batch
