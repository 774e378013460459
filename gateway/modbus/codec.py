"""Modbus frames and read PDUs (pure: no sockets, no clocks).

Functions 1-4 (read coils, discrete inputs, holding registers, input registers), their exception
responses, and the two framings a TCP link carries: MBAP (Modbus TCP, with transaction ids) and
RTU (unit, PDU, CRC-16; RTU over TCP from serial device servers). A parser takes a buffer and a
start offset and returns (frame, consumed); consumed 0 means "need more bytes". Every malformed
input raises `FrameError`, never anything else; a request outside the protocol's limits raises
`RequestError`. Register data stays big-endian bytes: the decoder unpacks it in one go.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.modbus.errors import CrcError, ExceptionResponseError, FrameError, RequestError

__all__ = [
    "BIT_FUNCTIONS",
    "FUNCTIONS",
    "MAX_BITS",
    "MAX_REGISTERS",
    "Frame",
    "crc16",
    "decode_read_request",
    "decode_read_response",
    "encode_exception_response",
    "encode_mbap",
    "encode_mbap_read",
    "encode_read_request",
    "encode_read_response",
    "encode_rtu",
    "parse_mbap",
    "parse_rtu",
    "rtu_frame_length",
    "unpack_bits",
]

FUNCTIONS = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
BIT_FUNCTIONS = frozenset((1, 2))
MAX_REGISTERS = 125
MAX_BITS = 2000
MBAP_HEADER = 7  # transaction id, protocol id, length, unit id
MAX_PDU = 253

_READ = struct.Struct(">BHH")
_MBAP = struct.Struct(">HHHB")
_MBAP_READ = struct.Struct(">HHHBBHH")  # a whole read request in one pack


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class Frame:
    """One application data unit: the transaction id (0 in RTU), the unit id and the PDU."""

    tid: int
    unit: int
    pdu: bytes


def _limit(function: int) -> int:
    if function in BIT_FUNCTIONS:
        return MAX_BITS
    if function in (3, 4):
        return MAX_REGISTERS
    raise RequestError(f"function {function} is not a read (1-4)")


def _check_read(function: int, address: int, count: int) -> None:
    limit = _limit(function)
    if not 1 <= count <= limit:
        raise RequestError(f"function {function} reads 1 to {limit} items, not {count}")
    if address < 0 or address + count > 0x10000:
        raise RequestError(f"address {address} + count {count} is outside 0-65535")


def encode_read_request(function: int, address: int, count: int) -> bytes:
    """The PDU of a read request (functions 1-4)."""
    _check_read(function, address, count)
    return _READ.pack(function, address, count)


def decode_read_request(pdu: bytes) -> tuple[int, int, int]:
    """(function, address, count) of a read request PDU (the server's side; used in tests)."""
    if len(pdu) != 5:
        raise FrameError(f"a read request PDU has 5 bytes, not {len(pdu)}")
    function, address, count = _READ.unpack(pdu)
    try:
        _check_read(function, address, count)
    except RequestError as exc:
        raise FrameError(str(exc)) from None
    return function, address, count


def _byte_count(function: int, count: int) -> int:
    return (count + 7) // 8 if function in BIT_FUNCTIONS else 2 * count


def encode_read_response(function: int, data: bytes | tuple[bool, ...]) -> bytes:
    """The PDU answering a read: register bytes for 3 and 4, bits (LSB first) for 1 and 2."""
    if function in BIT_FUNCTIONS:
        if not isinstance(data, tuple):
            raise RequestError("bit functions answer bits")
        packed = bytearray((len(data) + 7) // 8)
        for i, bit in enumerate(data):
            if bit:
                packed[i >> 3] |= 1 << (i & 7)
        body = bytes(packed)
    else:
        if not isinstance(data, bytes) or len(data) % 2:
            raise RequestError("register functions answer an even number of bytes")
        body = data
    _check_read(function, 0, max(1, len(data) if function in BIT_FUNCTIONS else len(data) // 2))
    return bytes((function, len(body))) + body


def encode_exception_response(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


def unpack_bits(data: bytes, count: int) -> tuple[bool, ...]:
    """`count` bits, least significant bit of the first byte first."""
    return tuple(bool((data[i >> 3] >> (i & 7)) & 1) for i in range(count))


def decode_read_response(
    unit: int, function: int, count: int, pdu: bytes
) -> bytes | tuple[bool, ...]:
    """The data answering a read of `count` items: big-endian register bytes (2 x count) or
    `count` bits. An exception response raises `ExceptionResponseError`, anything else malformed
    `FrameError`."""
    if len(pdu) < 2:
        raise FrameError(f"unit {unit}: a response PDU of {len(pdu)} bytes")
    got = pdu[0]
    if got == function | 0x80:
        if len(pdu) != 2:
            raise FrameError(f"unit {unit}: an exception response of {len(pdu)} bytes")
        raise ExceptionResponseError(unit, function, pdu[1])
    if got != function:
        raise FrameError(f"unit {unit}: asked function {function}, answered {got}")
    want = _byte_count(function, count)
    if pdu[1] != want or len(pdu) != 2 + want:
        raise FrameError(
            f"unit {unit}: function {function} of {count} items needs {want} bytes, "
            f"got byte count {pdu[1]} and {len(pdu) - 2} bytes"
        )
    if function in BIT_FUNCTIONS:
        return unpack_bits(pdu[2:], count)
    return pdu[2:]


def encode_mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    """A Modbus TCP frame: MBAP header (protocol id 0, length = unit + PDU) and the PDU."""
    if not 0 <= tid <= 0xFFFF or not 0 <= unit <= 0xFF or not 1 <= len(pdu) <= MAX_PDU:
        raise RequestError(f"MBAP frame out of range: tid {tid}, unit {unit}, {len(pdu)} bytes")
    return _MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu


def encode_mbap_read(tid: int, unit: int, function: int, address: int, count: int) -> bytes:
    """`encode_mbap(tid, unit, encode_read_request(...))` in one pack: the client's hot path."""
    _check_read(function, address, count)
    if not 0 <= tid <= 0xFFFF or not 0 <= unit <= 0xFF:
        raise RequestError(f"MBAP frame out of range: tid {tid}, unit {unit}")
    return _MBAP_READ.pack(tid, 0, 6, unit, function, address, count)


def parse_mbap(buf: bytes, start: int = 0) -> tuple[Frame | None, int]:
    """The Modbus TCP frame at `buf[start:]`: (frame, bytes consumed), or (None, 0) when the
    buffer holds only part of one. A header that no valid frame has raises `FrameError`: the
    stream has lost its framing."""
    if len(buf) - start < MBAP_HEADER:
        return None, 0
    tid, protocol, length, unit = _MBAP.unpack_from(buf, start)
    if protocol != 0:
        raise FrameError(f"MBAP protocol id {protocol}, not 0 (tid {tid})")
    if not 2 <= length <= MAX_PDU + 1:
        raise FrameError(f"MBAP length {length} is outside 2-{MAX_PDU + 1} (tid {tid})")
    end = start + 6 + length
    if len(buf) < end:
        return None, 0
    return Frame(tid, unit, bytes(buf[start + MBAP_HEADER : end])), end - start


def encode_rtu(unit: int, pdu: bytes) -> bytes:
    """An RTU frame: unit id, PDU, CRC-16 low byte first."""
    if not 0 <= unit <= 0xFF or not 1 <= len(pdu) <= MAX_PDU:
        raise RequestError(f"RTU frame out of range: unit {unit}, {len(pdu)} bytes")
    body = bytes((unit,)) + pdu
    return body + crc16(body).to_bytes(2, "little")


def rtu_frame_length(buf: bytes, start: int = 0) -> int:
    """Length of the RTU *response* at `buf[start:]` read from its first bytes, or 0 when too
    few have come to tell. RTU has no length field: it follows from the function code."""
    if len(buf) - start < 3:
        return 0
    function = buf[start + 1]
    if function & 0x80:
        return 5  # unit, function | 0x80, code, CRC
    if 1 <= function <= 4:
        return 5 + buf[start + 2]  # unit, function, byte count, data, CRC
    raise FrameError(f"RTU response with function {function}: not a read")


def parse_rtu(buf: bytes, start: int = 0) -> tuple[Frame | None, int]:
    """The RTU response at `buf[start:]`: (frame, consumed) or (None, 0) for "need more". A bad
    CRC raises `CrcError`, an unknown function `FrameError`."""
    size = rtu_frame_length(buf, start)
    if size == 0 or len(buf) - start < size:
        return None, 0
    end = start + size
    body = bytes(buf[start : end - 2])
    crc = int.from_bytes(buf[end - 2 : end], "little")
    if crc16(body) != crc:
        raise CrcError(f"RTU frame from unit {body[0]}: CRC {crc:04x}, computed {crc16(body):04x}")
    return Frame(0, body[0], body[1:]), size
