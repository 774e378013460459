"""Errors of the Modbus client, saying whose fault each one is."""

from __future__ import annotations

from gateway.errors import GatewayError

__all__ = [
    "ConnectionLostError",
    "CrcError",
    "ExceptionResponseError",
    "FrameError",
    "ModbusError",
    "RequestError",
    "RequestTimeoutError",
]

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusError(GatewayError):
    """Base of the errors of `gateway.modbus`."""


class RequestError(ModbusError):
    """A request we were asked to encode breaks the protocol (our fault: the plan's limits)."""


class FrameError(ModbusError):
    """The peer sent bytes that are not a valid Modbus frame, or a frame that is not the answer
    to our request (the peer's fault). After bytes that are no frame a Modbus TCP stream cannot
    be trusted and the client closes it; on RTU over TCP they are noise of the serial line
    behind the device server, and fail the one request (the line is let fall quiet before the
    next). A frame that does not fit its request fails that request alone."""


class CrcError(FrameError):
    """An RTU frame whose CRC-16 is wrong: corrupted on the serial line (noise, a bad
    termination, two talkers), or not a whole frame."""


class ExceptionResponseError(ModbusError):
    """The device answered with a Modbus exception (function code | 0x80)."""

    def __init__(self, unit: int, function: int, code: int) -> None:
        self.unit, self.function, self.code = unit, function, code
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"unit {unit}: function {function} answered exception {code} ({name})")

    @property
    def no_answer(self) -> bool:
        """A TCP-to-RTU gateway's codes 10 and 11: the unit behind it did not answer."""
        return self.code in (10, 11)


class ConnectionLostError(ModbusError):
    """The connection failed, closed, or was never made (the link's or the peer's fault)."""


class RequestTimeoutError(ModbusError, TimeoutError):
    """No answer within the request's timeout."""
