"""`InfluxStore`'s reads, over the v1 API (``GET /query`` with InfluxQL and ``epoch=ms``): the
latest values, history (raw or by window), vehicle tracks, readings per sequence number and
alarm events, the answers' chunks merged by series."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from ingest.store.base import MEASURED_QUALITIES, Aggregate, LatestValue, PositionBatch
from ingest.store.influx_client import InfluxClient
from ingest.store.influx_http import (
    check_status,
    literal,
    parse_json,
    select,
    span,
    transport_errors,
)
from ingest.store.schema import ALARM_EVENT, POSITION, READING, alarm_event_from_row
from telemetry.quality import Quality
from telemetry.registry import SensorInfo

__all__ = ["InfluxReads"]

_AGGREGATES: frozenset[str] = frozenset({"mean", "min", "max", "last", "count"})
_SENSORS_PER_QUERY = 200
_TENANTS_PER_QUERY = 100
_CALIBRATION = int(Quality.CALIBRATION)

_Row = list[Any]
_EVENT_FIELDS = ("alarm_id", "level", "arrival")  # an alarm event's fields never left out
_HALF_SEEN_WAITS = (0.05, 0.1, 0.2)  # s between asking again for points being written

log = logging.getLogger("ingest.store.influx")


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def _whole(columns: list[str], rows: list[_Row], required: Sequence[str]) -> list[_Row]:
    at = [columns.index(c) for c in required if c in columns]
    return [r for r in rows if all(r[k] is not None for k in at)]


def _half_seen(
    series: list[tuple[Mapping[str, str], list[str], list[_Row]]], required: Sequence[str]
) -> int:
    """How many rows lack one of the `required` fields."""
    return sum(len(rows) - len(_whole(columns, rows, required)) for _t, columns, rows in series)


class InfluxReads(InfluxClient):
    """The reads of an `InfluxStore`."""

    def _source(self, measurement: str) -> str:
        """A measurement as an InfluxQL source, qualified with our retention policy (the alarm
        events': theirs, and the readings' where a hub of before kept them, until it drops
        them)."""
        rp = self.retention
        if rp is None:
            return f'"{measurement}"'
        if measurement == ALARM_EVENT:  # and those written by a hub of before their policy
            return f'"{rp.alarm_name}"."{measurement}", "{rp.name}"."{measurement}"'
        return f'"{rp.name}"."{measurement}"'

    async def _query(
        self, q: str, required: Sequence[str] = ()
    ) -> list[tuple[Mapping[str, str], list[str], list[_Row]]]:
        """Run one InfluxQL statement; (tags, columns, rows) per series, chunks merged.

        `required` names fields every point we write carries (a reading's quality, epoch and
        seq). InfluxDB 1.x may answer a point being written with some of its fields null
        (influxdata/influxdb#8546, "won't fix": the cache takes a point field by field); such a
        half-seen row is asked for again a few times, then left out of the answer (it is
        whole on a later read)."""
        for wait in _HALF_SEEN_WAITS:
            series = await self._query_once(q)
            if not required or not _half_seen(series, required):
                return series
            await asyncio.sleep(wait)
        series = await self._query_once(q)
        left = _half_seen(series, required)
        if left:
            log.warning(
                "InfluxDB answered %d point(s) with %s null (points being written): left out",
                left,
                "/".join(required),
            )
            series = [(t, c, _whole(c, rows, required)) for t, c, rows in series]
        return series

    async def _query_once(self, q: str) -> list[tuple[Mapping[str, str], list[str], list[_Row]]]:
        with transport_errors("query", self.shown_url):
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
            for tags, columns, rows in await self._query(q, required=("quality",)):
                index = by_id.get(tags.get("sensor", ""))
                if index is None or not rows:
                    continue
                col = {c: k for k, c in enumerate(columns)}
                row = rows[0]
                out[index] = LatestValue(
                    int(row[col["time"]]), _float(row[col["value"]]), int(row[col["quality"]])
                )
        return out

    async def last_calibrations(
        self, sensors: Sequence[int], start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """``SELECT last("quality") ... WHERE "quality" = 6 GROUP BY "sensor"`` over a few
        hundred sensors a query. The quality is a field: the server reads the quality of every
        reading of those sensors in the range (about a million a second on InfluxDB 1.6 on the
        test VM), which the caller keeps short."""
        infos = [self._sensor(int(i)) for i in dict.fromkeys(sensors)]
        by_id = {s.id: s.index for s in infos}
        out: dict[int, int] = {}
        for a in range(0, len(infos), _SENSORS_PER_QUERY):
            chunk = infos[a : a + _SENSORS_PER_QUERY]
            which = " OR ".join(f'"sensor" = {literal(s.id)}' for s in chunk)
            where = f'({which}) AND "quality" = {_CALIBRATION} AND {span(start_ms, end_ms)}'
            q = select(['last("quality")'], self._source(READING), where, 'GROUP BY "sensor"')
            for tags, _columns, rows in await self._query(q):
                index = by_id.get(tags.get("sensor", ""))
                if index is not None and rows:
                    out[index] = max(int(r[0]) for r in rows)
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
            good, out_of_range = MEASURED_QUALITIES
            measured = f'{where} AND ("quality" = {good} OR "quality" = {out_of_range})'
            q = select([f'{aggregate}("value")'], self._source(READING), measured, tail)
        rows: list[tuple[int, float]] = []
        for _tags, columns, values in await self._query(q):
            vcol = columns.index("value" if every_ms is None else aggregate)
            rows.extend((int(r[0]), _float(r[vcol])) for r in values)
        rows.sort(key=lambda r: r[0])
        return rows

    async def readings(
        self, sensor: int, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[tuple[int, float, int]]:
        info = self._sensor(sensor)
        where = f'"sensor" = {literal(info.id)} AND {span(start_ms, end_ms)}'
        tail = "" if limit is None else f"LIMIT {int(limit)}"
        q = select(["value", "quality"], self._source(READING), where, tail)
        rows: list[tuple[int, float, int]] = []
        for _tags, columns, values in await self._query(q, required=("quality",)):
            v, qc = columns.index("value"), columns.index("quality")
            rows.extend((int(r[0]), _float(r[v]), int(r[qc])) for r in values)
        rows.sort(key=lambda r: r[0])
        return rows if limit is None else rows[:limit]

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
            for _tags, cols, values in await self._query(q, required=("lat", "lon")):
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

    async def last_positions(self, vehicles: Sequence[int]) -> PositionBatch:
        """``SELECT ... GROUP BY "tenant", "vehicle" ORDER BY time DESC LIMIT 1`` over a few
        hundred vehicles a query: the newest point of each series, by its time (event time)."""
        infos = [self._sensor(int(i)) for i in dict.fromkeys(vehicles)]
        infos = [s for s in infos if s.site == "vehicles"]
        by_name = {(s.tenant, s.device): s.index for s in infos}
        fields = ("lat", "lon", "speed_kmh", "heading_deg")
        found: list[tuple[int, dict[str, Any]]] = []
        for a in range(0, len(infos), _SENSORS_PER_QUERY):
            chunk = infos[a : a + _SENSORS_PER_QUERY]
            where = " OR ".join(
                f'("tenant" = {literal(s.tenant)} AND "vehicle" = {literal(s.device)})'
                for s in chunk
            )
            tail = 'GROUP BY "tenant", "vehicle" ORDER BY time DESC LIMIT 1'
            q = select(fields, self._source(POSITION), where, tail)
            for tags, columns, rows in await self._query(q, required=("lat", "lon")):
                index = by_name.get((tags.get("tenant", ""), tags.get("vehicle", "")))
                if index is not None and rows:
                    found.append((index, dict(zip(columns, rows[0], strict=True))))

        def floats(name: str) -> npt.NDArray[np.float64]:
            return np.array([_float(row.get(name)) for _i, row in found], dtype=np.float64)

        return PositionBatch(
            vehicle=np.array([i for i, _row in found], dtype=np.int32),
            ts=np.array([int(row["time"]) for _i, row in found], dtype=np.int64),
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
        for _tags, columns, values in await self._query(q, required=("epoch", "seq")):
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
            for tags, columns, rows in await self._query(q, required=_EVENT_FIELDS):
                events.extend(alarm_event_from_row(tags, columns, r) for r in rows)
        events.sort(key=lambda e: (e.ts, e.alarm_id))
        return events
