"""Modbus RTU over a serial line (pyserial through pymodbus), behind the same interface as
`ModbusTcpClient`: `connect`, `read` (register bytes or bits), `close`, and the same errors
(pymodbus's "no response received" is a `RequestTimeoutError`, as a timeout of ours is)."""

from __future__ import annotations

import asyncio
import struct

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.modbus.connection import Value
from gateway.modbus.errors import (
    ConnectionLostError,
    ExceptionResponseError,
    FrameError,
    RequestTimeoutError,
)
from telemetry.config import SerialSpec

__all__ = ["SerialLink"]


class SerialLink:
    """One serial line; pymodbus binds its client to the running loop, so it is made on first
    `connect`, not at construction."""

    def __init__(self, serial: SerialSpec, *, timeout_s: float) -> None:
        self.serial = serial
        self._timeout = timeout_s
        self._client: AsyncModbusSerialClient | None = None
        self.requests = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def connect(self, timeout_s: float) -> None:
        if self._client is None:
            s = self.serial
            self._client = AsyncModbusSerialClient(
                s.port,
                framer=FramerType.RTU,
                baudrate=s.baudrate,
                parity=s.parity,
                stopbits=s.stopbits,
                bytesize=s.bytesize,
                timeout=self._timeout,
                retries=0,
                reconnect_delay=0,
            )
        if not self._client.connected and not await self._client.connect():
            raise ConnectionLostError(f"cannot open {self.serial.port}")

    async def read(
        self, unit: int, function: int, address: int, count: int, *, timeout_s: float
    ) -> Value:
        client = self._client
        if client is None or not client.connected:
            raise ConnectionLostError(f"{self.serial.port} is not open")
        call = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
        }[function]
        self.requests += 1
        try:
            response = await asyncio.wait_for(
                call(address, count=count, device_id=unit), timeout=timeout_s
            )
        except TimeoutError as exc:
            raise RequestTimeoutError(f"unit {unit}: no answer within {timeout_s:g}s") from exc
        except ModbusIOException as exc:
            # pymodbus's own timeout (the line's, when shorter than this read's) or an answer
            # from another unit: the unit asked did not answer
            raise RequestTimeoutError(f"unit {unit}: no answer: {exc}") from exc
        except ConnectionException as exc:
            raise ConnectionLostError(f"{self.serial.port}: {exc}") from exc
        except ModbusException as exc:
            raise FrameError(f"unit {unit}: {exc}") from exc
        except OSError as exc:
            raise ConnectionLostError(f"{self.serial.port}: {exc}") from exc
        if response.isError():
            raise ExceptionResponseError(unit, function, int(response.exception_code))
        if function in (1, 2):
            return tuple(bool(b) for b in response.bits[:count])
        return struct.pack(f">{len(response.registers)}H", *response.registers)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
