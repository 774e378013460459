"""Whether the hub judges readings now, why not, and since when: what `/readyz` and the
dashboard's banner (`GET /api/v1/readiness`) say.

The reason the hub gives (`IngestService.not_ready`) is one sentence of its own words; its short
code (`cause_code`: `broker`, `store_held`, `influxdb_auth` ...) names no path, host or server
message, so any key may read it. The hub's reasons carry no time for every cause (the broker's
has none), so `ReadinessWatch` keeps since when the present cause has lasted: the hub looks
every second (`hazardhub.hub`), and each request looks too.

Pure: no I/O, the time passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["UNKNOWN", "Readiness", "ReadinessWatch", "cause_code", "status_of"]

# the reasons of `IngestService.not_ready`, by how they begin; a store's refusal names its cause
# (`StoreUnavailableError.cause`: `influxdb_auth`, `sqlite_full` ...) in brackets
_REFUSES = re.compile(r"the store refuses writes (?:since \S+ )?\(([a-z][a-z0-9_]{0,39}): ")
# a refusal without "since": the readings are judged and spooled to disk, only not stored yet
_SPOOLING = re.compile(r"the store refuses writes \([a-z][a-z0-9_]{0,39}: ")
_BY_START = (
    ("not subscribed to the broker", "broker"),
    ("the store has refused readings", "store_held"),
    ("a batch taken ", "ingest_stalled"),
    ("readings from the future", "future_time"),
    ("the state database", "state_db"),
)
UNKNOWN = "other"  # a reason of a kind this module does not know yet: no words of it go out

Status = Literal["ready", "degraded", "not_ready"]


def cause_code(why: str) -> str:
    """The short code of a reason the hub is not ready: letters, digits and `_`, never a path,
    a host or a server's message."""
    found = _REFUSES.match(why)
    if found is not None:
        return found.group(1)
    return next((code for start, code in _BY_START if why.startswith(start)), UNKNOWN)


def status_of(why: str | None) -> Status:
    """`ready`; `degraded` while alarms are judged but the readings only reach the disk spool
    (the store refuses for its set-up: a rotated password); `not_ready` while the hub judges
    nothing (no broker, the store holding ingest, a batch stalled, any reason not known here)."""
    if why is None:
        return "ready"
    return "degraded" if _SPOOLING.match(why) else "not_ready"


@dataclass(frozen=True, slots=True)
class Readiness:
    """One look at the hub: its status, the cause's code and the reason in full (None while
    ready), and since when (epoch ms) that cause has lasted as far as the hub has looked."""

    status: Status
    cause: str | None
    reason: str | None
    since_ms: int | None


class ReadinessWatch:
    """Looks at `not_ready` and keeps since when its present cause has lasted (a cause that
    changes, `broker` to `store_held`, starts anew; so does a status that changes, a spool
    that fills: degraded to not ready)."""

    def __init__(self, not_ready: Callable[[], str | None]) -> None:
        self._not_ready = not_ready
        self._held: tuple[Status, str] | None = None
        self._since: int | None = None

    def look(self, now_ms: int) -> Readiness:
        why = self._not_ready()
        status = status_of(why)
        if why is None:
            self._held = self._since = None
            return Readiness("ready", None, None, None)
        code = cause_code(why)
        if self._held != (status, code) or self._since is None:
            self._held, self._since = (status, code), now_ms
        return Readiness(status, code, why, self._since)
