"""One terminal's JT/T 808 session (pure, sans-IO): bytes in, events out.

    CONNECTED --0x0100 ok--> REGISTERED --0x0102 ok--> AUTHENTICATED
    CONNECTED --0x0102 ok (code from an earlier registration)--> AUTHENTICATED
    any --0x0003 logout--> CLOSED

What each state accepts is the table `ACCEPTS`. A known message the state does not accept is
answered 0x8001 result 1 (failed): the terminal must (re-)register or authenticate first. A
message id we do not handle is answered result 3, a body we cannot read result 2; a frame whose
check code or escaping is wrong is dropped (its serial number cannot be trusted). Every one of
these is reported as a `Problem`, which the server counts.

Positions are published before they are acknowledged: the server commits a `Publish` to its disk
spool before it sends the `Send` that follows it, so an acknowledged position is never lost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import cast

from gateway.jt808.bindings import Bindings, Refused, Terminal
from gateway.jt808.directory import Conflict, Directory, VehicleRef, phone_key
from gateway.jt808.hold import Source
from telemetry.jt808.codec import (
    BadFrame,
    Frame,
    FrameReader,
    Header,
    Jt808Error,
    Reassembler,
    ReassemblyFullError,
    VersionError,
    encode_frame,
)
from telemetry.jt808.messages import (
    Alarm,
    AlarmConfirm,
    Authenticate,
    BatchLocation,
    DriverIdentity,
    DriverRequest,
    Location,
    Message,
    MsgId,
    PlatformResponse,
    Register,
    RegisterResponse,
    Status,
    TerminalResponse,
    TextMessage,
    UnsupportedMessageError,
    bcd_time_to_ms,
    decode_body,
)

__all__ = [
    "ACCEPTS",
    "Authenticated",
    "Close",
    "Event",
    "Problem",
    "Publish",
    "Send",
    "Session",
    "State",
    "TerminalAck",
    "position_record",
]


# a live report this far from the gateway's clock says the terminal's clock is off (a report
# sent again after a short outage is minutes old; the hub refuses more than 5 min ahead)
SKEW_PAST_MS = 3_600_000
SKEW_FUTURE_MS = 300_000
SKEW_FOR_MS = 60_000  # ... by the same offset (within SKEW_SAME_MS) for this long
SKEW_SAME_MS = 120_000
# behind, only a time zone's mistake (a whole number of hours, within this) or a clock far back
# (a reset RTC) is a clock: stored reports drained as 0x0200 at their recorded pace after an
# outage keep one offset for as long, of any size
SKEW_ZONE_MS = 180_000
SKEW_FAR_PAST_MS = 30 * 86_400_000


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


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    vehicle: VehicleRef
    records: tuple[dict[str, object], ...]  # a 0x0704's in time order
    received_ms: int
    source: Source = Source.LIVE  # 0x0200, or a 0x0704 of either type


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # a short counter label: bad_frame, bad_body, unsupported, not_authenticated, ...
    detail: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    vehicle: VehicleRef
    phone: str


@dataclass(frozen=True, slots=True)
class TerminalAck:
    response: TerminalResponse


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


Event = Send | Publish | Problem | Authenticated | TerminalAck | Close


def position_record(
    loc: Location, v2019: bool = True, clearing: bool = False
) -> dict[str, object] | str:
    """The MQTT position record of a location, or why it cannot be one (a counter label).

    A report without a fix (status bit 1 clear), or whose place, speed or heading cannot be, is
    dropped, unless it carries alarm bits (an emergency button, a collision, the antenna cut
    that lost the fix). Then it is sent at lat 0, lon 0, speed 0, which the hub reads as "no
    fix" (`ingest.positions`): its bits are judged, its place (often the terminal's last fix,
    repeated) and speed are used nowhere. One without a valid time is dropped (nothing can be
    judged in event time). With `clearing` (the last report published of the terminal carried
    bits, or none was on this connection) one without bits goes too, for the bits it clears.
    The bits reserved in the terminal's version (a vendor's own) are cleared: 15-17 of 2013
    (`Alarm.ONLY_2019`), 31 of 2019 (`Alarm.ONLY_2013`)."""
    alarm = loc.alarm & ~int(Alarm.ONLY_2013) if v2019 else loc.alarm & ~int(Alarm.ONLY_2019)
    try:
        ts = loc.ts_ms
    except Jt808Error:
        return "bad_time"
    lat, lon = loc.lat, loc.lon
    problem = (
        "no_fix"
        if not loc.status & Status.POSITIONED
        else "bad_position"
        if not (-90 <= lat <= 90 and -180 <= lon <= 180)
        else "bad_speed"
        if loc.speed_dkmh > 3000
        else "bad_heading"
        if loc.direction > 360
        else ""
    )
    if problem:
        if not alarm and not clearing:
            return problem
        return {  # its alarm bits, judged; no place, no speed
            "ts": ts,
            "lat": 0.0,
            "lon": 0.0,
            "speed_kmh": 0.0,
            "heading_deg": 0,
            "acc_on": bool(loc.status & Status.ACC_ON),
            "alarm_flags": alarm,
        }
    rec: dict[str, object] = {
        "ts": ts,
        "lat": lat,
        "lon": lon,
        "speed_kmh": loc.speed_kmh,
        "heading_deg": loc.direction,
        "acc_on": bool(loc.status & Status.ACC_ON),
        "alarm_flags": alarm,
    }
    if loc.altitude_m <= 9000:
        rec["alt_m"] = loc.altitude_m
    return rec


class Session:
    """The state of one TCP connection from one terminal."""

    def __init__(
        self,
        directory: Directory,
        bindings: Bindings | None = None,
        *,
        max_frame: int = 4096,
        max_bad_frames: int = 20,
    ) -> None:
        """`bindings`: which terminal each vehicle is, and its auth code (the server's, shared
        by its connections; without it, this session's own, in memory)."""
        self.directory = directory
        self.bindings = bindings if bindings is not None else Bindings()
        self.state = State.CONNECTED
        self.phone: str | None = None  # bound at authentication
        self.header: Header | None = None  # the terminal's last good header (version, phone)
        self.vehicle: VehicleRef | None = None
        self._reader = FrameReader(max_frame)
        self._parts = Reassembler()
        self._serial = 0
        self._bad_in_a_row = 0
        self.max_bad_frames = max_bad_frames
        self._skew_said = False  # a terminal clock off is said once per connection
        self._skew_seen: tuple[int, int] | None = None  # (offset, when) of a live report off
        # the alarm bits of the last record published (-1: none yet on this connection: the
        # terminal may have had bits on its last one, so a report without a fix clears them)
        self._flags_out = -1
        self.driver: str | None = None  # the driver whose IC card is in (0x0702) ...
        self._driver_since = 0  # ... since this time (ms)

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

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
        events: list[Event] = []
        for h in self._parts.expire(now_ms):
            events.append(Problem("incomplete_packets", f"message {h.msg_id:#06x} timed out"))
        for item in self._reader.feed(data):
            if isinstance(item, BadFrame):
                self._bad(item, events)
            else:
                self._frame(item, now_ms, events)
            if self.closed:
                break
        return events

    def encode(self, msg: Message) -> bytes:
        """A platform message to this terminal, in its header version (after a good frame)."""
        if self.header is None:
            raise RuntimeError("no frame from the terminal yet: its header version is unknown")
        h = self.header.reply(msg.msg_id, self.next_serial())
        return encode_frame(h, msg.encode(h.is_2019))

    def confirm_alarm(self, alarm_serial: int, alarm_type: int) -> bytes:
        """The 0x8203 frame confirming the terminal's alarms (see `AlarmConfirm`)."""
        if self.state is not State.AUTHENTICATED:
            raise RuntimeError("the terminal is not authenticated")
        return self.encode(AlarmConfirm(alarm_serial, alarm_type))

    def remind(self, text: str) -> bytes:
        """The 0x8300 frame of a reminder to the driver: shown on the terminal's display and
        read aloud (TTS); a 2019 terminal gets it as a notification (flag bits 0-1 = 11, text
        type 1), a 2013 one without the emergency bit."""
        if self.state is not State.AUTHENTICATED or self.header is None:
            raise RuntimeError("the terminal is not authenticated")
        flag = TextMessage.DISPLAY | TextMessage.TTS
        if self.header.is_2019:
            flag |= TextMessage.NOTIFICATION
        return self.encode(TextMessage(flag, text))

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
            whole = self._parts.add(frame, now_ms)
        except ReassemblyFullError as exc:  # the terminal sends it again later
            events.append(Problem("reassembly_full", str(exc)))
            self._answer(h, PlatformResponse.FAILED, events)
            return
        except Jt808Error as exc:
            events.append(Problem("bad_frame", str(exc)))
            self._answer(h, PlatformResponse.MESSAGE_ERROR, events)
            return
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
        self._dispatch(h, msg, now_ms, events)

    @property
    def _who(self) -> str:
        """The vehicle of the connection for a log line, else its terminal's phone number."""
        return self.vehicle.vehicle if self.vehicle else str(self.phone)

    def _driver_card(self, msg: DriverIdentity, events: list[Event]) -> None:
        """A driver's IC card in (positions measured from its time on say `driver_id`; older
        ones, a blind-area upload, say none) or out (they say no driver: the hub keeps the
        vehicle's as it was until another card is in)."""
        who = self._who
        try:
            since = bcd_time_to_ms(msg.time)
        except Jt808Error:
            since = 0  # a card's time that is no date: from now on, whatever the positions say
        if msg.status == DriverIdentity.IN and msg.result == 0 and msg.driver_id:
            self.driver, self._driver_since = msg.driver_id, since
            events.append(Problem("driver_card_in", f"{who}: driver {msg.driver_id} at {msg.time}"))
        elif msg.status == DriverIdentity.IN:
            why = f"result {msg.result}" if msg.result else "no certificate or ID card number"
            events.append(Problem("driver_card_unread", f"{who}: IC card not read ({why})"))
        else:
            self.driver = None
            events.append(Problem("driver_card_out", f"{who}: IC card out at {msg.time}"))

    def _clock_check(self, loc: Location, now_ms: int, events: list[Event]) -> None:
        """Live reports (0x0200, not blind-area uploads) far from the gateway's clock, by the
        same offset for a minute: the terminal's clock is off, or on UTC instead of Beijing time
        (8 h behind), and every rule of time (night, 02:00-05:00, fatigue) is judged at the
        wrong hours. Said once. (A single old one is a stored report sent again after an
        outage: the next live ones are on time; stored ones drained at their recorded pace
        are behind by an offset that is not a time zone's, `_a_clocks_offset`.)"""
        try:
            off = loc.ts_ms - now_ms
        except Jt808Error:
            return
        if -SKEW_PAST_MS <= off <= SKEW_FUTURE_MS or not _a_clocks_offset(off):
            self._skew_seen = None
            return
        seen = self._skew_seen
        if seen is None or abs(off - seen[0]) > SKEW_SAME_MS:
            self._skew_seen = (off, now_ms)
            return
        if now_ms - seen[1] < SKEW_FOR_MS:
            return
        self._skew_said = True
        hours = off / 3_600_000
        guess = " (a clock on UTC, not Beijing time?)" if abs(hours + 8) < 0.25 else ""
        where = f"{abs(hours):.1f} h {'behind' if off < 0 else 'ahead of'}"
        events.append(
            Problem(
                "clock_skew",
                f"{self._who}: a live report at "
                f"{loc.time} (GMT+8) is {where} the gateway's clock{guess}; positions are judged "
                "at the times the terminal sends: set its clock (or its time zone)",
            )
        )

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

    def _dispatch(self, h: Header, msg: Message, now_ms: int, events: list[Event]) -> None:
        if isinstance(msg, Register):
            self._register(h, msg, now_ms, events)
        elif isinstance(msg, Authenticate):
            self._authenticate(h, msg, events)
        elif isinstance(msg, Location):
            self._locations(h, (msg,), now_ms, events)
        elif isinstance(msg, BatchLocation):
            # in time order, as a track is read (a terminal may send its backlog newest first;
            # the hub sorts a batch itself, other subscribers of the topic may not); a time
            # that is no date first (it is dropped)
            items = tuple(sorted(msg.items, key=_ts_or_0))
            source = Source.BLIND if msg.kind == BatchLocation.BACKFILL else Source.BATCH
            self._locations(h, items, now_ms, events, source)
        elif isinstance(msg, TerminalResponse):
            events.append(TerminalAck(msg))
        elif isinstance(msg, DriverIdentity):
            self._driver_card(msg, events)
            self._answer(h, PlatformResponse.OK, events)
        elif msg.msg_id == MsgId.LOGOUT:
            self._answer(h, PlatformResponse.OK, events)
            self.state = State.CLOSED
            events.append(Close("logout"))
        else:  # heartbeat
            self._answer(h, PlatformResponse.OK, events)

    def _register(self, h: Header, msg: Register, now_ms: int, events: list[Event]) -> None:
        result, ref = self.directory.register(h.phone, msg.plate)
        code = ""
        if isinstance(ref, VehicleRef):
            terminal = Terminal(msg.maker, msg.model, msg.terminal_id, phone_key(h.phone))
            issued = self.bindings.register(ref, terminal, now_ms)
            if isinstance(issued, Refused):
                result = issued.result
                events.append(Problem("binding_refused", _refusal(ref, terminal, issued)))
            else:
                code = issued
                if self.state is State.CONNECTED:
                    self.state = State.REGISTERED
        elif isinstance(ref, Conflict):
            events.append(Problem("terminal_conflict", f"{ref}: registration refused"))
        else:
            events.append(
                Problem("unknown_terminal", f"terminal {h.terminal} plate {msg.plate!r}: {result}")
            )
        reply = h.reply(MsgId.REGISTER_RESPONSE, self.next_serial())
        body = RegisterResponse(h.serial, result, code).encode(reply.is_2019)
        events.append(Send(encode_frame(reply, body)))

    def _authenticate(self, h: Header, msg: Authenticate, events: list[Event]) -> None:
        # the code last given to this vehicle's bound terminal, from the number it registered
        # with; then the configuration must still have that number be that vehicle
        bound = self.bindings.authenticate(msg.auth_code)
        ref: VehicleRef | Conflict | None = None
        if bound is not None and bound.terminal.phone == phone_key(h.phone):
            ref = self.directory.check(h.phone, bound.vehicle)
        if not isinstance(ref, VehicleRef):
            if isinstance(ref, Conflict):
                events.append(Problem("terminal_conflict", f"{ref}: authentication refused"))
            else:
                events.append(Problem("auth_failed", f"terminal {h.terminal}: wrong auth code"))
            self._answer(h, PlatformResponse.FAILED, events)
            return
        self.vehicle, self.phone, self.state = ref, h.phone, State.AUTHENTICATED
        self._answer(h, PlatformResponse.OK, events)
        events.append(Authenticated(ref, h.phone))
        # who drives (the IC card in the terminal): its positions then count for him
        events.append(Send(self.encode(DriverRequest())))

    def _locations(
        self,
        h: Header,
        items: tuple[Location, ...],
        now_ms: int,
        events: list[Event],
        source: Source = Source.LIVE,
    ) -> None:
        assert self.vehicle is not None
        records: list[dict[str, object]] = []
        if h.msg_id == MsgId.LOCATION and items and not self._skew_said:
            self._clock_check(items[0], now_ms, events)
        for loc in items:
            if loc.bad_extras:  # the position is whole; what follows a broken item is lost
                events.append(Problem("bad_extra", f"{self.vehicle.vehicle}: {loc.bad_extras}"))
            rec = position_record(loc, h.is_2019, clearing=self._flags_out != 0)
            if isinstance(rec, str):
                events.append(Problem(rec, f"{self.vehicle.vehicle}: position at {loc.time}"))
            else:
                if self.driver and cast(int, rec["ts"]) >= self._driver_since:
                    rec["driver_id"] = self.driver
                records.append(rec)
                self._flags_out = cast(int, rec["alarm_flags"])
        if records:
            events.append(Publish(self.vehicle, tuple(records), now_ms, source))
        self._answer(h, PlatformResponse.OK, events)


def _refusal(ref: VehicleRef, terminal: Terminal, refused: Refused) -> str:
    """Why a registration was refused, for the operator: who holds the binding, and how to
    move it."""
    b = refused.bound
    vehicle = f"{b.vehicle.tenant}/{b.vehicle.vehicle}"
    if refused.result == RegisterResponse.VEHICLE_REGISTERED:
        why = f"{ref.tenant}/{ref.vehicle} is bound to terminal {b.terminal}"
    else:
        why = f"the terminal is bound to {vehicle}"
    return (
        f"registration of {ref.tenant}/{ref.vehicle} by terminal {terminal} refused: {why}; "
        f"if the terminal was changed, `hazardhub jt808 unbind --vehicle {vehicle}`"
    )


def _ts_or_0(loc: Location) -> int:
    try:
        return loc.ts_ms
    except Jt808Error:
        return 0


def _a_clocks_offset(off_ms: int) -> bool:
    """An offset only a wrong clock makes: ahead of the gateway (no stored report is from the
    future), a whole number of hours behind (a time zone's mistake: UTC for Beijing time), or a
    month and more behind (a clock reset); not a stored report's age."""
    if off_ms > 0 or off_ms < -SKEW_FAR_PAST_MS:
        return True
    behind = -off_ms % 3_600_000
    return min(behind, 3_600_000 - behind) <= SKEW_ZONE_MS
