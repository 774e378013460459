"""A terminal's sub-packaged messages joined (pure, sans-IO), with the platform's request for
the sub-packages that did not come (0x8003, 补传分包请求).

A long message (a 0x0704 of many positions, a 0x0801 photo) comes in sub-packages: header bit
13, the total and the index from 1, consecutive serial numbers. Each group is keyed by (message
id, total, serial of its first sub-package), the first serial worked out from any sub-package's
serial and index. What can happen, and what is done:

- a sub-package lost on the way: when a group has heard nothing for `ask_after_ms`, the
  terminal is asked for its missing sub-packages (0x8003: the first sub-package's serial, how
  many, their indexes), at most `max_asks` times, `ask_after_ms` apart; a group still not whole
  `max_age_ms` after its last sub-package is dropped (``incomplete_packets``);
- the terminal sends a missing one again: with its first serial (JT/T 808's retransmission) it
  falls in its group by the key; with a new serial (the standard does not say which), it joins
  the open group of the same id and total that was asked for that index (``packet_resent``);
- a sub-package twice (its answer lost, or sent again after the message was whole: the last one
  most often): it was joined to a group that is open, or closed within `max_age_ms` (the last
  `max_groups` closed are remembered: id, total, first serial, and each sub-package's index and
  serial), so it is answered and not kept (``packet_repeated``); before, a copy of the last
  sub-package of a message already whole opened a group that never closed, counted
  ``incomplete_packets`` a minute later.

Bounds: `max_groups` groups open per connection (one more is refused: `ReassemblyFullError`,
the terminal sends it again), `max_total` sub-packages per message, so at most `max_groups` x
`max_total` x 1023 bytes held per connection; they live in memory, and a connection closed, or a
gateway stopped, loses them (the terminal is not told).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from telemetry.jt808.codec import Frame, Header, Jt808Error, ReassemblyFullError

__all__ = ["RESEND_REQUEST", "Ask", "Joined", "PacketPolicy", "Packets", "resend_body"]

RESEND_REQUEST = 0x8003
# a 2013 request counts its indexes in a BYTE: at most this many per request (the rest at the
# next); a 2019 request (a WORD) is bounded by the body length, (1023 - 4) / 2
_MAX_IDS_2013 = 255
_MAX_IDS_2019 = 509


@dataclass(frozen=True, slots=True)
class PacketPolicy:
    """How long a sub-packaged message may take, and how many are kept.

    `ask_after_ms`: a group silent this long gets its missing sub-packages asked for (0x8003);
    `max_asks` times at most, this long apart (0: never asked). `max_age_ms`: a group silent
    this long is dropped. `max_groups` open per connection, `max_total` sub-packages per
    message."""

    ask_after_ms: int = 15_000
    max_asks: int = 3
    max_age_ms: int = 60_000
    max_groups: int = 8
    max_total: int = 512

    def __post_init__(self) -> None:
        if self.ask_after_ms <= 0 or self.max_age_ms <= 0:
            raise ValueError("ask_after_ms and max_age_ms must be positive")
        if self.max_asks < 0 or self.max_groups < 1 or self.max_total < 1:
            raise ValueError("max_asks >= 0, max_groups >= 1 and max_total >= 1")


@dataclass(frozen=True, slots=True)
class Joined:
    """What became of a sub-package: the whole message when it completed it (`whole`), and a
    counter label when it was a copy (``packet_repeated``) or a re-sent one that joined its
    group by index (``packet_resent``)."""

    whole: Frame | None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Ask:
    """A request to send again (0x8003) the sub-packages `indexes` of the group whose first
    sub-package had serial `first_serial`; `header` is that group's first sub-package's."""

    header: Header
    first_serial: int
    indexes: tuple[int, ...]


@dataclass(slots=True)
class _Group:
    header: Header
    first: int
    total: int
    heard_ms: int
    parts: dict[int, bytes] = field(default_factory=dict)
    seen: set[tuple[int, int]] = field(default_factory=set)  # (index, serial) joined
    asked: set[int] = field(default_factory=set)  # indexes asked for, not come yet
    asks: int = 0
    asked_ms: int = 0

    def missing(self) -> list[int]:
        return [i for i in range(1, self.total + 1) if i not in self.parts]


@dataclass(frozen=True, slots=True)
class _Closed:
    key: tuple[int, int, int]
    seen: frozenset[tuple[int, int]]
    closed_ms: int


def resend_body(first_serial: int, indexes: tuple[int, ...], v2019: bool) -> bytes:
    """The body of 0x8003: the first sub-package's serial (WORD), the count (BYTE in 2013, WORD
    in 2019), each index (WORD)."""
    count = struct.pack(">H", len(indexes)) if v2019 else bytes((len(indexes),))
    return struct.pack(">H", first_serial) + count + struct.pack(f">{len(indexes)}H", *indexes)


class Packets:
    """The sub-packaged messages of one connection (see the module)."""

    def __init__(self, policy: PacketPolicy | None = None) -> None:
        self.policy = policy if policy is not None else PacketPolicy()
        self._open: dict[tuple[int, int, int], _Group] = {}
        self._closed: list[_Closed] = []  # the newest last, `max_groups` at most

    @property
    def pending(self) -> int:
        return len(self._open)

    def add(self, frame: Frame, now_ms: int) -> Joined:
        """Join a frame: a frame that is no sub-package is whole at once. Raises `Jt808Error`
        for a message of more than `max_total` sub-packages, `ReassemblyFullError` for a new
        group while `max_groups` are open."""
        h = frame.header
        if h.packet is None:
            return Joined(frame)
        total, index = h.packet
        if total > self.policy.max_total:
            raise Jt808Error(f"a message of {total} sub-packages exceeds {self.policy.max_total}")
        first = (h.serial - (index - 1)) & 0xFFFF
        key = (h.msg_id, total, first)
        group = self._open.get(key)
        kind: str | None = None
        if group is None:
            if self._copy(h.msg_id, total, index, h.serial, key, now_ms):
                return Joined(None, "packet_repeated")
            group = self._asked_for(h.msg_id, total, index)
            kind = None if group is None else "packet_resent"
        if group is None:
            if len(self._open) >= self.policy.max_groups:
                raise ReassemblyFullError(
                    f"{len(self._open)} sub-packaged messages are open: message "
                    f"{h.msg_id:#06x} of serial {first} must wait"
                )
            group = self._open[key] = _Group(h, first, total, now_ms)
        group.heard_ms = now_ms
        if index in group.parts:
            group.seen.add((index, h.serial))
            return Joined(None, "packet_repeated")
        group.parts[index] = frame.body
        group.seen.add((index, h.serial))
        group.asked.discard(index)
        if len(group.parts) < total:
            return Joined(None, kind)
        gkey = (group.header.msg_id, group.total, group.first)
        del self._open[gkey]
        self._closed.append(_Closed(gkey, frozenset(group.seen), now_ms))
        del self._closed[: -self.policy.max_groups]
        body = b"".join(group.parts[i] for i in range(1, total + 1))
        return Joined(Frame(replace(h, serial=group.first, packet=None), body), kind)

    def _copy(
        self, msg_id: int, total: int, index: int, serial: int, key: object, now_ms: int
    ) -> bool:
        """A sub-package joined before, to a group open or closed within `max_age_ms`."""
        for c in self._closed:
            if now_ms - c.closed_ms > self.policy.max_age_ms:
                continue
            if c.key == key or (c.key[:2] == (msg_id, total) and (index, serial) in c.seen):
                return True
        return any(
            (g.header.msg_id, g.total) == (msg_id, total) and (index, serial) in g.seen
            for g in self._open.values()
        )

    def _asked_for(self, msg_id: int, total: int, index: int) -> _Group | None:
        """The open group of this id and total that was asked for this index (the oldest)."""
        for g in self._open.values():
            if (g.header.msg_id, g.total) == (msg_id, total) and index in g.asked:
                return g
        return None

    def tick(self, now_ms: int) -> tuple[list[Ask], list[Ask]]:
        """The requests due (0x8003), and the groups dropped (with the indexes that never
        came); closed groups older than `max_age_ms` are forgotten."""
        p = self.policy
        self._closed = [c for c in self._closed if now_ms - c.closed_ms <= p.max_age_ms]
        asks: list[Ask] = []
        dropped: list[Ask] = []
        for key, g in list(self._open.items()):
            if now_ms - g.heard_ms > p.max_age_ms:
                del self._open[key]
                dropped.append(Ask(g.header, g.first, tuple(g.missing())))
                continue
            since = now_ms - max(g.heard_ms, g.asked_ms)
            if g.asks < p.max_asks and since >= p.ask_after_ms:
                limit = _MAX_IDS_2019 if g.header.is_2019 else _MAX_IDS_2013
                missing = tuple(g.missing()[:limit])
                g.asks += 1
                g.asked_ms = now_ms
                g.asked.update(missing)
                asks.append(Ask(g.header, g.first, missing))
        return asks, dropped
