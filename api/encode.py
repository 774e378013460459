"""Answers written straight to JSON, for the routes that return many rows.

FastAPI validates a route's return value against its `response_model` and then serialises it: for
10,000 latest values or 100 alarms with their journals, building a pydantic object per row and
validating it again cost most of the request. These routes still declare the model (it is what
the OpenAPI document shows, and the tests check the JSON against it) but build plain dictionaries
of the same shape and hand them to orjson. `AnswerCache` keeps such answers for as long as the
data they were read from is unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import orjson
from fastapi import Response

__all__ = ["AnswerCache", "json_bytes", "json_response"]


def json_bytes(content: Any) -> bytes:
    """`content` (dicts, lists, str, int, float, bool, None) as JSON. A non-finite float would be
    written as null: callers map those explicitly first."""
    return orjson.dumps(content)


def json_response(content: Any | bytes) -> Response:
    """An `application/json` answer of `content`, or of `content` already written (bytes)."""
    body = content if isinstance(content, bytes) else json_bytes(content)
    return Response(body, media_type="application/json")


class AnswerCache:
    """Answers already written, by request (the caller's tenants and the query), each good for as
    long as the data it was read from has not changed: the caller reads a version number first
    (the state database's `data_version`, which changes with every commit) and an answer is
    served again only under the same number. Nothing is ever stale: the first request after a
    change reads the database again. A monitoring centre's screens ask the same few questions
    many times a second, and the answers change a few times a minute.

    Holds at most `entries` answers of at most `max_bytes` each; the least recently used goes.
    Used from the event loop only."""

    def __init__(self, entries: int = 64, max_bytes: int = 256 * 1024) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._answers: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: int) -> bytes | None:
        found = self._answers.get(key)
        if found is None or found[0] != version:
            self.misses += 1
            return None
        self._answers.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: Hashable, version: int, body: bytes) -> None:
        if len(body) > self._max_bytes:
            self._answers.pop(key, None)
            return
        self._answers[key] = (version, body)
        self._answers.move_to_end(key)
        while len(self._answers) > self._entries:
            self._answers.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer: what they were made of changed otherwise than the version says
        (a new configuration names the tenants, sites and sensors anew)."""
        self._answers.clear()
