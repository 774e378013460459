"""The `Dispatcher` between batches: its clock's tick (sensors and vehicles gone silent, the
alarm desk's clock, gateways offline past their grace, the hub's watch) and what the gateways
report besides readings (their statuses, the data their spools dropped). A concern of its own,
split from `ingest.dispatch` (whose `Dispatcher` extends `Ticking`); the code moved as it was and
logs under `ingest.dispatch` as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import numpy as np

from alerts.alarms import AlarmEvent
from alerts.bypassalarms import BypassAlarms
from alerts.desk import AlarmDesk
from alerts.errors import AlarmStoreError
from alerts.evaluate import Outcome, Transitions
from alerts.gatewayalarms import ClockChange, DataLoss
from alerts.gateways import GatewayWatch
from alerts.hazardalarms import HazardAlarms
from alerts.hubwatch import HubWatch
from alerts.lockalarms import LockTestAlarms
from alerts.statedb import StateDB
from alerts.supervisionanswers import SupervisionAnswer, record_answer
from alerts.supervisionstate import SupervisionDeadlines
from ingest.recording import AlarmRecording
from ingest.statedbfault import StateDbFault
from ingest.store.base import PositionBatch, ReadingBatch
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry

__all__ = ["Ticking"]

log = logging.getLogger("ingest.dispatch")  # the dispatcher's logger, as before the split
_WATCH = "the hub's watch not recorded"  # a writer of the state database (`StateDbFault`)


class Ticking(AlarmRecording):
    """The tick and the gateways' reports, a part of `Dispatcher`, which sets up every attribute
    declared here."""

    desk: AlarmDesk
    watch: HubWatch
    gateways: GatewayWatch
    locks: LockTestAlarms  # the plans' lock-out tests overdue or failed
    bypasses: BypassAlarms  # interlocks bypassed without an approval covering now
    hazards: HazardAlarms  # hidden-danger items past their deadlines
    supervision_deadlines: SupervisionDeadlines  # 督办 past their deadlines unanswered
    state_db_fault: StateDbFault  # the state database failing, said (`ingest.statedbfault`)
    _gateway_sites: dict[tuple[str, str], tuple[str, ...]]
    _gateways_down: set[str]
    _clock_changes: list[ClockChange]  # devices' clocks behind or back in step, not recorded
    _lock: asyncio.Lock
    _evaluate: Callable[[ReadingBatch, int], tuple[Transitions, Outcome]]  # `Dispatcher`
    _fleet: Callable[[Sequence[PositionBatch], int], list[AlarmEvent]]  # `Dispatcher`
    _save_due: Callable[[int], None]  # `ingest.state_saving.StateSaving`
    statedb: StateDB

    def judge_by_clock(self, registry: Registry, disposal: DisposalSpec) -> None:
        """The alarms the hub's clock judges from the state database (lock-out tests, bypass
        approvals, hidden-danger deadlines, the centre's supervisions past their deadlines),
        for `registry`: at the start and at each reload (after the desk is made)."""
        self.locks = LockTestAlarms(self.statedb, registry, disposal)
        self.bypasses = BypassAlarms(self.statedb, registry, disposal)
        self.hazards = HazardAlarms(self.statedb, registry, disposal)
        self.supervision_deadlines = SupervisionDeadlines(self.statedb, self.desk)

    async def tick(self, now: int, horizon: int | None = None) -> list[AlarmEvent]:
        """Advance the core's clock without readings: a sensor that went silent raises its
        no-data alarm, a protective action past its deadline its failure, even when nothing
        arrives at all. `horizon`: the arrival of the oldest message not judged yet (see
        `judge`); silence is judged up to it, the lifecycle's clock up to `now`."""
        async with self._lock:
            empty = ReadingBatch(
                np.zeros(0, np.int32),
                np.zeros(0, np.int64),
                np.zeros(0),
                np.zeros(0, np.uint8),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
            await self._settle()
            await self._record()
            clock = now if horizon is None else min(now, horizon)
            transitions, _ = self._evaluate(empty, clock)
            if len(transitions):
                self._unkept.append((transitions, now))
                await self._record()
            events = self._take_carried()
            try:
                events += await self._off_loop(self._fleet, [], now)
                # the lifecycle's clock: shelves expire, disposals fall overdue, suppression
                # follows
                events += await self._off_loop(self.desk.tick, now, self.state)
                # gateways offline past their grace, and back online
                events += await self._off_loop(self._gateway_step, clock, now)
                # devices whose gateway's clock fell back, and back in step
                events += await self._off_loop(self._clock_step, now)
                # plans whose lock-out test is overdue or failed, or was just recorded
                events += await self._off_loop(self.locks.step, now)
                # interlocks bypassed past their grace without an approval covering now
                events += await self._off_loop(self.bypasses.step, now)
                # hidden-danger items past their rectification or review deadline
                events += await self._off_loop(self.hazards.step, now)
                # the centre's supervisions past their deadlines without an answer
                overdue = await self._off_loop(self.supervision_deadlines.step, now)
                if overdue:
                    self.metrics.inc("hazardhub_supervisions_overdue_total", len(overdue))
                events += overdue
            except BaseException:
                # recorded, not handed on: they go with the next batch or tick
                self._carried[:0] = events
                raise
            await self.store_events(events)
            self._save_due(now)  # the state as this tick left it
            if self.watch.due(now):
                try:
                    await asyncio.to_thread(self.watch.seen, now)
                except AlarmStoreError as exc:  # the next tick's try extends it
                    self.metrics.inc("hazardhub_tick_failures_total")
                    # due again at every tick: said at once, then once a minute
                    self.state_db_fault.failed(_WATCH, exc)
                else:
                    self.state_db_fault.worked(_WATCH)
        for ev in events:
            self.metrics.inc("hazardhub_alarm_events_total", kind=ev.kind)
        return events

    def clock_status(self, change: ClockChange) -> None:
        """A device's gateway clock fell back or is back in step (`ingest.clocks`): recorded at
        the next tick."""
        self._clock_changes.append(change)

    def _clock_step(self, arrival: int) -> list[AlarmEvent]:
        """Record the devices' clock changes told since the last tick (kept for the next one
        when the database refuses)."""
        changes, self._clock_changes = self._clock_changes, []
        try:
            return self.book.apply_clocks(changes, arrival)
        except BaseException:
            self._clock_changes[:0] = changes
            raise

    def gateway_status(self, tenant: str, gateway: str, online: bool, at: int) -> None:
        """A gateway's status arrived at `at` (the hub's clock): judged at the next tick."""
        self.gateways.heard(tenant, gateway, online, at, self._gateway_sites)

    async def record_losses(self, losses: Sequence[DataLoss], arrival: int) -> list[AlarmEvent]:
        """Record the data the gateways' spools dropped (their reports) as `data_lost` alarms.
        Raise AlarmStoreError to be retried (a report recorded already records nothing)."""
        async with self._lock:
            await self._settle()
            events = await self._off_loop(self.book.record_losses, losses, arrival)
            await self.store_events(events)
        for ev in events:
            self.metrics.inc("hazardhub_alarm_events_total", kind=ev.kind)
            if ev.kind == "raised":  # a loss recorded now (not a report delivered again)
                self.metrics.inc("hazardhub_gateway_dropped_readings_total", ev.value)
                log.warning("data lost: %s/%s/%s %s", ev.tenant, ev.site, ev.device, ev.comment)
        return events

    async def record_answers(
        self, answers: Sequence[SupervisionAnswer], arrival: int
    ) -> list[AlarmEvent]:
        """Journal the platforms' answers to the centre's supervisions, and the gateways'
        receipts of their tickets, on their alarms (`alerts.supervisionanswers`); one of no
        supervision counted and said. Under the tick's lock: an answer is recorded before or
        after the tick's overdue step (`SupervisionDeadlines.step`), never during it, so a
        supervision answered is not journaled 超期未应答 after its answer."""
        async with self._lock:
            return await self._record_answers(answers, arrival)

    async def _record_answers(
        self, answers: Sequence[SupervisionAnswer], arrival: int
    ) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for a in answers:
            got = await asyncio.to_thread(record_answer, self.statedb, self.desk, a, arrival)
            outcome = "journaled" if isinstance(got, AlarmEvent) else got
            metric = "hazardhub_supervision_receipts_total" if a.receipt else (
                "hazardhub_supervision_answers_total"
            )  # fmt: skip
            self.metrics.inc(metric, outcome=outcome)
            if isinstance(got, AlarmEvent):
                events.append(got)
            elif got == "unknown":
                log.warning(
                    "%s of %s (gateway %s, tenant %s) to supervision %d: no such "
                    "supervision in the tenant%s",
                    f"receipt {a.receipt}" if a.receipt else "answer", a.platform or "-",
                    a.gateway, a.tenant, a.supervision_id,
                    "" if a.receipt else " for that plate and platform",
                )  # fmt: skip
        return events

    def _gateway_step(self, clock: int, arrival: int) -> list[AlarmEvent]:
        """Raise the alarms of gateways offline for their grace at `clock` (or never heard from
        for `gateway_never_connected_s`), clear those of gateways back online; recorded at
        `arrival`."""
        config = self.registry.config
        grace = round(config.gateway_offline_s * 1000)
        never = round(config.gateway_never_connected_s * 1000)
        changes = self.gateways.changes(
            self._gateway_sites, self._gateways_down, clock, grace, never
        )
        if not changes:
            return []
        events = self.book.apply_gateways(changes, arrival)
        for c in changes:  # committed
            if c.offline:
                self._gateways_down.add(c.alarm_id)
            else:
                self._gateways_down.discard(c.alarm_id)
        return events
