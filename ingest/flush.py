"""What a flush of the hub's MQTT shell does with its batch of messages (`IngestService`).

Messages refused are kept as dead letters; the readings and positions are stored (retried while
the store is away, dead letters when it refuses them for good); then, after the flush before
and only if it did, they are judged, the alarms handed to the listeners and published, and the
messages acknowledged. A flush that does not get that far leaves its messages, and those of
the flushes after it, for the broker to deliver again in order. Split from `ingest.service`
(whose `IngestService` extends `Flushing` with the session, the batching and the reloads); the
code moved as it was and logs under `ingest.service` as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiomqtt
import orjson

from alerts.alarmfeed import alarm_body, peak_tiers
from alerts.alarms import AlarmEvent
from alerts.errors import AlarmStoreError
from alerts.statedb import StateDB
from alerts.vehiclereports import record_reports
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.mqttio import acknowledge
from ingest.pipeline import Handled, Pipeline
from ingest.positionmsg import VEHICLES
from ingest.seqjournal import SeqJournal
from ingest.statedbfault import StateDbFault
from ingest.store.base import ReadingBatch, StoreError, StoreUnavailableError
from telemetry.clock import wall_ms
from telemetry.errors import TopicError
from telemetry.topics import TopicLayout

__all__ = ["Flushing"]

log = logging.getLogger("ingest.service")  # the hub shell's logger, as before the split


T = TypeVar("T")


class _StoppingError(Exception):
    """A retry given up because the hub stops: the message is left to the broker."""


_GAPS_SAID_A_MINUTE = 20  # device gaps logged one by one in a minute (all are counted)


class Flushing:
    """The flushes of `IngestService`, which sets up every attribute declared here."""

    pipeline: Pipeline
    dispatcher: Dispatcher
    statedb: StateDB
    metrics: Metrics
    layout: TopicLayout
    _in_flight: dict[asyncio.Future[bool], int]
    _gaps_said: list[float]  # (minute, said in it, not said): `_missing`
    # since when (ms) the store refuses the readings ingest hands it, retryably (InfluxDB and
    # the spool both full or failing): ingest waits, nothing is judged; None while it takes them
    store_held_since: int | None
    # what the store refuses for, when it is its surroundings (`StoreUnavailableError`: a full
    # disk, a read-only file, a rotated password): an outage an operator must end
    store_unavailable: StoreUnavailableError | None
    _qos0_said: dict[str, list[float]]  # reason: [minute, dropped since said] (`qos0_dropped`)
    # the state database failing: said at once, then once a minute; `/readyz` names it
    state_db_fault: StateDbFault
    # the newest seq judged per device and epoch, kept across restarts (set by the hub)
    seq_journal: SeqJournal | None = None

    async def _flush(
        self,
        client: aiomqtt.Client,
        pending: Sequence[tuple[aiomqtt.Message, Handled]],
        stop: asyncio.Event,
        before: asyncio.Future[bool] | None,
        mine: asyncio.Future[bool],
        first_ms: int,
    ) -> None:
        ok = False
        try:
            ok = await self._flush_in_order(client, pending, stop, before, first_ms)
        finally:
            # judged (the window has them now) or left to the broker: copies taken from now on
            # are compared with the window alone
            for _, handled in pending:
                if handled.mark is not None and not handled.duplicate:
                    self.pipeline.seen.release(handled.mark)
            self._in_flight.pop(mine, None)
            if not mine.done():
                mine.set_result(ok)
            if not ok:  # the broker delivers the QoS 1 messages again, never the QoS 0 ones
                self._qos0_lost([m for m, _ in pending], "qos0_session_end")

    async def _dead_letter(
        self, message: aiomqtt.Message, kind: str, reason: str, stop: asyncio.Event
    ) -> bool:
        """Keep a refused message, tried again while the state database is away (locked,
        full): its message is acknowledged only after (a locked database stopped the hub).
        False when the hub stops meanwhile: the broker delivers the message again."""
        raw = message.payload if isinstance(message.payload, bytes) else b""
        topic = str(message.topic)
        try:  # the tenant it names (its ACL let it publish there): whose flood it is
            origin = self.layout.parse(topic).tenant
        except TopicError:
            origin = ""
        try:
            pruned = await self._retried(
                lambda: asyncio.to_thread(
                    self.statedb.add_dead_letter, wall_ms(), kind, topic, reason, raw, origin
                ),
                "dead letter not kept",
                stop,
            )
        except _StoppingError:  # its message is not acknowledged: the broker has it
            return False
        if pruned:  # the oldest, beyond the kept number or bytes
            self.metrics.inc("hazardhub_dead_letters_pruned_total", pruned)
        return True

    async def _flush_in_order(
        self,
        client: aiomqtt.Client,
        pending: Sequence[tuple[aiomqtt.Message, Handled]],
        stop: asyncio.Event,
        before: asyncio.Future[bool] | None,
        first_ms: int,
    ) -> bool:
        """Store, then (after the flush before, and only if it did) judge and acknowledge;
        True when done, False when the messages are left for the broker to deliver again.
        `first_ms`: when the first of the messages was taken; everything before it has been
        judged (by the flushes before), so silence is judged up to it."""
        for message, handled in pending:
            if handled.reasons and not await self._dead_letter(
                message, handled.kind, "; ".join(handled.reasons), stop
            ):
                if before is not None:
                    await before
                return False
        accepted = [h for _, h in pending if not h.rejected_whole and not h.duplicate]
        readings = [h.readings for h in accepted if h.readings is not None and len(h.readings)]
        positions = [h.positions for h in accepted if h.positions is not None]
        batch = None
        stored = True
        if readings or positions:
            backoff = 0.2
            while True:
                try:
                    batch = await self.dispatcher.write(readings, positions)
                    self.store_held_since = None
                    if self.store_unavailable is not None:
                        log.info("the store takes readings again")
                        self.store_unavailable = None
                    break
                except StoreError as exc:
                    if not exc.retryable:
                        log.error("store refused a batch: %s; kept as dead letters", exc)
                        refused = [
                            h for h in accepted if h.readings is not None or h.positions is not None
                        ]
                        for message, handled in pending:
                            if handled in refused and not await self._dead_letter(
                                message, handled.kind, f"store_refused: {exc}", stop
                            ):
                                if before is not None:
                                    await before
                                return False
                        self.metrics.inc(
                            "hazardhub_messages_rejected_total",
                            len(refused),
                            reason="store_refused",
                        )
                        stored = False
                        self.store_held_since = None
                        break
                    self.metrics.inc("hazardhub_store_retries_total")
                    if self.store_held_since is None:
                        self.store_held_since = wall_ms()
                    if isinstance(exc, StoreUnavailableError):
                        self._unavailable(exc)
                    else:
                        log.warning("store write failed (%s); retry in %.1fs", exc, backoff)
                    if stop.is_set() and backoff >= 5.0:
                        log.error(
                            "stopping with %d messages unacknowledged; the broker "
                            "will deliver them again",
                            len(pending),
                        )
                        if before is not None:
                            await before
                        return False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        # judge and acknowledge in arrival order; after a flush that did not, neither: the
        # broker delivers both again, in order
        if before is not None and not await before:
            return False
        for h in accepted:  # in arrival order, judged at the next tick
            if h.status is not None:
                self.dispatcher.gateway_status(*h.status)
        events: list[AlarmEvent] = []
        if stored and (readings or positions):
            events = await self._recorded(
                lambda: self.dispatcher.judge(batch, positions, wall_ms(), horizon=first_ms)
            )
            self._lag(batch, first_ms)
        losses = [loss for h in accepted for loss in h.losses]
        if losses:
            events += await self._recorded(lambda: self.dispatcher.record_losses(losses, wall_ms()))
        answers = [h.answer for h in accepted if h.answer is not None]
        if answers:
            events += await self._recorded(
                lambda: self.dispatcher.record_answers(answers, wall_ms())
            )
        reports = [h.report for h in accepted if h.report is not None]
        if reports:  # what platforms reported of vehicles: the latest of each kind kept
            await self._retried(
                lambda: asyncio.to_thread(record_reports, self.statedb, reports, wall_ms()),
                "vehicle reports not kept",
            )
        await self._publish(client, events)
        seen = self.pipeline.seen
        marks: list[tuple[tuple[str, str, str], int]] = []
        for _, handled in pending:
            if handled.mark is not None and not handled.rejected_whole:
                marks.append(handled.mark[:2])
                missing = seen.add(handled.mark)
                if missing:
                    self._missing(handled.mark, missing)
                if (
                    handled.kind == "telemetry"
                    and handled.readings is not None
                    and len(handled.readings)
                ):
                    # judged: what a clock gone back is told by (`ingest.clocks`)
                    self.pipeline.clocks.advance(handled.mark[0], int(handled.readings.ts.max()))
        if marks and self.seq_journal is not None:  # kept before they are acknowledged
            self.seq_journal.record(marks)
        acknowledge(client, [m for m, _ in pending])
        return True

    def _qos0_lost(self, messages: Sequence[aiomqtt.Message], reason: str) -> None:
        """The QoS 0 ones of `messages` are gone unjudged (the session ended, or the hub stops,
        before they were): counted, and said once a minute at most (helper-150: dropped
        uncounted). The QoS 1 ones come again from the broker."""
        topics = [str(m.topic) for m in messages if m.qos == 0]
        if topics:
            self.qos0_dropped(reason, len(topics), topics[0])

    def qos0_dropped(self, reason: str, n: int, topic: str) -> None:
        """`n` QoS 0 messages (one of them on `topic`) dropped unjudged for `reason`
        (`qos0_inbox_full`, `qos0_session_end`): counted; said once a minute at most, with the
        count of the minute before."""
        self.metrics.inc("hazardhub_messages_dropped_total", n, reason=reason)
        minute = time.monotonic() // 60
        said = self._qos0_said.get(reason)
        if said is not None and said[0] == minute:
            said[1] += n
            return
        more = f" (and {said[1]} in the minute before)" if said is not None and said[1] else ""
        self._qos0_said[reason] = [minute, 0]
        log.warning(
            "%d QoS 0 message(s) dropped unjudged (%s), one on %s%s: the broker never sends "
            "QoS 0 messages again; publish telemetry and positions with QoS 1 (docs/mqtt.md)",
            n,
            reason,
            topic,
            more,
        )

    def _unavailable(self, exc: StoreUnavailableError) -> None:
        """The store refuses for its surroundings (the disk full, the file read-only ...): not
        the data's fault, so the messages are held like in an outage (the broker keeps them,
        unacknowledged), counted each try and said once a cause, not every retry (they were
        dead letters, judged by nobody: helper-150)."""
        self.metrics.inc("hazardhub_store_unavailable_total", cause=exc.cause)
        said = self.store_unavailable
        if said is None or said.cause != exc.cause:
            log.error(
                "the store refuses writes (%s: %s): its set-up, not the data; ingest holds the "
                "messages unacknowledged (the broker keeps them) and judges nothing until an "
                "operator fixes it (docs/operations.md)",
                exc.cause,
                exc,
            )
        self.store_unavailable = exc

    def _lag(self, batch: ReadingBatch | None, first_ms: int) -> None:
        """How far behind the hub is: its clock against the newest event judged, and how long
        the messages waited in it (a hub falling behind said nothing, helper-92)."""
        now = wall_ms()
        self.metrics.set("hazardhub_ingest_wait_seconds", (now - first_ms) / 1000)
        if batch is not None and len(batch):
            self.metrics.set("hazardhub_ingest_lag_seconds", (now - int(batch.ts.max())) / 1000)

    def _missing(self, mark: tuple[tuple[str, str, str], int, int], missing: int) -> None:
        """A device's seq jumped: batches between were never received. Counted and said (the
        broker drops messages for the hub once its queue is full, and says so only in its own
        log: helpers 91, 92). A vehicle's (its position envelopes, `ingest.positionmsg`) are
        counted apart."""
        (tenant, site, device), epoch, seq = mark
        self.metrics.inc(
            "hazardhub_position_batches_missing_total"
            if site == VEHICLES
            else "hazardhub_telemetry_batches_missing_total",
            missing,
        )
        # said for the first devices of a minute, then once for the rest (a broker that dropped
        # the queue of a thousand devices made a thousand lines at once, helper-97)
        minute = time.monotonic() // 60
        said = getattr(self, "_gaps_said", None)
        if said is None or said[0] != minute:
            if said is not None and said[2]:
                log.warning("and %d more device gap(s) in the minute before, not said", said[2])
            said = self._gaps_said = [minute, 0, 0]
        if said[1] >= _GAPS_SAID_A_MINUTE:
            said[2] += 1
            return
        said[1] += 1
        log.warning(
            "%s/%s/%s: %d batch(es) before seq %d (gateway epoch %d) never reached the judge: "
            "the broker dropped them (its queue for the hub was full: see docs/operations.md), "
            "the gateway's spool did (then its data_lost alarm says so), or they were refused "
            "(then the dead letters say why)",
            tenant,
            site,
            device,
            missing,
            seq,
            epoch,
        )

    async def _recorded(
        self, record: Callable[[], Awaitable[list[AlarmEvent]]]
    ) -> list[AlarmEvent]:
        """`record` (alarms into the state database), tried again until it is done: the
        messages are acknowledged only after."""
        return await self._retried(record, "state database failed")

    async def _retried(
        self, call: Callable[[], Awaitable[T]], what: str, stop: asyncio.Event | None = None
    ) -> T:
        """`call` (a write to the state database), tried again while the database is away
        (locked, full), backing off to 5 s; with `stop`, given up (`_StoppingError`) once the hub
        stops."""
        backoff = 0.2
        while True:
            try:
                done = await call()
            except AlarmStoreError as exc:
                self.metrics.inc("hazardhub_store_retries_total")
                if stop is not None and stop.is_set():
                    log.error("stopping with a %s (%s): delivered again", what, exc)
                    raise _StoppingError from exc
                # said at once, then once a minute (a full disk: a line every 5 s, helper-195)
                self.state_db_fault.failed(what, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                self.state_db_fault.worked(what)
                return done

    async def peaks(self, events: Sequence[AlarmEvent]) -> dict[int, str]:
        """The highest tier each event's alarm had reached, for the alarm topic: the event's own
        tier when the journal cannot be read (published anyway, said)."""
        if not events:
            return {}
        try:
            return await asyncio.to_thread(peak_tiers, self.statedb.query, events)
        except AlarmStoreError as exc:
            log.warning("alarm events published with their own tier as peak_tier: %s", exc)
            return {}

    async def _publish(self, client: aiomqtt.Client, events: Sequence[AlarmEvent]) -> None:
        for listener in self.dispatcher.listeners:
            try:
                await listener(events)
            except Exception:
                log.exception("alarm listener failed")
        peaks = await self.peaks(events)
        for ev in events:
            topic = self.layout.alarms(ev.tenant, ev.site)
            try:
                body = orjson.dumps(
                    alarm_body(ev, self.dispatcher.registry, peaks.get(ev.event_id, ev.tier))
                )
                await client.publish(topic, body, qos=1)
            except aiomqtt.MqttError as exc:
                self.metrics.inc("hazardhub_alarm_publish_failures_total")
                log.warning("alarm %d not published: %s", ev.alarm_id, exc)
