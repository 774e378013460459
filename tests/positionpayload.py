"""The records of a position message as a test reads it: an envelope's (`telemetry.posenvelope`),
or a bare object or array's (a recorder publishing directly)."""

from __future__ import annotations

from typing import Any

import orjson


def records_of(payload: bytes) -> list[Any]:
    doc = orjson.loads(payload)
    if isinstance(doc, dict) and "records" in doc:
        return list(doc["records"])
    return doc if isinstance(doc, list) else [doc]


def numbered(payload: bytes) -> tuple[int, int] | None:
    """(epoch, seq) of an envelope, None for a bare payload."""
    doc = orjson.loads(payload)
    if isinstance(doc, dict) and "records" in doc:
        return int(doc["epoch"]), int(doc["seq"])
    return None
