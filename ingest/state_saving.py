"""Saving the analytics state of the `Dispatcher` (`alerts.snapshot`): the core's state, the
fleet analytics and the terminals' alarm bits, so that a restarted hub takes them up again.

A consistent copy is taken between batches and written in a worker thread every `save_every_s`
(on the clock's tick) while ingest goes on, and once more when the hub stops. A concern of its
own, split from `ingest.dispatch` (whose `Dispatcher` extends `StateSaving`); the code moved as
it was and logs under `ingest.dispatch` as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from alerts import snapshot
from alerts.evaluate import CoreState, Transitions
from alerts.reload import terminal_by_id
from alerts.table import RuleTable
from alerts.vehicles.alarms import DriverNames, FleetAlarms
from alerts.vehicles.state import FleetState
from alerts.vehicles.terminal import TerminalAlarms
from ingest.metrics import Metrics
from telemetry.clock import wall_ms
from telemetry.registry import Registry

__all__ = ["StateSaving"]

log = logging.getLogger("ingest.dispatch")  # the dispatcher's logger, as before the split

# the clock of the state's saving, a name of this module: tests/test_hub_clock.py sets it
_now_ms = wall_ms


class StateSaving:
    """The saving of the analytics state, a part of `Dispatcher`, which sets up every attribute
    declared here (the state saving reads the judging's, and keeps its own)."""

    registry: Registry
    metrics: Metrics
    table: RuleTable
    state: CoreState
    fleet: FleetAlarms
    terminal: TerminalAlarms
    _unkept: list[tuple[Transitions, int]]
    state_file: Path | None
    _save_every_ms: int
    _saved_at: int
    _saving: asyncio.Task[None] | None
    away_since: Callable[[int], int]  # `ingest.links.LinkClock`

    def _state_copy(self) -> Callable[[], int] | None:
        """A consistent copy of the analytics state and the job that writes it."""
        path = self.state_file
        if path is None or self._unkept:  # the state is ahead of the alarm book: not now
            return None
        core = self.state.copy()
        fleet = FleetAlarms(self.fleet.table)
        fleet.names = DriverNames(self.fleet.names.of(snapshot.driver_codes(self.fleet.state)))
        fleet.state = dataclasses.replace(
            self.fleet.state,
            **{
                f.name: getattr(self.fleet.state, f.name).copy()
                for f in dataclasses.fields(FleetState)
            },
        )
        terminal = terminal_by_id(self.terminal, self.registry.sensors)
        sensors, table = self.registry.sensors, self.table
        # saved away from the broker (a stop during an outage): the time the link was lost, so
        # that the next start excuses the outage too (`ingest.links`)
        saved_at = self.away_since(_now_ms())

        def job() -> int:
            return snapshot.save(
                path,
                sensors=sensors,
                table=table,
                core=core,
                fleet=fleet,
                terminal=terminal,
                now_ms=saved_at,
            )

        return job

    async def wait_saved(self) -> None:
        """Until a periodic save still writing is done."""
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)

    async def save_state(self) -> None:
        """Save the analytics state now (the hub stopping: nothing is in flight), after a
        periodic save still writing."""
        await self.wait_saved()
        job = self._state_copy()
        if job is not None:
            size = job()
            log.info("analytics state saved (%d bytes)", size)

    def _save_due(self, now: int) -> None:
        """Every `save_every_s`: copy the state (between batches) and write it in a worker
        thread while ingest goes on; a save still writing is not doubled."""
        if self.state_file is None or now - self._saved_at < self._save_every_ms:
            return
        if self._saving is not None and not self._saving.done():
            return
        self._saved_at = now
        job = self._state_copy()
        if job is None:
            return

        async def write() -> None:
            try:
                await asyncio.to_thread(job)
                self.metrics.inc("hazardhub_state_saves_total")
            except OSError as exc:  # the next one tries again; alarms do not depend on it
                self.metrics.inc("hazardhub_state_save_failures_total")
                log.warning("analytics state not saved: %s", exc)

        self._saving = asyncio.create_task(write(), name="analytics-state-save")
