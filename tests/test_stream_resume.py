"""The live stream resumes and filters by tier: each alarm event carries `id:` its alarm journal
id, a client that reconnects with `Last-Event-ID` (or `?last_event_id=`) is sent the events of
its tenants it missed, in order, once, then the live ones, and `?tier=` keeps the events of
alarms that reached a tier (the clear of a red alarm included). An integrator's early-warning
system lost an alarm's comment made while its stream was down: the stream had no ids, and
`Last-Event-ID` was let be."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import orjson
import pytest
import uvicorn

from alerts.alarmfeed import AlarmFeed
from alerts.alarms import AlarmEvent
from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, Principal, hash_key
from api.registrydb import RegistryDB
from api.stream import Broadcaster
from hazardhub.hub import Hub, HubSettings
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import Registry, build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, running_hub
from services import free_port

CONFIG = """
version: 1
device_profiles:
  - name: one
    points: [{name: gas, address: 0, dtype: uint16}]
tenants:
  - id: chem
    sites:
      - id: s
        devices:
          - id: d
            profile: one
            sensors:
              - {id: gas-1, point: gas, kind: flammable_gas,
                 levels: [{name: level1, tier: yellow, above: 25, recover: 23},
                          {name: level2, tier: red, above: 50, recover: 48}]}
  - id: other
    sites:
      - id: o
        devices:
          - id: e
            profile: one
            sensors:
              - {id: gas-2, point: gas, kind: flammable_gas,
                 levels: [{name: level1, tier: yellow, above: 25, recover: 23}]}
"""
KEYS = [
    ApiKeySpec(name=t, sha256=hash_key(f"k-{t}"), role="enterprise", tenants=(t,))
    for t in ("chem", "other")
]


@dataclass
class Block:
    """One event of the stream: its `id:` (None: none), `event:` and `data:`."""

    id: int | None
    event: str
    data: Any


@dataclass
class Reader:
    """A stream read in a task until cancelled: its status and the events so far."""

    status: int = 0
    blocks: list[Block] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def of(self, event: str) -> list[Block]:
        return [b for b in self.blocks if b.event == event]

    async def close(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def parse(block: str) -> Block | None:
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        name, sep, value = line.partition(": ")
        if sep and name in ("id", "event", "data"):
            fields[name] = value
    if "event" not in fields:
        return None
    ident = fields.get("id")
    return Block(
        None if ident is None else int(ident), fields["event"], orjson.loads(fields["data"])
    )


def read(api: httpx.AsyncClient, key: str, query: str = "", **headers: str) -> Reader:
    """The stream of `key` (alarms, unless `query` names the kinds) read in a task."""
    reader = Reader()

    async def run() -> None:
        kinds = "" if "kinds=" in query else "kinds=alarm"
        url = f"/api/v1/stream?{kinds}{query}"
        async with api.stream(
            "GET", url, headers={"Authorization": f"Bearer {key}", **headers}
        ) as r:
            reader.status = r.status_code
            buf = ""
            async for text in r.aiter_text():
                buf += text
                while "\n\n" in buf:
                    block, buf = buf.split("\n\n", 1)
                    found = parse(block)
                    if found is not None:
                        reader.blocks.append(found)

    reader.task = asyncio.create_task(run(), name="stream-reader")
    return reader


async def until(probe: Any, what: str, timeout_s: float = 10) -> Any:
    async def check() -> Any:
        return probe()

    return await eventually(check, timeout_s, what, 0.02)


# a whole hub (real broker, real state database): what an integrator sees ---------------------


class Feed:
    """Readings of one sensor's device over the broker, each a new message (seq) and time."""

    def __init__(self, mq: aiomqtt.Client, tenant: str, site: str, device: str) -> None:
        self.mq, self.topic = mq, TopicLayout().telemetry(tenant, site, device)
        self.device, self.seq, self.ts = device, 0, 0

    async def send(self, value: float) -> None:
        self.seq += 1
        self.ts = max(self.ts + 1, time.time_ns() // 1_000_000)  # each reading after the last
        batch = TelemetryBatch(
            "gw",
            self.device,
            1,
            self.seq,
            ("gas",),
            np.zeros(1, np.uint16),
            np.array([self.ts], np.int64),
            np.array([value]),
            np.zeros(1, np.uint8),
        )
        await self.mq.publish(self.topic, encode(batch), qos=1)


async def _journal(api: httpx.AsyncClient, alarm_id: int, kinds: list[str]) -> bool:
    r = await api.get(f"/api/v1/alarms/{alarm_id}", headers={"Authorization": "Bearer k-chem"})
    return r.status_code == 200 and [e["kind"] for e in r.json()["events"]] == kinds


async def test_a_resumed_stream_gets_exactly_what_it_missed_then_goes_live(mosquitto, tmp_path):
    registry = build_registry(parse_document(CONFIG, HubConfig, "resume.yaml"))
    port = free_port()
    settings = HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port)
    hub = Hub(registry, settings, extra_keys=KEYS)
    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
    ):
        chem, other = Feed(mq, "chem", "s", "d"), Feed(mq, "other", "o", "e")
        first = read(api, "k-chem")
        await until(lambda: hub.stream.subscribers == 1, "the stream")
        await chem.send(30.0)  # raised, yellow
        (raised,) = await until(lambda: first.of("alarm"), "the raise")
        assert raised.id == raised.data["event_id"] > 0
        assert raised.data["peak_tier"] == "yellow"
        await first.close()  # the link drops
        await until(lambda: hub.stream.subscribers == 0, "the stream closed")

        # while it is down: a comment, another tenant's alarm, an escalation and the clear
        alarm = raised.data["alarm_id"]
        r = await api.post(
            f"/api/v1/alarms/{alarm}/comment",
            json={"note": "patrol sent"},
            headers={"Authorization": "Bearer k-chem"},
        )
        assert r.status_code == 200
        await other.send(30.0)
        await chem.send(60.0)
        await chem.send(10.0)
        done = ["raised", "commented", "escalated", "cleared"]
        await eventually(lambda: _journal(api, alarm, done), 10, "the missed events")

        again = read(api, "k-chem", **{"Last-Event-ID": str(raised.id)})
        await until(lambda: len(again.of("alarm")) >= 3, "the replay")
        await chem.send(30.0)  # a new alarm, live
        await until(lambda: len(again.of("alarm")) >= 4, "the live raise")
        await asyncio.sleep(0.5)  # nothing more comes (no duplicate)
        await again.close()
        events = again.of("alarm")
        assert [(b.data["kind"], b.data["tenant"]) for b in events] == [
            ("commented", "chem"),
            ("escalated", "chem"),
            ("cleared", "chem"),
            ("raised", "chem"),
        ]
        ids = [b.id or 0 for b in events]
        assert ids == sorted(set(ids)) and ids[0] > (raised.id or 0)
        assert [b.data["event_id"] for b in events] == ids
        assert events[1].data["peak_tier"] == events[2].data["peak_tier"] == "red"
        assert events[2].data["tier"] == "none"  # the clear, of an alarm that reached red
        assert events[3].data["alarm_id"] != alarm and events[3].data["peak_tier"] == "yellow"

        # the query parameter, for a client that cannot set headers; another tenant's key
        # replays its own alarm alone
        theirs = read(api, "k-other", "&last_event_id=0")
        (b,) = await until(lambda: theirs.of("alarm"), "the other tenant's replay")
        await asyncio.sleep(0.3)
        await theirs.close()
        assert (b.data["tenant"], b.data["kind"]) == ("other", "raised") and len(theirs.blocks) == 1

        # only what reached red: the escalation and the clear of the first alarm (its raise and
        # comment were yellow then), nothing of the second
        red = read(api, "k-chem", "&tier=red&last_event_id=0")
        await until(lambda: len(red.of("alarm")) >= 2, "the red alarm's events")
        await chem.send(60.0)  # the second alarm escalates: live, red
        await until(lambda: len(red.of("alarm")) >= 3, "the live escalation")
        await red.close()
        assert [(b.data["alarm_id"], b.data["kind"]) for b in red.of("alarm")] == [
            (alarm, "escalated"),
            (alarm, "cleared"),
            (events[3].data["alarm_id"], "escalated"),
        ]


# the API over a real socket and a real state database, journal events written directly -----


@dataclass
class Rig:
    api: httpx.AsyncClient
    stream: Broadcaster
    db: StateDB
    reg: Registry
    ts: int = 1_800_000_000_000

    def record(self, tenant: str, kinds: int = 1, tier: str = "yellow") -> list[AlarmEvent]:
        """Raise an alarm of `tenant` and journal `kinds` events of it (committed), the events
        as the hub hands them on."""
        sensor, site, device = ("gas-1", "s", "d") if tenant == "chem" else ("gas-2", "o", "e")
        level = 2 if tier == "red" else 1
        out = []
        with self.db.transaction() as con:
            self.ts += 1
            fields = {
                "tenant": tenant,
                "site": site,
                "device": device,
                "sensor": sensor,
                "rule": "inline",
                "side": 0,
                "level": level,
                "level_name": f"level{level}",
                "tier": tier,
                "action": "",
                "state": "cleared",
                "started_ts": self.ts,
                "raised_at": self.ts,
                "peak_level": level,
                "last_ts": self.ts,
                "value": 30.0,
            }
            alarm = self.db.insert_alarm(con, fields)
            for n in range(kinds):
                kind = "raised" if n == 0 else "commented"
                ts = self.ts + n
                event_id = self.db.insert_event(
                    con,
                    alarm,
                    kind,
                    ts,
                    ts,
                    level,
                    f"level{level}",
                    tier,
                    30.0,
                    "unack",
                    actor=None if n == 0 else "op",
                    comment="" if n == 0 else f"note {n}",
                )
                assert event_id
                row = self.db.alarm_in(con, alarm)
                assert row is not None
                out.append(AlarmEvent.of(row, kind, ts, ts, event_id))
        return out


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    reg = build_registry(parse_document(CONFIG, HubConfig, "resume.yaml"))
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    rdb = RegistryDB(tmp_path / "registry.db")
    feed = AlarmFeed(db.path)
    stream = Broadcaster(reg, heartbeat_s=0.2, feed=feed)
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing(KEYS, rdb), stream=stream))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve(), name="api")
    await eventually(lambda: _started(server), 10, "the API to listen")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
        yield Rig(api, stream, db, reg)
    server.should_exit = True
    await serving
    await store.close()
    feed.close()
    db.close()
    rdb.close()


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def test_events_handed_on_out_of_order_go_out_in_journal_order(rig: Rig) -> None:
    """An ingest batch's events are handed on after their time-series write, an operator's
    comment made meanwhile at once: the stream sent 13 before 10-12, and a client that dropped
    after 13 resumed past them (a gap). The stream follows the journal's order."""
    live = read(rig.api, "k-chem")
    await until(lambda: rig.stream.subscribers == 1, "the stream")
    early = rig.record("chem", 3)
    late = rig.record("chem", 1)
    await rig.stream.on_alarms(late)
    await rig.stream.on_alarms(early)
    await until(lambda: len(live.of("alarm")) >= 4, "the events")
    await asyncio.sleep(0.2)
    await live.close()
    ids = [b.id for b in live.of("alarm")]
    assert ids == [e.event_id for e in (*early, *late)]


async def test_a_resume_racing_live_events_has_no_gap_and_no_duplicate(rig: Rig) -> None:
    """Events recorded and handed on all along, out of order, both tenants': a chem client
    drops, resumes from the last id it had while events keep coming, and has each chem event
    once, in order, none of the other tenant's."""
    made: list[int] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set() or n < 40:
            n += 1
            a = rig.record("chem", 2)
            b = rig.record("other" if n % 3 else "chem", 1)
            made.extend(e.event_id for e in (*a, *b) if e.tenant == "chem")
            await rig.stream.on_alarms(b)  # out of order, now and then
            await rig.stream.on_alarms(a)
            await asyncio.sleep(0.002)

    producer = asyncio.create_task(produce())
    first = read(rig.api, "k-chem")
    await until(lambda: len(first.of("alarm")) >= 10, "the first events")
    await first.close()
    last = first.of("alarm")[-1].id
    second = read(rig.api, "k-chem", **{"Last-Event-ID": str(last)})
    await until(lambda: len(second.of("alarm")) >= 10, "the events after the resume")
    stop.set()
    await producer
    await until(lambda: second.of("alarm") and second.of("alarm")[-1].id == made[-1], "the last")
    await second.close()
    got = [b.id for b in (*first.of("alarm"), *second.of("alarm"))]
    assert all(b.data["tenant"] == "chem" for b in second.of("alarm"))
    start = made.index(got[0])
    assert got == made[start:]  # each once, in order, no gap


async def test_a_resume_replays_what_was_queued_meanwhile_once(rig: Rig) -> None:
    """Events recorded and handed on after the stream subscribed but before its replay read the
    journal are both queued live and replayed: sent once."""
    (before,) = rig.record("chem")
    await rig.stream.on_alarms([before])
    chem = Principal("chem", "enterprise", frozenset({"chem"}))
    sub = rig.stream.subscribe(chem, frozenset({"alarm"}), resume=before.event_id)
    meanwhile = rig.record("chem", 2)
    await rig.stream.on_alarms(meanwhile)
    assert sub.queue.qsize() == 2
    stream = rig.stream.events(sub, heartbeat_s=0.05)
    chunks = [await anext(stream) for _ in range(2)]
    after = rig.record("chem")
    await rig.stream.on_alarms(after)
    chunks.append(await anext(stream))
    assert await anext(stream) == b": keep-alive\n\n"  # nothing more
    await stream.aclose()
    got = [parse(b) for c in chunks[1:] for b in c.decode().split("\n\n") if b]
    assert [b.id for b in got if b] == [e.event_id for e in (*meanwhile, *after)]


async def test_an_id_the_journal_never_reached_or_too_far_back_is_a_reset(rig: Rig) -> None:
    events = rig.record("chem", 3)
    newest = events[-1].event_id
    ahead = read(rig.api, "k-chem", **{"Last-Event-ID": str(newest + 100)})
    (reset,) = await until(lambda: ahead.of("reset"), "the reset")
    assert reset.id == newest and reset.data["last_event_id"] == newest
    assert "not in this hub's alarm journal" in reset.data["reason"]
    later = rig.record("chem")
    await rig.stream.on_alarms(later)
    await until(lambda: ahead.of("alarm"), "the live event after the reset")
    await ahead.close()
    assert [b.id for b in ahead.of("alarm")] == [later[0].event_id]

    rig.stream.replay_max = 2  # three of chem's followed event 0
    far = read(rig.api, "k-chem", "&last_event_id=0")
    (reset,) = await until(lambda: far.of("reset"), "the reset")
    await asyncio.sleep(0.2)
    await far.close()
    assert "more than 2 alarm events followed event 0" in reset.data["reason"]
    assert reset.id == later[0].event_id and far.of("alarm") == []


@pytest.mark.parametrize(
    ("query", "headers", "says"),
    [
        ("", {"Last-Event-ID": "abc"}, "not an alarm event id"),
        ("", {"Last-Event-ID": "-3"}, "not an alarm event id"),
        ("&last_event_id=-1", {}, "greater than or equal"),
        ("&last_event_id=x", {}, "integer"),
        ("&tier=purple", {}, "pattern"),
        ("&tier=red,none", {}, "pattern"),
    ],
)
async def test_a_bad_resume_id_or_tier_is_422(
    rig: Rig, query: str, headers: dict[str, str], says: str
) -> None:
    r = await rig.api.get(
        f"/api/v1/stream?kinds=alarm{query}", headers={"Authorization": "Bearer k-chem", **headers}
    )
    assert r.status_code == 422
    assert says in r.text
    assert rig.stream.subscribers == 0


async def test_readings_carry_no_id_and_a_red_filter_passes_a_red_alarms_clear(rig: Rig) -> None:
    """A reading has no journal id: sent without `id:` (the client's last id stays its last
    alarm event's). The tier filter follows the alarm's peak: its clear, at tier none, passes."""
    both = read(rig.api, "k-chem", "kinds=alarm,reading")
    red = read(rig.api, "k-chem", "&tier=red")
    await until(lambda: rig.stream.subscribers == 2, "the streams")
    i = rig.reg.sensor("gas-1").index
    one = np.zeros(1, np.int64)
    rig.stream.on_readings(
        ReadingBatch(
            np.array([i], np.int32), one + 1, np.array([5.0]), one.astype(np.uint8), one, one
        )
    )
    (yellow,) = rig.record("chem")
    (raised,) = rig.record("chem", tier="red")
    with rig.db.transaction() as con:
        clear = rig.db.insert_event(
            con,
            raised.alarm_id,
            "cleared",
            rig.ts + 5,
            rig.ts + 5,
            0,
            "normal",
            "none",
            10.0,
            "normal",
        )
        row = rig.db.alarm_in(con, raised.alarm_id)
    assert clear and row is not None
    cleared = AlarmEvent.of(
        row, "cleared", rig.ts + 5, rig.ts + 5, clear, level=(0, "normal", "none")
    )
    await rig.stream.on_alarms([yellow, raised, cleared])
    await until(lambda: len(red.of("alarm")) >= 2, "the red alarm's events")
    await asyncio.sleep(0.2)
    await until(lambda: len(both.of("alarm")) >= 3, "every alarm event")
    await red.close()
    await both.close()
    (reading,) = both.of("reading")
    assert reading.id is None and reading.data["sensor"] == "gas-1"
    assert [b.data["peak_tier"] for b in both.of("alarm")] == ["yellow", "red", "red"]
    assert [(b.id, b.data["tier"], b.data["peak_tier"]) for b in red.of("alarm")] == [
        (raised.event_id, "red", "red"),
        (clear, "none", "red"),
    ]
