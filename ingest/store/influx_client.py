"""`InfluxStore`'s hold on the server: its settings, the httpx client (and the leaner
`LineWriter` for writes over plain HTTP), the database and its retention policy, InfluxQL
commands and the errors a statement answers with; the series keys of the configuration.

The reads (`ingest.store.influx_read`) and the writes (`ingest.store.influx_send`) build on it;
`ingest.store.influx.InfluxStore` is the two together.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np
import numpy.typing as npt

from ingest.store.base import StoreError
from ingest.store.influx_http import check_status, parse_json, transport_errors
from ingest.store.influx_write import LineWriter
from ingest.store.lineproto import series_table
from ingest.store.retention import InfluxRetention
from ingest.store.schema import position_key, reading_key
from telemetry.registry import Registry

__all__ = ["InfluxClient"]

_DB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _gzip_for(url: str) -> int:
    """Level 1 for a server over a network, 0 (off) for one on loopback."""
    host = httpx.URL(url).host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost
        loopback = False
    return 0 if loopback else 1


def _series_tables(registry: Registry) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.bytes_]]:
    """The series keys of readings and positions, by registry index."""
    sensors = registry.sensors
    readings = series_table([reading_key(s) for s in sensors] or ["-"])
    positions = series_table(
        [position_key(s) if s.site == "vehicles" else "" for s in sensors] or ["-"]
    )
    return readings, positions


def _write_auth(token: str | None, url: httpx.URL) -> dict[str, str]:
    if token:
        return {"Authorization": f"Token {token}"}
    if url.username or url.password:
        pair = f"{url.username}:{url.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


class InfluxClient:
    """The settings and the connection of an `InfluxStore`; see `ingest.store.influx`."""

    def __init__(
        self,
        registry: Registry,
        url: str,
        database: str | None = None,
        *,
        timeout_s: float = 10.0,
        batch_lines: int = 5000,
        retention: InfluxRetention | None = None,
        token: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        gzip_level: int | None = None,
        max_in_flight: int = 4,
    ) -> None:
        database = database or bucket or "hazardhub"
        if not _DB_NAME.match(database):
            raise ValueError(f"database name {database!r} must match {_DB_NAME.pattern}")
        if batch_lines < 1:
            raise ValueError("batch_lines must be at least 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if bucket is not None and retention is not None:
            raise ValueError("with a v2 bucket, set retention on the bucket, not here")
        self.registry = registry
        self.url = url.rstrip("/")
        # the URL as errors and logs say it: without a user:password it may carry
        self.shown_url = str(httpx.URL(self.url).copy_with(userinfo=b""))
        self.database = database
        self.timeout_s = timeout_s
        self.batch_lines = batch_lines
        self.retention = retention
        self.org = org
        self.bucket = bucket
        self.gzip_level = _gzip_for(self.url) if gzip_level is None else gzip_level
        self.max_in_flight = max_in_flight
        self._token = token
        self.skipped_lines = 0  # lines line protocol cannot carry (never sent)
        self.refused_lines = 0  # lines the server refused in partial writes
        self._client: httpx.AsyncClient | None = None
        # writes over plain HTTP go through the leaner `LineWriter` (https: httpx)
        url_ = httpx.URL(self.url)
        self._writer = (
            LineWriter(url_.host, url_.port or 80, timeout_s)
            if url_.scheme == "http" and not url_.path.strip("/")
            else None
        )
        # what `LineWriter`'s requests carry to authenticate (httpx's take the URL's user itself):
        # the token, else the URL's user and password as Basic auth (InfluxDB 1.x reads both)
        self._write_auth = _write_auth(token, url_)
        self._reading_keys, self._position_keys = _series_tables(registry)

    async def prepare_reload(self, registry: Registry) -> Callable[[], None]:
        """The series keys of a new configuration, and the step that switches to them."""
        tables = _series_tables(registry)

        def commit() -> None:
            self.registry = registry
            self._reading_keys, self._position_keys = tables

        return commit

    @property
    def api(self) -> str:
        return "v2" if self.bucket else "v1"

    # lifecycle

    async def open(self) -> None:
        if self._client is None:
            headers = {"Authorization": f"Token {self._token}"} if self._token else {}
            self._client = httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout_s, headers=headers
            )
        if self.bucket is not None:
            with transport_errors("ping", self.shown_url):
                resp = await self._client.get("/ping")
            check_status(resp, "ping")
            return
        await self._create_database()

    async def _create_database(self) -> None:
        await self._command(f'CREATE DATABASE "{self.database}"', "create database")
        rp = self.retention
        if rp is None:
            return
        shard = f" SHARD DURATION {rp.shard_duration}" if rp.shard_duration else ""
        where = f'"{rp.name}" ON "{self.database}" DURATION {rp.duration}'
        try:
            await self._command(
                f"CREATE RETENTION POLICY {where} REPLICATION 1{shard} DEFAULT",
                "create retention policy",
            )
        except StoreError as exc:
            if exc.retryable or "already exists" not in str(exc):
                raise
            await self._command(
                f"ALTER RETENTION POLICY {where}{shard} DEFAULT", "alter retention policy"
            )
        # the alarm events' (3 years), not the default
        where = f'"{rp.alarm_name}" ON "{self.database}" DURATION {rp.alarm_duration}'
        try:
            await self._command(
                f"CREATE RETENTION POLICY {where} REPLICATION 1", "create retention policy"
            )
        except StoreError as exc:
            if exc.retryable or "already exists" not in str(exc):
                raise
            await self._command(f"ALTER RETENTION POLICY {where}", "alter retention policy")

    async def _command(self, q: str, what: str) -> None:
        with transport_errors(what, self.shown_url):
            resp = await self._http.post("/query", params={"q": q})
        check_status(resp, what)
        self._statement_errors(parse_json(resp.text, what), what)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._writer is not None:
            await self._writer.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("InfluxStore is not open; call open() first")
        return self._client

    @staticmethod
    def _statement_errors(body: Any, what: str) -> list[dict[str, Any]]:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            raise StoreError(f"influxdb {what}: {body['error']}", retryable=False)
        results: list[dict[str, Any]] = list(body.get("results") or ())
        for result in results:
            if "error" in result:
                raise StoreError(f"influxdb {what}: {result['error']}", retryable=False)
        return results
