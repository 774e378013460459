"""One terminal's JT/T 808 session (pure, sans-IO): bytes in, events out.

    CONNECTED --0x0100 ok--> REGISTERED --0x0102 ok--> AUTHENTICATED
    CONNECTED --0x0102 ok (code from an earlier registration)--> AUTHENTICATED
    any --0x0003 logout--> CLOSED

The phases: `link` (frames, answers, what each state accepts: `ACCEPTS`), `admission`
(registration, authentication), and here the authenticated terminal's messages: positions,
the driver's IC card, the terminal's clock, and the platform's confirmations and reminders.

Positions are published before they are acknowledged: the server commits a `Publish` to its disk
spool before it sends the `Send` that follows it, so an acknowledged position is never lost.
A location message the terminal sent again (the same id, serial number and body: its answer
was lost or late) is answered again and not published (`repeats`); the server remembers a
message (`Remember`) only once its `Publish` is durable, so a message whose positions were not
taken is taken when it comes again.
"""

from __future__ import annotations

from typing import cast

from gateway.jt808.admission import Admission
from gateway.jt808.bindings import Bindings
from gateway.jt808.directory import Directory, VehicleRef
from gateway.jt808.events import (
    Authenticated,
    Close,
    Event,
    Problem,
    Publish,
    Remember,
    Send,
    TerminalAck,
)
from gateway.jt808.hold import Source
from gateway.jt808.link import ACCEPTS, State
from gateway.jt808.packets import PacketPolicy, Packets
from gateway.jt808.records import position_record, safety_events
from gateway.jt808.repeats import Repeats, repeat_key
from telemetry.codec import MAX_FUTURE_MS
from telemetry.jt808.codec import FrameReader, Header, Jt808Error
from telemetry.jt808.messages import (
    AlarmConfirm,
    Authenticate,
    BatchLocation,
    DriverIdentity,
    Location,
    Message,
    MsgId,
    PlatformResponse,
    Register,
    TerminalResponse,
    TextMessage,
    bcd_time_to_ms,
)

__all__ = [
    "ACCEPTS",
    "Authenticated",
    "Close",
    "Event",
    "Problem",
    "Publish",
    "Remember",
    "Send",
    "Session",
    "State",
    "TerminalAck",
    "position_record",
]


# a live report this far from the gateway's clock says the terminal's clock is off (a report
# sent again after a short outage is minutes old; the hub refuses more than 30 s ahead, and
# every live position of a terminal that far ahead would go to its dead letters unexplained)
SKEW_PAST_MS = 3_600_000
SKEW_FUTURE_MS = MAX_FUTURE_MS
SKEW_FOR_MS = 60_000  # ... by the same offset (within SKEW_SAME_MS) for this long
SKEW_SAME_MS = 120_000
# behind, only a time zone's mistake (a whole number of hours, within this) or a clock far back
# (a reset RTC) is a clock: stored reports drained as 0x0200 at their recorded pace after an
# outage keep one offset for as long, of any size
SKEW_ZONE_MS = 180_000
SKEW_FAR_PAST_MS = 30 * 86_400_000


class Session(Admission):
    """The state of one TCP connection from one terminal."""

    def __init__(
        self,
        directory: Directory,
        bindings: Bindings | None = None,
        *,
        max_frame: int = 4096,
        max_bad_frames: int = 20,
        repeats: Repeats | None = None,
        packets: PacketPolicy | None = None,
    ) -> None:
        """`bindings`: which terminal each vehicle is, and its auth code (the server's, shared
        by its connections; without it, this session's own, in memory). `repeats`: each
        vehicle's location messages taken lately (the server's, shared likewise: a terminal
        may send again on a new connection). `packets`: how sub-packaged messages are joined
        and asked for again (`PacketPolicy`)."""
        self.directory = directory
        self.bindings = bindings if bindings is not None else Bindings()
        self.repeats = repeats if repeats is not None else Repeats()
        # the location messages of this `feed`, which the server remembers once it carries out
        # its events: a copy in the same bytes (sent twice at once) is a retransmission too
        self._taken: set[int] = set()
        self.state = State.CONNECTED
        self.phone: str | None = None  # bound at authentication
        self.header: Header | None = None  # the terminal's last good header (version, phone)
        self.vehicle: VehicleRef | None = None
        self._reader = FrameReader(max_frame)
        self._parts = Packets(packets)
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

    def feed(self, data: bytes, now_ms: int) -> list[Event]:
        self._taken.clear()  # (those of the call before are remembered by now, or dropped)
        return super().feed(data, now_ms)

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
        # (a minute ahead read "0.0 h ahead of", helper-139; the hub refuses more than 30 s)
        size = f"{abs(hours):.1f} h" if abs(off) >= 3_600_000 else f"{abs(off) / 1000:.0f} s"
        where = f"{size} {'behind' if off < 0 else 'ahead of'}"
        events.append(
            Problem(
                "clock_skew",
                f"{self._who}: a live report at "
                f"{loc.time} (GMT+8) is {where} the gateway's clock{guess}; positions are judged "
                "at the times the terminal sends: set its clock (or its time zone)",
            )
        )

    def _dispatch(
        self, h: Header, msg: Message, body: bytes, now_ms: int, events: list[Event]
    ) -> None:
        if isinstance(msg, Register):
            self._register(h, msg, now_ms, events)
        elif isinstance(msg, Authenticate):
            self._authenticate(h, msg, events)
        elif isinstance(msg, Location | BatchLocation):
            key = repeat_key(h.msg_id, h.serial, body)
            if self._repeated(h, key, events):
                return
            if isinstance(msg, Location):
                self._locations(h, (msg,), now_ms, events, key)
            else:
                # in time order, as a track is read (a terminal may send its backlog newest
                # first; the hub sorts a batch itself, other subscribers of the topic may not);
                # a time that is no date first (it is dropped)
                items = tuple(sorted(msg.items, key=_ts_or_0))
                source = Source.BLIND if msg.kind == BatchLocation.BACKFILL else Source.BATCH
                self._locations(h, items, now_ms, events, key, source)
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

    def _repeated(self, h: Header, key: int, events: list[Event]) -> bool:
        """A location message taken before, sent again (JT/T 808's retransmission: its answer
        was lost or late): answered again, counted, not published (its positions are)."""
        assert self.vehicle is not None
        if key not in self._taken and not self.repeats.seen(self.vehicle, key):
            return False
        events.append(
            Problem(
                "retransmitted",
                f"{self.vehicle.vehicle}: message {h.msg_id:#06x} serial {h.serial} sent again "
                "(taken before: answered, not published again)",
            )
        )
        self._answer(h, PlatformResponse.OK, events)
        return True

    def _locations(
        self,
        h: Header,
        items: tuple[Location, ...],
        now_ms: int,
        events: list[Event],
        key: int,
        source: Source = Source.LIVE,
    ) -> None:
        assert self.vehicle is not None
        records: list[dict[str, object]] = []
        if h.msg_id == MsgId.LOCATION and items and not self._skew_said:
            self._clock_check(items[0], now_ms, events)
        for loc in items:
            if loc.bad_extras:  # the position is whole; what follows a broken item is lost
                events.append(Problem("bad_extra", f"{self.vehicle.vehicle}: {loc.bad_extras}"))
            safety, bad = safety_events(loc) if loc.extras else ([], [])
            for why in bad:  # the block is left out, not the position
                events.append(Problem("bad_safety", f"{self.vehicle.vehicle}: {why}"))
            for ev in safety:  # counted one by one, said at debug level
                said = f"{ev['source']} type {ev['type']} flag {ev['flag']} id {ev['alarm_id']}"
                events.append(Problem("active_safety", f"{self.vehicle.vehicle}: {said}"))
            rec = position_record(loc, h.is_2019, self._flags_out != 0, safety)
            if isinstance(rec, str):
                events.append(Problem(rec, f"{self.vehicle.vehicle}: position at {loc.time}"))
            else:
                if self.driver and cast(int, rec["ts"]) >= self._driver_since:
                    rec["driver_id"] = self.driver
                records.append(rec)
                self._flags_out = cast(int, rec["alarm_flags"])
        if records:
            events.append(Publish(self.vehicle, tuple(records), now_ms, source))
        events.append(Remember(self.vehicle, key))  # once the Publish is durable
        self._taken.add(key)
        self._answer(h, PlatformResponse.OK, events)


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
