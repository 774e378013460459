"""The hub process: MQTT ingest, the alert core, the stores and the HTTP API in one task group.

The terminal confirmations kept while the broker is away are `hazardhub.terminalconfirmations`;
the hub's settings and the store they choose, `hazardhub.hubsettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import orjson
import uvicorn

from alerts.alarmfeed import AlarmFeed, alarm_body
from alerts.alarms import TERMINAL_RULE, AlarmEvent
from alerts.notify.channels import Senders
from alerts.notify.notifier import Notifier
from alerts.notify.outboxdb import OutboxDB, outbox_path
from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing
from api.configadmin import ConfigAdmin
from api.configlimits import over_limit_warnings
from api.registrydb import RegistryDB
from api.stream import Broadcaster
from hazardhub.hubsettings import HubSettings, _make_store, start_lines
from hazardhub.private import PRIVATE_FILES, keep_private
from hazardhub.reminders import REMINDERS_METRIC, DriverReminders
from hazardhub.supervisions import SUPERVISIONS_METRIC, SupervisionOutbox
from hazardhub.terminalconfirmations import TerminalConfirmations
from ingest.calibrations import take_stored_calibrations
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.seqjournal import SEQ_FILE, SeqJournal, configured
from ingest.service import IngestService
from ingest.store.base import TimeSeriesStore
from telemetry.clock import wall_ms
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = ["ApiStartError", "Hub", "HubSettings", "start_lines"]

log = logging.getLogger(__name__)


def _settle_memory() -> None:
    """Move what exists now (the registry, the rule tables, the app) out of the collector's
    sight: a full collection then walks only what requests and batches make, not the whole
    configuration (bench/api.py: the latest values of 10,000 sensors, p99 220 -> 75 ms)."""
    gc.unfreeze()  # what a configuration change left behind is collected first
    gc.collect()
    gc.freeze()


class ApiStartError(RuntimeError):
    """The API cannot listen on its address (taken since the start's check, or not one of this
    machine's): the hub stops."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the hub's task group decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Hub(TerminalConfirmations):
    def __init__(
        self,
        registry: Registry,
        settings: HubSettings,
        extra_keys: Iterable[ApiKeySpec] = (),
        *,
        build: Callable[[HubConfig], Registry] | None = None,
        config_source: str = "config",
    ) -> None:
        """With `build` (a configuration to a registry, with the profiles and rule packs of the
        files), the configuration can change while the hub runs (`api.configadmin`): the hub
        then starts with its newest revision unless `registry`'s configuration (the file)
        changed since it was last read."""
        # its databases hold webhook secrets: 0600 (the embedded store's readings too)
        keep_private(
            settings.data_dir,
            PRIVATE_FILES if not settings.influx_url else PRIVATE_FILES[:-1],
        )
        self.registrydb = RegistryDB(settings.data_dir / "registry.db")
        self.config: ConfigAdmin | None = None
        if build is not None:
            self.config = ConfigAdmin(self.registrydb, build, self.switch)
            registry = self.config.startup(registry, config_source)
        self.registry = registry
        self.settings = settings
        self.layout = TopicLayout(settings.topic_root)
        self.metrics = Metrics()
        self.store: TimeSeriesStore = _make_store(registry, settings)
        self.statedb = StateDB(settings.data_dir / "state.db")
        # before anything journals (the dispatcher retires alarms at start): a state database
        # behind the outbox gets its ids raised past the outbox's first (alerts.notify.outboxdb)
        self.outbox = OutboxDB(outbox_path(self.statedb.path))
        self.outbox.start(self.statedb)
        self.pipeline = Pipeline(registry, self.layout, self.metrics)
        # the newest batch judged of each device, so a gap across a restart is counted
        self.seqs = SeqJournal(
            settings.data_dir / SEQ_FILE, self.pipeline.seen, known=configured(registry)
        )
        self.dispatcher = Dispatcher(
            registry,
            self.store,
            self.statedb,
            self.metrics,
            state_file=settings.data_dir / "analytics-state.npz" if settings.state_save_s else None,
            save_every_s=settings.state_save_s or 10.0,
        )
        # a device whose gateway's clock fell back: its alarm (ingest.clocks)
        self.pipeline.clocks.on_change = self.dispatcher.clock_status
        self.pipeline.clocks.seed(self.dispatcher.book.active_clock_alarms())
        self.pipeline.clocks.seed_newest(self.dispatcher.newest_by_device())
        self.ingest = IngestService(
            self.pipeline,
            self.dispatcher,
            self.statedb,
            self.metrics,
            self.layout,
            host=settings.broker_host,
            port=settings.broker_port,
            client_id=settings.client_id,
            username=settings.broker_username,
            password=settings.broker_password,
            tls=settings.broker_tls,
        )
        self.ingest.seq_journal = self.seqs
        self._extra_keys = tuple(extra_keys)
        self.keys = KeyRing([*registry.config.api_keys, *self._extra_keys], self.registrydb)
        # alarm events on the live stream follow the journal, and a resumed stream is replayed
        # from it (on connections of the feed's own)
        self.stream_feed = AlarmFeed(self.statedb.path)
        self.stream = Broadcaster(registry, feed=self.stream_feed)
        notify = registry.config.notify
        self.senders = Senders(
            smtp=notify.smtp,
            smtp_password=os.environ.get("HAZARDHUB_SMTP_PASSWORD"),
            mqtt_publish=self.ingest.publish,
            topic_root=settings.topic_root,
            sse_publish=self.stream.on_notification,
        )
        self.notifier = Notifier(
            self.statedb, registry, self.senders, notify, metrics=self.metrics, outbox=self.outbox
        )
        # objects an enterprise key wrote before owners were kept stay the enterprise's; those
        # of keys no longer known are said
        known = [k.name for k in (*registry.config.api_keys, *self._extra_keys)]
        known += [k.name for k in self.registrydb.api_keys()]
        for line in self.notifier.catalog.unowned(known):
            log.warning("%s", line)
        claimed = self.notifier.catalog.claim_for_enterprises(
            [
                k.name
                for k in (*registry.config.api_keys, *self._extra_keys)
                if k.role == "enterprise"
            ]
            + [k.name for k in self.registrydb.api_keys() if k.role == "enterprise"]
        )
        if claimed:
            log.info("%d notification objects written by enterprise keys are theirs", claimed)
        for line in self.notifier.guarded_refusals():  # what the upgrade's guard will refuse
            log.warning("%s", line)
        # the file that won at start is not checked against the objects made through the API
        for line in over_limit_warnings(self.notifier, registry.config):
            log.warning("%s", line)
        self.dispatcher.listeners.append(self.stream.on_alarms)
        self.dispatcher.listeners.append(self._wake_notifier)
        # a vehicle alarm raised: the driver hears the carrier's reminder (JT/T 808 0x8300)
        self.reminders = DriverReminders(
            lambda: self.registry,
            self.ingest.publish,
            self.ingest.ready,
            lambda outcome: self.metrics.inc(REMINDERS_METRIC, outcome=outcome),
            layout=self.layout,
        )
        self.dispatcher.listeners.append(self.reminders.on_alarms)
        # the centre's 督办 of a vehicle alarm, to the JT/T 809 gateway (`api.alarmsupervise`)
        self.supervisions = SupervisionOutbox(
            self.ingest.publish,
            self.ingest.ready,
            lambda outcome: self.metrics.inc(SUPERVISIONS_METRIC, outcome=outcome),
        )
        self.dispatcher.reading_listeners.append(self.stream.on_readings)
        self.ctx = AppContext(
            registry,
            self.store,
            self.statedb,
            self.metrics,
            self.keys,
            not_ready=self.ingest.not_ready,
            stream=self.stream,
            desk=self.dispatcher.desk,
            notifier=self.notifier,
            on_events=self.on_events,
            config=self.config,
            send_command=self._send_command,
        )
        self.app = create_app(self.ctx)
        self.api_started = asyncio.Event()
        # terminal confirmations not published yet, (tenant, vehicle) -> alarm type mask, oldest
        # first; `_confirmations_kept` is set when one could not be published, for
        # `_republish_confirmations`
        self._confirmations: dict[tuple[str, str], int] = {}
        self._confirmations_kept = asyncio.Event()
        self._confirmations_lock = asyncio.Lock()

    async def switch(self, registry: Registry, rev: int) -> None:
        """Run with a new configuration from now on, without a restart: between two batches
        (`IngestService.reload`), every part takes the new registry at once; alarms of what is
        gone, or whose rules changed, are cleared and handed on like any other alarm events."""
        events: list[AlarmEvent] = []

        async def apply() -> None:
            commit_store = await self.store.prepare_reload(registry)
            # nothing is awaited until all has switched: readers see the old or the new, whole
            events.extend(self.dispatcher.reload(registry, wall_ms()))
            commit_store()
            self.pipeline.set_registry(registry)
            self.stream.set_registry(registry)
            self.keys.set_config_keys([*registry.config.api_keys, *self._extra_keys])
            self.ctx.registry = registry
            self.ctx.desk = self.dispatcher.desk
            self.registry = registry
            # before ingest judges again: the stored last calibrations of sensors new to the check
            d = self.dispatcher
            await take_stored_calibrations(self.store, d.table, d.state, wall_ms())

        await self.ingest.reload(apply)
        self.notifier.set_registry(registry)
        self.senders.set_smtp(registry.config.notify.smtp)
        _settle_memory()
        self.metrics.inc("hazardhub_config_reloads_total")
        log.info("configuration revision %d running (%d sensors)", rev, len(registry.sensors))
        if events:
            await self.dispatcher.store_events(events)
            await self.on_events(events)

    async def _send_command(self, tenant: str, vehicle: str, payload: bytes, until: int) -> bool:
        topic = self.layout.vehicle_command(tenant, vehicle)
        return await self.supervisions.send(topic, payload, until)

    async def _wake_notifier(self, events: Sequence[AlarmEvent]) -> None:
        if events:
            self.notifier.wake.set()

    async def on_events(self, events: Sequence[AlarmEvent]) -> None:
        """Lifecycle events made through the API: to the live stream, the alarm topic and the
        notification pipeline (which reads them from the journal)."""
        await self.stream.on_alarms(events)
        peaks = await self.ingest.peaks(events)
        for ev in events:
            self.metrics.inc("hazardhub_alarm_events_total", kind=ev.kind)
            if ev.kind == "acknowledged" and ev.rule == TERMINAL_RULE:
                await self._confirm_terminal(ev)
            try:
                await self.ingest.publish(
                    self.layout.alarms(ev.tenant, ev.site),
                    orjson.dumps(alarm_body(ev, self.registry, peaks.get(ev.event_id, ev.tier))),
                )
            except Exception as exc:  # the broker is away: the journal and outbox still have it
                self.metrics.inc("hazardhub_alarm_publish_failures_total")
                log.warning("alarm event %d not published: %s", ev.event_id, exc)
        self.notifier.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then flush ingest, stop the API and close the stores."""
        for line in start_lines(self.settings):
            log.info("%s", line)
        await self.store.open()
        await self.dispatcher.confirm_restored()
        # calibration intervals the state does not know: from the stored readings, before any
        # reading is judged (else they count from the next one)
        d = self.dispatcher
        await take_stored_calibrations(self.store, d.table, d.state, wall_ms())
        _settle_memory()
        server = _Server(
            uvicorn.Config(
                self.app,
                host=self.settings.api_host,
                port=self.settings.api_port,
                log_level="warning",
                # an open event stream (a dashboard) must not hold up a stop
                timeout_graceful_shutdown=3,
                lifespan="off",
                access_log=False,
            )
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.ingest.run(stop), name="ingest")
                notifier = tg.create_task(self.notifier.run(stop), name="notify")
                api = tg.create_task(self._serve(server), name="api")
                watcher = tg.create_task(self._announce(server), name="api-started")
                confirmer = tg.create_task(
                    self._republish_confirmations(), name="terminal-confirmations"
                )
                reminder = tg.create_task(self.reminders.run(), name="driver-reminders")
                supervisions = tg.create_task(self.supervisions.run(), name="alarm-supervisions")
                looker = tg.create_task(self._watch_readiness(), name="readiness-watch")
                await stop.wait()
                self.stream.close()  # the event streams end first, each told so
                server.should_exit = True
                watcher.cancel()
                confirmer.cancel()
                reminder.cancel()
                supervisions.cancel()
                looker.cancel()
                if self._confirmations:
                    log.warning(
                        "terminal confirmations lost at stop (not published, no broker): %s; "
                        "their terminals keep those alarms until the bits are cleared on board",
                        ", ".join(f"{t}/{v}" for t, v in self._confirmations),
                    )
                await api
                await notifier
        except* ApiStartError as failed:
            log.error("hub stops: %s", failed.exceptions[0])
            raise
        except* Exception as failed:  # a part failed: the hub ends with it, not half alive
            for exc in failed.exceptions:
                log.error("hub stops: %s", exc, exc_info=exc)
            raise
        finally:
            try:
                await self.dispatcher.save_state()
            except OSError as exc:
                log.error("analytics state not saved at stop: %s", exc)
            self.seqs.close()
            await self.senders.aclose()
            await self.store.close()
            self.outbox.close()
            self.stream_feed.close()
            self.statedb.close()
            self.registrydb.close()
            log.info("hub stopped")

    async def _serve(self, server: uvicorn.Server) -> None:
        """Serve the API until `server.should_exit`. uvicorn, unable to listen, logs why and
        raises SystemExit: left in the task, that leaves the event loop at once, past the task
        group, and every task is cancelled in no order (the ingest's cancellation was lost,
        and the hub never ended: helper-132). Said instead as an `ApiStartError` naming the
        address, which stops the hub as any part's failure does."""
        try:
            await server.serve()
        except SystemExit as exc:
            where = f"{self.settings.api_host}:{self.settings.api_port}"
            cause = exc.__context__
            why = os.strerror(cause.errno) if isinstance(cause, OSError) and cause.errno else cause
            raise ApiStartError(
                f"the API cannot listen on {where}"
                + (f" ({why})" if why else f" (uvicorn exited with {exc.code})")
            ) from cause

    async def _watch_readiness(self) -> None:
        """Look at the hub's readiness every second: since when it has been not ready for its
        cause (the dashboard's banner says so) counts from then, not from the first request
        that asked (`api.readywatch`)."""
        said = False
        while True:
            try:
                self.ctx.readiness.look(wall_ms())
            except Exception as exc:  # not the hub's end: /readyz says it (500)
                if not said:
                    log.warning("the hub's readiness cannot be read: %s", exc)
                said = True
            await asyncio.sleep(1)

    async def _announce(self, server: uvicorn.Server) -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        self.api_started.set()
