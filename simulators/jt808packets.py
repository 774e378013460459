"""A simulated JT/T 808 terminal's sub-packaged messages (pure): which sub-packages it loses on
purpose (`LossPlan`), the messages it keeps to answer the platform's request to send missing
ones again (0x8003, 补传分包请求: `Outgoing`, `read_resend`), and the answers it waits for.

A message longer than the terminal's `max_body` goes in sub-packages (header bit 13, the
total and the index from 1, consecutive serials). Each is answered by its own serial; the one
that completes the message when the platform has handled it. A sub-package sent again on
0x8003 carries its first serial (`new_serials` False: JT/T 808's retransmission) or a new one
(the standard does not say which; a platform must take both). Split from `simulators.jt808`.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from telemetry.jt808.codec import Header, encode_frame, encode_packets
from telemetry.jt808.messages import PlatformResponse

__all__ = ["RESEND_REQUEST", "LossPlan", "Outgoing", "Packages", "read_resend"]

log = logging.getLogger("simulators.jt808")  # the terminal's logger

RESEND_REQUEST = 0x8003


def read_resend(body: bytes, v2019: bool) -> tuple[int, tuple[int, ...]]:
    """The body of 0x8003: the first sub-package's serial (WORD), the count (BYTE in 2013, WORD
    in 2019) and the indexes (WORD each). Raises ValueError when the length does not match."""
    head = 4 if v2019 else 3
    if len(body) < head:
        raise ValueError(f"0x8003 body of {len(body)} bytes: {head} at least")
    (first,) = struct.unpack_from(">H", body)
    count = struct.unpack_from(">H", body, 2)[0] if v2019 else body[2]
    if len(body) != head + 2 * count:
        raise ValueError(f"0x8003 says {count} indexes in a body of {len(body)} bytes")
    return first, struct.unpack_from(f">{count}H", body, head)


@dataclass(slots=True)
class LossPlan:
    """Which sub-packages a terminal loses on purpose: a `share` of them, deterministic (0.2:
    the 5th, the 10th, ... counted over all its sub-packaged messages), never all of one
    message (the platform must hear of it to ask)."""

    share: float = 0.0
    due: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:  # (NaN too)
            raise ValueError(f"lose_packages {self.share} is not a share from 0 to 1")

    def lost(self, total: int) -> frozenset[int]:
        """The indexes (from 1) of a message of `total` sub-packages not to send."""
        out: set[int] = set()
        for index in range(1, total + 1):
            self.due += self.share
            if self.due >= 1.0 - 1e-9:
                self.due -= 1.0
                out.add(index)
        if len(out) == total:  # one goes: the last
            out.discard(total)
        return frozenset(out)


@dataclass(slots=True)
class Outgoing:
    """One sub-packaged message sent: its frames by index, and the answers it waits for (the
    serial of each sub-package sent, first or new, -> its index)."""

    header: Header  # of the first sub-package (its serial, the message's)
    frames: tuple[bytes, ...]  # index i at i - 1, as first encoded
    bodies: tuple[bytes, ...]
    serials: dict[int, int] = field(default_factory=dict)  # serial -> index, not answered
    answered: set[int] = field(default_factory=set)
    reply: PlatformResponse | None = None  # the first answer not 0, else the last

    @classmethod
    def of(cls, header: Header, frames: Sequence[bytes], bodies: Sequence[bytes]) -> Outgoing:
        out = cls(header, tuple(frames), tuple(bodies))
        for i in range(1, len(frames) + 1):
            out.serials[(header.serial + i - 1) & 0xFFFF] = i
        return out

    @property
    def total(self) -> int:
        return len(self.frames)

    @property
    def whole(self) -> bool:
        """Every sub-package answered."""
        return len(self.answered) == self.total

    def unanswered(self) -> list[bytes]:
        """The frames not answered yet, as first encoded (a retransmission)."""
        return [f for i, f in enumerate(self.frames, 1) if i not in self.answered]

    def answer(self, msg: PlatformResponse) -> bool:
        """Take an answer (0x8001): whether it was to one of this message's sub-packages."""
        index = self.serials.pop(msg.ack_serial, None)
        if index is None:
            return False
        self.answered.add(index)
        if self.reply is None or self.reply.result == PlatformResponse.OK:
            self.reply = msg
        return True

    def again(self, index: int, serial: int | None) -> bytes:
        """Sub-package `index` once more: as first sent (`serial` None), or under `serial`."""
        if serial is None:
            self.serials[(self.header.serial + index - 1) & 0xFFFF] = index
            return self.frames[index - 1]
        self.serials[serial] = index
        h = self.header
        header = Header(h.msg_id, serial, h.phone, h.version, packet=(self.total, index))
        return encode_frame(header, self.bodies[index - 1])


class Packages:
    """A terminal's sub-packaged messages: how it splits them (`max_body`), the share it loses
    (`LossPlan`), the last `keep` it keeps to match answers and 0x8003 requests, and whether it
    sends one again with its first serial or a new one (`new_serials`). Counts the sub-packages
    lost on purpose (`lost`), the requests answered 0 (`asks`) and the sub-packages they had
    sent again (`resent`), and the requests answered 1 (`refused`: no message kept of their
    serial, or an index it has not)."""

    def __init__(
        self, max_body: int = 1023, lose: float = 0.0, new_serials: bool = False, keep: int = 8
    ) -> None:
        if not 1 <= max_body <= 1023:
            raise ValueError(f"max_body {max_body}: a sub-package carries 1 to 1,023 bytes")
        self.max_body, self.new_serials = max_body, new_serials
        self.loss = LossPlan(lose)
        self._out: deque[Outgoing] = deque(maxlen=keep)
        self.lost = self.asks = self.resent = self.refused = 0

    def split(
        self, h: Header, body: bytes, max_body: int | None = None
    ) -> tuple[Outgoing | None, list[bytes]]:
        """A message as the frames to send (those lost on purpose left out), and, when it is
        sub-packaged, the message kept (None: one frame)."""
        size = max_body or self.max_body
        frames = encode_packets(h, body, size)
        if len(frames) == 1:
            return None, frames
        out = Outgoing.of(h, frames, [body[i : i + size] for i in range(0, len(body), size)])
        self._out.append(out)
        lost = self.loss.lost(len(frames))
        self.lost += len(lost)
        return out, [f for i, f in enumerate(frames, 1) if i not in lost]

    def answer(self, msg: PlatformResponse) -> Outgoing | None:
        """The message a sub-package of which `msg` answers (None: not one of theirs)."""
        return next((o for o in self._out if o.answer(msg)), None)

    def resend(self, body: bytes, v2019: bool, serial: Callable[[], int]) -> tuple[int, bytes]:
        """A 0x8003's answer (0x0001's result: 0, 1 for no message kept of its serial or an
        index it has not, 2 for a body unreadable) and the frames to send again (new serials
        from `serial` with `new_serials`)."""
        try:
            first, indexes = read_resend(body, v2019)
        except ValueError as exc:
            log.warning("the platform's 0x8003 unreadable (%s)", exc)
            return PlatformResponse.MESSAGE_ERROR, b""
        out = next((o for o in self._out if o.header.serial == first), None)
        if out is None or not all(1 <= i <= out.total for i in indexes):
            self.refused += 1
            log.debug("0x8003 for serial %d, sub-packages %s: not kept", first, list(indexes))
            return PlatformResponse.FAILED, b""
        self.asks += 1
        self.resent += len(indexes)
        return PlatformResponse.OK, b"".join(
            out.again(i, serial() if self.new_serials else None) for i in indexes
        )
