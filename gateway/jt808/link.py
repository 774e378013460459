"""The link phase of a JT/T 808 session (pure, sans-IO): bytes in, frames checked, every
message answered or handed on by what the session's state accepts.

What each state accepts is the table `ACCEPTS`. A known message the state does not accept is
answered 0x8001 result 1 (failed): the terminal must (re-)register or authenticate first. A
message id we do not handle is answered result 3, a body we cannot read result 2; a frame whose
check code or escaping is wrong is dropped (its serial number cannot be trusted). Every one of
these is reported as a `Problem`, which the server counts.
"""

from __future__ import annotations

import enum
from dataclasses import replace

from gateway.jt808.events import Close, Event, Problem, Send
from gateway.jt808.packets import RESEND_REQUEST, Packets, resend_body
from telemetry.jt808.codec import (
    BadFrame,
    Frame,
    FrameReader,
    Header,
    Jt808Error,
    ReassemblyFullError,
    VersionError,
    encode_frame,
)
from telemetry.jt808.messages import (
    Message,
    MsgId,
    PlatformResponse,
    UnsupportedMessageError,
    decode_body,
)

__all__ = ["ACCEPTS", "Link", "State"]


class State(enum.Enum):
    CONNECTED = "connected"
    REGISTERED = "registered"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


_ALWAYS = frozenset({MsgId.REGISTER, MsgId.AUTHENTICATE, MsgId.LOGOUT})
ACCEPTS: dict[State, frozenset[int]] = {
    State.CONNECTED: _ALWAYS,
    State.REGISTERED: _ALWAYS,
    State.AUTHENTICATED: _ALWAYS
    | {
        MsgId.HEARTBEAT,
        MsgId.LOCATION,
        MsgId.BATCH_LOCATION,
        MsgId.TERMINAL_RESPONSE,
        MsgId.DRIVER_IDENTITY,
    },
    State.CLOSED: frozenset(),
}
# the uplink messages a terminal may send at all; others (e.g. 0x8001 from a terminal) are refused
_UPLINK = frozenset().union(*ACCEPTS.values())


class Link:
    """A session's link phase: framing, reassembly, bad frames, general answers and refusals.
    Its state is set up by `Session`, which handles what the state accepts (`_dispatch`)."""

    state: State
    phone: str | None
    header: Header | None
    max_bad_frames: int
    _reader: FrameReader
    _parts: Packets
    _serial: int
    _bad_in_a_row: int

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def packets_pending(self) -> int:
        """Sub-packaged messages open (not whole yet)."""
        return self._parts.pending

    def next_serial(self) -> int:
        s = self._serial
        self._serial = (s + 1) & 0xFFFF
        return s

    def feed(self, data: bytes, now_ms: int) -> list[Event]:
        """Events for the bytes received; empty data means the terminal closed the connection."""
        if self.state is State.CLOSED:
            return []
        if not data:
            self.state = State.CLOSED
            return [Close("closed by the terminal")]
        events = self.tick(now_ms)
        for item in self._reader.feed(data):
            if isinstance(item, BadFrame):
                self._bad(item, events)
            else:
                self._frame(item, now_ms, events)
            if self.closed:
                break
        return events

    def tick(self, now_ms: int) -> list[Event]:
        """The time-driven part of sub-packaged messages: the missing sub-packages asked for
        (0x8003) of a group silent a while, a group silent too long dropped."""
        if not self._parts.pending:
            return []
        events: list[Event] = []
        asks, dropped = self._parts.tick(now_ms)
        for gone in dropped:
            total = gone.header.packet[0] if gone.header.packet else "?"
            events.append(
                Problem(
                    "incomplete_packets",
                    f"message {gone.header.msg_id:#06x} of serial {gone.first_serial}: "
                    f"sub-packages {_indexes(list(gone.indexes))} of {total} never came",
                )
            )
        if self.state is not State.AUTHENTICATED:  # (groups are kept once authenticated)
            return events
        for ask in asks:
            reply = ask.header.reply(RESEND_REQUEST, self.next_serial())
            body = resend_body(ask.first_serial, ask.indexes, reply.is_2019)
            events.append(Send(encode_frame(reply, body)))
            events.append(
                Problem(
                    "packets_asked",
                    f"message {ask.header.msg_id:#06x} of serial {ask.first_serial}: "
                    f"sub-packages {_indexes(list(ask.indexes))} asked for again (0x8003)",
                )
            )
        return events

    def encode(self, msg: Message) -> bytes:
        """A platform message to this terminal, in its header version (after a good frame)."""
        if self.header is None:
            raise RuntimeError("no frame from the terminal yet: its header version is unknown")
        h = self.header.reply(msg.msg_id, self.next_serial())
        return encode_frame(h, msg.encode(h.is_2019))

    def _bad(self, item: BadFrame, events: list[Event]) -> None:
        kind = "bad_version" if isinstance(item.error, VersionError) else "bad_frame"
        events.append(Problem(kind, str(item.error)))
        self._count_bad(events)

    def _count_bad(self, events: list[Event]) -> None:
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= self.max_bad_frames:
            self.state = State.CLOSED
            reason = f"{self._bad_in_a_row} bad frames in a row"
            events.append(Problem("bad_frames_closed", f"{reason}: closing the connection"))
            events.append(Close(reason))

    def _answer(self, h: Header, result: int, events: list[Event]) -> None:
        self.header = self.header or h
        reply = h.reply(MsgId.PLATFORM_RESPONSE, self.next_serial())
        body = PlatformResponse(h.serial, h.msg_id, result).encode(reply.is_2019)
        events.append(Send(encode_frame(reply, body)))

    def _frame(self, frame: Frame, now_ms: int, events: list[Event]) -> None:
        h = frame.header
        if self.phone is not None and h.phone != self.phone:
            events.append(Problem("phone_mismatch", f"frame from {h.phone} on {self.phone}'s link"))
            self._count_bad(events)
            return
        if h.encryption:
            events.append(Problem("unsupported", f"encrypted body of {h.msg_id:#06x}"))
            self._answer(h, PlatformResponse.UNSUPPORTED, events)
            return
        if h.packet is not None and self.state is not State.AUTHENTICATED:
            # not kept to join: a registration or authentication is never that long, and an
            # unauthenticated peer must not make the gateway hold megabytes
            if h.msg_id in ACCEPTS[self.state]:
                events.append(Problem("bad_frame", f"sub-packaged {h.msg_id:#06x} before auth"))
                self._answer(h, PlatformResponse.FAILED, events)
            else:
                self._refuse(h, events)
            return
        try:
            joined = self._parts.add(frame, now_ms)
        except ReassemblyFullError as exc:  # the terminal sends it again later
            events.append(Problem("reassembly_full", str(exc)))
            self._answer(h, PlatformResponse.FAILED, events)
            return
        except Jt808Error as exc:
            events.append(Problem("bad_frame", str(exc)))
            self._answer(h, PlatformResponse.MESSAGE_ERROR, events)
            return
        if joined.kind is not None:  # a copy, or one asked for again that came with a new serial
            events.append(Problem(joined.kind, f"message {h.msg_id:#06x} sub-package {h.packet}"))
        whole = joined.whole
        if whole is None:  # a sub-package received: answered at once, by its own serial (a
            self._answer(h, PlatformResponse.OK, events)  # terminal may wait for it to go on)
            return
        # the whole message is answered when handled (stored, for positions) by the serial of the
        # sub-package that completed it: each sub-package gets its one answer
        h = whole.header if h.packet is None else replace(whole.header, serial=h.serial)
        if h.msg_id not in _UPLINK:
            self._refuse(h, events)
            return
        try:
            msg = decode_body(h.msg_id, whole.body, h.is_2019)
        except UnsupportedMessageError as exc:  # pragma: no cover - _UPLINK is a subset
            events.append(Problem("unsupported", str(exc)))
            self._answer(h, PlatformResponse.UNSUPPORTED, events)
            return
        except Jt808Error as exc:
            events.append(Problem("bad_body", str(exc)))
            self._answer(h, PlatformResponse.MESSAGE_ERROR, events)
            self._count_bad(events)
            return
        self._bad_in_a_row = 0
        self.header = h
        if h.msg_id not in ACCEPTS[self.state]:
            self._refuse(h, events)
            return
        self._dispatch(h, msg, whole.body, now_ms, events)

    def _refuse(self, h: Header, events: list[Event]) -> None:
        """Answer a message this session does not take: unsupported at all, or not yet."""
        if h.msg_id not in _UPLINK:
            events.append(Problem("unsupported", f"message {h.msg_id:#06x} is not supported"))
            self._answer(h, PlatformResponse.UNSUPPORTED, events)
        else:
            events.append(
                Problem("not_authenticated", f"message {h.msg_id:#06x} in state {self.state.value}")
            )
            self._answer(h, PlatformResponse.FAILED, events)

    def _dispatch(
        self, h: Header, msg: Message, body: bytes, now_ms: int, events: list[Event]
    ) -> None:
        """Handle a message the state accepts (the phases after the link's: `Session`); `body`
        is the whole body it was decoded from."""
        raise NotImplementedError


def _indexes(indexes: list[int]) -> str:
    """Sub-package indexes for a log line: the first 10 and how many more."""
    shown = ", ".join(map(str, indexes[:10]))
    return shown + (f" and {len(indexes) - 10} more" if len(indexes) > 10 else "")
