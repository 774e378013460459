"""A JT/T 809 gateway's report of a platform's answer to the centre's supervision (docs/mqtt.md:
`{root}/{tenant}/gateways/{gateway}/supervision`), read and checked (pure)."""

from __future__ import annotations

import orjson

from alerts.supervisionanswers import SupervisionAnswer

__all__ = ["read_answer"]


def read_answer(tenant: str, gateway: str, payload: bytes) -> SupervisionAnswer:
    """The answer; ValueError saying what is wrong."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"a supervision answer is a JSON object: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("a supervision answer is a JSON object")
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
