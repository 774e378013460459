"""Hand accepted batches to the store and the alert core, in that order: readings stored, then
judged; the core's state advances only after the batch's alarms are committed, so a failed
hand-over is retried whole without judging anything twice. The saving of the analytics state is
in `ingest.state_saving`, the recording of alarms in threads in `ingest.recording`, the tick and
the gateways' reports in `ingest.ticking`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np

from alerts import snapshot
from alerts.alarms import AlarmBook, AlarmEvent
from alerts.confirmations import Confirmation, record_confirmations
from alerts.desk import AlarmDesk
from alerts.errors import AlarmStoreError
from alerts.evaluate import NO_TS, CoreState, Outcome, Transitions, evaluate
from alerts.gatewayalarms import ClockChange, device_gateways
from alerts.gateways import GatewayWatch
from alerts.hubwatch import HubWatch
from alerts.reload import (
    fence_key,
    remap_core,
    remap_fleet,
    remap_terminal,
    sensor_keys,
    terminal_by_id,
)
from alerts.statedb import StateDB
from alerts.table import RuleTable, compile_table
from alerts.vehicles import compile_fleet
from alerts.vehicles.alarms import FleetAlarms
from alerts.vehicles.safety import SafetyAlarms, newest_by_vehicle
from alerts.vehicles.terminal import TerminalAlarms
from ingest.calibrations import take_stored_calibrations
from ingest.demands import before_batch, confirm, confirmed, rearm
from ingest.links import LinkClock
from ingest.metrics import Metrics
from ingest.state_saving import StateSaving
from ingest.statedbfault import StateDbFault
from ingest.store.base import PositionBatch, ReadingBatch, TimeSeriesStore, positioned
from ingest.ticking import Ticking
from telemetry.clock import wall_ms
from telemetry.registry import Registry

__all__ = ["AlarmListener", "Dispatcher"]

log = logging.getLogger(__name__)
_NO_POSITIONS = PositionBatch(
    np.zeros(0, np.int32),
    np.zeros(0, np.int64),
    np.zeros(0),
    np.zeros(0),
    np.zeros(0),
    np.zeros(0),
)
AlarmListener = Callable[[Sequence[AlarmEvent]], Awaitable[None]]
_FENCE_KINDS = frozenset({"corridor", "forbidden_area"})  # alarms that follow the geofences


def _compile(registry: Registry) -> RuleTable:
    """The rule tables, with the configuration's lateness window (`lateness_s`)."""
    return compile_table(registry.sensors, lateness_ms=round(registry.config.lateness_s * 1000))


class Dispatcher(Ticking, StateSaving, LinkClock):
    def __init__(
        self,
        registry: Registry,
        store: TimeSeriesStore,
        statedb: StateDB,
        metrics: Metrics,
        *,
        state_file: Path | None = None,
        save_every_s: float = 10.0,
    ) -> None:
        """With `state_file`, the analytics state is saved there every `save_every_s` (on the
        clock's tick) and by `save_state`, and taken up again at start (`alerts.snapshot`)."""
        self.registry = registry
        self.store = store
        self.statedb = statedb
        self.metrics = metrics
        self.state_file = state_file
        self._save_every_ms = int(save_every_s * 1000)
        self._saved_at = 0
        self._saving: asyncio.Task[None] | None = None
        self.table: RuleTable = _compile(registry)
        self.book = AlarmBook(statedb, registry, self.table, registry.config.notify.disposal)
        self.watch = HubWatch(statedb)  # when the hub watched (data availability)
        # the state database failing, said (`ingest.statedbfault`), shared with `/readyz`
        self.state_db_fault = StateDbFault()
        # platform-side driving-safety analytics (overspeed by zone and time, fatigue, night
        # ban, corridors, forbidden areas, offline, drift) over the positions
        fleet_table = compile_fleet(registry.config.fleet, registry.vehicles.values())
        core = CoreState.empty(len(registry.sensors))
        self.fleet = FleetAlarms(fleet_table)
        # and the terminals' own alarm bits (JT/T 808)
        self.terminal = TerminalAlarms()
        saved = snapshot.load(state_file) if state_file is not None else None
        # the hub away from the broker since the state taken up was saved (`ingest.links`)
        self._away_since: int | None = None if saved is None else saved.saved_ms
        if saved is not None:
            core, self.fleet, self.terminal = snapshot.resume(
                saved, registry.sensors, self.table, fleet_table
            )
            # the sides whose alarm ended after the save: their delays start afresh
            snapshot.afresh(core, self.fleet, self.book.ended(), saved.saved_ms)
            log.info("analytics state of %d ms ago taken up", max(0, wall_ms() - saved.saved_ms))
        # the configuration may have changed while the hub was down: the alarms of points gone
        # and of kinds their rules no longer judge (nothing would clear them) are cleared, as on
        # a reload (journaled; handed on with the first batch). Known from the configuration and
        # the state database only: the state file may be older than the last reload
        retired: list[AlarmEvent] = []
        try:
            retired = self.book.retire(
                wall_ms(), self.book.unjudged(), "configuration changed while stopped"
            )
        except AlarmStoreError as exc:  # a locked or read-only database must not stop the hub
            log.error("alarms of a changed configuration not cleared at start: %s", exc)
        self.state: CoreState = self.book.restore(core)
        # demands of active alarms the saved state predates: armed again, checked against the
        # store at start (`confirm_restored`)
        self._unconfirmed = rearm(self.book, self.state)
        self.desk = AlarmDesk(statedb, registry, self.book, registry.config.notify.disposal)
        self.judge_by_clock(registry, registry.config.notify.disposal)
        fleet_active, terminal_active = self.book.active_vehicle_alarms()
        self.fleet.restore(fleet_active)
        self.terminal.restore(terminal_active)
        # and their active-safety events (苏标 ADAS, DSM): the open alarms are the database's
        self.safety = SafetyAlarms(registry.config.fleet.active_safety)
        self.safety.restore(self.book.active_safety_alarms())
        # the gateways' statuses (their last will) and their offline alarms (`alerts.gateways`)
        self.gateways = GatewayWatch()
        self.gateways.expect(device_gateways(registry), wall_ms())  # those it waits to hear
        self._gateway_sites = self.book.gateway_sites()
        self._gateways_down = self.book.active_gateway_alarms()
        self._clock_changes: list[ClockChange] = []
        self.listeners: list[AlarmListener] = []
        self.reading_listeners: list[Callable[[ReadingBatch], None]] = []
        self._lock = asyncio.Lock()
        # the readings' part of a batch already judged, whose alarms or positions' part failed:
        # (the batch, its positions, its events so far), held so that a retry (the very same
        # objects) does not judge the readings again; ids could be reused by another batch
        self._judged: tuple[ReadingBatch | None, object, list[AlarmEvent]] | None = None
        # The core judges in place (a copy of the state per batch cost more than judging small
        # batches). Transitions whose alarms the book has not recorded yet (AlarmStoreError)
        # wait here, oldest first, recorded before anything else is judged; the events recorded
        # wait in `_carried` for the next caller to hand on.
        self._unkept: list[tuple[Transitions, int]] = []
        # protective actions confirmed by a batch judged, to journal after its transitions
        self._confirming: list[tuple[list[Confirmation], int]] = []
        self._carried: list[AlarmEvent] = retired
        # the book recording the oldest of them in its thread: a caller cancelled meanwhile
        # leaves it running, and the next caller takes its outcome instead of recording twice
        self._recording: asyncio.Future[list[AlarmEvent]] | None = None
        # the fleet analytics or the desk's clock at work in its thread (`_off_loop`), likewise
        # left running by a caller cancelled meanwhile: the next caller waits for it and hands
        # its events on (`_settle`)
        self._working: asyncio.Future[list[AlarmEvent]] | None = None
        # the core's state was rebuilt after a failure: the last calibrations it knew are taken
        # from the store again before the next readings are judged (`_calibrations_again`)
        self._calibrations_lost = False

    def newest_by_device(self) -> dict[tuple[str, str, str], int]:
        """Each device's newest reading judged, as the restored state knows (`ingest.clocks`)."""
        last = self.state.last_ts
        out: dict[tuple[str, str, str], int] = {}
        for key, dev in self.registry.devices.items():
            times = [int(last[i]) for i in dev.sensors if int(last[i]) != NO_TS]
            if times:
                out[key] = max(times)
        return out

    async def confirm_restored(self) -> None:
        """At start, before ingest: the demands armed again are met when the stored readings
        of their feedbacks confirm them (`ingest.demands`)."""
        demands, self._unconfirmed = self._unconfirmed, []
        await confirm(self.store, self.state, demands)

    def reload(self, registry: Registry, now: int) -> list[AlarmEvent]:
        """Take a new configuration: the rule tables compiled again, the core's state carried
        over by sensor id (`alerts.reload`), the alarms of points that are gone or whose rules
        changed cleared at `now`. Call it between batches (`IngestService.reload`): nothing may
        be in flight with the old numbering. Transitions not yet recorded are recorded first
        (raise AlarmStoreError: the configuration is not taken)."""
        if self._recording is not None:
            if not self._recording.done():
                raise AlarmStoreError("the alarm book is still recording a batch: try again")
            done, self._recording = self._recording, None
            if not done.cancelled() and done.exception() is None:
                self._unkept.pop(0)
                self._carried += done.result()
        while self._unkept:
            transitions, arrival = self._unkept[0]
            self._carried += self.book.apply(transitions, arrival, self.state)
            self._unkept.pop(0)
        while self._confirming:  # their plans name sensors by the old numbering
            confirmations, arrival = self._confirming[0]
            self._carried += record_confirmations(
                self.statedb, self.registry, confirmations, arrival
            )
            self._confirming.pop(0)
        if self._working is not None:
            if not self._working.done():
                raise AlarmStoreError("the fleet analytics are still at work: try again")
            self._take_working()
        table = _compile(registry)
        state, rejudged = remap_core(
            self.state,
            sensor_keys(self.registry.sensors),
            self.table.trend_of,
            registry.sensors,
            table,
        )
        disposal = registry.config.notify.disposal
        book = AlarmBook(self.statedb, registry, table, disposal)
        fleet_table = compile_fleet(registry.config.fleet, registry.vehicles.values())
        # new geofences: whether a vehicle is off its corridor or in an area is found again
        fences = fence_key(self.fleet.table) != fence_key(fleet_table)
        events = book.retire(now, rejudged, fleet_kinds=_FENCE_KINDS if fences else frozenset())
        down = book.active_gateway_alarms()  # those of gateways or sites gone were just retired
        fleet = remap_fleet(self.fleet, fleet_table)
        index = {s.id: s.index for s in registry.sensors}
        terminal = remap_terminal(terminal_by_id(self.terminal, self.registry.sensors), index)
        fleet_active, terminal_active = book.active_vehicle_alarms()
        fleet.restore(fleet_active)
        terminal.restore(terminal_active)
        # (their episodes read back from the alarm journal, by sensor id: a vehicle renumbered
        # keeps them; the episodes ended lately are forgotten)
        safety = SafetyAlarms(registry.config.fleet.active_safety)
        safety.restore(book.active_safety_alarms())
        # from here on nothing can fail: the new configuration is taken whole
        self.registry, self.table, self.book = registry, table, book
        self.state = book.restore(state)
        self.desk = AlarmDesk(self.statedb, registry, book, disposal)
        self.judge_by_clock(registry, disposal)
        self.fleet, self.terminal, self.safety = fleet, terminal, safety
        self._gateway_sites = book.gateway_sites()
        self._gateways_down = down
        self.gateways.expect(device_gateways(registry), now)  # one added waited for from now
        self._drop_judged()
        return self._take_carried() + events

    def _evaluate(self, batch: ReadingBatch, now: int) -> tuple[Transitions, Outcome]:
        """Judge in place. Should the core fail on a batch (a bug), its state is not left half
        written: it is rebuilt from the active alarms, as after a restart without a saved
        state, and the error goes on to the caller (the batch is not acknowledged)."""
        try:
            self.state, transitions, outcome = evaluate(
                self.table, batch, self.state, now, inplace=True
            )
        except Exception:
            self.metrics.inc("hazardhub_core_failures_total")
            log.exception("the alert core failed; its state is rebuilt from the active alarms")
            self.state = self.book.restore(CoreState.empty(len(self.registry.sensors)))
            self._calibrations_lost = True
            raise
        return transitions, outcome

    async def _calibrations_again(self, now: int) -> None:
        """After a core failure rebuilt the state: the sensors' last calibrations, as at start
        (`ingest.calibrations`), before readings are judged again. The rebuilt state knows only
        those of the active calibration_due alarms: the others' intervals counted from their
        next readings (a sensor calibrated 14 days before raised 15 days later)."""
        if self._calibrations_lost:
            await take_stored_calibrations(self.store, self.table, self.state, now)
            self._calibrations_lost = False  # a cancel meanwhile: the next batch takes them

    def _fleet(self, positions: Sequence[PositionBatch], now: int) -> list[AlarmEvent]:
        """Judge positions (none: the silence up to `now`) and record the fleet's alarms. The
        analytics' state advances only once its alarms are committed."""
        batch = PositionBatch.concat(positions) if positions else _NO_POSITIONS
        before, terminal = self.fleet.state, self.terminal.checkpoint()
        clocks = newest_by_vehicle(batch, self.safety.points)
        safe = self.safety.checkpoint([*clocks, *(v for v, _ in batch.safety)])
        changes = self.fleet.judge(positioned(batch), now)  # a place for the fleet's rules
        bits = self.terminal.judge(batch, batch.flags())  # the alarm bits of every report
        safety = self.safety.judge(batch.safety, clocks)  # the ADAS and DSM events (苏标)
        try:
            events = self.book.apply_fleet(changes, now, bits, safety)
        except Exception:
            self.fleet.undo(before)
            self.terminal.undo(terminal)
            self.safety.undo(safe)
            raise
        for outcome, n in self.safety.outcomes.items():
            self.metrics.inc("hazardhub_active_safety_events_total", n, outcome=outcome)
        if safety:  # open as the database has them (a raise judged again after a restart: not)
            changed = {c.vehicle for c in safety}
            self.safety.reconcile(changed, self.book.active_safety_alarms(changed))
        if self.fleet.last_late:  # stored and on the track, judged by no fleet rule
            self.metrics.inc("hazardhub_positions_late_total", self.fleet.last_late)
        if self.fleet.last_late_in_window:  # of these, within the window: too many since
            self.metrics.inc(
                "hazardhub_positions_late_in_window_total", self.fleet.last_late_in_window
            )
        if self.fleet.last_rewound:  # late, judged in event-time order (the lateness window)
            self.metrics.inc("hazardhub_positions_rewound_total", self.fleet.last_rewound)
        return events

    async def write(
        self, readings: Sequence[ReadingBatch], positions: Sequence[PositionBatch]
    ) -> ReadingBatch | None:
        """Write to the time-series store; idempotent, so it may run beside other writes and be
        retried. Raise StoreError. Returns the readings as one batch for `judge`."""
        batch = ReadingBatch.concat(readings) if readings else None
        if batch is not None and len(batch):
            await self.store.write_readings(batch)
        for pos in map(positioned, positions):
            if len(pos):
                await self.store.write_positions(pos)
        return batch

    async def judge(
        self,
        batch: ReadingBatch | None,
        positions: Sequence[PositionBatch],
        arrival: int,
        *,
        horizon: int | None = None,
    ) -> list[AlarmEvent]:
        """Judge stored readings and record the alarms; callers keep the order of batches.
        Raise AlarmStoreError to be retried with the same batch: readings already judged are
        not judged again, their transitions are recorded then.

        `horizon` (default `arrival`): when the batch's first message arrived, everything
        before it judged. The core's clock of silence (no-data timeouts, the grace of an
        unconfirmed protective action) and the readings' arrival go no further: a hub catching
        up on a backlog judges each batch as of its arrival, and does not take a feed whose
        readings wait in the next batches for silent."""
        events: list[AlarmEvent] = []
        judged = self._judged
        done = judged if judged and judged[0] is batch and judged[1] is positions else None
        if done is None:
            self._drop_judged()
        if done is not None:
            events = done[2]  # a retry: the readings were judged
            async with self._lock:
                await self._settle()
                await self._record()
                events += self._take_carried()
                # the events held too: the failed try may not have written them (idempotent)
                await self.store_events(events)
        elif batch is not None and len(batch):
            async with self._lock:
                await self._settle()  # nothing judges while a left step reads the state
                await self._record()  # an earlier batch's first; raising, this one is not judged
                await self._calibrations_again(arrival)
                # the arrival time is the hub's clock: no-data timeouts and action deadlines
                clock = arrival if horizon is None else min(arrival, horizon)
                before = before_batch(self.table, self.state)
                transitions, outcome = self._evaluate(batch, clock)
                if len(transitions):  # before anything can fail or wait: never lost
                    self._unkept.append((transitions, arrival))
                met = confirmed(self.table, before, self.state, batch)
                if met:
                    self._confirming.append((met, arrival))
                events = self._take_carried()
                self._judged = (batch, positions, events)
                self._count(len(batch), outcome)
                for listener in self.reading_listeners:
                    listener(batch)
                await self._record()
                events += self._take_carried()
                await self.store_events(events)
        if positions:
            # a failure here is retried with the same batch: the readings' part is not judged
            # again (it would count as late and its alarm events would not be handed on)
            self._judged = (batch, positions, events)
            async with self._lock:
                await self._settle()
                fleet_events = await self._off_loop(self._fleet, positions, arrival)
                await self.store_events(fleet_events)
            events += fleet_events
        self._judged = None
        for ev in events:
            self.metrics.inc("hazardhub_alarm_events_total", kind=ev.kind)
        if positions:
            self.metrics.inc("hazardhub_positions_total", int(np.sum([len(p) for p in positions])))
        return events

    def _count(self, readings: int, outcome: Outcome) -> None:
        self.metrics.inc("hazardhub_readings_total", readings)
        if outcome.late:  # not judged: older than the lateness window allows
            self.metrics.inc("hazardhub_readings_late_total", outcome.late)
        if outcome.rewound:  # judged in order within the lateness window
            self.metrics.inc("hazardhub_readings_rewound_total", outcome.rewound)
        if outcome.late_in_window:
            self.metrics.inc("hazardhub_readings_late_in_window_total", outcome.late_in_window)

    async def dispatch(
        self, readings: Sequence[ReadingBatch], positions: Sequence[PositionBatch], arrival: int
    ) -> list[AlarmEvent]:
        """Store, judge and record; raise StoreError or AlarmStoreError to be retried whole."""
        batch = await self.write(readings, positions)
        return await self.judge(batch, positions, arrival)
