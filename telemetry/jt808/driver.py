"""JT/T 808 driver identity (pure): the IC card report 0x0702 and the platform's request for it
0x8702."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.fields import _bytes, _exact, _fixed, _need, _pad, _text
from telemetry.jt808.ids import MsgId

__all__ = ["DriverIdentity", "DriverRequest"]


@dataclass(frozen=True, slots=True)
class DriverIdentity:
    """0x0702 (2013, 2019): the IC card of a driver put in (status 1: on duty) or taken out (2).
    With the card in and read (result 0): his name, qualification certificate (从业资格证) code,
    its issuing authority and validity; 2019 adds his ID card number."""

    msg_id: ClassVar[int] = MsgId.DRIVER_IDENTITY
    status: int  # 1 card in, 2 card out
    time: str  # YYMMDDhhmmss, GMT+8
    result: int = 0  # card in: 0 read, 1 key refused, 2 card locked, 3 card out, 4 bad checksum
    name: str = ""
    certificate: str = ""  # STRING[20]
    authority: str = ""
    valid_until: str = ""  # YYYYMMDD
    id_card: str = ""  # 2019: STRING[20]

    IN: ClassVar[int] = 1
    OUT: ClassVar[int] = 2

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> DriverIdentity:
        _need(body, 7, "driver identity 0x0702")
        status, time_ = body[0], body[1:7].hex()
        if status not in (cls.IN, cls.OUT):
            raise Jt808Error(f"driver identity 0x0702: status {status} is neither 1 (in) nor 2")
        if status == cls.OUT:
            return cls(status, time_)
        _need(body, 8, "driver identity 0x0702")
        result = body[7]
        if result != 0:
            return cls(status, time_, result)
        p = 8
        _need(body, p + 1, "driver identity 0x0702 name")
        n = body[p]
        _need(body, p + 1 + n + 20 + 1, "driver identity 0x0702")
        name = _text(body[p + 1 : p + 1 + n])
        p += 1 + n
        certificate = _fixed(body[p : p + 20]).strip()
        p += 20
        m = body[p]
        _need(body, p + 1 + m + 4, "driver identity 0x0702 authority")
        authority = _text(body[p + 1 : p + 1 + m])
        p += 1 + m
        valid = body[p : p + 4].hex()
        p += 4
        id_card = _fixed(body[p : p + 20]).strip() if v2019 and len(body) >= p + 20 else ""
        return cls(status, time_, 0, name, certificate, authority, valid, id_card)

    def encode(self, v2019: bool) -> bytes:
        out = bytes((self.status,)) + bytes.fromhex(self.time)
        if self.status != self.IN:
            return out
        out += bytes((self.result,))
        if self.result != 0:
            return out
        name, authority = _bytes(self.name), _bytes(self.authority)
        out += bytes((len(name),)) + name + _pad(self.certificate, 20, "certificate")
        out += bytes((len(authority),)) + authority + bytes.fromhex(self.valid_until)
        if v2019:
            out += _pad(self.id_card, 20, "ID card number")
        return out

    @property
    def driver_id(self) -> str:
        """Who drives, as the hub keys his fatigue: the certificate code, else the ID card
        number ("" when the card was not read, or says neither: a name is no identity, two
        drivers may share it). Padding (NUL, 0xFF, spaces, on either side) and bytes that are
        not GBK text are left out."""
        for field in (self.certificate, self.id_card):
            said = "".join(c for c in field if c.isprintable() and not "\udc80" <= c <= "\udcff")
            if said.strip():
                return said.strip()[:64]
        return ""


@dataclass(frozen=True, slots=True)
class DriverRequest:
    """0x8702: the platform asks the terminal for its driver's identity (answered by 0x0702)."""

    msg_id: ClassVar[int] = MsgId.DRIVER_REQUEST

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> DriverRequest:
        _exact(body, 0, "driver identity request 0x8702")
        return cls()

    def encode(self, v2019: bool) -> bytes:
        return b""
