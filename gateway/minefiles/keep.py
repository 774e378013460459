"""Housekeeping of the folders taken files go to: the day folders of ``done/`` and
``rejected/`` older than `keep_days` are removed whole (and files an older version left flat
there, by their mtime), looked at once at the start and then once an hour.

The removal runs in a worker thread (a centre's ``done/`` holds a month of every mine's files:
hundreds of thousands to stat) and stops early when the process is stopped; what it found is
counted and logged on the event loop: `files_removed`, and `file_errors` for a file that could
not go (said once, tried again at the next look).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.minefiles.folder import remove_older

__all__ = ["SWEEP_EVERY_S", "Keeper"]

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 3600.0
_LOOK_S = 60.0  # how often the task asks whether a look is due

Found = list[tuple[Path, int, list[tuple[Path, OSError]]]]  # folder, removed, could not go


@dataclass(slots=True)
class Keeper:
    folders: tuple[Path, ...]
    keep_days: float  # 0: kept for ever
    counters: Counter[str]
    clock: Callable[[], float] = time.time
    _next: float = field(default=0.0, init=False)  # clock time of the next look
    _said: set[tuple[str, str]] = field(default_factory=set, init=False)  # errors said once

    def due(self, now: float) -> bool:
        """Whether a look is due at `now` (then the next is an hour on)."""
        if self.keep_days <= 0 or now < self._next:
            return False
        self._next = now + SWEEP_EVERY_S
        return True

    def remove(self, now: float, halt: Callable[[], bool] = lambda: False) -> Found:
        """Remove what is older than `keep_days` at `now`; touches nothing of the gateway's."""
        before = now - self.keep_days * 86400.0
        return [(folder, *remove_older(folder, before, halt)) for folder in self.folders]

    def said(self, found: Found) -> None:
        """Count and log what `remove` found."""
        said = self._said
        for folder, removed, failed in found:
            for path, exc in failed:
                self.counters["file_errors"] += 1
                key = (str(path), f"{type(exc).__name__} {exc.errno}")
                if key not in said:
                    said.add(key)
                    log.error("mine-files: %s cannot be removed: %s; tried again hourly", path, exc)
            if removed:
                self.counters["files_removed"] += removed
                log.info(
                    "mine-files: removed %d files older than %g days from %s",
                    removed,
                    self.keep_days,
                    folder,
                )

    def sweep(self) -> None:
        """A look now, when due (in this thread)."""
        now = self.clock()
        if self.due(now):
            self.said(self.remove(now))

    async def run(self, stop: asyncio.Event) -> None:
        """Look when due until `stop` is set; a look in progress stops early then."""
        while not stop.is_set():
            now = self.clock()
            if self.due(now):
                self.said(await asyncio.to_thread(self.remove, now, stop.is_set))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LOOK_S):
                    await stop.wait()
