"""The hub process: MQTT ingest, the alert core, the stores and the HTTP API in one task group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.service import IngestService
from ingest.store.base import TimeSeriesStore
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = ["Hub", "HubSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubSettings:
    data_dir: Path
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    broker_username: str | None = None
    broker_password: str | None = field(default=None, repr=False)
    influx_url: str | None = None
    influx_database: str = "hazardhub"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    topic_root: str = "hazardhub/v1"
    client_id: str = "hazardhub-hub"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the hub's task group decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Hub:
    def __init__(
        self, registry: Registry, settings: HubSettings, extra_keys: Iterable[ApiKeySpec] = ()
    ) -> None:
        self.registry = registry
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.layout = TopicLayout(settings.topic_root)
        self.metrics = Metrics()
        self.store: TimeSeriesStore
        if settings.influx_url:
            self.store = InfluxStore(registry, settings.influx_url, settings.influx_database)
        else:
            self.store = SqliteStore(registry, settings.data_dir / "timeseries.db")
        self.statedb = StateDB(settings.data_dir / "state.db")
        self.pipeline = Pipeline(registry, self.layout, self.metrics)
        self.dispatcher = Dispatcher(registry, self.store, self.statedb, self.metrics)
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
        )
        keys = KeyRing([*registry.config.api_keys, *extra_keys])
        self.app = create_app(
            AppContext(
                registry,
                self.store,
                self.statedb,
                self.metrics,
                keys,
                ready=self.ingest.ready.is_set,
            )
        )
        self.api_started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then flush ingest, stop the API and close the stores."""
        await self.store.open()
        server = _Server(
            uvicorn.Config(
                self.app,
                host=self.settings.api_host,
                port=self.settings.api_port,
                log_level="warning",
                lifespan="off",
                access_log=False,
            )
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.ingest.run(stop), name="ingest")
                api = tg.create_task(server.serve(), name="api")
                watcher = tg.create_task(self._announce(server), name="api-started")
                await stop.wait()
                server.should_exit = True
                watcher.cancel()
                await api
        finally:
            await self.store.close()
            self.statedb.close()
            log.info("hub stopped")

    async def _announce(self, server: uvicorn.Server) -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        self.api_started.set()
