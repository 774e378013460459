"""The embedded store's upkeep (`ingest.store.sqlite`): retention by one cut-off or by the
regulations' policy per domain, the 1-minute rollups brought up to date, and the job that runs
both every so often. The statements are `ingest.store.sqlite_retention`'s, on the store's
worker thread. Split from `ingest.store.sqlite`, whose `SqliteStore` extends `SqliteUpkeep` and
sets up the attributes declared here; the code moved as it was and logs under
`ingest.store.sqlite` as before.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from ingest.store.base import StoreError
from ingest.store.retention import DOMAINS, RetentionPolicy
from ingest.store.sqlite_retention import (
    RetentionReport,
    delete_before,
    delete_expired,
    refresh_rollups,
)

__all__ = ["SqliteUpkeep"]

log = logging.getLogger("ingest.store.sqlite")  # the store's logger, as before the split

T = TypeVar("T")


class SqliteUpkeep:
    """The upkeep of `SqliteStore`, which sets up every attribute declared here."""

    _retention: RetentionPolicy | None
    _retention_every_s: float
    _rollup_every_s: float
    _clock: Callable[[], int]
    _domain_of: list[str]
    _sid: npt.NDArray[np.int64]  # registry index -> stable sid

    if TYPE_CHECKING:

        async def _run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
            """`SqliteStore._run`: `fn(connection)` on the worker thread."""
            ...

    async def enforce_retention(self, now_ms: int, keep_ms: int) -> int:
        """Delete readings and positions with ts < now - keep; return how many rows went."""
        if keep_ms < 0:
            raise ValueError(f"keep_ms must not be negative, not {keep_ms}")
        cutoff = now_ms - keep_ms
        return await self._run("retention", lambda conn: delete_before(conn, cutoff))

    async def apply_retention(self, now_ms: int, policy: RetentionPolicy) -> RetentionReport:
        """Delete what `policy` no longer keeps, per domain: raw readings (and a vehicle's
        positions) older than the domain's raw time, 1-minute statistics older than its
        statistics time, alarm events older than the alarm time. The rollups are brought up to
        date first, so the statistics of deleted raw rows stay. Sensors no longer configured
        keep the longest raw and statistics times of any domain."""
        by_domain: dict[str, list[int]] = {d: [] for d in DOMAINS}
        for index, domain in enumerate(self._domain_of):
            if index < self._sid.shape[0] and self._sid[index] >= 0:
                by_domain[domain].append(int(self._sid[index]))
        return await self._run(
            "retention", lambda conn: delete_expired(conn, now_ms, policy, by_domain)
        )

    async def refresh_rollups(self) -> None:
        """Bring every 1-minute rollup up to date with the raw rows written since."""
        await self._run("refresh rollups", refresh_rollups)

    async def _jobs(self) -> None:
        """Refresh rollups every `rollup_every_s` and apply retention every
        `retention_every_s`, until `close` cancels it. A failure is logged and tried again at
        the next turn: the job never takes the store down."""
        loop = asyncio.get_running_loop()
        next_retention = loop.time()
        tick = min(
            x
            for x in (self._rollup_every_s, self._retention_every_s if self._retention else 0)
            if x > 0
        )
        while True:
            try:
                if self._retention is not None and loop.time() >= next_retention:
                    report = await self.apply_retention(self._clock(), self._retention)
                    next_retention = loop.time() + self._retention_every_s
                    if any((report.readings, report.rollups, report.positions)):
                        log.info("sqlite retention: %s", report)
                elif self._rollup_every_s > 0:
                    await self.refresh_rollups()
            except StoreError as exc:
                log.warning("sqlite store job failed: %s", exc)
            await asyncio.sleep(tick)
