"""A JT/T 808 terminal simulator: registers, authenticates, sends heartbeats, reports 0x0200
positions and 0x0704 backfills, answers 0x8203 alarm confirmations with 0x0001, and shows and
reads a 0x8300 text message to its driver (logged, counted) and answers it 0x0001, and sends
again the sub-packages the platform asks for (0x8003, `simulators.jt808packets`). Any other
platform request it does not carry out is answered 0x0001 result 3 (not supported), one whose
body it cannot read result 2 (message error), as a real terminal does; the platform's answers
(0x8001, 0x8100, 0x8004) are never answered.

It speaks through `telemetry.jt808`, the same pure codec the gateway uses; `send_raw` sends any
bytes, for tests of malformed frames. Used by the tests, the benchmark and the fleet simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence

from simulators.jt808fix import Fix, location_of, terminal_id
from simulators.jt808packets import RESEND_REQUEST, Packages
from telemetry.jt808.codec import Frame, FrameReader, Header, encode_frame
from telemetry.jt808.messages import (
    AlarmConfirm,
    Authenticate,
    BatchLocation,
    DriverIdentity,
    DriverRequest,
    Heartbeat,
    Logout,
    Message,
    MsgId,
    PlatformResponse,
    Register,
    RegisterResponse,
    TerminalResponse,
    TextMessage,
    decode_body,
)

__all__ = [
    "MAKER",
    "MODEL",
    "Fix",
    "Jt808Terminal",
    "TerminalError",
    "location_of",
    "terminal_id",
]

log = logging.getLogger(__name__)

MAKER, MODEL = "HZHUB", "SIM-808"  # the registration's maker id and model of every simulated one
# the platform's answers (a terminal never answers an answer), and the platform's requests this
# terminal carries out; 0x8004 answers the server time query 0x0004, which it never sends
_ANSWERS = frozenset({MsgId.PLATFORM_RESPONSE, MsgId.REGISTER_RESPONSE})
_TIME_RESPONSE = 0x8004
_REQUESTS = frozenset({MsgId.ALARM_CONFIRM, MsgId.DRIVER_REQUEST, MsgId.TEXT_MESSAGE})
# the general response's results (0x0001; 4, alarm handling confirmed, is the platform's)
_OK, _MESSAGE_ERROR, _UNSUPPORTED = 0, 2, 3
_KEEP_TEXTS = 100  # the latest texts a terminal keeps (`Jt808Terminal.texts`)
_HOW = ((TextMessage.DISPLAY, "shown"), (TextMessage.TTS, "read aloud"))  # a text's flag bits


class TerminalError(Exception):
    """The platform refused or did not answer."""


def _phone_terminal_id(phone: str) -> str:
    return terminal_id("phone:" + (phone.lstrip("0") or "0"))


class Jt808Terminal:
    """One simulated terminal over one TCP connection."""

    def __init__(
        self,
        host: str,
        port: int,
        phone: str,
        plate: str = "",
        *,
        v2019: bool = False,
        timeout_s: float = 5.0,
        retransmissions: int = 0,
        terminal_id: str | None = None,
        on_text: Callable[[TextMessage], None] | None = None,
        max_body: int = 1023,
        lose_packages: float = 0.0,
        new_serials: bool = False,
    ) -> None:
        """`terminal_id`: the id its registration (0x0100) sends; by default one derived from
        the whole phone number without its leading zeros (`terminal_id`), so that two numbers
        are two terminals and the same number in a 2013 or a 2019 header is one. `on_text` is
        called with each text message (0x8300) the driver is given. `timeout_s` and
        `retransmissions` are the terminal parameters 0x0002 (TCP answer timeout T) and 0x0003
        (TCP retransmissions n): a message not answered is sent again, the same serial, after
        T, then 2T, ... (T x (k + 1) after its k-th retransmission), n times, before the
        terminal gives up (`TerminalError`). `max_body`, `lose_packages`, `new_serials`: its
        sub-packaged messages (`Packages`); one that loses some on purpose waits for the
        platform to ask for them (0x8003) as long as its retransmissions take, unsent."""
        if timeout_s <= 0 or retransmissions < 0:
            raise ValueError(f"timeout_s {timeout_s} must be > 0, retransmissions >= 0")
        self.host, self.port = host, port
        self.phone = phone
        self.plate = plate
        self.terminal_id = terminal_id if terminal_id is not None else _phone_terminal_id(phone)
        self.version = 1 if v2019 else None
        self.timeout_s = timeout_s
        self.retransmissions = retransmissions
        self.retransmitted = 0  # messages sent again for want of an answer
        self.copies = 0  # messages sent twice on purpose (`send(..., twice=True)`)
        self.registrations = 0  # registrations (0x0100) answered
        self.codes_refused = 0  # authentications refused with a code kept: registered again
        self.auth_code: str | None = None
        self.confirmations: list[AlarmConfirm] = []
        # the IC card in the terminal, said when the platform asks (0x8702); None: no reader
        self.card: DriverIdentity | None = None
        # the text messages (0x8300) shown or read to the driver: how many, the latest kept
        self.texts_heard = 0
        self.texts: deque[TextMessage] = deque(maxlen=_KEEP_TEXTS)
        self.on_text = on_text
        self.unsupported = 0  # platform requests answered 3 (not supported)
        # platform answers not waited for (to a message sent without `wait`, late, repeated)
        self.ignored = 0
        self.bad_frames = 0  # frames unreadable, and bodies (those of a request answered 2)
        self.packages = Packages(max_body, lose_packages, new_serials)  # lost, resent: counted
        self._whole: dict[int, asyncio.Future[Message]] = {}  # by a kept message's first serial
        self.closed = asyncio.Event()
        self._serial = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Message]] = {}

    @property
    def v2019(self) -> bool:
        return self.version is not None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self.closed.clear()
        self._task = asyncio.create_task(self._read(), name=f"jt808-sim-{self.phone}")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer = self._task = None

    async def __aenter__(self) -> Jt808Terminal:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _header(self, msg_id: int) -> Header:
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        return Header(msg_id, serial, self.phone, self.version)

    async def send_raw(self, data: bytes) -> None:
        assert self._writer is not None, "not connected"
        self._writer.write(data)
        await self._writer.drain()

    async def send(
        self, msg: Message, *, wait: bool = True, max_body: int | None = None, twice: bool = False
    ) -> Message | None:
        """Send a message (as sub-packages when longer than `max_body`, by default the
        terminal's); with `wait`, return the platform's answer to it (to a sub-packaged one:
        the first answer not 0, else the last, once every sub-package is answered). `twice`:
        the same frames again at once, unchanged (same serial), as a terminal that took its
        answer for lost retransmits it: the platform answers both (the second answer is
        `ignored`) and must take it once."""
        if self.closed.is_set():
            raise TerminalError("the connection is closed")
        h = self._header(msg.msg_id)
        out, frames = self.packages.split(h, msg.encode(self.v2019), max_body)
        # sub-packages take consecutive serials; the message is known by the first
        self._serial = (h.serial + (1 if out is None else out.total)) & 0xFFFF
        fut: asyncio.Future[Message] | None = None
        if wait:
            fut = asyncio.get_running_loop().create_future()
            (self._waiting if out is None else self._whole)[h.serial] = fut
        data = b"".join(frames)
        await self.send_raw(data + data if twice else data)
        self.copies += twice
        if fut is None:
            return None
        tries = range(self.retransmissions + 1)
        try:
            if out is not None and self.packages.loss.share:  # waits to be asked (0x8003)
                with contextlib.suppress(TimeoutError):
                    wait_s = self.timeout_s * sum(k + 1 for k in tries)
                    return await asyncio.wait_for(asyncio.shield(fut), wait_s)
            else:
                for k in tries:
                    if k:  # JT/T 808: sent again, unchanged, after T x k without an answer
                        self.retransmitted += 1
                        await self.send_raw(data if out is None else b"".join(out.unanswered()))
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(asyncio.shield(fut), self.timeout_s * (k + 1))
            raise TerminalError(
                f"no answer to {msg.msg_id:#06x} serial {h.serial} "
                f"(sent {self.retransmissions + 1} times)"
            )
        finally:
            (self._waiting if out is None else self._whole).pop(h.serial, None)
            if not fut.done():
                fut.cancel()

    async def register(self, plate: str | None = None) -> RegisterResponse:
        reg = Register(44, 300, MAKER, MODEL, self.terminal_id, 2, plate or self.plate)
        answer = await self.send(reg)
        if not isinstance(answer, RegisterResponse):
            raise TerminalError(f"registration answered with {answer}")
        self.registrations += 1
        if answer.result == RegisterResponse.OK:
            self.auth_code = answer.auth_code
        return answer

    async def authenticate(self, code: str | None = None) -> PlatformResponse:
        code = code if code is not None else self.auth_code
        if code is None:
            raise TerminalError("no auth code: register first")
        imei = "86" + self.phone[-13:].zfill(13)
        return self._ok(await self.send(Authenticate(code, imei, "sim-1.0")))

    async def login(self) -> None:
        """Authenticate, registering first only when no code is known, or when the platform
        refuses the code known (kept from an earlier connection, as a JT/T 808 terminal keeps
        it: a platform that lost its bindings, a vehicle rebound); raise TerminalError on
        refusal."""
        if self.auth_code is not None:
            answer = await self.authenticate()
            if answer.result == PlatformResponse.OK:
                return
            self.codes_refused += 1
            log.debug("terminal %s: auth code refused; registering again", self.phone)
            self.auth_code = None
        reg = await self.register()
        if reg.result != RegisterResponse.OK:
            raise TerminalError(f"registration refused: result {reg.result}")
        answer = await self.authenticate()
        if answer.result != PlatformResponse.OK:
            raise TerminalError(f"authentication refused: result {answer.result}")

    async def heartbeat(self) -> PlatformResponse:
        return self._ok(await self.send(Heartbeat()))

    async def logout(self) -> PlatformResponse:
        return self._ok(await self.send(Logout()))

    async def report(
        self, fix: Fix, *, wait: bool = True, twice: bool = False
    ) -> PlatformResponse | None:
        answer = await self.send(location_of(fix), wait=wait, twice=twice)
        return None if answer is None else self._ok(answer)

    async def backfill(
        self,
        fixes: Sequence[Fix],
        *,
        kind: int = BatchLocation.BACKFILL,
        wait: bool = True,
        twice: bool = False,
    ) -> PlatformResponse | None:
        batch = BatchLocation(kind, tuple(location_of(f) for f in fixes))
        answer = await self.send(batch, wait=wait, twice=twice)
        return None if answer is None else self._ok(answer)

    @staticmethod
    def _ok(answer: Message | None) -> PlatformResponse:
        if not isinstance(answer, PlatformResponse):
            raise TerminalError(f"expected 0x8001, got {answer}")
        return answer

    async def _read(self) -> None:
        assert self._reader is not None
        frames = FrameReader()
        try:
            while data := await self._reader.read(65536):
                for item in frames.feed(data):
                    if isinstance(item, Frame):
                        await self._on_frame(item)
                    else:
                        self.bad_frames += 1
        except (OSError, ConnectionError):
            pass
        finally:
            self.closed.set()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(TerminalError("connection closed by the platform"))

    async def _answer(self, h: Header, result: int) -> None:
        """The general response 0x0001 to the platform's message `h`: its serial and id."""
        reply = self._header(MsgId.TERMINAL_RESPONSE)
        body = TerminalResponse(h.serial, h.msg_id, result).encode(self.v2019)
        await self.send_raw(encode_frame(reply, body))

    async def _on_frame(self, frame: Frame) -> None:
        h = frame.header
        if h.msg_id == _TIME_RESPONSE:  # an answer to a question this terminal never asks
            self._ignore()
            return
        answer = h.msg_id in _ANSWERS
        if h.msg_id == RESEND_REQUEST and h.packet is None and not h.encryption:
            await self._resend(h, frame.body)
            return
        if not answer and (h.msg_id not in _REQUESTS or h.packet is not None or h.encryption):
            # not carried out here (nor a request in sub-packages or encrypted: neither
            # reassembled nor decrypted)
            await self._unsupported(h)
            return
        try:
            msg = decode_body(h.msg_id, frame.body, h.is_2019)
        except Exception as exc:
            self.bad_frames += 1
            log.warning(
                "terminal %s: the platform's %#06x unreadable (%s)", self.phone, h.msg_id, exc
            )
            if not answer:
                await self._answer(h, _MESSAGE_ERROR)
            return
        if isinstance(msg, PlatformResponse) and self._packaged(msg):
            return
        if isinstance(msg, PlatformResponse | RegisterResponse):
            fut = self._waiting.get(msg.ack_serial)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            else:  # not waited for: sent without `wait`, late, repeated, to no message of ours
                self._ignore()
        elif isinstance(msg, AlarmConfirm):
            self.confirmations.append(msg)
            await self._answer(h, _OK)
        elif isinstance(msg, DriverRequest):
            if self.card is None:  # no IC card reader: not supported
                await self._unsupported(h)
            else:
                await self.send(self.card, wait=False)
        elif isinstance(msg, TextMessage):
            self._hear(msg)
            await self._answer(h, _OK)

    def _packaged(self, msg: PlatformResponse) -> bool:
        """An answer to a sub-package of a message kept: the message's answer once whole."""
        if (out := self.packages.answer(msg)) is None:
            return False
        fut = self._whole.get(out.header.serial)
        if out.whole and out.reply is not None and fut is not None and not fut.done():
            fut.set_result(out.reply)
        return True

    async def _resend(self, h: Header, body: bytes) -> None:
        """The platform's request to send sub-packages again (0x8003): answered 0 and sent
        (first serials, or new ones with `new_serials`); answered 1 for no message kept or an
        index it has not, 2 for a body unreadable."""
        result, again = self.packages.resend(body, h.is_2019, lambda: self._header(0).serial)
        self.bad_frames += result == _MESSAGE_ERROR
        await self._answer(h, result)
        if again:
            await self.send_raw(again)

    def _ignore(self) -> None:
        """An answer nothing waits for: counted only (every answer to a message sent without
        `wait` is one: the benchmark's positions)."""
        self.ignored += 1

    async def _unsupported(self, h: Header) -> None:
        """A platform request this terminal does not carry out: answered 3, counted, said at
        debug level (a platform may send such requests often)."""
        self.unsupported += 1
        log.debug("terminal %s: the platform's %#06x is not supported", self.phone, h.msg_id)
        await self._answer(h, _UNSUPPORTED)

    def _hear(self, msg: TextMessage) -> None:
        """A text message shown (display bit) and read aloud (TTS bit) to the driver."""
        self.texts_heard += 1
        self.texts.append(msg)
        how = [name for bit, name in _HOW if msg.flag & bit] or ["neither shown nor read"]
        log.info(
            "terminal %s %s: to the driver (%s): %s",
            self.phone,
            self.plate or "(no plate)",
            ", ".join(how),
            msg.text,
        )
        if self.on_text is not None:
            self.on_text(msg)
