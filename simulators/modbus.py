"""Simulated Modbus TCP devices: a profile plus a signal per point, served over a real socket.

Built on pymodbus's `SimDevice` simulator. Each device keeps the four Modbus tables apart (coils,
discrete inputs, holding and input registers may reuse addresses, as on real devices) and rewrites
the table being read from its signals at `clock()`, inside the SimDevice `action` callback, so the
values follow the scenario without a background task. Writes are refused: these are sensors.

A unit that is offline, or not simulated at all, gets no answer, like a dead slave behind a serial
gateway: the request is dropped as it arrives (the server's `trace_pdu` hook returns nothing), so
the client times out while other units on the same port keep answering.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, cast

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimDevice

from simulators.encode import decode_words, encode_nan, encode_point, register_width
from simulators.modbuslayout import (
    BIT_TABLES,
    TABLE_OF_FUNCTION,
    TABLES,
    WORDS,
    Span,
    Table,
    layout,
    shares,
    sim_block,
)
from simulators.signals import Signal
from telemetry.config import DeviceProfile, PointSpec

__all__ = ["ModbusSimServer", "SimulatedDevice"]


class SimulatedDevice:
    """One Modbus unit: a device profile whose points follow scenario signals.

    A register that a one-register word point and bit points both read (a state word and its
    flags) holds the word's value with every bit set that a bit point's signal sets: the word reads
    the flags, and each flag the word's bit (a scenario may drive either).

    Points without a signal hold 0. Set `online = False` to simulate a lost link: the unit then
    answers nothing at all; `die_after(n)` does so after n more answers (a unit that dies between
    two requests of a gateway's cycle); `drop(n)` leaves the next n requests alone unanswered
    (lost frames). A NaN signal makes reads of its table answer "device failure"."""

    def __init__(
        self,
        profile: DeviceProfile,
        unit: int,
        signals: Mapping[str, Signal],
        clock: Callable[[], float],
    ) -> None:
        if not 0 <= unit <= 247:
            raise ValueError(f"unit id must be 0..247, got {unit}")
        unknown = sorted(set(signals) - {p.name for p in profile.points})
        if unknown:
            raise ValueError(f"signals for points not in profile {profile.name!r}: {unknown}")
        self.profile: Final = profile
        self.unit: Final = unit
        self.online: bool = True
        self.answers_left: int | None = None  # goes offline once this many more are answered
        self.drops_left = 0  # requests still to be lost, as frames lost on the line
        self._signals = dict(signals)
        self._clock = clock
        self._spans = layout(profile.points)
        self._modes: dict[str, tuple[str, float]] = {}  # point -> (mode, value when set)
        self._points = {p.name: p for p in profile.points}
        # registers a word point shares with bit points: the word's name -> those bit points
        self._bits_of: dict[str, tuple[PointSpec, ...]] = {}
        for span in self._spans.values():
            for word in span.points:
                if word.dtype in WORDS:
                    bits = tuple(b for b in span.points if b is not word and shares(word, b))
                    if bits:
                        self._bits_of[word.name] = bits
        self._shared = {b.name for bits in self._bits_of.values() for b in bits}

    def die_after(self, answers: int) -> None:
        """Answer `answers` more requests, then go offline (`online` False) for good."""
        if answers < 0:
            raise ValueError(f"answers must be >= 0, got {answers}")
        self.answers_left = answers

    def drop(self, requests: int = 1) -> None:
        """Leave the next `requests` requests unanswered, then answer again."""
        if requests < 0:
            raise ValueError(f"requests must be >= 0, got {requests}")
        self.drops_left = requests

    def _admits(self) -> bool:
        """Whether this unit answers the request that has come (counting down `drop` and
        `die_after`)."""
        if self.online and self.drops_left > 0:
            self.drops_left -= 1
            return False
        if self.online and self.answers_left is not None:
            if self.answers_left == 0:
                self.online, self.answers_left = False, None
            else:
                self.answers_left -= 1
        return self.online

    def values_at(self, t_s: float) -> dict[str, float]:
        """The engineering value of every point at `t_s`, as the device would hold it."""
        values = {p.name: self._value(p, t_s) for p in self.profile.points}
        for name, bits in self._bits_of.items():
            word = self._points[name]
            try:
                register = self._register(word, bits, t_s)
            except ValueError:
                continue  # a NaN signal: the device answers "device failure"
            values[name] = decode_words(word, [register])
            for b in bits:
                values[b.name] = decode_words(b, [(register >> (b.bit or 0)) & 1])
        return values

    def _register(self, word: PointSpec, bits: Sequence[PointSpec], t_s: float) -> int:
        """A register that `word` shares with bit points: its value, with their bits set."""
        (register,) = encode_point(word, self._value(word, t_s))
        for b in bits:
            register |= encode_point(b, self._value(b, t_s))[0] << (b.bit or 0)
        return register

    def set_mode(self, point: str, mode: str | None) -> None:
        """Put a point in a fault mode, or back to normal with None.

        line_break: a 4-20 mA loop at 2.0 mA (NAMUR: sensor fault; other points answer "device
        failure"); over_range: 20.8 mA (saturated; other points their dtype's maximum); stuck: the
        value freezes; calibration / fault: the profile's status bits for that quality are set;
        nan: a float point holds NaN, a float transmitter's fault signal (ValueError on others).
        """
        if point not in self._points:
            raise ValueError(f"profile {self.profile.name!r} has no point {point!r}")
        if mode is None:
            self._modes.pop(point, None)
            return
        if mode not in ("line_break", "nan", "over_range", "stuck", "calibration", "fault"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "nan":
            encode_nan(self._points[point])  # a float point, else ValueError
        frozen = self._base_value(self._points[point], self._clock())
        self._modes[point] = (mode, frozen)

    def _base_value(self, point: PointSpec, t_s: float) -> float:
        signal = self._signals.get(point.name)
        return 0.0 if signal is None else signal.value_at(t_s)

    def _value(self, point: PointSpec, t_s: float) -> float:
        value = self._base_value(point, t_s)
        if point.name in self._status_points():
            return float(self._status_word(point.name, int(value)))
        mode = self._modes.get(point.name)
        if mode is None:
            return value
        kind, frozen = mode
        cur = point.current
        if kind == "stuck":
            return frozen
        if kind == "nan":
            return math.nan
        if kind in ("line_break", "over_range"):
            ma = 2.0 if kind == "line_break" else 20.8
            if cur is not None:
                return cur.eng_min + (ma - 4.0) / 16.0 * (cur.eng_max - cur.eng_min)
            return math.nan if kind == "line_break" else math.inf
        return value

    def _status_points(self) -> set[str]:
        return {st.point for st in self.profile.status}

    def _status_word(self, name: str, word: int) -> int:
        for point, (kind, _) in self._modes.items():
            wanted = {"calibration": "calibration", "fault": "sensor_fault"}.get(kind)
            for st in self.profile.status:
                applies = not st.applies_to or point in st.applies_to
                if st.point != name or st.quality != wanted or not applies:
                    continue
                if st.bit is not None:
                    word |= 1 << st.bit
                elif st.equals is not None:
                    word = st.equals
                else:
                    word = word or 1
        return word

    def _sim_device(self) -> SimDevice:
        """The pymodbus device: four separate tables, refreshed by `_action` on every access."""
        coils, discretes, holding, inputs = (sim_block(t, self._spans.get(t)) for t in TABLES)
        return SimDevice(
            id=self.unit, simdata=(coils, discretes, holding, inputs), action=self._action
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called by pymodbus before it answers: refuse writes, else refresh the table read."""
        if not self.online:
            # Went offline after the request was admitted; pymodbus then sends nothing.
            raise NoSuchIdException(f"unit {self.unit} is offline")
        table = TABLE_OF_FUNCTION.get(function_code)
        if set_values is not None or table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        span = self._spans.get(table)
        if span is None or not span.lo <= address < span.hi:
            # Registers are range-checked by pymodbus; bit blocks only to 16-bit granularity.
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            self._refresh(table, span, start_address, (address, count), registers)
        except ValueError:
            return ExcCodes.DEVICE_FAILURE
        return None

    def _refresh(
        self, table: Table, span: Span, start: int, request: tuple[int, int], registers: list[int]
    ) -> None:
        """Write the points of `table` that `request` (address, count) reads, at the current
        time, into pymodbus's register list: a point that cannot be encoded (a line break on a
        point without a 4-20 mA loop) fails only the requests that read it, as on a real device.
        For bit tables pymodbus gives the count in 16-bit words: a request reads the words its
        first bit starts."""
        t_s = self._clock()
        address, count = request
        lo = address // 16 if table in BIT_TABLES else address
        hi = lo + count
        for point in span.points:
            if point.name in self._shared:
                continue  # written with its word
            first = point.address // 16 if table in BIT_TABLES else point.address
            width = 1 if table in BIT_TABLES else register_width(point.dtype)
            if first >= hi or first + width <= lo:
                continue  # not read: its value does not matter
            bits = self._bits_of.get(point.name)
            if bits is not None:
                registers[point.address - start] = self._register(point, bits, t_s)
                continue
            if self._modes.get(point.name, ("",))[0] == "nan":
                words = encode_nan(point)
            else:
                words = encode_point(point, self._value(point, t_s))
            if table in BIT_TABLES:
                index, bit = point.address // 16 - start, point.address % 16
                registers[index] = (registers[index] & ~(1 << bit)) | (words[0] << bit)
            elif point.dtype == "bit" and point.bit is not None:
                index, bit = point.address - start, point.bit
                registers[index] = (registers[index] & ~(1 << bit)) | (words[0] << bit)
            else:
                index = point.address - start
                registers[index : index + len(words)] = words


class ModbusSimServer:
    """A Modbus TCP server for several simulated units behind one port."""

    def __init__(
        self,
        devices: Sequence[SimulatedDevice],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        framer: Literal["socket", "rtu"] = "socket",
    ) -> None:
        """`framer="rtu"` serves Modbus RTU frames over TCP (serial device servers)."""
        if not devices:
            raise ValueError("a simulator server needs at least one device")
        units = [d.unit for d in devices]
        if len(set(units)) != len(units):
            raise ValueError(f"unit ids must be unique, got {units}")
        self._devices = {d.unit: d for d in devices}
        self._host = host
        self._port = port
        self._server: ModbusTcpServer | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self.requests = 0  # requests received, answered or not
        self.requests_by_unit: dict[int, int] = {}

    @property
    def port(self) -> int:
        """The bound port (the requested one until `start` has run)."""
        return self._port

    async def start(self) -> None:
        """Listen; returns once the socket is bound (port 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("simulator server already started")
        server = ModbusTcpServer(
            [d._sim_device() for d in self._devices.values()],
            address=(self._host, self._port),
            framer=self._framer,
            ignore_missing_devices=True,  # NoSuchIdException from an action -> no answer
            # pymodbus types the hook as returning a PDU, but skips a request it maps to None.
            trace_pdu=cast("Callable[[bool, ModbusPDU], ModbusPDU]", self._admit),
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's, which only logs the socket's error: find it
            raise OSError(
                f"cannot listen on {self._host}:{self._port}{_why(self._host, self._port)}"
            ) from exc
        listener = server.transport
        if not (isinstance(listener, asyncio.Server) and listener.sockets):
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise RuntimeError("pymodbus gave no listening socket to read the port from")
        self._server, self._listener = server, listener
        self._port = int(listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listening socket and every connection; safe to call twice."""
        server, self._server = self._server, None
        listener, self._listener = self._listener, None
        if server is None:
            return
        await server.shutdown()  # type: ignore[no-untyped-call]
        if listener is not None:
            await listener.wait_closed()

    def _admit(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """pymodbus trace hook: drop requests to units that are offline or not simulated."""
        if sending:
            return pdu
        self.requests += 1
        self.requests_by_unit[pdu.dev_id] = self.requests_by_unit.get(pdu.dev_id, 0) + 1
        device = self._devices.get(pdu.dev_id)
        return pdu if device is not None and device._admits() else None


def _why(host: str, port: int) -> str:
    """Why `host:port` cannot be listened on, as the socket says it (" (Address already in
    use)"), or "" when a bind now succeeds."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as err:
        return f" ({err.strerror or err})"
    return ""
