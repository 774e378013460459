"""A replayed alarm event is the event as it went out live: a provincial early-warning system
resumed its stream (`Last-Event-ID`) after a pause and got the raise of an alarm with today's
`disposal` ("disposed") where the live MQTT alarm topic had carried "received" (helper-241).
The disposal at each event is the journal's last disposal step up to it."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
from test_stream_resume import CONFIG, KEYS, Feed, Rig, read, rig, until

from api.auth import Principal
from hazardhub.hub import Hub, HubSettings
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import running_hub
from services import free_port

CHEM = {"Authorization": "Bearer k-chem"}
__all__ = ["rig"]  # the fixture, used by name


Live = dict[int, dict[str, object]]
# chem's gas-1 alarm as the state database keeps it (yellow, level 1), for journals made here
GAS_ALARM: dict[str, object] = {
    "tenant": "chem",
    "site": "s",
    "device": "d",
    "sensor": "gas-1",
    "rule": "inline",
    "side": 0,
    "level": 1,
    "level_name": "level1",
    "tier": "yellow",
    "action": "",
    "state": "active",
    "started_ts": 1,
    "raised_at": 1,
    "peak_level": 1,
    "last_ts": 1,
    "value": 30.0,
}


@contextlib.asynccontextmanager
async def heard_hub(
    mosquitto: Any, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, aiomqtt.Client, Live]]:
    """A hub of the resume tests' configuration on a real broker: its API, a publisher, and the
    bodies its alarm topic carried live (chem's site s), by event id, as they come."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "asof.yaml"))
    port = free_port()
    settings = HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port)
    hub = Hub(registry, settings, extra_keys=KEYS)
    live: Live = {}
    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as listener,
    ):
        await listener.subscribe(TopicLayout().alarms("chem", "s"), qos=1)

        async def listen() -> None:
            async for msg in listener.messages:
                assert isinstance(msg.payload, bytes)
                body = orjson.loads(msg.payload)
                live[int(body["event_id"])] = body

        listening = asyncio.create_task(listen(), name="alarm-topic")
        try:
            yield api, mq, live
        finally:
            listening.cancel()


async def test_a_replayed_event_equals_the_live_one(mosquitto, tmp_path) -> None:
    async with heard_hub(mosquitto, tmp_path) as (api, mq, live):
        chem = Feed(mq, "chem", "s", "d")
        await chem.send(30.0)  # raised, disposal received
        await until(lambda: len(live) >= 1, "the raise on the alarm topic")
        (alarm,) = {int(str(b["alarm_id"])) for b in live.values()}
        for step in ("verify", "dispose"):
            r = await api.post(
                f"/api/v1/alarms/{alarm}/disposal",
                json={"step": step, "note": f"{step} done"},
                headers=CHEM,
            )
            assert r.status_code == 200, r.text
        await api.post(
            f"/api/v1/alarms/{alarm}/comment", json={"note": "patrol back"}, headers=CHEM
        )
        await until(lambda: len(live) >= 4, "the steps and the comment on the alarm topic")
        kinds = [str(live[i]["kind"]) for i in sorted(live)]
        assert kinds == ["raised", "verified", "disposed", "commented"]
        said = [str(live[i]["disposal"]) for i in sorted(live)]
        assert said == ["received", "verified", "disposed", "disposed"]

        again = read(api, "k-chem", "&last_event_id=0")
        await until(lambda: len(again.of("alarm")) >= 4, "the replay")
        await again.close()
        replayed = {b.id: b.data for b in again.of("alarm")}
        assert sorted(replayed) == sorted(live)
        for event_id, body in live.items():
            assert replayed[event_id] == body, event_id


async def test_an_alarm_closed_before_the_lifecycle_keeps_its_disposal(tmp_path) -> None:
    """An alarm whose journal holds no disposal step but is closed (migrated from before the
    lifecycle was journaled) replays as closed: the journal cannot say otherwise."""
    from alerts.alarmfeed import AlarmFeed
    from alerts.statedb import StateDB

    db = StateDB(tmp_path / "state.db")
    try:
        with db.transaction() as con:
            alarm = db.insert_alarm(con, {**GAS_ALARM, "state": "cleared"})
            db.insert_event(con, alarm, "raised", 1, 1, 1, "level1", "yellow", 30.0, "unack")
            con.execute("UPDATE alarms SET disposal = 'closed' WHERE id = ?", (alarm,))
        feed = AlarmFeed(db.path)
        try:
            (ev,) = feed.replay(0, None, 10).events
        finally:
            feed.close()
        assert ev.event.disposal == "closed"
    finally:
        db.close()


async def test_a_reset_tells_an_enterprise_its_own_newest_id_not_the_hubs(rig: Rig) -> None:
    """A `reset` gave an enterprise key the hub's newest journal id (`... which ends at 37`,
    `id: 37`): how busy every other enterprise is. It carries the newest id of the key's
    tenants; resuming from it misses none of their events. A key of every tenant keeps the
    journal's newest."""
    mine = rig.record("chem", 3)
    theirs = rig.record("other", 2)  # after chem's: the hub's newest
    own, newest = mine[-1].event_id, theirs[-1].event_id
    assert newest > own

    ahead = read(rig.api, "k-chem", **{"Last-Event-ID": str(newest + 100)})
    (reset,) = await until(lambda: ahead.of("reset"), "the reset")
    await ahead.close()
    assert reset.id == own and reset.data["last_event_id"] == own
    assert re.findall(r"\d+", reset.data["reason"]) == [str(newest + 100)]  # the id given
    assert "not in this hub's alarm journal" in reset.data["reason"]

    # an id of another tenant's, the hub's newest: reset to chem's, as an id past the journal's
    # end is (whether an id is taken no longer finds the hub's newest by a search, helper-247)
    probe = read(rig.api, "k-chem", **{"Last-Event-ID": str(newest)})
    (reset,) = await until(lambda: probe.of("reset"), "the reset of another's id")
    await probe.close()
    assert (reset.id, reset.data["last_event_id"]) == (own, own)
    # chem's own newest: taken, nothing to replay, no reset
    up = read(rig.api, "k-chem", **{"Last-Event-ID": str(own)})
    await asyncio.sleep(0.3)
    await up.close()
    assert not up.of("reset") and not up.of("alarm")

    rig.stream.replay_max = 2  # three of chem's followed event 0
    far = read(rig.api, "k-chem", "&last_event_id=0")
    (reset,) = await until(lambda: far.of("reset"), "the reset")
    await far.close()
    assert (reset.id, reset.data["last_event_id"]) == (own, own)

    # resuming from it: chem's next event, nothing missed, nothing again
    later = rig.record("chem")
    again = read(rig.api, "k-chem", **{"Last-Event-ID": str(own)})
    (got,) = await until(lambda: again.of("alarm"), "chem's next event")
    await asyncio.sleep(0.2)
    await again.close()
    assert got.id == later[0].event_id and len(again.of("alarm")) == 1

    # another tenant: its own newest
    quiet = read(rig.api, "k-other", **{"Last-Event-ID": str(later[0].event_id + 100)})
    (reset,) = await until(lambda: quiet.of("reset"), "the reset")
    await quiet.close()
    assert reset.id == theirs[-1].event_id  # other's newest, below chem's later event

    admin = Principal("admin", "admin", None)
    sub = rig.stream.subscribe(admin, frozenset({"alarm"}), resume=later[0].event_id + 100)
    stream = rig.stream.events(sub, heartbeat_s=0.05)
    chunk = await anext(stream)
    if chunk.startswith(b"retry:"):
        chunk = await anext(stream)
    await stream.aclose()
    assert f"id: {later[0].event_id}\n".encode() in chunk  # every tenant's: the journal's end
    assert b"which ends at" in chunk
