"""What a JT/T 808 session says to its server (pure values): bytes to send, positions to
publish, location messages to remember (a copy is a retransmission), problems to count, a
terminal authenticated, a terminal's response, the connection to close."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.jt808.directory import VehicleRef
from gateway.jt808.hold import Source
from telemetry.jt808.messages import TerminalResponse

__all__ = [
    "Authenticated",
    "Close",
    "Event",
    "Problem",
    "Publish",
    "Remember",
    "Send",
    "TerminalAck",
]


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
class Remember:
    """A location message was handled (its positions, if any, durable once the `Publish`
    before it is carried out): a copy of it (`repeats.repeat_key`) is a retransmission."""

    vehicle: VehicleRef
    key: int


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


Event = Send | Publish | Remember | Problem | Authenticated | TerminalAck | Close
