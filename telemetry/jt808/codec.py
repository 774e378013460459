"""JT/T 808 framing (pure, sans-IO): 0x7E delimiters, 0x7D escaping, XOR check code, the 2013
and 2019 headers, sub-packages.

Receiving: `FrameReader.feed(bytes)` splits a TCP byte stream into frames and returns, in order,
a `Frame` for each good one and a `BadFrame` (with the error, and the header when it could be read)
for each bad one; it never raises on the peer's bytes. `decode_frame` does one frame and raises
`Jt808Error`. `Reassembler` joins sub-packages back into one frame.

Sending: `encode_frame(header, body)` builds the header's body-properties word, the check code and
the escaping; `encode_packets` splits a long body into sub-packages. Encoding errors are ours
(`ValueError`); decoding errors are the peer's (`Jt808Error`).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import struct
from dataclasses import dataclass, replace

from telemetry.errors import DecodeError

__all__ = [
    "MAX_BODY",
    "BadFrame",
    "Frame",
    "FrameReader",
    "Header",
    "Jt808Error",
    "Reassembler",
    "ReassemblyFullError",
    "VersionError",
    "checksum",
    "decode_frame",
    "encode_frame",
    "encode_packets",
    "escape",
    "unescape",
]

FLAG = 0x7E
ESC = 0x7D
MAX_BODY = 0x3FF  # 10-bit body length
_FLAG_B = b"\x7e"
_ESC_B = b"\x7d"
_HDR = struct.Struct(">HH")
_WORD = struct.Struct(">H")
_WORD2 = struct.Struct(">HH")


class Jt808Error(DecodeError):
    """Bytes from a terminal that are not valid JT/T 808: the peer's fault (the message says
    what is wrong)."""


class VersionError(Jt808Error):
    """A 2019 header (bit 14 set) whose protocol version byte is not 1, the version of
    JT/T 808-2019: a layout we cannot know (a later revision's), so the frame is not read."""


PROTOCOL_VERSION_2019 = 1


def checksum(data: bytes) -> int:
    """XOR of every byte (header and body, before escaping)."""
    return functools.reduce(operator.xor, data, 0)


def escape(data: bytes) -> bytes:
    return data.replace(_ESC_B, b"\x7d\x01").replace(_FLAG_B, b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """Undo the escaping; raise Jt808Error on a 0x7D not followed by 0x01 or 0x02."""
    if ESC not in data:
        return data
    if data.count(_ESC_B) != data.count(b"\x7d\x01") + data.count(b"\x7d\x02"):
        raise Jt808Error("bad escape: 0x7D must be followed by 0x01 or 0x02")
    return data.replace(b"\x7d\x02", _FLAG_B).replace(b"\x7d\x01", _ESC_B)


@dataclass(frozen=True, slots=True)
class Header:
    """A message header. `version` None is the 2013 header (BCD[6] phone), else the 2019 header
    with that protocol version byte (BCD[10] phone). `phone` is the full-width digit string."""

    msg_id: int
    serial: int
    phone: str
    version: int | None = None
    encryption: int = 0  # body-properties bits 10-12 (bit 10: RSA)
    reserved: int = 0  # bit 15 (bit 14 flags 2019; a 2013 terminal's is told by the length)
    packet: tuple[int, int] | None = None  # (total, index from 1) of a sub-package

    @property
    def is_2019(self) -> bool:
        return self.version is not None

    @property
    def terminal(self) -> str:
        """The phone number without the BCD padding zeros: how terminals are configured."""
        return self.phone.lstrip("0") or "0"

    def reply(self, msg_id: int, serial: int) -> Header:
        """The header of a platform message to this terminal, in the terminal's header version."""
        return Header(msg_id, serial, self.phone, self.version)


@dataclass(frozen=True, slots=True)
class Frame:
    header: Header
    body: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that could not be decoded; `header` is set when the header itself was readable."""

    error: Jt808Error
    header: Header | None
    raw: bytes


def _bcd_digits(raw: bytes, what: str) -> str:
    digits = raw.hex()
    if not digits.isdigit():
        raise Jt808Error(f"{what} is not BCD: {digits}")
    return digits


def _decode_header(data: bytes) -> tuple[Header, int, int]:
    """Header, its length, and the body length it declares."""
    if len(data) < 12:
        raise Jt808Error(f"frame of {len(data)} bytes is shorter than a header")
    msg_id, props = _HDR.unpack_from(data)
    length = props & MAX_BODY
    encryption = (props >> 10) & 0x7
    sub = bool(props & 0x2000)
    v2019 = bool(props & 0x4000)
    reserved = (props >> 15) & 1
    if v2019 and len(data) == (16 if sub else 12) + length + 1:
        # the frame's length is that of a 2013 header (a 2019 header is 5 bytes longer): a 2013
        # terminal that sets bit 14, reserved in its version
        v2019 = False
    if v2019:
        if len(data) < 17:
            raise Jt808Error(f"frame of {len(data)} bytes is shorter than a 2019 header")
        version: int | None = data[4]
        if version != PROTOCOL_VERSION_2019:
            raise VersionError(
                f"message {msg_id:#06x}: a 2019 header (bit 14) with protocol version {version}; "
                f"JT/T 808-2019 is version {PROTOCOL_VERSION_2019}, no other is read"
            )
        phone = _bcd_digits(data[5:15], "terminal phone")
        (serial,) = _WORD.unpack_from(data, 15)
        pos = 17
    else:
        version = None
        phone = _bcd_digits(data[4:10], "terminal phone")
        (serial,) = _WORD.unpack_from(data, 10)
        pos = 12
    packet = None
    if sub:
        if len(data) < pos + 4:
            raise Jt808Error("frame ends inside the sub-package fields of the header")
        total, index = _WORD2.unpack_from(data, pos)
        if not 1 <= index <= total:
            raise Jt808Error(f"sub-package index {index} of {total} is out of range")
        packet = (total, index)
        pos += 4
    header = Header(msg_id, serial, phone, version, encryption, reserved, packet)
    return header, pos, length


def decode_frame(raw: bytes) -> Frame:
    """Decode one frame: the bytes between two 0x7E (either or both delimiters may be included)."""
    return _decode(raw)


def _decode(raw: bytes) -> Frame:
    if raw[:1] == _FLAG_B:
        raw = raw[1:]
    if raw[-1:] == _FLAG_B:
        raw = raw[:-1]
    if FLAG in raw:
        raise Jt808Error("unescaped 0x7E inside a frame")
    data = unescape(raw)
    # the check code first: a header byte garbled on the line (the version, bit 14, the body
    # length) is a bad frame, not a header we cannot read
    expected = checksum(data[:-1])
    if data and data[-1] != expected:
        what = f"message {_WORD.unpack_from(data)[0]:#06x}" if len(data) >= 3 else "frame"
        raise Jt808Error(f"{what}: check code {data[-1]:#04x}, computed {expected:#04x}")
    header, pos, length = _decode_header(data)
    if len(data) < pos + 1:
        raise Jt808Error(f"message {header.msg_id:#06x}: the frame ends before its check code")
    body = data[pos:-1]
    if len(body) != length:
        raise Jt808Error(
            f"message {header.msg_id:#06x}: the header declares a body of {length} bytes, "
            f"the frame carries {len(body)}"
        )
    return Frame(header, body)


def _encode_header(header: Header, body_len: int) -> bytes:
    if not 0 <= body_len <= MAX_BODY:
        raise ValueError(f"a body of {body_len} bytes needs sub-packages (at most {MAX_BODY})")
    width = 20 if header.is_2019 else 12
    if not header.phone.isdigit() or len(header.phone) > width:
        raise ValueError(f"terminal phone {header.phone!r} is not 1-{width} digits")
    props = body_len | (header.encryption & 7) << 10 | (header.reserved & 1) << 15
    if header.packet is not None:
        props |= 0x2000
    out = bytearray(_HDR.pack(header.msg_id, props))
    if header.version is not None:
        out[2] |= 0x40
        out.append(header.version)
    out += bytes.fromhex(header.phone.zfill(width))
    out += _WORD.pack(header.serial & 0xFFFF)
    if header.packet is not None:
        out += _WORD2.pack(*header.packet)
    return bytes(out)


def encode_frame(header: Header, body: bytes) -> bytes:
    """One frame with its delimiters: header + body + check code, escaped."""
    data = _encode_header(header, len(body)) + body
    return _FLAG_B + escape(data + bytes((checksum(data),))) + _FLAG_B


def encode_packets(header: Header, body: bytes, max_body: int = MAX_BODY) -> list[bytes]:
    """A message as one frame, or as sub-packages of at most `max_body` bytes when it is longer.
    Sub-packages take consecutive serial numbers from the header's."""
    if len(body) <= max_body:
        return [encode_frame(header, body)]
    parts = [body[i : i + max_body] for i in range(0, len(body), max_body)]
    total = len(parts)
    return [
        encode_frame(
            replace(header, serial=(header.serial + i) & 0xFFFF, packet=(total, i + 1)), part
        )
        for i, part in enumerate(parts)
    ]


class FrameReader:
    """Splits a byte stream into frames. Every 0x7E is a boundary, so a bad or truncated frame
    costs only itself; bytes before the first 0x7E are reported as junk."""

    def __init__(self, max_frame: int = 4096) -> None:
        self.max_frame = max_frame
        self._pending = b""
        self._synced = False

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        out: list[Frame | BadFrame] = []
        buf = self._pending + data if self._pending else data
        parts = buf.split(_FLAG_B)
        if not self._synced:
            if len(parts) == 1:
                self._pending = b""
                if buf:
                    out.append(BadFrame(Jt808Error("bytes outside a frame"), None, buf[:64]))
                return out
            if parts[0]:
                out.append(BadFrame(Jt808Error("bytes outside a frame"), None, parts[0][:64]))
            self._synced = True
            parts = parts[1:]
        for part in parts[:-1]:
            if part:
                out.append(_read(part, self.max_frame))
        last = parts[-1]
        if len(last) > self.max_frame:
            out.append(
                BadFrame(Jt808Error(f"frame longer than {self.max_frame} bytes"), None, last[:64])
            )
            last = b""
            self._synced = False
        self._pending = last
        return out


def _read(part: bytes, max_frame: int) -> Frame | BadFrame:
    if len(part) > max_frame:
        return BadFrame(Jt808Error(f"frame longer than {max_frame} bytes"), None, part[:64])
    try:
        return _decode(part)
    except Jt808Error as exc:
        header = None
        with contextlib.suppress(Jt808Error):
            header = _decode_header(unescape(part))[0]
        return BadFrame(exc, header, part)


@dataclass(slots=True)
class _Group:
    first_serial: int
    total: int
    heard_ms: int  # when its last sub-package came
    parts: dict[int, bytes]
    header: Header


class ReassemblyFullError(Jt808Error):
    """A new sub-packaged message while `max_groups` are open: refused, not kept (those open
    were answered part by part, and pushing one out would lose what the terminal was told is
    received)."""


class Reassembler:
    """Joins the sub-packages of a message (consecutive serials, index 1..total) into one frame.
    Groups that hear nothing for `max_age_ms` (time is passed in) are dropped (`expire`); a new
    one while `max_groups` are open is refused (`ReassemblyFullError`)."""

    def __init__(self, max_groups: int = 8, max_age_ms: int = 60_000, max_total: int = 512):
        self.max_groups = max_groups
        self.max_age_ms = max_age_ms
        self.max_total = max_total
        self._groups: dict[tuple[int, int, int], _Group] = {}

    @property
    def pending(self) -> int:
        return len(self._groups)

    def expire(self, now_ms: int) -> list[Header]:
        """Drop groups older than the age limit; return their headers (for counting)."""
        old = [k for k, g in self._groups.items() if now_ms - g.heard_ms > self.max_age_ms]
        return [self._groups.pop(k).header for k in old]

    def add(self, frame: Frame, now_ms: int) -> Frame | None:
        """The whole message once its last part arrived; None while parts are missing."""
        h = frame.header
        if h.packet is None:
            return frame
        total, index = h.packet
        if total > self.max_total:
            raise Jt808Error(f"a message of {total} sub-packages exceeds {self.max_total}")
        first = (h.serial - (index - 1)) & 0xFFFF
        key = (h.msg_id, total, first)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self.max_groups:
                raise ReassemblyFullError(
                    f"{len(self._groups)} sub-packaged messages are open: message "
                    f"{h.msg_id:#06x} of serial {first} must wait"
                )
            group = self._groups[key] = _Group(first, total, now_ms, {}, h)
        group.heard_ms = now_ms
        group.parts[index] = frame.body
        if len(group.parts) < total:
            return None
        del self._groups[key]
        body = b"".join(group.parts[i] for i in range(1, total + 1))
        return Frame(replace(h, serial=first, packet=None), body)
