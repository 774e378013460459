"""A JT/T 809 gateway's report of a platform's answer to the centre's supervision, or of what
became of its ticket (a receipt: `receipt` set), (docs/mqtt.md:
`{root}/{tenant}/gateways/{gateway}/supervision`), read and checked (pure)."""

from __future__ import annotations

from typing import Any

import orjson

from alerts.supervisionanswers import RECEIPTS, SupervisionAnswer

__all__ = ["json_object", "read_answer"]


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    """The payload as a JSON object; ValueError naming `what` it should have been."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{what} is a JSON object: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} is a JSON object")
    return doc


def read_answer(tenant: str, gateway: str, payload: bytes) -> SupervisionAnswer:
    """The answer; ValueError saying what is wrong."""
    doc = json_object(payload, "a supervision answer")
    if "receipt" in doc:
        return _receipt(tenant, gateway, doc)
    sid, result = doc.get("supervision_id"), doc.get("result")
    platform, plate = doc.get("platform"), doc.get("plate", "")
    for name, v, top in (("supervision_id", sid, 2**32), ("result", result, 256)):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < top:
            raise ValueError(f"{name} is not a number of 0 .. {top - 1}")
    if not isinstance(platform, str) or not 0 < len(platform) <= 64 or not platform.isprintable():
        raise ValueError("platform is not a name (1-64 printable characters)")
    if not isinstance(plate, str) or len(plate) > 21 or not plate.isprintable():
        raise ValueError("plate is not a plate")
    assert isinstance(sid, int) and isinstance(result, int)
    return SupervisionAnswer(tenant, gateway, sid, result, platform, plate)


def _receipt(tenant: str, gateway: str, doc: dict[str, object]) -> SupervisionAnswer:
    sid, receipt = doc.get("supervision_id"), doc.get("receipt")
    platform, link = doc.get("platform", ""), doc.get("link", "")
    if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < 2**32:
        raise ValueError(f"supervision_id is not a number of 0 .. {2**32 - 1}")
    if not isinstance(receipt, str) or receipt not in RECEIPTS:
        raise ValueError(f"receipt is none of {', '.join(sorted(RECEIPTS))}")
    if not isinstance(platform, str) or len(platform) > 64 or not platform.isprintable():
        raise ValueError("platform is not a name (at most 64 printable characters)")
    if link not in (("sub", "main") if receipt == "sent" else ("",)):
        raise ValueError("link is sub or main for a ticket sent, else empty")
    assert isinstance(link, str)
    return SupervisionAnswer(tenant, gateway, sid, 0, platform, "", receipt, link)
