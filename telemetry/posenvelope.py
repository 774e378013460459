"""The position envelope (docs/mqtt.md "Position"): a publisher's numbered array of position
records, so that the hub dedupes a message sent twice and counts the ones the broker dropped.

``{"epoch": <u64>, "seq": <u64>, "records": [<position objects>]}``: `epoch` the publisher's
session (ms since 1970 when it started), `seq` the vehicle's message number within it, from 0.
The hub still takes a bare object or array (a recorder publishing directly, an older gateway),
unnumbered. Pure: the gateway and the simulators encode, the hub opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "ENVELOPE_KEYS",
    "EnvelopeError",
    "PositionEnvelope",
    "decode_envelope",
    "encode_envelope",
    "is_envelope",
    "open_envelope",
    "records_of",
]

ENVELOPE_KEYS = ("epoch", "seq", "records")
_U64 = 2**64


class EnvelopeError(ValueError):
    """An envelope that cannot be read: the publisher's fault."""


@dataclass(frozen=True, slots=True)
class PositionEnvelope:
    epoch: int
    seq: int
    records: list[Any]


def _check(epoch: int, seq: int) -> None:
    for name, v in (("epoch", epoch), ("seq", seq)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < _U64:
            raise EnvelopeError(f"{name} must be an integer 0 to 2^64 - 1, got {v!r}"[:200])


def encode_envelope(epoch: int, seq: int, records: bytes) -> bytes:
    """The envelope of `records`, a JSON array already encoded (as `orjson.dumps` of a list
    gives): the records' bytes are kept as they are."""
    _check(epoch, seq)
    if not (records.startswith(b"[") and records.endswith(b"]")):
        raise EnvelopeError("records must be a JSON array")
    return b'{"epoch":%d,"seq":%d,"records":%b}' % (epoch, seq, records)


def is_envelope(doc: object) -> bool:
    """Whether a decoded position payload is meant as an envelope: an object naming `epoch` or
    `records` (neither is a field of a position record)."""
    return isinstance(doc, dict) and ("records" in doc or "epoch" in doc)


def open_envelope(doc: dict[str, Any]) -> PositionEnvelope:
    """The envelope `doc` (decoded JSON, `is_envelope`), read strictly; EnvelopeError says
    what is wrong."""
    missing = [k for k in ENVELOPE_KEYS if k not in doc]
    if missing:
        raise EnvelopeError(f"an envelope needs {', '.join(missing)}")
    extra = sorted(str(k) for k in doc if k not in ENVELOPE_KEYS)
    if extra:
        raise EnvelopeError(
            f"unknown envelope key(s) {', '.join(extra[:5])} (only epoch, seq, records)"[:200]
        )
    _check(doc["epoch"], doc["seq"])
    records = doc["records"]
    if not isinstance(records, list):
        raise EnvelopeError(f"records must be an array, got {type(records).__name__}")
    return PositionEnvelope(doc["epoch"], doc["seq"], records)


def decode_envelope(payload: bytes) -> PositionEnvelope:
    """`open_envelope` of a payload (the inverse of `encode_envelope`)."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not valid JSON: {exc}") from exc
    if not is_envelope(doc):
        raise EnvelopeError("not an envelope (an object with epoch, seq and records)")
    return open_envelope(doc)


def records_of(payload: bytes) -> list[Any]:
    """The records of a position payload, enveloped or bare, as a subscriber reads them (not
    checked: the hub's `ingest.positions` is the strict reader)."""
    doc = orjson.loads(payload)
    if is_envelope(doc):
        return list(open_envelope(doc).records)
    return doc if isinstance(doc, list) else [doc]
