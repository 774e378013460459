"""One Modbus connection (TCP, RTU over TCP, or a serial line) shared by the units behind it.

TCP links use the lean client of `gateway.modbus`; a serial line uses pymodbus (pyserial).
Requests on a bus go one at a time (one request queue per bus). A unit that does not answer is
put in backoff: it is asked again only after a delay that doubles up to `backoff_max_s`, and in the
meantime its reads fail at once. So a dead unit costs the others at most one timeout per backoff
period, never one per cycle. A TCP-to-RTU gateway's exception 10 or 11 (the unit behind it did not
answer) counts as silence too.

A unit that answered another request of the same cycle (`alive=True`) is not silent: a request it
leaves unanswered (a block its firmware ignores) fails alone, and that request, not the unit, is
put in backoff: skipped (`NotSentError`) for a delay that doubles up to `backoff_max_s`, then
asked again. So a block that is never answered costs the line one timeout per backoff period too.
A request a unit is `forgiven` (a frame lost on the line, or the unit gone in the middle of a
cycle: the poller tells which) puts neither in backoff, alive or not; with `resend_lost` it is
sent once more at once when unanswered or garbled (the poller's default for a lost frame).

Errors say how much is lost (`gateway.errors`): `LinkError` the connection (it cannot be made, was
lost, or lost its framing: bytes that are no Modbus frame on Modbus TCP), `NoAnswerError` (and
`NotSentError`: the request, or its unit, `UnitSilentError`, in backoff), `RefusedError` and a
plain `DeviceError` (a malformed answer: a frame that does not fit its request, or an RTU answer
garbled on the serial line, a CRC error, counted in `crc_errors`; the link stays up) the one
request. Neither a malformed nor a garbled answer puts anything in backoff: the unit answered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gateway.errors import (
    DeviceError,
    LinkError,
    NoAnswerError,
    NotSentError,
    RefusedError,
    UnitSilentError,
)
from gateway.modbus.client import ModbusTcpClient
from gateway.modbus.codec import FUNCTIONS
from gateway.modbus.connection import Framing, Value
from gateway.modbus.errors import (
    CrcError,
    ExceptionResponseError,
    FrameError,
    ModbusError,
    RequestTimeoutError,
)
from telemetry.config import ModbusSpec

__all__ = ["Link", "ModbusBus"]

log = logging.getLogger(__name__)


class Link(Protocol):
    """What a bus needs of a connection: `ModbusTcpClient` or `SerialLink`."""

    @property
    def connected(self) -> bool: ...

    async def connect(self, timeout_s: float) -> None: ...

    async def read(
        self, unit: int, function: int, address: int, count: int, *, timeout_s: float
    ) -> Value: ...

    def close(self) -> None: ...


class ModbusBus:
    def __init__(self, spec: ModbusSpec, *, timeout_s: float | None = None) -> None:
        self.endpoint = spec.endpoint()
        self._spec = spec
        self._timeout = timeout_s or spec.timeout_s
        self._link: Link | None = None
        self._lock = asyncio.Lock()
        # a silent unit's backoff, and a live unit's unanswered request's (unit, function,
        # address, count): the last delay, and until when it is not sent
        self._backoff: dict[int, float] = {}
        self._silent_until: dict[int, float] = {}
        self._request_backoff: dict[tuple[int, int, int, int], float] = {}
        self._request_until: dict[tuple[int, int, int, int], float] = {}
        self.requests = 0
        self.timeouts = 0  # failed attempts (no answer, a lost link, a malformed answer)
        self.crc_errors = 0  # RTU answers garbled on the line

    def _make_link(self) -> Link:
        spec = self._spec
        if spec.serial is not None:
            from gateway.modbus.serial import SerialLink  # pymodbus only where a line is used

            return SerialLink(spec.serial, timeout_s=self._timeout)
        framing: Framing = "rtu" if spec.transport == "rtu-over-tcp" else "socket"
        return ModbusTcpClient(spec.host, spec.port, framing=framing)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    def silent(self, unit: int) -> bool:
        return unit in self._backoff

    def _silence(self, unit: int, now: float, backoff_max_s: float) -> None:
        delay = min(self._backoff.get(unit, 0.5) * 2, backoff_max_s)
        self._backoff[unit] = delay
        self._silent_until[unit] = now + delay

    def _silence_request(
        self, request: tuple[int, int, int, int], now: float, backoff_max_s: float
    ) -> None:
        delay = min(self._request_backoff.get(request, 0.5) * 2, backoff_max_s)
        self._request_backoff[request] = delay
        self._request_until[request] = now + delay

    def _answered(self, unit: int, request: tuple[int, int, int, int]) -> None:
        """The unit answered the request (with data or a refusal): neither is in backoff."""
        self._backoff.pop(unit, None)
        self._silent_until.pop(unit, None)
        self._request_backoff.pop(request, None)
        self._request_until.pop(request, None)

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
        alive: bool = False,
        forgiven: bool = False,
        resend_lost: bool = False,
    ) -> Value:
        """Read registers (big-endian bytes) or bits (a tuple) of one unit; raise a
        `DeviceError` when they cannot be had. `alive`: the unit answered another request of
        this cycle, so a request it leaves unanswered puts that request in backoff, not the
        unit. `forgiven`: left unanswered, it puts neither in backoff (whatever `alive` says).
        `resend_lost`: a request lost (unanswered, or garbled on an RTU line) after its
        `retries` is sent once more at once."""
        loop = asyncio.get_running_loop()
        if self._silent_until:
            until = self._silent_until.get(unit)
            if until is not None and loop.time() < until:
                raise UnitSilentError(
                    f"unit {unit} is silent; asked again in {until - loop.time():.1f}s"
                )
        function = FUNCTIONS[table]
        request = (unit, function, address, count)
        if self._request_until:
            until = self._request_until.get(request)
            if until is not None and loop.time() < until:
                raise NotSentError(
                    f"unit {unit}: {table} {address}+{count} went unanswered; asked again in "
                    f"{until - loop.time():.1f}s"
                )
        async with self._lock:
            if self._link is None:
                self._link = self._make_link()
            link = self._link
            attempts = retries + 1 + resend_lost
            for attempt in range(attempts):
                try:
                    if not link.connected:
                        await link.connect(self._timeout)
                except ModbusError as exc:
                    raise LinkError(str(exc)) from exc
                self.requests += 1
                try:
                    value = await link.read(unit, function, address, count, timeout_s=timeout_s)
                    break
                except ExceptionResponseError as exc:
                    if not exc.no_answer:  # the unit answered, with a refusal
                        if self._backoff or self._request_backoff:
                            self._answered(unit, request)
                        raise RefusedError(f"unit {unit}: exception response: {exc}") from exc
                    failure: ModbusError = exc
                except ModbusError as exc:
                    failure = exc
                self.timeouts += 1
                if isinstance(failure, CrcError):
                    self.crc_errors += 1
                lost = isinstance(failure, (RequestTimeoutError, ExceptionResponseError, CrcError))
                if attempt == attempts - 1 or (attempt == retries and not lost):
                    if isinstance(failure, FrameError) and link.connected:
                        # an answer that does not fit its request (function, unit, byte count),
                        # or garbled on an RTU line, on a link that kept its framing: the one
                        # request is lost
                        what = "CRC error" if isinstance(failure, CrcError) else "malformed answer"
                        raise DeviceError(f"unit {unit}: {what}: {failure}") from failure
                    silent = isinstance(failure, (RequestTimeoutError, ExceptionResponseError))
                    if silent and forgiven:
                        pass  # a frame lost, or the unit gone: neither the request nor the unit
                    elif silent and alive:
                        self._silence_request(request, loop.time(), backoff_max_s)
                    else:
                        self._silence(unit, loop.time(), backoff_max_s)
                    if silent:
                        raise NoAnswerError(str(failure)) from failure
                    raise LinkError(str(failure)) from failure
        if self._backoff or self._request_backoff:
            self._answered(unit, request)
        return value
