"""Modbus for the gateway: a pure codec (`codec`: MBAP and RTU frames, read PDUs), the sans-IO
client connection (`connection`: transaction ids, matching), a lean asyncio client for TCP links
(`client`), and pymodbus behind the same interface for serial lines (`serial`, imported
only where a serial line is used)."""

from gateway.modbus.client import ModbusTcpClient
from gateway.modbus.codec import FUNCTIONS, Frame
from gateway.modbus.connection import Answer, ClientConnection, Framing
from gateway.modbus.errors import (
    ConnectionLostError,
    ExceptionResponseError,
    FrameError,
    ModbusError,
    RequestError,
    RequestTimeoutError,
)

__all__ = [
    "FUNCTIONS",
    "Answer",
    "ClientConnection",
    "ConnectionLostError",
    "ExceptionResponseError",
    "Frame",
    "FrameError",
    "Framing",
    "ModbusError",
    "ModbusTcpClient",
    "RequestError",
    "RequestTimeoutError",
]
