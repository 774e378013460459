"""JT/T 809 sub-link (从链路) messages (pure): the upper platform, a client of the lower one's
down-link address, logs in with the verify code its 0x1002 gave (0x9001 DOWN_CONNECT_REQ, answered
0x9002), tests the link (0x9005 / 0x9006) and logs out (0x9003 / 0x9004); 0x9007 (sent on the
main link) says the sub link is broken, 0x9008 that the upper platform closes the links."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt809.fields import exact

__all__ = [
    "DownCloseNotice",
    "DownConnect",
    "DownConnectResponse",
    "DownDisconnect",
    "DownDisconnectNotice",
    "DownDisconnectResponse",
    "DownLinkTest",
    "DownLinkTestResponse",
]


@dataclass(frozen=True, slots=True)
class DownConnect:
    """0x9001: the verify code of the main link's 0x1002."""

    msg_id: ClassVar[int] = 0x9001
    verify_code: int

    def encode(self, v2019: bool = False) -> bytes:
        return struct.pack(">I", self.verify_code)

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DownConnect:
        exact(body, 4, f"{cls.msg_id:#06x}")
        return cls(int.from_bytes(body, "big"))


@dataclass(frozen=True, slots=True)
class DownDisconnect(DownConnect):
    """0x9003: the upper platform logs out of the sub link (the verify code)."""

    msg_id: ClassVar[int] = 0x9003


@dataclass(frozen=True, slots=True)
class DownConnectResponse:
    """0x9002: 0 success, 1 verify code wrong, 2 resources busy, 3 other."""

    msg_id: ClassVar[int] = 0x9002
    result: int

    def encode(self, v2019: bool = False) -> bytes:
        return bytes((self.result,))

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DownConnectResponse:
        exact(body, 1, f"{cls.msg_id:#06x}")
        return cls(body[0])


@dataclass(frozen=True, slots=True)
class DownDisconnectNotice(DownConnectResponse):
    """0x9007 (on the main link): the sub link is broken; 0 the down-link address cannot be
    reached, 1 the link broke, 2 other."""

    msg_id: ClassVar[int] = 0x9007


@dataclass(frozen=True, slots=True)
class DownCloseNotice(DownConnectResponse):
    """0x9008: the upper platform closes the links (a reason byte)."""

    msg_id: ClassVar[int] = 0x9008


@dataclass(frozen=True, slots=True)
class _Empty:
    msg_id: ClassVar[int] = 0

    def encode(self, v2019: bool = False) -> bytes:
        return b""

    @classmethod
    def _decode(cls, body: bytes) -> None:
        exact(body, 0, f"{cls.msg_id:#06x}")


@dataclass(frozen=True, slots=True)
class DownDisconnectResponse(_Empty):
    msg_id: ClassVar[int] = 0x9004

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DownDisconnectResponse:
        cls._decode(body)
        return cls()


@dataclass(frozen=True, slots=True)
class DownLinkTest(_Empty):
    msg_id: ClassVar[int] = 0x9005

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DownLinkTest:
        cls._decode(body)
        return cls()


@dataclass(frozen=True, slots=True)
class DownLinkTestResponse(_Empty):
    msg_id: ClassVar[int] = 0x9006

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DownLinkTestResponse:
        cls._decode(body)
        return cls()
