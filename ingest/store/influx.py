"""The InfluxDB store: `TimeSeriesStore` over InfluxDB's HTTP APIs.

Reads always use the v1 API (``GET /query`` with InfluxQL and ``epoch=ms``), which InfluxDB 1.x
serves, 2.x serves through its v1 compatibility endpoints (the database name maps to a bucket via
a DBRP mapping) and 3.x serves as well. Writes use:

- v1 (default): ``POST /write?db=<database>&precision=ms[&rp=<policy>]``; `open` creates the
  database and, when a `InfluxRetention` is given, creates or alters that retention policy and
  makes it the default (``CREATE RETENTION POLICY ... DEFAULT``; ``ALTER`` when it exists).
- v2 (when a `bucket` is given, for 2.x and 3.x): ``POST /api/v2/write?org=<org>&bucket=<bucket>
  &precision=ms`` with ``Authorization: Token <token>``. Buckets and their retention are made
  with the server's own tools (``influx bucket create --retention 184d``); `open` only checks the
  server answers (``GET /ping``). A token, when given, goes with every request (v1 included).

Bodies are gzip-compressed (`gzip_level`, 1 by default) when the server is not on this host: on
loopback there is no network to save, and compressing costs about as much CPU as encoding the
lines (``gzip_level=None``, the default, decides by the URL; 0 turns it off, 1-9 on).

Writes are cut into requests of at most `batch_lines` lines, up to `max_in_flight` of them sent
at once (each on its own kept-alive connection): a server takes a request's points and syncs its
log per request, so a write of several requests is stored in about the time of the slowest one
instead of the sum.

Schema (readable directly by Grafana and the ``influx`` CLI): see `ingest.store.schema`.

Errors (`ingest.store.influx_http`): a partial write keeps the valid lines and raises
`PartialWriteError` once every request of a batch has been sent; other 4xx answers are
`StoreError(retryable=False)` (a v1 write that finds its database gone re-creates it and tries
once more); 5xx, 408, 429, timeouts and refused connections are retryable.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import logging
import math
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from ingest.store.base import (
    Aggregate,
    LatestValue,
    PartialWriteError,
    PositionBatch,
    ReadingBatch,
    StoreError,
)
from ingest.store.influx_http import (
    check_status,
    literal,
    parse_json,
    select,
    span,
    transport_errors,
)
from ingest.store.influx_write import LineWriter
from ingest.store.lineproto import FieldColumn, encode_columns, series_table
from ingest.store.retention import InfluxRetention
from ingest.store.schema import (
    ALARM_EVENT,
    POSITION,
    READING,
    alarm_event_from_row,
    alarm_lines,
    position_key,
    reading_key,
)
from telemetry.registry import Registry, SensorInfo

__all__ = ["InfluxStore"]

log = logging.getLogger(__name__)

_DB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_AGGREGATES: frozenset[str] = frozenset({"mean", "min", "max", "last", "count"})
_SENSORS_PER_QUERY = 200
_TENANTS_PER_QUERY = 100

_Row = list[Any]


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


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


class InfluxStore:
    """`TimeSeriesStore` on an InfluxDB server; one `httpx.AsyncClient`."""

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

    def _source(self, measurement: str) -> str:
        """A measurement as an InfluxQL source, qualified with our retention policy."""
        if self.retention is None:
            return f'"{measurement}"'
        return f'"{self.retention.name}"."{measurement}"'

    # lifecycle

    async def open(self) -> None:
        if self._client is None:
            headers = {"Authorization": f"Token {self._token}"} if self._token else {}
            self._client = httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout_s, headers=headers
            )
        if self.bucket is not None:
            with transport_errors("ping", self.url):
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

    async def _command(self, q: str, what: str) -> None:
        with transport_errors(what, self.url):
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

    # writes

    async def write_readings(self, batch: ReadingBatch) -> None:
        sensor = batch.sensor.astype(np.intp, copy=False)
        self._check_index(sensor, "reading")
        bodies = []
        for a in range(0, len(batch), self.batch_lines):
            s = slice(a, a + self.batch_lines)
            bodies.append(
                encode_columns(
                    self._reading_keys,
                    sensor[s],
                    batch.ts[s],
                    [
                        FieldColumn("quality", batch.quality[s]),
                        FieldColumn("epoch", batch.epoch[s]),
                        FieldColumn("seq", batch.seq[s]),
                        FieldColumn("value", batch.value[s], optional=True),
                    ],
                )
            )
        await self._send([(e.data, e.skipped) for e in bodies], READING)

    async def write_positions(self, batch: PositionBatch) -> None:
        vehicle = batch.vehicle.astype(np.intp, copy=False)
        self._check_index(vehicle, "position")
        if len(batch) and (np.strings.str_len(self._position_keys[vehicle]) == 0).any():
            bad = sorted({int(v) for v in vehicle if not self._position_keys[v]})
            raise StoreError(f"positions for sensors {bad} that are not vehicles", retryable=False)
        bodies = []
        for a in range(0, len(batch), self.batch_lines):
            s = slice(a, a + self.batch_lines)
            encoded = encode_columns(
                self._position_keys,
                vehicle[s],
                batch.ts[s],
                [
                    FieldColumn("lat", batch.lat[s]),
                    FieldColumn("lon", batch.lon[s]),
                    FieldColumn("speed_kmh", batch.speed_kmh[s], optional=True),
                    FieldColumn("heading_deg", batch.heading_deg[s], optional=True),
                ],
            )
            bodies.append((encoded.data, encoded.skipped))
        await self._send(bodies, POSITION)

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        lines, skipped = alarm_lines(events)
        bodies = [
            ("".join(lines[a : a + self.batch_lines]).encode(), 0)
            for a in range(0, len(lines), self.batch_lines)
        ]
        if skipped:
            bodies.append((b"", skipped))
        await self._send(bodies, ALARM_EVENT)

    def _check_index(self, index: npt.NDArray[np.intp], what: str) -> None:
        n = len(self.registry.sensors)
        if index.size and (int(index.min()) < 0 or int(index.max()) >= n):
            raise StoreError(f"{what} batch has sensor indices outside 0..{n - 1}", retryable=False)

    async def _send(self, bodies: Sequence[tuple[bytes, int]], what: str) -> None:
        """Post every body, up to `max_in_flight` at once; partial writes are gathered and
        raised once all were sent. Any other error is raised (the first in body order) once
        the bodies in flight are done; the caller retries the whole write (it is idempotent)."""
        partial: list[PartialWriteError] = []
        if len(bodies) == 1 or self.max_in_flight == 1:
            for data, skipped in bodies:
                try:
                    await self._post(data, skipped, what)
                except PartialWriteError as exc:
                    partial.append(exc)
        else:
            slots = asyncio.Semaphore(self.max_in_flight)

            async def post(data: bytes, skipped: int) -> None:
                async with slots:
                    await self._post(data, skipped, what)

            outcomes = await asyncio.gather(
                *(post(data, skipped) for data, skipped in bodies), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, PartialWriteError):
                    partial.append(outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
        if not partial:
            return
        dropped = sum(e.dropped for e in partial)
        self.refused_lines += dropped
        reasons = "; ".join(dict.fromkeys(e.reason for e in partial))
        sample = [line for e in partial for line in e.sample][:5]
        answers = "; ".join(dict.fromkeys(str(e) for e in partial))
        raise PartialWriteError(
            f"{dropped} {what} line(s) refused, the rest kept: {answers}",
            dropped=dropped,
            reason=reasons,
            sample=sample,
        )

    async def _post(self, data: bytes, skipped: int, what: str) -> None:
        if skipped:
            self.skipped_lines += skipped
            log.warning(
                "influxdb: %d %s line(s) not written: a value line protocol cannot carry "
                "(infinite, or NaN where required) or a time outside InfluxDB's range",
                skipped,
                what,
            )
        if not data:
            return
        body = gzip.compress(data, compresslevel=self.gzip_level) if self.gzip_level else data
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_level:
            headers["Content-Encoding"] = "gzip"
        if self.bucket is not None:
            path = "/api/v2/write"
            params = {"bucket": self.bucket, "precision": "ms"}
            if self.org:
                params["org"] = self.org
        else:
            path = "/write"
            params = {"db": self.database, "precision": "ms"}
            if self.retention is not None:
                params["rp"] = self.retention.name
        for attempt in range(2):
            resp = await self._send_write(path, params, body, headers)
            if (
                attempt == 0
                and self.bucket is None
                and resp.status_code == 404
                and "database not found" in resp.text
            ):
                log.warning("influxdb: database %r is gone; creating it again", self.database)
                await self._create_database()
                continue
            check_status(resp, "write", data)
            return

    async def _send_write(
        self, path: str, params: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """One write request; the answer as an `httpx.Response` for `check_status`."""
        writer = self._writer
        if writer is None:
            with transport_errors("write", self.url):
                return await self._http.post(path, params=params, content=body, headers=headers)
        if self._token:
            headers = {**headers, "Authorization": f"Token {self._token}"}
        target = f"{path}?{urllib.parse.urlencode(params)}"
        try:
            status, answer_headers, answer = await writer.post(target, body, headers)
        except TimeoutError as exc:
            raise StoreError(f"influxdb write: timed out ({self.url})", retryable=True) from exc
        except OSError as exc:  # refused, reset, closed (ConnectionError is one)
            raise StoreError(f"influxdb write: {self.url}: {exc!r}", retryable=True) from exc
        return httpx.Response(status, headers=answer_headers, content=answer)

    # reads

    async def _query(self, q: str) -> list[tuple[Mapping[str, str], list[str], list[_Row]]]:
        """Run one InfluxQL statement; (tags, columns, rows) per series, chunks merged."""
        with transport_errors("query", self.url):
            resp = await self._http.get(
                "/query",
                params={"db": self.database, "q": q, "epoch": "ms", "chunked": "true"},
            )
        check_status(resp, "query")
        merged: dict[str, tuple[Mapping[str, str], list[str], list[_Row]]] = {}
        for line in resp.text.splitlines():
            if not line.strip():
                continue
            chunk = parse_json(line, "query")
            for result in self._statement_errors(chunk, "query"):
                for series in result.get("series", ()):
                    tags = series.get("tags") or {}
                    ident = json.dumps([series.get("name"), sorted(tags.items())])
                    if ident not in merged:
                        merged[ident] = (tags, list(series["columns"]), [])
                    merged[ident][2].extend(series.get("values") or ())
        return list(merged.values())

    @staticmethod
    def _statement_errors(body: Any, what: str) -> list[dict[str, Any]]:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            raise StoreError(f"influxdb {what}: {body['error']}", retryable=False)
        results: list[dict[str, Any]] = list(body.get("results") or ())
        for result in results:
            if "error" in result:
                raise StoreError(f"influxdb {what}: {result['error']}", retryable=False)
        return results

    def _sensor(self, index: int) -> SensorInfo:
        if not 0 <= index < len(self.registry.sensors):
            raise ValueError(f"no sensor with index {index}")
        return self.registry.sensors[index]

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        infos = [self._sensor(int(i)) for i in dict.fromkeys(sensors)]
        by_id = {s.id: s.index for s in infos}
        out: dict[int, LatestValue] = {}
        for a in range(0, len(infos), _SENSORS_PER_QUERY):
            chunk = infos[a : a + _SENSORS_PER_QUERY]
            where = " OR ".join(f'"sensor" = {literal(s.id)}' for s in chunk)
            q = select(
                ["quality", "value"],
                self._source(READING),
                where,
                'GROUP BY "sensor" ORDER BY time DESC LIMIT 1',
            )
            for tags, columns, rows in await self._query(q):
                index = by_id.get(tags.get("sensor", ""))
                if index is None or not rows:
                    continue
                col = {c: k for k, c in enumerate(columns)}
                row = rows[0]
                out[index] = LatestValue(
                    int(row[col["time"]]), _float(row[col["value"]]), int(row[col["quality"]])
                )
        return out

    async def history(
        self,
        sensor: int,
        start_ms: int,
        end_ms: int,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[tuple[int, float]]:
        info = self._sensor(sensor)
        where = f'"sensor" = {literal(info.id)} AND {span(start_ms, end_ms)}'
        if every_ms is None:
            q = select(["value", "quality"], self._source(READING), where)
        else:
            if aggregate not in _AGGREGATES:
                raise ValueError(f"aggregate {aggregate!r} is not one of {sorted(_AGGREGATES)}")
            if every_ms < 1:
                raise ValueError("every_ms must be at least 1")
            tail = f"GROUP BY time({int(every_ms)}ms) fill(none)"
            q = select([f'{aggregate}("value")'], self._source(READING), where, tail)
        rows: list[tuple[int, float]] = []
        for _tags, columns, values in await self._query(q):
            vcol = columns.index("value" if every_ms is None else aggregate)
            rows.extend((int(r[0]), _float(r[vcol])) for r in values)
        rows.sort(key=lambda r: r[0])
        return rows

    async def track(self, vehicle: int, start_ms: int, end_ms: int) -> PositionBatch:
        info = self._sensor(vehicle)
        fields = ("lat", "lon", "speed_kmh", "heading_deg")
        rows: list[_Row] = []
        columns: list[str] = ["time", *fields]
        if info.site == "vehicles":
            where = (
                f'"tenant" = {literal(info.tenant)} AND "vehicle" = {literal(info.device)} '
                f"AND {span(start_ms, end_ms)}"
            )
            q = select(fields, self._source(POSITION), where)
            for _tags, cols, values in await self._query(q):
                columns = cols
                rows.extend(values)
        rows.sort(key=lambda r: int(r[0]))
        col = {c: k for k, c in enumerate(columns)}

        def floats(name: str) -> npt.NDArray[np.float64]:
            return np.array([_float(r[col[name]]) for r in rows], dtype=np.float64)

        return PositionBatch(
            vehicle=np.full(len(rows), vehicle, dtype=np.int32),
            ts=np.array([int(r[0]) for r in rows], dtype=np.int64),
            lat=floats("lat"),
            lon=floats("lon"),
            speed_kmh=floats("speed_kmh"),
            heading_deg=floats("heading_deg"),
        )

    async def count_by_seq(self, tenant: str, device: str) -> dict[tuple[int, int], int]:
        # Only names the registry knows reach the query.
        known = {(s.tenant, s.device) for s in self.registry.sensors}
        if (tenant, device) not in known:
            return {}
        where = f'"tenant" = {literal(tenant)} AND "device" = {literal(device)}'
        q = select(["epoch", "seq"], self._source(READING), where)
        counts: Counter[tuple[int, int]] = Counter()
        for _tags, columns, values in await self._query(q):
            e, s = columns.index("epoch"), columns.index("seq")
            counts.update((int(r[e]), int(r[s])) for r in values)
        return dict(counts)

    async def alarm_events(
        self, tenants: Sequence[str] | None, start_ms: int, end_ms: int
    ) -> list[AlarmEvent]:
        if tenants is not None:
            wanted = [t for t in dict.fromkeys(tenants) if t in set(self.registry.tenants)]
            if not wanted:
                return []
            groups = [
                wanted[a : a + _TENANTS_PER_QUERY]
                for a in range(0, len(wanted), _TENANTS_PER_QUERY)
            ]
        else:
            groups = [[]]
        events: list[AlarmEvent] = []
        for group in groups:
            where = span(start_ms, end_ms)
            if group:
                where += " AND (" + " OR ".join(f'"tenant" = {literal(t)}' for t in group) + ")"
            q = select(["*"], self._source(ALARM_EVENT), where, "GROUP BY *")
            for tags, columns, rows in await self._query(q):
                events.extend(alarm_event_from_row(tags, columns, r) for r in rows)
        events.sort(key=lambda e: (e.ts, e.alarm_id))
        return events
