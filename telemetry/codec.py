"""The telemetry payload codec: one columnar batch of readings from one device, bytes in and out.

Wire format, version 1, little-endian::

    magic      2 bytes  b"HH"
    version    u8       1
    flags      u8       0 (reserved; a decoder rejects unknown flags)
    epoch      u64      gateway session epoch (ms since 1970 at the gateway's start)
    seq        u64      per-device sequence number within the epoch, from 0
    gateway    str8     u8 length + UTF-8
    device     str8
    nkeys      u16      number of sensor keys, then nkeys x str8
    n          u32      number of readings, then the four columns:
    key        u16[n]   index into the key table
    ts         i64[n]   event time, ms since 1970 UTC
    value      f64[n]
    quality    u8[n]    `telemetry.quality.Quality`

(epoch, seq) identifies a batch of a device: ingest dedupes on (device, epoch, seq), so a gateway
restart never collides with the numbers of its previous run.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telemetry.errors import DecodeError
from telemetry.quality import KNOWN_QUALITIES

__all__ = [
    "MAX_FUTURE_MS",
    "MAX_KEYS",
    "MAX_READINGS",
    "VERSION",
    "TelemetryBatch",
    "decode",
    "encode",
]

MAGIC = b"HH"
VERSION = 1
MAX_KEYS = 4096
MAX_READINGS = 1_000_000
# how far ahead of the receiving hub's clock a reading's or position's time may be (the hub
# refuses more, `ingest.pipeline`; the JT/T 808 gateway warns of a terminal clock that far ahead):
# no further than clocks kept by NTP drift apart. A reading from the future is its sensor's
# newest, so every true reading before its time would be judged late and not at all
MAX_FUTURE_MS = 30_000
_HEAD = struct.Struct("<2sBBQQ")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_VALID_Q = np.zeros(256, dtype=np.bool_)
_VALID_Q[sorted(KNOWN_QUALITIES)] = True


@dataclass(frozen=True, slots=True, eq=False)
class TelemetryBatch:
    """Readings of one device: `keys[key[i]]` was `value[i]` with `quality[i]` at `ts[i]`."""

    gateway: str
    device: str
    epoch: int
    seq: int
    keys: tuple[str, ...]
    key: npt.NDArray[np.uint16]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def same_as(self, other: TelemetryBatch) -> bool:
        """Field-by-field equality (NaN equal to NaN)."""
        return (
            (self.gateway, self.device, self.epoch, self.seq, self.keys)
            == (other.gateway, other.device, other.epoch, other.seq, other.keys)
            and np.array_equal(self.key, other.key)
            and np.array_equal(self.ts, other.ts)
            and np.array_equal(self.value, other.value, equal_nan=True)
            and np.array_equal(self.quality, other.quality)
        )


def _str8(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw or len(raw) > 255:
        raise ValueError(f"{what} must be 1-255 bytes of UTF-8, got {len(raw)}")
    return _U8.pack(len(raw)) + raw


@functools.lru_cache(maxsize=4096)
def _key_table_bytes(keys: tuple[str, ...]) -> bytes:
    """A device sends the same keys every cycle: encode its key table once."""
    return _U16.pack(len(keys)) + b"".join(_str8(k, "sensor key") for k in keys)


def encode(batch: TelemetryBatch) -> bytes:
    """Encode a batch; raise ValueError if the batch itself is inconsistent."""
    n = len(batch)
    if not (batch.key.shape == batch.value.shape == batch.quality.shape == (n,)):
        raise ValueError("columns key, ts, value and quality must have the same length")
    if len(batch.keys) > MAX_KEYS or n > MAX_READINGS:
        raise ValueError(f"at most {MAX_KEYS} keys and {MAX_READINGS} readings per batch")
    if n and int(batch.key.max()) >= len(batch.keys):
        raise ValueError("a key index points past the key table")
    if len(set(batch.keys)) != len(batch.keys):
        raise ValueError("sensor keys must be unique")
    if n and not _VALID_Q[batch.quality.astype(np.uint8)].all():
        raise ValueError("a quality code is not one of telemetry.quality.Quality")
    if not (0 <= batch.epoch < 2**64 and 0 <= batch.seq < 2**64):
        raise ValueError("epoch and seq must be unsigned 64-bit integers")
    parts = [
        _HEAD.pack(MAGIC, VERSION, 0, batch.epoch, batch.seq),
        _str8(batch.gateway, "gateway"),
        _str8(batch.device, "device"),
        _key_table_bytes(batch.keys),
        _U32.pack(n),
        np.ascontiguousarray(batch.key, dtype="<u2").tobytes(),
        np.ascontiguousarray(batch.ts, dtype="<i8").tobytes(),
        np.ascontiguousarray(batch.value, dtype="<f8").tobytes(),
        np.ascontiguousarray(batch.quality, dtype="u1").tobytes(),
    ]
    return b"".join(parts)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise DecodeError(
                f"payload truncated in {what}: need {size} bytes at offset {self.pos}, "
                f"have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def str8(self, what: str) -> str:
        (length,) = _U8.unpack(self.take(1, f"{what} length"))
        if length == 0:
            raise DecodeError(f"{what} is empty")
        raw = self.take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{what} is not valid UTF-8: {exc.reason}") from exc


def _key_table(reader: _Reader, nkeys: int) -> tuple[str, ...]:
    """The sensor keys: the hot part of decoding, so one tight loop instead of `str8` calls."""
    data, pos, size = reader.data, reader.pos, len(reader.data)
    keys: list[str] = []
    for i in range(nkeys):
        if pos >= size:
            raise DecodeError(f"payload truncated in sensor key {i} length at offset {pos}")
        length = data[pos]
        end = pos + 1 + length
        if length == 0:
            raise DecodeError(f"sensor key {i} is empty")
        if end > size:
            raise DecodeError(
                f"payload truncated in sensor key {i}: need {length} bytes at offset {pos + 1}, "
                f"have {size - pos - 1}"
            )
        try:
            keys.append(data[pos + 1 : end].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DecodeError(f"sensor key {i} is not valid UTF-8: {exc.reason}") from exc
        pos = end
    reader.pos = pos
    return tuple(keys)


_KEY_TABLES: dict[tuple[str, int], tuple[bytes, tuple[str, ...]]] = {}
_KEY_TABLES_MAX = 65_536


def _cached_key_table(reader: _Reader, device: str, nkeys: int) -> tuple[str, ...]:
    """A device sends the same key table every cycle: when the bytes are exactly those seen last
    time for this device, reuse the parsed keys (and their checks); else parse and remember."""
    seen = _KEY_TABLES.get((device, nkeys))
    if seen is not None:
        raw, keys = seen
        end = reader.pos + len(raw)
        if reader.data[reader.pos : end] == raw:
            reader.pos = end
            return keys
    start = reader.pos
    keys = _key_table(reader, nkeys)
    if len(set(keys)) != len(keys):
        raise DecodeError("sensor keys are not unique")
    if len(_KEY_TABLES) >= _KEY_TABLES_MAX:
        _KEY_TABLES.clear()
    _KEY_TABLES[(device, nkeys)] = (reader.data[start : reader.pos], keys)
    return keys


def _decode_well_formed(data: bytes) -> TelemetryBatch | None:
    """`decode` of a payload that is well formed and whose key table this device sent before
    (the hot case), with offsets instead of slices; None for anything else, which `decode`
    then reads step by step to say what is wrong."""
    try:
        magic, version, flags, epoch, seq = _HEAD.unpack_from(data)
        if magic != MAGIC or version != VERSION or flags:
            return None
        pos = _HEAD.size
        length = data[pos]
        gateway = data[pos + 1 : pos + 1 + length].decode("utf-8")
        pos += 1 + length
        length = data[pos]
        device = data[pos + 1 : pos + 1 + length].decode("utf-8")
        pos += 1 + length
        if not gateway or not device:
            return None
        (nkeys,) = _U16.unpack_from(data, pos)
        pos += 2
        seen = _KEY_TABLES.get((device, nkeys))
        if seen is None or not data.startswith(seen[0], pos):
            return None
        keys = seen[1]
        pos += len(seen[0])
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if n > MAX_READINGS or len(data) - pos != n * (2 + 8 + 8 + 1):
            return None
    except (struct.error, IndexError, UnicodeDecodeError):
        return None
    key = np.frombuffer(data, "<u2", n, pos).astype(np.uint16)
    ts = np.frombuffer(data, "<i8", n, pos + 2 * n).astype(np.int64)
    value = np.frombuffer(data, "<f8", n, pos + 10 * n).astype(np.float64)
    quality = np.frombuffer(data, np.uint8, n, pos + 18 * n).copy()
    if n and (int(key.max()) >= nkeys or not _VALID_Q[quality].all()):
        return None
    return TelemetryBatch(gateway, device, epoch, seq, keys, key, ts, value, quality)


def decode(data: bytes) -> TelemetryBatch:
    """Decode a payload, or raise DecodeError that says what is wrong with it."""
    if isinstance(data, bytes):
        batch = _decode_well_formed(data)
        if batch is not None:
            return batch
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"payload must be bytes, got {type(data).__name__}")
    reader = _Reader(bytes(data))
    magic, version, flags, epoch, seq = _HEAD.unpack(reader.take(_HEAD.size, "header"))
    if magic != MAGIC:
        raise DecodeError(f"bad magic {magic!r}: not a hazardhub telemetry payload")
    if version != VERSION:
        raise DecodeError(f"unsupported telemetry version {version} (this hub reads {VERSION})")
    if flags:
        raise DecodeError(f"unknown flags 0x{flags:02x}")
    gateway = reader.str8("gateway")
    device = reader.str8("device")
    (nkeys,) = _U16.unpack(reader.take(2, "key count"))
    if nkeys > MAX_KEYS:
        raise DecodeError(f"{nkeys} sensor keys exceed the limit of {MAX_KEYS}")
    keys = _cached_key_table(reader, device, nkeys)
    (n,) = _U32.unpack(reader.take(4, "reading count"))
    if n > MAX_READINGS:
        raise DecodeError(f"{n} readings exceed the limit of {MAX_READINGS}")
    expected = n * (2 + 8 + 8 + 1)
    remaining = len(reader.data) - reader.pos
    if remaining != expected:
        raise DecodeError(
            f"{n} readings need {expected} bytes of columns, payload has {remaining}"
            + (" (truncated)" if remaining < expected else " (trailing bytes)")
        )
    key = np.frombuffer(reader.take(2 * n, "key column"), dtype="<u2").astype(np.uint16)
    ts = np.frombuffer(reader.take(8 * n, "ts column"), dtype="<i8").astype(np.int64)
    value = np.frombuffer(reader.take(8 * n, "value column"), dtype="<f8").astype(np.float64)
    quality = np.frombuffer(reader.take(n, "quality column"), dtype=np.uint8).copy()
    if n and int(key.max()) >= nkeys:
        bad = int(np.argmax(key >= nkeys))
        raise DecodeError(f"reading {bad} names key {int(key[bad])} but there are {nkeys} keys")
    valid = _VALID_Q[quality]
    if not valid.all():
        unknown = ~valid
        bad = int(np.argmax(unknown))
        raise DecodeError(f"reading {bad} has unknown quality code {int(quality[bad])}")
    return TelemetryBatch(gateway, device, epoch, seq, keys, key, ts, value, quality)
