"""JT/T 809 framing (pure): the 0x5B .. 0x5D frame, its escaping, the CRC, the header of the
2011 and the 2019 standard, and the body's simple encryption.

On the wire a frame is ``0x5B | header | body | CRC | 0x5D``, escaped: 0x5B -> 0x5A 0x01,
0x5A -> 0x5A 0x02, 0x5D -> 0x5E 0x01, 0x5E -> 0x5E 0x02, so that no flag byte is inside a frame.
The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection) over the header
and the body as sent (encrypted when the header says so), before escaping. MSG_LENGTH counts the
whole unescaped frame, both flags included.

The header: MSG_LENGTH, MSG_SN (DWORD), MSG_ID (WORD), MSG_GNSSCENTERID (DWORD, the lower
platform's access code), VERSION_FLAG (3 bytes, major.minor.patch), ENCRYPT_FLAG (BYTE),
ENCRYPT_KEY (DWORD): 22 bytes; the 2019 standard adds TIME, the UTC send time in seconds
(8 bytes): 30 bytes. The access code is at the same place in both, so a server can find the
platform (and so its version) before it reads the rest (`peek_access_code`).

Every fault of the peer's bytes is a `Jt809Error`: `BadFrameError` for a frame whose boundary was
sound (the link can go on: the next frame starts at the next 0x5B), `FrameOverflowError` when no
boundary came within the limit (the stream cannot be trusted).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from telemetry.errors import DecodeError

__all__ = [
    "BEGIN",
    "END",
    "BadFrameError",
    "Frame",
    "FrameOverflowError",
    "FrameSplitter",
    "Header",
    "Jt809Error",
    "Keys",
    "crc16",
    "crypt",
    "decode_frame",
    "encode_frame",
    "escape",
    "peek_access_code",
    "unescape",
]

BEGIN = 0x5B
END = 0x5D
_ESC = {0x5B: b"\x5a\x01", 0x5A: b"\x5a\x02", 0x5D: b"\x5e\x01", 0x5E: b"\x5e\x02"}
_UNESC = {(0x5A, 1): 0x5B, (0x5A, 2): 0x5A, (0x5E, 1): 0x5D, (0x5E, 2): 0x5E}
_HEAD = struct.Struct(">IIHI3sBI")  # 22 bytes
_TIME = struct.Struct(">Q")
HEADER_2011 = _HEAD.size
HEADER_2019 = _HEAD.size + _TIME.size
VERSION_2011 = (1, 0, 0)
VERSION_2019 = (1, 2, 15)  # the 2019 standard's own example; the platform's config decides


class Jt809Error(DecodeError):
    """The peer's bytes are not a JT/T 809 frame or body we can read."""


class BadFrameError(Jt809Error):
    """A frame between sound boundaries that cannot be read: the link can go on."""


class FrameOverflowError(Jt809Error):
    """No frame boundary within the limit: the stream is not JT/T 809. `frames`: those the
    same `feed` split out before it (complete, to be taken)."""

    def __init__(self, text: str, frames: list[bytes | BadFrameError] | None = None) -> None:
        super().__init__(text)
        self.frames: list[bytes | BadFrameError] = frames or []


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
        table.append(c & 0xFFFF)
    return tuple(table)


_CRC = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of `data`."""
    c = 0xFFFF
    for b in data:
        c = ((c << 8) & 0xFFFF) ^ _CRC[(c >> 8) ^ b]
    return c


def escape(data: bytes) -> bytes:
    if not any(b in _ESC for b in data):
        return data
    return b"".join(_ESC.get(b, bytes((b,))) for b in data)


def unescape(data: bytes) -> bytes:
    """The bytes between the flags unescaped; `BadFrameError` for a 0x5A or 0x5E not followed by
    1 or 2 (or a flag byte inside)."""
    if 0x5A not in data and 0x5E not in data and BEGIN not in data and END not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b in (0x5A, 0x5E):
            if i + 1 >= n or (b, data[i + 1]) not in _UNESC:
                raise BadFrameError(f"byte {b:#04x} at {i} is not followed by an escape (1 or 2)")
            out.append(_UNESC[(b, data[i + 1])])
            i += 2
            continue
        if b in (BEGIN, END):
            raise BadFrameError(f"flag byte {b:#04x} inside a frame at {i}")
        out.append(b)
        i += 1
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Keys:
    """The simple encryption's parameters of a platform (M1, IA1, IC1)."""

    m1: int
    ia1: int
    ic1: int


def crypt(data: bytes, key: int, keys: Keys) -> bytes:
    """Encrypt or decrypt (the same XOR stream): each byte XORed with bits 20-27 of
    ``key = IA1 * (key % M1) + IC1`` (32-bit unsigned), the key from the header (0 taken as 1)."""
    k = key or 1
    m1 = keys.m1 or 1
    out = bytearray(len(data))
    for i, b in enumerate(data):
        k = (keys.ia1 * (k % m1) + keys.ic1) & 0xFFFFFFFF
        out[i] = b ^ ((k >> 20) & 0xFF)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Header:
    msg_id: int
    sn: int
    access_code: int
    version: tuple[int, int, int] = VERSION_2011
    encrypted: bool = False
    key: int = 0
    time_s: int | None = None  # 2019: UTC send time, s; None in a 2011 header
    length: int = 0  # MSG_LENGTH as received (0: computed when encoding)

    @property
    def v2019(self) -> bool:
        return self.time_s is not None

    def encode(self, body_len: int) -> bytes:
        size = HEADER_2019 if self.v2019 else HEADER_2011
        out = _HEAD.pack(
            1 + size + body_len + 2 + 1,
            self.sn & 0xFFFFFFFF,
            self.msg_id,
            self.access_code,
            bytes(self.version),
            1 if self.encrypted else 0,
            self.key,
        )
        if self.time_s is not None:
            out += _TIME.pack(self.time_s)
        return out

    @classmethod
    def decode(cls, data: bytes, v2019: bool) -> Header:
        need = HEADER_2019 if v2019 else HEADER_2011
        if len(data) < need:
            raise BadFrameError(f"{len(data)} bytes, a {2019 if v2019 else 2011} header is {need}")
        length, sn, msg_id, code, ver, enc, key = _HEAD.unpack_from(data)
        if enc not in (0, 1):
            raise BadFrameError(f"encryption flag {enc}, 0 or 1 expected")
        t = _TIME.unpack_from(data, _HEAD.size)[0] if v2019 else None
        return cls(msg_id, sn, code, (ver[0], ver[1], ver[2]), enc == 1, key, t, length)


@dataclass(frozen=True, slots=True)
class Frame:
    header: Header
    body: bytes  # decrypted


def peek_access_code(inner: bytes) -> int:
    """The access code of an unescaped frame's header (the same place in 2011 and 2019)."""
    if len(inner) < HEADER_2011:
        raise BadFrameError(f"{len(inner)} bytes, shorter than any header")
    return int.from_bytes(inner[10:14], "big")


def check(inner: bytes) -> bytes:
    """The unescaped frame `inner` (between the flags) without its CRC, once its CRC and
    MSG_LENGTH are right."""
    if len(inner) < HEADER_2011 + 2:
        raise BadFrameError(f"frame of {len(inner)} bytes, shorter than a header and a CRC")
    data, (crc,) = inner[:-2], struct.unpack(">H", inner[-2:])
    if crc16(data) != crc:
        raise BadFrameError(f"CRC {crc:#06x}, computed {crc16(data):#06x}")
    length = int.from_bytes(inner[:4], "big")
    if length != len(inner) + 2:
        raise BadFrameError(f"MSG_LENGTH {length}, the frame has {len(inner) + 2} bytes")
    return data


def decode_frame(inner: bytes, v2019: bool, keys: Keys | None = None) -> Frame:
    """An unescaped frame's header and body (decrypted with `keys` when the header says it is
    encrypted; `BadFrameError` when it is and there are none)."""
    data = check(inner)
    header = Header.decode(data, v2019)
    body = data[HEADER_2019 if v2019 else HEADER_2011 :]
    if header.encrypted:
        if keys is None:
            raise BadFrameError("the body is encrypted and no keys are configured for the platform")
        body = crypt(body, header.key, keys)
    return Frame(header, body)


def encode_frame(header: Header, body: bytes, keys: Keys | None = None) -> bytes:
    """The frame on the wire: encrypted when the header says so (with `keys`), CRC, escaped."""
    if header.encrypted:
        if keys is None:
            raise ValueError("an encrypted header needs keys")
        body = crypt(body, header.key, keys)
    data = header.encode(len(body)) + body
    data += struct.pack(">H", crc16(data))
    return bytes((BEGIN,)) + escape(data) + bytes((END,))


class FrameSplitter:
    """Bytes of a stream in, unescaped frames (without the flags) out. Bytes before a 0x5B are
    skipped and counted (`skipped`); a frame that does not end within `max_frame` bytes raises
    `FrameOverflowError` (carrying the frames split before it); an escape fault gives a
    `BadFrameError` for that frame only (the next is read)."""

    def __init__(self, max_frame: int = 65536) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame
        self.skipped = 0

    def feed(self, data: bytes) -> list[bytes | BadFrameError]:
        self._buf += data
        out: list[bytes | BadFrameError] = []
        buf = self._buf
        while True:
            start = buf.find(BEGIN)
            if start < 0:
                self.skipped += len(buf)
                buf.clear()
                break
            if start:
                self.skipped += start
                del buf[:start]
            end = buf.find(END, 1)
            nxt = buf.find(BEGIN, 1)
            if nxt > 0 and (end < 0 or nxt < end):  # a new frame began: the last one is cut
                out.append(BadFrameError(f"frame of {nxt} bytes cut by a new 0x5B"))
                del buf[:nxt]
                continue
            if end < 0:
                if len(buf) > self.max_frame:
                    n = len(buf)
                    buf.clear()
                    raise FrameOverflowError(
                        f"no 0x5D within {n} bytes (limit {self.max_frame})", out
                    )
                break
            raw = bytes(buf[1:end])
            del buf[: end + 1]
            try:
                out.append(unescape(raw))
            except BadFrameError as exc:
                out.append(exc)
        return out
