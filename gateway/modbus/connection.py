"""The client side of one Modbus link, sans-IO: reads in, bytes out; bytes in, answers out.

`ClientConnection.read` numbers a request and gives the bytes to send; `receive` takes whatever
the link delivered and gives the `Answer`s it completes, matched to their requests:

- Modbus TCP (MBAP): by transaction id, so several requests may be outstanding. An answer whose
  id is not outstanding (it came after its request timed out and was `forget`-ten) is dropped
  and counted in `dropped`.
- RTU over TCP: RTU has no transaction id, so one request at a time; the answer must come from
  the unit and function asked. Bytes that come while nothing is outstanding are dropped. A request
  given up on (`forget`: it timed out) sets `resync` as a garbled frame does (below): its answer
  may still be on its way, and the next request, if it went at once, would take it for its own
  (the same unit, function and length read other registers: their values under the wrong names).

An answer that frames well but does not fit its request (wrong function, wrong length) completes
that request with a `FrameError`. Bytes that cannot be framed at all:

- Modbus TCP: raise `FrameError` from `receive`: the stream has lost its framing and the link
  must be closed.
- RTU over TCP: the TCP stream is intact; the serial line behind the device server garbled the
  answer (a wrong CRC: `CrcError`; a function no read answers). The outstanding request is
  completed with that error, whatever else has come is dropped, and `resync` is set: the rest
  of the broken frame may still be on its way, so the shell lets the line fall quiet (an
  inter-frame gap with no byte) and calls `settled` before the next request (`read` refuses
  until then). RTU finds a frame's start by such silence, not by its content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.modbus.codec import (
    Frame,
    decode_read_response,
    encode_mbap_read,
    encode_read_request,
    encode_rtu,
    parse_mbap,
    parse_rtu,
)
from gateway.modbus.errors import FrameError, ModbusError, RequestError

__all__ = ["Answer", "ClientConnection", "Framing"]

Framing = Literal["socket", "rtu"]
Value = bytes | tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of request `rid`: its data, or the error the device or the frame gave."""

    rid: int
    value: Value | ModbusError


class ClientConnection:
    def __init__(self, framing: Framing = "socket") -> None:
        if framing not in ("socket", "rtu"):
            raise RequestError(f"unknown framing {framing!r}")
        self.framing: Framing = framing
        self._pending: dict[int, tuple[int, int, int]] = {}  # rid -> (unit, function, count)
        self._next = 0
        self._buf = b""
        self.dropped = 0  # frames nobody was waiting for
        # RTU: a frame was garbled or late, the line must fall quiet (`settled`); `_late`: for
        # a request given up on, so what comes meanwhile is its answer (counted in `dropped`)
        self.resync = self._late = False

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def read(self, unit: int, function: int, address: int, count: int) -> tuple[int, bytes]:
        """A read request: (request id, bytes to send)."""
        if self.framing == "socket":
            tid = self._next
            if len(self._pending) >= 0x10000:
                raise RequestError("65536 requests outstanding: no transaction id is free")
            while tid in self._pending:
                tid = (tid + 1) & 0xFFFF
            self._next = (tid + 1) & 0xFFFF
            data = encode_mbap_read(tid, unit, function, address, count)
            self._pending[tid] = (unit, function, count)
            return tid, data
        if self._pending:
            raise RequestError("RTU has no transaction id: one request at a time")
        if self.resync:
            raise RequestError("RTU: a frame was garbled or late; the line must fall quiet first")
        data = encode_rtu(unit, encode_read_request(function, address, count))
        rid = self._next
        self._next = (rid + 1) & 0xFFFF
        self._buf = b""  # whatever came before belongs to no request of ours
        self._pending[rid] = (unit, function, count)
        return rid, data

    def settled(self) -> None:
        """RTU: the line has been quiet for an inter-frame gap since a garbled frame; what came
        meanwhile is dropped, and the next request may go."""
        self.resync = self._late = False
        self._buf = b""

    def forget(self, rid: int) -> None:
        """Give up on a request (it timed out): a late answer to it will be dropped (RTU: the
        line must fall quiet before the next request, `settled`)."""
        if self._pending.pop(rid, None) is not None and self.framing == "rtu":
            self._buf = b""
            self.resync = self._late = True

    def receive(self, data: bytes) -> list[Answer]:
        """The answers that `data` completes, in the order they came."""
        buf = self._buf + data if self._buf else data
        answers: list[Answer] = []
        pos = 0
        parse = parse_mbap if self.framing == "socket" else parse_rtu
        try:
            while True:
                if self.framing == "rtu" and not self._pending:
                    # unasked, or too late (counted); after a garbled frame, the rest of it
                    self.dropped += len(buf) > pos and (self._late or not self.resync)
                    pos = len(buf)
                    break
                frame, used = parse(buf, pos)
                if frame is None:
                    break
                pos += used
                answer = self._match(frame)
                if answer is not None:
                    answers.append(answer)
        except FrameError as exc:
            self._buf = b""
            if self.framing == "socket":
                raise
            # RTU: the serial line garbled the answer; it fails its request alone
            rid = next(iter(self._pending))
            del self._pending[rid]
            self.resync = True
            answers.append(Answer(rid, exc))
            return answers
        self._buf = buf[pos:] if pos < len(buf) else b""
        return answers

    def _match(self, frame: Frame) -> Answer | None:
        # RTU: the one outstanding request (receive does not match when there is none)
        rid = frame.tid if self.framing == "socket" else next(iter(self._pending))
        want = self._pending.pop(rid, None)
        if want is None:
            self.dropped += 1
            return None
        unit, function, count = want
        if frame.unit != unit:
            return Answer(rid, FrameError(f"asked unit {unit}, unit {frame.unit} answered"))
        try:
            return Answer(rid, decode_read_response(unit, function, count, frame.pdu))
        except ModbusError as exc:  # an exception response, or a malformed one
            return Answer(rid, exc)
