"""How the hub's MQTT shell (`IngestService`) gathers the messages it takes into batches.

Messages are decoded as they are taken and gathered until a batch is due (enough messages or
readings, or the oldest old enough); each batch is handed to a flush (`ingest.flush`), at most
`max_flushes` at once, which keep arrival order. Configuration changes run between batches
(`reload`), and the core's clock ticks even without readings. Split from `ingest.service`
(whose `IngestService` extends `Batching` with the connection, the session and readiness); the
code moved as it was and logs under `ingest.service` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from alerts.errors import AlarmStoreError
from ingest.clocksteps import ClockSteps
from ingest.flush import Flushing
from ingest.pipeline import Handled
from telemetry.clock import wall_ms

__all__ = ["Batching"]

log = logging.getLogger("ingest.service")  # the hub shell's logger, as before the split
_TICK = "the clock's tick not recorded"  # a writer of the state database (`StateDbFault`)


async def _until(event: asyncio.Event, within_s: float) -> None:
    """Wait for `event`, at most `within_s` seconds. Not `asyncio.wait_for`: on Python 3.11 it
    loses a cancellation that comes as the event is set (the hub's ingest then ran on after its
    task group had failed, helper-132)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, within_s)):
            await event.wait()


class Batching(Flushing):
    """The batching of `IngestService`, which sets up every attribute declared here."""

    _flush_messages: int
    _flush_readings: int
    _flush_interval: float
    _tick_s: float
    _max_flushes: int
    _max_batch_readings: int
    _max_batch_messages: int
    _wake: asyncio.Event
    _flushes: set[asyncio.Task[None]]
    _last_flush: asyncio.Future[bool] | None
    _queue: asyncio.Queue[aiomqtt.Message]
    _qos0_heard: float
    _taken: list[tuple[aiomqtt.Message, Handled]]
    _reloads: list[tuple[Callable[[], Awaitable[None]], asyncio.Future[None]]]
    _reload_lock: asyncio.Lock
    _in_session: bool
    clock_steps: ClockSteps  # the hub's wall clock stepping, said at the tick

    async def reload(self, apply: Callable[[], Awaitable[None]]) -> None:
        """Run `apply` (a configuration change) between batches: what was decoded before it is
        stored and judged first, no flush is in flight while it runs, and every message after
        it is decoded with the new configuration. Raises what `apply` raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reloads.append((apply, done))
        self._wake.set()
        if not self._in_session:
            await self._run_reloads()  # no session: nothing is in flight
        await done

    async def _run_reloads(self) -> None:
        async with self._reload_lock:
            while self._reloads:
                apply, done = self._reloads.pop(0)
                try:
                    await apply()
                except Exception as exc:
                    if not done.done():
                        done.set_exception(exc)
                else:
                    if not done.done():
                        done.set_result(None)

    async def _process(
        self, client: aiomqtt.Client, stop: asyncio.Event, reader: asyncio.Task[None]
    ) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        # taken, not yet flushed (`_start_flush` empties it): the session's end counts the QoS 0
        # messages left in it
        pending = self._taken
        pending.clear()
        readings = 0
        first_at = 0.0
        first_ms = 0  # the hub's clock when the first of `pending` was taken
        next_tick = loop.time() + self._tick_s
        while True:
            self._reap()
            if self._reloads or self._reload_lock.locked():
                if pending:
                    await self._start_flush(client, pending, stop, first_ms)
                    readings = 0
                await self._drain_flushes()
                await self._run_reloads()
            if reader.done():
                pending_exc = reader.exception()
                if pending:
                    await self._start_flush(client, pending, stop, first_ms)
                await self._drain_flushes()
                if pending_exc is not None:  # the broker's (a new session), or a bug's
                    raise pending_exc
                raise aiomqtt.MqttError("message reader ended")
            # everything queued now, up to the batch's cap, without waiting
            while (
                not queue.empty()
                and readings < self._max_batch_readings
                and len(pending) < self._max_batch_messages
            ):
                message = queue.get_nowait()
                handled = self._handle(message)
                if not pending:
                    first_at, first_ms = loop.time(), wall_ms()
                pending.append((message, handled))
                if handled.readings is not None:
                    readings += len(handled.readings)
            now = loop.time()
            if now >= next_tick:
                next_tick = now + self._tick_s
                self.clock_steps.check()  # the wall clock stepped: said and counted
                try:
                    clock = wall_ms()
                    horizon = min((clock, *self._in_flight.values()))
                    if pending:  # taken before anything still queued
                        horizon = min(horizon, first_ms)
                    events = await self.dispatcher.tick(clock, horizon)
                except AlarmStoreError as exc:  # the next tick tries again
                    self.metrics.inc("hazardhub_tick_failures_total")
                    # said at once, then once a minute (a line a second, helper-195)
                    self.state_db_fault.failed(_TICK, exc)
                    events = []
                else:
                    self.state_db_fault.worked(_TICK)
                if events:
                    await self._publish(client, events)
            if stop.is_set() and queue.empty():
                if pending:
                    await self._start_flush(client, pending, stop, first_ms)
                await self._drain_flushes()
                return
            due = bool(pending) and (
                len(pending) >= self._flush_messages
                or readings >= self._flush_readings
                or now - first_at >= self._flush_interval
                or stop.is_set()
            )
            full = readings >= self._max_batch_readings or len(pending) >= self._max_batch_messages
            if due and (full or len(self._flushes) < self._max_flushes):
                await self._start_flush(client, pending, stop, first_ms)  # full: waits for a slot
                readings = 0
                continue
            if not queue.empty():
                continue
            # nothing queued: wait for a message, a flush to end (one is due, no slot is free),
            # the batch's age or the clock's tick
            timeout = min(self._flush_interval, next_tick - now)
            if pending and not due:
                timeout = min(timeout, first_at + self._flush_interval - now)
            self._wake.clear()
            await _until(self._wake, timeout)

    def _handle(self, message: aiomqtt.Message) -> Handled:
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        handled = self.pipeline.handle(str(message.topic), data, wall_ms())
        if handled.mark is not None and not handled.duplicate and not handled.rejected_whole:
            # until its flush has judged it (or left it to the broker), a copy of it taken
            # meanwhile (a QoS 1 re-send in the same second) is a duplicate, not judged twice
            self.pipeline.seen.hold(handled.mark)
        if message.qos == 0:
            self._qos0_heard_from(str(message.topic), handled.kind)
        return handled

    def _qos0_heard_from(self, topic: str, kind: str) -> None:
        """A message published with QoS 0: judged like the others, but the broker neither keeps
        it for the hub nor sends it again, and nothing holds its publisher back (docs/mqtt.md
        asks for QoS 1). Counted by kind; said once a minute at most."""
        self.metrics.inc("hazardhub_messages_qos0_total", kind=kind)
        minute = time.monotonic() // 60
        if minute != self._qos0_heard:
            self._qos0_heard = minute
            log.warning(
                "a %s message on %s was published with QoS 0: it is lost if the hub is away or "
                "behind (counted in hazardhub_messages_dropped_total); publish with QoS 1 "
                "(docs/mqtt.md)",
                kind,
                topic,
            )

    async def _start_flush(
        self,
        client: aiomqtt.Client,
        pending: list[tuple[aiomqtt.Message, Handled]],
        stop: asyncio.Event,
        first_ms: int,
    ) -> None:
        """Hand a batch of messages to a flush task, emptying `pending` (the session's end
        counts the QoS 0 messages left in it). Up to `max_flushes` run at once: their store
        writes overlap (they are idempotent), their judging and acknowledging keep arrival order
        (each waits for the one before)."""
        while len(self._flushes) >= self._max_flushes:
            done, _ = await asyncio.wait(self._flushes, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._flushes.discard(task)
                task.result()  # a failed flush ends the session (the broker re-delivers)
        before = self._last_flush
        mine: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._last_flush = mine
        self._in_flight[mine] = first_ms
        batch = list(pending)
        pending.clear()
        task = asyncio.create_task(
            self._flush(client, batch, stop, before, mine, first_ms), name="ingest-flush"
        )
        task.add_done_callback(lambda _: self._wake.set())
        self._flushes.add(task)

    def _reap(self) -> None:
        """Forget finished flushes; a failed one ends the session (raise its error)."""
        for task in [t for t in self._flushes if t.done()]:
            self._flushes.discard(task)
            task.result()

    async def _drain_flushes(self) -> None:
        while self._flushes:
            task = self._flushes.pop()
            await task
