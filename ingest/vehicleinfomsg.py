"""A JT/T 809 gateway's report of what a lower platform said of a vehicle (docs/mqtt.md:
`{root}/{tenant}/vehicles/{vehicle}/info`, version 1): its terminal's registration, its driver
or its waybill, read and checked (pure). Anything else is refused whole, saying what is wrong."""

from __future__ import annotations

from typing import Any

from alerts.vehiclereports import KINDS, PlatformReport
from ingest.supervisionmsg import json_object

__all__ = ["MAX_WAYBILL_CHARS", "read_vehicle_info"]

MAX_WAYBILL_CHARS = 4096  # a waybill's text (the gateway cuts a longer one, saying so)
_TOP = frozenset({"v", "kind", "platform", "gateway", "at", "plate", "color", *KINDS})
# each kind's text fields and their widths on the wire (bytes of GBK: at most as many
# characters)
_TEXT = {
    "registration": {
        "platform_id": 11,
        "producer_id": 11,
        "terminal_model": 30,
        "terminal_id": 30,
        "sim": 13,
        "imei": 15,
    },
    "driver": {"name": 16, "id_number": 20, "licence": 40, "org": 200},
    "waybill": {"text": MAX_WAYBILL_CHARS},
}
_MORE = {"registration": set(), "driver": {"valid_until"}, "waybill": {"truncated", "chars"}}


def _int(doc: dict[str, Any], key: str, top: int, *, null: bool = False) -> int | None:
    v = doc.get(key)
    if v is None and null:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < top:
        raise ValueError(f"{key} is not a number of 0 .. {top - 1}{' or null' if null else ''}")
    return v


def _name(doc: dict[str, Any], key: str, most: int) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not 0 < len(v) <= most or not v.isprintable():
        raise ValueError(f"{key} is not a name (1-{most} printable characters)")
    return v


def read_vehicle_info(tenant: str, vehicle: str, payload: bytes) -> PlatformReport:
    """The report; ValueError saying what is wrong."""
    doc = json_object(payload, "a vehicle info")
    if doc.get("v") != 1:
        raise ValueError(f"v is {doc.get('v')!r}: this hub reads version 1")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind is none of {', '.join(KINDS)}")
    if unknown := sorted(set(doc) - _TOP) or sorted(set(doc) & set(KINDS) - {kind}):
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    at = _int(doc, "at", 2**53)
    _int(doc, "color", 256)
    plate = doc.get("plate")
    if not isinstance(plate, str) or len(plate) > 21 or not plate.isprintable():
        raise ValueError("plate is not a plate (at most 21 printable characters)")
    fields = doc.get(kind)
    if not isinstance(fields, dict):
        raise ValueError(f"{kind} is not a JSON object")
    widths = _TEXT[kind]
    if extra := sorted(set(fields) - set(widths) - _MORE[kind]):
        raise ValueError(f"{kind}: unknown field(s): {', '.join(extra)}")
    for key, most in widths.items():
        v = fields.get(key)
        if not isinstance(v, str) or len(v) > most:
            raise ValueError(f"{kind}.{key} is not text of at most {most} characters")
    if kind == "driver":
        _int(fields, "valid_until", 2**53, null=True)
    if kind == "waybill":
        if not isinstance(fields.get("truncated"), bool):
            raise ValueError("waybill.truncated is not true or false")
        chars = _int(fields, "chars", 2**32)
        if chars is None or chars < len(fields["text"]):
            raise ValueError("waybill.chars is less than the text's length")
    assert isinstance(at, int)
    return PlatformReport(
        tenant,
        vehicle,
        kind,
        at,
        _name(doc, "platform", 64),
        _name(doc, "gateway", 64),
        plate,
        fields,
    )
