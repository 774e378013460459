"""The InfluxDB store: `TimeSeriesStore` over the InfluxDB v1 HTTP API (``/write``, ``/query``).

The v1 API is served by InfluxDB 1.x, by 2.x (v1 compatibility) and by 3.x, so only it is
used: ``POST /query`` to create the database, ``POST /write?precision=ms`` with a gzip body,
``GET /query`` with InfluxQL and ``epoch=ms`` for reads.

Schema (readable directly by Grafana and the ``influx`` CLI)::

    reading,device=<device>,kind=<kind>,sensor=<sensor id>,site=<site>,tenant=<tenant>
        value=<float>,quality=<int>i,epoch=<int>i,seq=<int>i <event time, ms>

    position,tenant=<tenant>,vehicle=<vehicle id>
        lat=<float>,lon=<float>,speed_kmh=<float>,heading_deg=<float> <event time, ms>

- ``sensor`` is the registry's sensor id (unique in a hub); the other tags describe it and come
  from the registry too. ``quality`` is a `telemetry.quality.Quality` code; ``epoch``/``seq`` name
  the telemetry message the reading came in (see `count_by_seq`).
- A reading without a value (NaN: comm loss, sensor fault) is stored without the ``value`` field;
  its ``quality``, ``epoch`` and ``seq`` are there, so nothing vanishes. A position's
  ``speed_kmh``/``heading_deg`` are left out the same way when NaN; ``lat``/``lon`` are required.
- Idempotence: a point is (series, time); writing it again overwrites the fields it carries.
  (InfluxDB merges fields: a NaN reading re-written over a stored value at the same time leaves
  that value.)
- Lines that line protocol cannot carry (an infinite value, a NaN latitude, a time outside
  InfluxDB's range) are not written; they are counted in `InfluxStore.skipped_lines` and logged.

Reads:

- `latest`: per sensor, the newest row by event time, whether or not it has a value; ``value`` is
  NaN when that row has none (comm loss), so a silent sensor never shows an old value as current.
- `history` without ``every_ms``: every row in the range, NaN where a row has no value; with
  ``every_ms``: ``GROUP BY time(every_ms)`` (windows aligned on multiples of ``every_ms`` from the
  epoch) over the rows that have a value, windows without any left out.
- `count_by_seq`: rows per (epoch, seq) of one device, counted client-side (they are fields, not
  tags).

Errors: a 4xx answer is `StoreError(retryable=False)` with the server's message (408 and 429 are
retryable); 5xx, timeouts and connection failures are `StoreError(retryable=True)`.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np
import numpy.typing as npt

from ingest.store.base import Aggregate, LatestValue, PositionBatch, ReadingBatch, StoreError
from ingest.store.lineproto import FieldColumn, encode_columns, series_key, series_table
from telemetry.registry import Registry, SensorInfo

__all__ = ["InfluxStore"]

log = logging.getLogger(__name__)

READING = "reading"
POSITION = "position"
_DB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_AGGREGATES: frozenset[str] = frozenset({"mean", "min", "max", "last", "count"})
_MIN_NS = -9223372036854775806
_MAX_NS = 9223372036854775806
_SENSORS_PER_QUERY = 200
_RETRYABLE_4XX = frozenset({408, 429})

_Row = list[Any]


def _literal(text: str) -> str:
    """An InfluxQL string literal."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"newline in query literal {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _select(fields: Sequence[str], measurement: str, where: str, tail: str = "") -> str:
    """An InfluxQL SELECT. Names are ours; every value in `where` went through `_literal` or is a
    number, and string values come from the registry, never from a request."""
    names = ", ".join(f'"{f}"' if f.isidentifier() else f for f in fields)
    return f'SELECT {names} FROM "{measurement}" WHERE {where} {tail}'.rstrip()  # noqa: S608


def _span(start_ms: int, end_ms: int) -> str:
    return f"time >= {_time_ns(start_ms)} AND time < {_time_ns(end_ms)}"


def _time_ns(ms: int) -> int:
    return max(_MIN_NS, min(_MAX_NS, int(ms) * 1_000_000))


def _parse_int(text: str) -> int | float:
    # InfluxDB writes -0.0 as "-0"; keep the sign.
    return -0.0 if text == "-0" else int(text)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_int=_parse_int)
    except ValueError as exc:
        raise StoreError(
            f"influxdb {what}: not a JSON answer: {text[:200]!r}", retryable=False
        ) from exc


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def _server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return resp.headers.get("X-Influxdb-Error") or resp.text.strip() or resp.reason_phrase


def _check_status(resp: httpx.Response, what: str) -> None:
    if resp.is_success:
        return
    message = f"influxdb {what}: HTTP {resp.status_code}: {_server_message(resp)}"
    code = resp.status_code
    raise StoreError(message, retryable=code >= 500 or code in _RETRYABLE_4XX)


@contextmanager
def _transport_errors(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise StoreError(f"influxdb {what}: timed out ({url}): {exc!r}", retryable=True) from exc
    except httpx.TransportError as exc:
        raise StoreError(f"influxdb {what}: {url}: {exc!r}", retryable=True) from exc


class InfluxStore:
    """`TimeSeriesStore` on an InfluxDB server (v1 API); one `httpx.AsyncClient`."""

    def __init__(
        self,
        registry: Registry,
        url: str,
        database: str = "hazardhub",
        *,
        timeout_s: float = 10.0,
        batch_lines: int = 5000,
    ) -> None:
        if not _DB_NAME.match(database):
            raise ValueError(f"database name {database!r} must match {_DB_NAME.pattern}")
        if batch_lines < 1:
            raise ValueError("batch_lines must be at least 1")
        self.registry = registry
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        self.batch_lines = batch_lines
        self.skipped_lines = 0
        self._client: httpx.AsyncClient | None = None
        sensors = registry.sensors
        self._reading_keys = series_table([_reading_key(s) for s in sensors] or ["-"])
        self._position_keys = series_table(
            [_position_key(s) if s.site == "vehicles" else "" for s in sensors] or ["-"]
        )

    # lifecycle

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s)
        client = self._client
        with _transport_errors("create database", self.url):
            resp = await client.post("/query", params={"q": f'CREATE DATABASE "{self.database}"'})
        _check_status(resp, "create database")
        self._statement_errors(_json(resp.text, "create database"), "create database")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        for a in range(0, len(batch), self.batch_lines):
            s = slice(a, a + self.batch_lines)
            encoded = encode_columns(
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
            await self._post(encoded.data, encoded.skipped, READING)

    async def write_positions(self, batch: PositionBatch) -> None:
        vehicle = batch.vehicle.astype(np.intp, copy=False)
        self._check_index(vehicle, "position")
        if len(batch) and (np.strings.str_len(self._position_keys[vehicle]) == 0).any():
            bad = sorted({int(v) for v in vehicle if not self._position_keys[v]})
            raise StoreError(f"positions for sensors {bad} that are not vehicles", retryable=False)
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
            await self._post(encoded.data, encoded.skipped, POSITION)

    def _check_index(self, index: npt.NDArray[np.intp], what: str) -> None:
        n = len(self.registry.sensors)
        if index.size and (int(index.min()) < 0 or int(index.max()) >= n):
            raise StoreError(f"{what} batch has sensor indices outside 0..{n - 1}", retryable=False)

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
        with _transport_errors("write", self.url):
            resp = await self._http.post(
                "/write",
                params={"db": self.database, "precision": "ms"},
                content=gzip.compress(data, compresslevel=1),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
            )
        _check_status(resp, "write")

    # reads

    async def _query(self, q: str) -> list[tuple[Mapping[str, str], list[str], list[_Row]]]:
        """Run one InfluxQL statement; (tags, columns, rows) per series, chunks merged."""
        with _transport_errors("query", self.url):
            resp = await self._http.get(
                "/query",
                params={"db": self.database, "q": q, "epoch": "ms", "chunked": "true"},
            )
        _check_status(resp, "query")
        merged: dict[str, tuple[Mapping[str, str], list[str], list[_Row]]] = {}
        for line in resp.text.splitlines():
            if not line.strip():
                continue
            chunk = _json(line, "query")
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
            where = " OR ".join(f'"sensor" = {_literal(s.id)}' for s in chunk)
            q = _select(
                ["quality", "value"], READING, where, 'GROUP BY "sensor" ORDER BY time DESC LIMIT 1'
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
        where = f'"sensor" = {_literal(info.id)} AND {_span(start_ms, end_ms)}'
        if every_ms is None:
            q = _select(["value", "quality"], READING, where)
        else:
            if aggregate not in _AGGREGATES:
                raise ValueError(f"aggregate {aggregate!r} is not one of {sorted(_AGGREGATES)}")
            if every_ms < 1:
                raise ValueError("every_ms must be at least 1")
            tail = f"GROUP BY time({int(every_ms)}ms) fill(none)"
            q = _select([f'{aggregate}("value")'], READING, where, tail)
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
                f'"tenant" = {_literal(info.tenant)} AND "vehicle" = {_literal(info.device)} '
                f"AND {_span(start_ms, end_ms)}"
            )
            q = _select(fields, POSITION, where)
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
        where = f'"tenant" = {_literal(tenant)} AND "device" = {_literal(device)}'
        q = _select(["epoch", "seq"], READING, where)
        counts: Counter[tuple[int, int]] = Counter()
        for _tags, columns, values in await self._query(q):
            e, s = columns.index("epoch"), columns.index("seq")
            counts.update((int(r[e]), int(r[s])) for r in values)
        return dict(counts)


def _reading_key(s: SensorInfo) -> str:
    tags = {"tenant": s.tenant, "site": s.site, "device": s.device, "sensor": s.id, "kind": s.kind}
    return series_key(READING, tags)


def _position_key(s: SensorInfo) -> str:
    return series_key(POSITION, {"tenant": s.tenant, "vehicle": s.device})
