"""The hub process's settings (`HubSettings`): its data folder, broker, store and API, the
time-series store they choose (`_make_store`) and what a start says of them (`start_lines`).
Split from `hazardhub.hub`, which imports them from here; the code moved as it was.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from hazardhub.version import version
from ingest.store.base import TimeSeriesStore
from ingest.store.buffered import BufferedStore
from ingest.store.influx import InfluxStore
from ingest.store.retention import InfluxRetention, RetentionPolicy
from ingest.store.sqlite import SqliteStore
from telemetry.brokertls import BrokerTls
from telemetry.registry import Registry

__all__ = ["HubSettings", "start_lines"]


@dataclass(frozen=True, slots=True)
class HubSettings:
    data_dir: Path
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    broker_username: str | None = None
    broker_password: str | None = field(default=None, repr=False)
    broker_tls: BrokerTls | None = None  # TLS to the broker (`--broker-tls`, `--broker-ca` ...)
    influx_url: str | None = None
    influx_database: str = "hazardhub"
    # store configuration (docs/storage.md): v2 write API when a bucket is given; the v1
    # retention policy ("184d": the longest raw floor, 6 months; None: the server's default);
    # the disk spool that holds writes while InfluxDB is away (default: <data_dir>/spool)
    influx_token: str | None = field(default=None, repr=False)
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_retention: str | None = "184d"
    # the v1 retention policy of the alarm events (`hazardhub_3y`; 3 years: DOMAIN 3.1), made
    # beside the first (none without it)
    influx_alarm_retention: str = "1096d"
    spool_dir: Path | None = None
    spool_max_bytes: int = 1 << 30
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    topic_root: str = "hazardhub/v1"
    client_id: str = "hazardhub-hub"
    # the analytics state (running delays, driving time ...) is saved this often and at stop,
    # and taken up at start (alerts.snapshot); 0: never saved
    state_save_s: float = 10.0


def _make_store(registry: Registry, settings: HubSettings) -> TimeSeriesStore:
    """InfluxDB behind a disk spool when configured, else the embedded SQLite store with the
    regulations' retention (ingest.store.retention) applied hourly."""
    if not settings.influx_url:
        return SqliteStore(
            registry, settings.data_dir / "timeseries.db", retention=RetentionPolicy()
        )
    v2 = settings.influx_bucket is not None
    retention = settings.influx_retention
    influx = InfluxStore(
        registry,
        settings.influx_url,
        settings.influx_database,
        retention=InfluxRetention(
            duration=retention, alarm_duration=settings.influx_alarm_retention
        )
        if retention and not v2
        else None,
        token=settings.influx_token,
        org=settings.influx_org,
        bucket=settings.influx_bucket,
    )
    return BufferedStore(
        influx,
        registry,
        settings.spool_dir or settings.data_dir / "spool",
        max_spool_bytes=settings.spool_max_bytes,
    )


def _shown_url(url: str) -> str:
    """An InfluxDB URL as the log may say it: scheme, host, port and path, without a
    `user:password@` or a query (InfluxDB 1.x takes `?u=...&p=...` too)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def start_lines(settings: HubSettings) -> list[str]:
    """What a hub's start says it runs: its version, its store, broker, API and data folder
    (helper-149: none of it was in the log). Never a password or token."""
    s = settings
    if s.influx_url:
        where = f"bucket {s.influx_bucket}" if s.influx_bucket else f"database {s.influx_database}"
        spool = s.spool_dir or s.data_dir / "spool"
        store = f"InfluxDB {_shown_url(s.influx_url)} ({where}; spool {spool})"
    else:
        store = f"the embedded SQLite store {s.data_dir / 'timeseries.db'}"
    user = f" as {s.broker_username}" if s.broker_username else ""
    tls = f" over {s.broker_tls.describe()}" if s.broker_tls else " without TLS"
    return [
        f"hazardhub {version()} hub starting: data folder {s.data_dir}, store {store}",
        f"broker {s.broker_host}:{s.broker_port}{user}{tls} (client id {s.client_id}); "
        f"API http://{s.api_host}:{s.api_port}",
    ]
