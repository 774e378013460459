"""The state database (`state.db`: alarms, their journal, dead letters) failing over and over.

Its writes are tried again until they are done (the messages are acknowledged only after), and
the clock's tick tries again at the next one. With its disk full, that made a line every second
and another every 5 s, not rate-limited, and no line when it worked again; `/readyz` said ready
for a minute, then `ingest_stalled`, its reason not naming the database (helper-195's
sysadmin). `StateDbFault`, shared by every writer of the hub's ingest, says the first failure at
once, then one line at most once a minute with how many failed meanwhile, and once when a write
works again ("works again after N failures over T s"); `not_ready` names the database and its
error from the first failure on, for `/readyz` (cause `state_db`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from telemetry.clock import wall_ms

__all__ = ["SAY_EVERY_S", "StateDbFault"]

log = logging.getLogger("ingest.service")

SAY_EVERY_S = 60.0


class StateDbFault:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = wall_ms,
        every_s: float | None = None,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self.every_s = SAY_EVERY_S if every_s is None else every_s
        self._since: float | None = None  # the first failure of those going on (monotonic)
        self._since_ms = 0
        self._said_at = 0.0
        self._failures = 0  # since `_since`
        self._unsaid = 0  # since the last line
        self._last = ""  # the last error, as SQLite said it
        # the writers failing now (`what`): one that works (a tick with nothing to write) says
        # nothing of another's write
        self._failing: set[str] = set()

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, what: str, exc: BaseException) -> None:
        """A write (`what`: "alarms not recorded", "the clock's tick" ...) failed with `exc`;
        it is tried again."""
        now = self._clock()
        self._failing.add(what)
        self._failures += 1
        self._unsaid += 1
        self._last = str(exc)
        if self._since is None:
            self._since, self._since_ms, self._said_at = now, self._wall(), now
            self._unsaid = 0
            log.error(
                "state database (state.db) failed: %s (%s); tried again until it works: alarms "
                "are not recorded and ingest holds the messages meanwhile (said again at most "
                "once a minute while it fails)",
                what,
                exc,
            )
            return
        if now - self._said_at < self.every_s:
            return
        log.error(
            "state database (state.db) still fails: %d failure(s) in the last %.0f s, for %.0f s "
            "now; the last: %s (%s)",
            self._unsaid,
            now - self._said_at,
            now - self._since,
            what,
            exc,
        )
        self._said_at = now
        self._unsaid = 0

    def worked(self, what: str) -> None:
        """A write (`what`, as `failed` was told) worked: said once, when it was the last of
        the writes failing."""
        if self._since is None:
            return
        self._failing.discard(what)
        if self._failing:
            return
        log.warning(
            "state database (state.db) works again after %d failure(s) over %.0f s",
            self._failures,
            self._clock() - self._since,
        )
        self._since = None
        self._failures = self._unsaid = 0

    def not_ready(self) -> str | None:
        """Why the hub judges nothing for the state database, or None (for `/readyz`)."""
        if self._since is None:
            return None
        since = datetime.fromtimestamp(self._since_ms / 1000, UTC).isoformat(timespec="seconds")
        return (
            f"the state database (state.db in the data folder) refuses writes since {since} "
            f"({self._failures} failure(s); the last: {self._last}): alarms are not recorded "
            "and ingest holds the messages unacknowledged until it takes them (see "
            "hazardhub_store_retries_total, hazardhub_tick_failures_total)"
        )
