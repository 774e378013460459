"""What the run observed: every telemetry batch and position on the broker (an MQTT observer with
its own persistent session), the readings and positions in InfluxDB, and the hubs' alarm journals
over the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import httpx
import orjson

from telemetry.codec import decode

__all__ = [
    "AlarmEvent",
    "Observer",
    "Position",
    "Published",
    "fetch_alarm_events",
    "influx_count_until",
    "influx_positions",
    "influx_readings",
]

log = logging.getLogger("chaos")
_TRANSITIONS = frozenset({"raised", "escalated", "deescalated", "cleared"})


@dataclass(slots=True)
class Published:
    """One telemetry batch as the gateway published it: (point, event time ms) per reading."""

    readings: list[tuple[str, int]]
    deliveries: int = 1


@dataclass(slots=True)
class Position:
    """One position as a recorder published it."""

    seq: int
    lat: float
    lon: float
    speed_kmh: float
    deliveries: int = 1


@dataclass(slots=True)
class Observer:
    """Subscribes to every telemetry and position topic with QoS 1 and a persistent session, so
    that the broker keeps its messages across restarts like the hub's; records batches by
    (device, epoch, seq) and positions by (vehicle, event time)."""

    port: int
    batches: dict[tuple[str, int, int], Published] = field(default_factory=dict)
    positions: dict[tuple[str, int], Position] = field(default_factory=dict)
    messages: int = 0
    undecodable: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="chaos-observer", clean_session=False
                ) as client:
                    await client.subscribe("hazardhub/v1/+/+/+/telemetry", qos=1)
                    await client.subscribe("hazardhub/v1/+/vehicles/+/position", qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        payload = bytes(msg.payload)
                        if msg.topic.value.endswith("/position"):
                            self._position(msg.topic.value.split("/")[-2], payload)
                        else:
                            self._record(payload)
            except aiomqtt.MqttError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)

    def _record(self, payload: bytes) -> None:
        self.messages += 1
        try:
            b = decode(payload)
        except ValueError:
            self.undecodable += 1
            return
        key = (b.device, b.epoch, b.seq)
        seen = self.batches.get(key)
        if seen is not None:
            seen.deliveries += 1
            return
        ts = b.ts.tolist()
        self.batches[key] = Published([(b.keys[int(k)], t) for k, t in zip(b.key, ts, strict=True)])

    def _position(self, vehicle: str, payload: bytes) -> None:
        self.messages += 1
        try:
            doc = orjson.loads(payload)
            records = doc if isinstance(doc, list) else [doc]
            parsed = [
                (int(r["ts"]), Position(int(r["seq"]), r["lat"], r["lon"], r["speed_kmh"]))
                for r in records
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.undecodable += 1
            return
        for ts, pos in parsed:
            seen = self.positions.get((vehicle, ts))
            if seen is not None:
                seen.deliveries += 1
            else:
                self.positions[(vehicle, ts)] = pos


async def _query(client: httpx.AsyncClient, q: str) -> list[dict[str, Any]]:
    """The series of an InfluxQL query (chunked answers joined)."""
    r = await client.get(
        "/query",
        params={"db": "hazardhub", "q": q, "epoch": "ms", "chunked": "true", "chunk_size": "10000"},
    )
    r.raise_for_status()
    series: list[dict[str, Any]] = []
    for line in r.content.splitlines():
        if not line.strip():
            continue
        doc = orjson.loads(line)
        for res in doc.get("results", []):
            if "error" in res:
                raise RuntimeError(f"InfluxQL error: {res['error']}")
            series.extend(res.get("series", []))
    return series


async def influx_readings(url: str) -> list[tuple[str, int, int, int]]:
    """Every stored reading as (sensor, event time ms, epoch, seq)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        series = await _query(
            client, 'SELECT "quality","epoch","seq" FROM "hazardhub"."reading" GROUP BY "sensor"'
        )
    rows: list[tuple[str, int, int, int]] = []
    for s in series:
        sensor = str(s["tags"]["sensor"])
        cols: list[str] = s["columns"]
        ie, iq = cols.index("epoch"), cols.index("seq")
        for v in s["values"]:
            rows.append((sensor, int(v[0]), int(v[ie]), int(v[iq])))
    return rows


async def influx_positions(url: str) -> list[tuple[str, int, float, float, float]]:
    """Every stored position as (vehicle, event time ms, lat, lon, speed km/h)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        series = await _query(
            client,
            'SELECT "lat","lon","speed_kmh" FROM "hazardhub"."position" GROUP BY "vehicle"',
        )
    rows: list[tuple[str, int, float, float, float]] = []
    for s in series:
        vehicle = str(s["tags"]["vehicle"])
        cols: list[str] = s["columns"]
        ia, io, isp = cols.index("lat"), cols.index("lon"), cols.index("speed_kmh")
        rows.extend((vehicle, int(v[0]), v[ia], v[io], v[isp]) for v in s["values"])
    return rows


async def influx_count_until(client: httpx.AsyncClient, until_ms: int) -> tuple[int, int]:
    """How many readings of the Modbus devices, and how many positions, with event time <=
    `until_ms` InfluxDB has now. (A position is also stored as a reading of the vehicle's speed
    sensor, site `vehicles`: those are left out of the first count.)"""
    counts = []
    for q in (
        f'SELECT count("quality") FROM "hazardhub"."reading" '  # noqa: S608
        f"WHERE time <= {until_ms:d}ms AND \"site\" != 'vehicles'",
        f'SELECT count("lat") FROM "hazardhub"."position" WHERE time <= {until_ms:d}ms',  # noqa: S608
    ):
        series = await _query(client, q)
        counts.append(sum(int(v[1]) for s in series for v in s["values"]))
    return counts[0], counts[1]


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm transition as the hub's API reports it."""

    sensor: str
    rule: str
    side: str
    kind: str
    level: str
    ts: int  # event time, ms
    arrival: int

    def as_dict(self) -> dict[str, object]:
        return {
            "sensor": self.sensor,
            "rule": self.rule,
            "side": self.side,
            "kind": self.kind,
            "level": self.level,
            "ts": self.ts,
            "arrival": self.arrival,
        }


async def fetch_alarm_events(api: str, key: str) -> list[AlarmEvent]:
    """Every alarm transition (raised, escalated, deescalated, cleared) the hub has recorded."""
    out: list[AlarmEvent] = []
    before: int | None = None
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        while True:
            params: dict[str, int] = {"limit": 1000}
            if before is not None:
                params["before"] = before
            r = await client.get("/api/v1/alarms", params=params)
            r.raise_for_status()
            alarms = r.json()
            for a in alarms:
                out.extend(
                    AlarmEvent(
                        a["sensor"],
                        a["rule"],
                        a["side"],
                        e["kind"],
                        e["level_name"] or "",
                        int(e["ts"]),
                        int(e["arrival"]),
                    )
                    for e in a["events"]
                    if e["kind"] in _TRANSITIONS
                )
            if len(alarms) < 1000:
                break
            before = min(int(a["id"]) for a in alarms)
    return sorted(out, key=lambda e: (e.ts, e.sensor, e.rule))
