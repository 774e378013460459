"""Handing the `Dispatcher`'s judged transitions and alarm-recording steps to the alarm book in
worker threads (SQLite), so that a caller cancelled meanwhile neither loses them nor has them
recorded twice: transitions not yet recorded wait, oldest first, and the events recorded are
carried to the next caller to hand on; the events also go to the time-series store. A concern of
its own, split from `ingest.dispatch` (whose `Dispatcher` extends `AlarmRecording`); the code
moved as it was and logs under `ingest.dispatch` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from alerts.alarms import AlarmBook, AlarmEvent
from alerts.confirmations import Confirmation, record_confirmations
from alerts.evaluate import CoreState, Transitions
from alerts.statedb import StateDB
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch, StoreError, TimeSeriesStore
from telemetry.registry import Registry

__all__ = ["AlarmRecording"]

log = logging.getLogger("ingest.dispatch")  # the dispatcher's logger, as before the split


class AlarmRecording:
    """The recording of alarms, a part of `Dispatcher`, which sets up every attribute declared
    here (the recording reads the judging's, and keeps its own)."""

    registry: Registry
    statedb: StateDB
    store: TimeSeriesStore
    metrics: Metrics
    book: AlarmBook
    state: CoreState
    _unkept: list[tuple[Transitions, int]]
    _confirming: list[tuple[list[Confirmation], int]]
    _carried: list[AlarmEvent]
    _recording: asyncio.Future[list[AlarmEvent]] | None
    _working: asyncio.Future[list[AlarmEvent]] | None
    _judged: tuple[ReadingBatch | None, object, list[AlarmEvent]] | None

    async def _record(self) -> None:
        """The alarm book records the transitions judged and not yet recorded, oldest first
        (in a thread: SQLite); their events join `_carried`. Raise AlarmStoreError."""
        while self._unkept:
            if self._recording is None:
                transitions, arrival = self._unkept[0]
                self._recording = asyncio.ensure_future(
                    asyncio.to_thread(self.book.apply, transitions, arrival, self.state)
                )
            # the caller cancelled: the book goes on, the next caller takes its outcome
            events = await _outlived(self._recording, self._forget_recording)
            self._unkept.pop(0)
            self._carried += events
        # then the protective actions confirmed (after the raise that demanded them); a
        # confirmation written already is not written again (a process event)
        while self._confirming:
            confirmations, arrival = self._confirming[0]
            self._carried += await asyncio.to_thread(
                record_confirmations, self.statedb, self.registry, confirmations, arrival
            )
            self._confirming.pop(0)

    async def _off_loop(
        self, step: Callable[..., list[AlarmEvent]], *args: object
    ) -> list[AlarmEvent]:
        """Run a step that records alarms (the fleet analytics, the desk's clock) in a thread and
        return its events. A caller cancelled meanwhile leaves it running: its transaction may
        still commit, and `_settle` hands its events on then."""
        self._working = asyncio.ensure_future(asyncio.to_thread(step, *args))
        # the caller cancelled: the step goes on, `_settle` takes its outcome
        return await _outlived(self._working, self._forget_working)

    def _forget_recording(self) -> None:
        self._recording = None

    def _forget_working(self) -> None:
        self._working = None

    async def _settle(self) -> None:
        """Wait for a step a cancelled caller left running (nothing else may change the fleet's
        state meanwhile) and carry its events to be handed on."""
        work = self._working
        if work is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(work)  # cancelled here: it stays for the next caller
        self._take_working()

    def _take_working(self) -> None:
        """The events of a finished step left by a cancelled caller join the carried ones. A
        step that failed recorded nothing (its transaction rolled back, the fleet's state too):
        its positions or clock come again."""
        work, self._working = self._working, None
        if work is None or work.cancelled():
            return
        exc = work.exception()
        if exc is not None:
            log.warning("a step left by a cancelled caller failed: %s", exc)
            return
        self._carried += work.result()

    def _drop_judged(self) -> None:
        """Forget a batch that failed and will not be retried (its session ended; its readings
        come again as a new batch): the events it held are handed on as the carried ones are
        (and written to the store again: idempotent, and they may not have reached it)."""
        if self._judged is not None:
            self._carried[:0] = self._judged[2]
            self._judged = None

    def _take_carried(self) -> list[AlarmEvent]:
        events, self._carried = self._carried, []
        return events

    async def store_events(self, events: Sequence[AlarmEvent]) -> None:
        """Alarm events also go to the time-series store (history for Grafana and reports). The
        state database stays the authority: a failure here is counted, never retried, so a batch
        is never judged twice."""
        if not events:
            return
        try:
            await self.store.write_alarm_events(events)
        except StoreError as exc:
            self.metrics.inc("hazardhub_alarm_event_store_failures_total")
            log.warning("alarm events not written to the time-series store: %s", exc)


async def _outlived(
    work: asyncio.Future[list[AlarmEvent]], forget: Callable[[], None]
) -> list[AlarmEvent]:
    """Await `work` (a step recording alarms in a thread) for a caller that may be cancelled:
    cancelled, the caller leaves `work` running where it keeps it, for the next caller to
    take; `forget` is called once `work` is done, failed or cancelled itself."""
    try:
        events = await asyncio.shield(work)
    except asyncio.CancelledError:
        if not work.cancelled():
            raise
        forget()
        raise
    except BaseException:
        forget()
        raise
    forget()
    return events
