"""The hub's MQTT shell: subscribe, hand messages to the pipeline, flush, acknowledge.

At-least-once: the hub's session is persistent (clean session off, fixed client id) and a
message is acknowledged (PUBACK) only after what it carried is stored and judged, or after it
was kept as a dead letter. A hub that dies before acknowledging gets the message again from the
broker; the store's idempotent writes and the (device, epoch, seq) window make the replay harmless.
How messages are gathered into batches (and configuration reloaded between them) is in
`ingest.batching`; what a flush does with its batch (store, judge, publish, acknowledge) is in
`ingest.flush`.

Brokers limit unacknowledged messages per client (Mosquitto: ``max_inflight_messages``, default
20); the hub flushes as soon as that many are pending, so set it to a few hundred for throughput.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiomqtt

from alerts.statedb import StateDB
from ingest.batching import Batching, _until
from ingest.clocksteps import ClockSteps
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.mqttio import HubClient, buffer_reads
from ingest.pipeline import Handled, Pipeline
from ingest.store.base import StoreUnavailableError
from ingest.store.buffered import BufferedStore
from telemetry.brokerlogin import login_refused
from telemetry.brokertls import BrokerTls, tls_context
from telemetry.clock import wall_ms
from telemetry.topics import TopicLayout

__all__ = ["IngestService"]

log = logging.getLogger(__name__)


# how long the store may refuse readings before `/readyz` says the hub is not judging
STORE_HELD_S = 5.0
# how long a batch taken may wait to be judged before `/readyz` says the hub is behind (a flood
# of one tenant's alarms held every tenant's judging for minutes, and it said ready: helper-107)
STALLED_S = 60.0


async def _ended(*tasks: asyncio.Task[None]) -> bool:
    """Cancel `tasks` and wait until each has ended; what they raised is theirs (dropped). True
    when the caller was cancelled meanwhile: it raises that once its own end is done (taken for
    the end of the task awaited, it was lost: the ingest of a hub whose task group had failed
    went on retrying the broker, helper-132)."""
    for task in tasks:
        task.cancel()
    cancelled = False
    left = {t for t in tasks if not t.done()}
    while left:
        try:
            await asyncio.wait(left)
        except asyncio.CancelledError:
            cancelled = True  # they were told to end: they end, then so does the caller
        left = {t for t in left if not t.done()}
    for task in tasks:
        if not task.cancelled():
            task.exception()  # taken: not said "never retrieved" at exit
    return cancelled


# a session the broker ends this soon after it began: another client took the client id?
_SHORT_SESSION_MS = 2_000


class IngestService(Batching):
    def __init__(
        self,
        pipeline: Pipeline,
        dispatcher: Dispatcher,
        statedb: StateDB,
        metrics: Metrics,
        layout: TopicLayout,
        *,
        host: str,
        port: int,
        client_id: str = "hazardhub-hub",
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        flush_messages: int = 16,
        flush_readings: int = 5000,
        flush_interval_s: float = 0.05,
        queue_size: int = 1000,
        tick_s: float = 1.0,
        max_flushes: int = 3,
        max_batch_readings: int | None = None,
        max_batch_messages: int | None = None,
    ) -> None:
        """A flush starts when `flush_messages` messages or `flush_readings` readings are
        pending, or the oldest is `flush_interval_s` old. While `max_flushes` are in flight,
        messages keep gathering into the next one, up to `max_batch_readings` (default 4 x
        `flush_readings`) or `max_batch_messages` (default 16 x `flush_messages`): under a
        backlog, batches grow and the costs per flush (a store request, a judging) are shared
        by more readings."""
        self.pipeline = pipeline
        self.dispatcher = dispatcher
        self.statedb = statedb
        self.metrics = metrics
        self.layout = layout
        self._host, self._port = host, port
        self._client_id = client_id
        self._username, self._password = username, password
        self._tls = tls
        self._flush_messages = flush_messages
        self._flush_readings = flush_readings
        self._flush_interval = flush_interval_s
        self._tick_s = tick_s  # the core's clock advances this often even without readings
        self._max_flushes = max_flushes
        self._max_batch_readings = max(flush_readings, max_batch_readings or 4 * flush_readings)
        self._max_batch_messages = max(flush_messages, max_batch_messages or 16 * flush_messages)
        # set when a message is queued, a flush ends or the reader stops: the loop looks again
        self._wake = asyncio.Event()
        self._flushes: set[asyncio.Task[None]] = set()
        # the last flush started: True once it judged and acknowledged (its successor may go
        # on), False when it did not (its successors must not either: order would break)
        self._last_flush: asyncio.Future[bool] | None = None
        self._queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(maxsize=queue_size)
        self.ready = asyncio.Event()
        self.store_held_since: int | None = None
        self.store_unavailable: StoreUnavailableError | None = None
        self.state_db_fault = dispatcher.state_db_fault  # shared: every writer's failures
        self.clock_steps = ClockSteps(metrics)
        self._qos0_said: dict[str, list[float]] = {}
        self._qos0_heard = -1.0  # the minute a QoS 0 publisher was last said
        # the messages taken for the next batch, not yet handed to a flush (`_process`)
        self._taken: list[tuple[aiomqtt.Message, Handled]] = []
        self._stopping = False
        self._client: aiomqtt.Client | None = None
        # configuration changes waiting for a pause between batches (see `reload`)
        self._reloads: list[tuple[Callable[[], Awaitable[None]], asyncio.Future[None]]] = []
        self._reload_lock = asyncio.Lock()
        self._in_session = False
        # the hub's clock for silence (no-data timeouts, unconfirmed protective actions) goes no
        # further than what it has judged: when each flush in flight took its first message
        self._in_flight: dict[asyncio.Future[bool], int] = {}
        # a hub whose ingest is stuck (a store held, a judging that hangs) judges nothing, so
        # nothing sets these gauges: rendered as at least how long the oldest batch taken has
        # waited (the lag stood at 0.058 s while /readyz said 60 s, helper-149)
        metrics.watch("hazardhub_ingest_lag_seconds", self._waited_at_least)
        metrics.watch("hazardhub_ingest_wait_seconds", self._waited_at_least)

    def _waited_at_least(self, last: float) -> float:
        """`last` (a gauge set at the last judging), or how long the oldest batch taken and not
        judged yet has waited, if longer: its readings will be judged at least that late. Read
        by `/metrics` in a worker thread: the copy of the values is atomic."""
        taken = min(tuple(self._in_flight.values()), default=None)
        if taken is None:
            return last
        return max(last, (wall_ms() - taken) / 1000)

    def not_ready(self, now_ms: int | None = None) -> str | None:
        """Why the hub judges nothing now, or None: not subscribed to the broker, a batch it
        took waiting `STALLED_S` or more to be judged, or the store has refused its readings
        (InfluxDB away and the spool full, or the embedded store's disk full) for
        `STORE_HELD_S` or more: ingest waits for it, so no alarm is judged (for `/readyz`).
        Also while InfluxDB refuses for its set-up (`StoreUnavailableError`: a rotated
        password), though readings are judged from the spool: it ends only when someone acts."""
        if not self.ready.is_set():
            return "not subscribed to the broker: no reading is heard"
        state_db = self.state_db_fault.not_ready()
        if state_db is not None:  # as soon as a write fails: it does not end by itself
            return state_db
        held = self.store_held_since
        now = wall_ms() if now_ms is None else now_ms
        held_long = held is not None and now - held >= STORE_HELD_S * 1000
        since = (
            ""
            if held is None
            else datetime.fromtimestamp(held / 1000, UTC).isoformat(timespec="seconds")
        )
        store = self.dispatcher.store
        spooling = store.unavailable() if isinstance(store, BufferedStore) else None
        # a refusal of the store's surroundings (a rotated password, a full disk) does not end
        # by itself: said at once, with its cause (it said ready: helper-150)
        if spooling is not None and not held_long:  # judged, but nothing reaches the store
            return (
                f"the store refuses writes ({spooling.cause}: {spooling}): readings are judged "
                "and kept in the disk spool until it is fixed; once the spool is full, ingest "
                "judges nothing (see hazardhub_store_spool_pending_bytes)"
            )
        unavailable = self.store_unavailable or spooling
        if held is not None and unavailable is not None:  # at once: it does not end by itself
            return (
                f"the store refuses writes since {since} ({unavailable.cause}: {unavailable}): "
                "ingest holds the messages unacknowledged (the broker keeps them) and judges "
                "no alarm until it is fixed (see hazardhub_store_unavailable_total)"
            )
        if held_long:
            assert held is not None
            return (
                f"the store has refused readings since {since} ({(now - held) // 1000} s): "
                "ingest waits for it and judges no alarm (see hazardhub_store_retries_total)"
            )
        taken = min(self._in_flight.values(), default=None)
        if taken is not None and now - taken >= STALLED_S * 1000:
            return (
                f"a batch taken {(now - taken) // 1000} s ago is not judged yet: alarms are that "
                "late (see hazardhub_ingest_lag_seconds)"
            )
        return self.pipeline.future.not_ready(now)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        began: int | None = None  # when the session running began
        excused: int | None = None  # the connection that excused the time away, if not begun
        while not stop.is_set():
            client = HubClient(
                self._host,
                self._port,
                identifier=self._client_id,
                username=self._username,
                password=self._password,
                tls_context=tls_context(self._tls),
                clean_session=False,
                keepalive=30,
                max_queued_incoming_messages=0,  # QoS 0 bounded by `HubClient.qos0_inbox`
            )
            client.on_qos0_dropped = lambda topic: self.qos0_dropped("qos0_inbox_full", 1, topic)
            client.stopped_by(stop)  # a stop does not wait out a silent broker's CONNACK
            # acknowledge only after the message is handled (at-least-once); aiomqtt has no
            # public switch for this, its paho client does
            client._client.manual_ack_set(True)
            try:
                async with client:
                    buffer_reads(client)
                    # the broker may hold the readings of the time the hub was away (since the
                    # last session ended, or its stop): that time does not count as silence of
                    # the feeds and the sensors with a no-data timeout, once (`ingest.links`)
                    at = wall_ms()
                    # the gateways' statuses count once the broker has sent them again
                    self.dispatcher.gateways.new_session(at)
                    await self.dispatcher.link_back(at)
                    excused = at
                    for flt in self.layout.subscriptions():
                        await client.subscribe(flt, qos=1)
                    log.info("hub subscribed at %s:%d", self._host, self._port)
                    self.ready.set()
                    backoff = 0.2
                    self._client = client
                    began = wall_ms()
                    await self._session(client, stop)
                self._inbox_lost(client)
                return
            except aiomqtt.MqttError as exc:
                self._inbox_lost(client)
                short = began is not None and wall_ms() - began < _SHORT_SESSION_MS
                if began is not None:  # a session ran and ended now
                    self.dispatcher.link_lost(wall_ms())
                    began = None
                elif excused is not None:  # excused once: away again from that connection
                    self.dispatcher.link_lost(excused)
                excused = None
                self._client = None
                self.ready.clear()
                if stop.is_set():
                    return
                if short:  # (helper-139: two hubs of one client id took turns, every 0.2 s)
                    log.warning(
                        "hub: the broker ended the session at once (%s): is another client "
                        "connected with this hub's client id %r? Each hub needs its own "
                        "(--client-id); retry in %.1fs",
                        exc,
                        self._client_id,
                        backoff,
                    )
                elif refused := login_refused(exc, self._username, self._password):
                    log.error("hub: %s; retry in %.1fs", refused, backoff)
                else:
                    log.warning("hub: broker unreachable (%s); retry in %.1fs", exc, backoff)
                await _until(stop, backoff)
                backoff = min(backoff * 2, 10.0)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish (QoS 1) on the hub's connection; raise ConnectionError while there is none
        (the notification outbox tries again)."""
        client = self._client
        if client is None:
            raise ConnectionError("the hub is not connected to the broker")
        await client.publish(topic, payload, qos=1)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        inbox = client._queue  # aiomqtt's own queue, which its message iterator reads

        async def read() -> None:
            # one wait per burst: what arrived with the first message is moved without awaiting
            # (aiomqtt's iterator makes a task and a wait for every message it returns)
            async for message in client.messages:
                await self._queue.put(message)
                while not inbox.empty() and not self._queue.full():
                    self._queue.put_nowait(inbox.get_nowait())
                self._wake.set()

        reader = asyncio.create_task(read(), name="mqtt-reader")
        reader.add_done_callback(lambda _: self._wake.set())
        self._last_flush = None
        self._in_session = True
        try:
            await self._process(client, stop, reader)
        finally:
            self._in_session = False
            self._client = None
            # the reader, and the flushes of a broken session (what they did not acknowledge
            # comes again), end before the connection closes
            cancelled = await _ended(reader, *self._flushes)
            self._flushes.clear()
            self.pipeline.seen.release_all()  # what was taken, not judged, comes again
            self._in_flight.clear()
            # a flush retrying a refusing store is gone with its session: the next one says
            # again if the store still refuses (else `/readyz` kept "not ready" with idle gateways)
            self.store_held_since = None
            self.store_unavailable = None
            # what this session queued and did not hand on comes again from the broker; its
            # packet ids mean nothing to the next connection, so it must not be acknowledged there
            left = [m for m, _ in self._taken]
            self._taken.clear()
            while not self._queue.empty():
                left.append(self._queue.get_nowait())
            self._qos0_lost(left, "qos0_session_end")  # the QoS 1 ones come again
            if self._reloads:  # messages of the old configuration come again, decoded anew
                await self._run_reloads()
            if cancelled:  # the hub's, while the session's tasks ended
                raise asyncio.CancelledError

    def _inbox_lost(self, client: aiomqtt.Client) -> None:
        """What a connection's aiomqtt inbox held when it closed: its QoS 0 messages are
        gone (counted), its QoS 1 ones come again."""
        inbox = client._queue
        left = []
        while not inbox.empty():
            left.append(inbox.get_nowait())
        self._qos0_lost(left, "qos0_session_end")
