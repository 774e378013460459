"""One Modbus connection (TCP, RTU over TCP, or a serial line) shared by the units behind it.

Requests on a bus go one at a time (one request queue per bus). A unit that does not answer is
put in backoff: it is asked again only after a delay that doubles up to `backoff_max_s`, and in the
meantime its reads fail at once. So a dead unit costs the others at most one timeout per backoff
period, never one per cycle.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gateway.errors import DeviceError
from telemetry.config import ModbusSpec

__all__ = ["ModbusBus"]

log = logging.getLogger(__name__)


class ModbusBus:
    def __init__(self, spec: ModbusSpec, *, timeout_s: float | None = None) -> None:
        self.endpoint = spec.endpoint()
        self._spec = spec
        self._timeout = timeout_s or spec.timeout_s
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._backoff: dict[int, float] = {}
        self._silent_until: dict[int, float] = {}
        self.requests = 0
        self.timeouts = 0

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        """pymodbus clients bind to the running loop: made on first use, not at construction."""
        spec, timeout = self._spec, self._timeout
        if spec.serial is not None:
            return AsyncModbusSerialClient(
                spec.serial.port,
                framer=FramerType.RTU,
                baudrate=spec.serial.baudrate,
                parity=spec.serial.parity,
                stopbits=spec.serial.stopbits,
                bytesize=spec.serial.bytesize,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            spec.host,
            port=spec.port,
            framer=FramerType.RTU if spec.transport == "rtu-over-tcp" else FramerType.SOCKET,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            name=f"modbus-{spec.host}:{spec.port}",
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def silent(self, unit: int) -> bool:
        return unit in self._backoff

    async def read(
        self,
        unit: int,
        table: str,
        address: int,
        count: int,
        *,
        timeout_s: float,
        retries: int = 0,
        backoff_max_s: float = 30.0,
    ) -> list[Any]:
        """Read registers or bits of one unit; raise DeviceError when it cannot be had."""
        loop = asyncio.get_running_loop()
        until = self._silent_until.get(unit)
        if until is not None and loop.time() < until:
            raise DeviceError(f"unit {unit} is silent; asked again in {until - loop.time():.1f}s")
        async with self._lock:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            if not client.connected and not await client.connect():
                raise DeviceError(f"cannot connect to {self.endpoint[1]}")
            call = {
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
            }[table]
            for attempt in range(retries + 1):
                self.requests += 1
                try:
                    response = await asyncio.wait_for(
                        call(address, count=count, device_id=unit), timeout=timeout_s
                    )
                    break
                except (TimeoutError, ModbusException, OSError) as exc:
                    self.timeouts += 1
                    if attempt == retries:
                        delay = min(self._backoff.get(unit, 0.5) * 2, backoff_max_s)
                        self._backoff[unit] = delay
                        self._silent_until[unit] = loop.time() + delay
                        why = (
                            f"no answer within {timeout_s:g}s"
                            if isinstance(exc, TimeoutError)
                            else str(exc)
                        )
                        raise DeviceError(f"unit {unit}: {why}") from exc
        self._backoff.pop(unit, None)
        self._silent_until.pop(unit, None)
        if response.isError():
            raise DeviceError(f"unit {unit}: exception response {response}")
        if table in ("coil", "discrete"):
            return list(response.bits)
        return list(response.registers)
