"""The centre's 督办 of a vehicle alarm, end to end over real sockets: a lower platform (JT/T
809-2011, encrypted) sends a tanker's overspeed -> the hub raises `overspeed` -> the centre's key
supervises it (POST /api/v1/alarms/{id}/supervise) -> the hub publishes `supervise_alarm` ->
the JT/T 809 gateway sends 0x9400 / 0x9401 to the platform -> the platform answers 0x1401
result 1 -> the gateway reports it on the tenant's supervision topic -> the hub journals it on
the alarm. An enterprise key is refused; another tenant's platform never receives the ticket; a
platform offline gets it at its next login."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
from jt809_helpers import KEYS, LowerPlatform, config, gnss_2011, make_gateway

from api.auth import hash_key
from gateway.jt809.config import Jt809Config
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from telemetry.config import ApiKeySpec
from telemetry.jt809 import DownWarnMsg, Frame, SuperviseAnswer, SuperviseRequest, WarnMsg

from e2e_helpers import eventually, get_json, running_hub
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
version: 1
jt808_gateways: [jt808, jt809]
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
  - id: coach-co
    vehicles:
      - {id: coach-07, plate: 浙A12345, class: coach}
"""


async def _ticket(p: LowerPlatform, within_s: float = 10.0) -> Frame:
    """The next 0x9400 the gateway sends the platform (other frames passed over)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while True:
        frame = await p.answer(max(0.01, end - loop.time()))
        assert frame is not None, "the gateway closed the link"
        if frame.header.msg_id == 0x9400:
            return frame


async def _nothing(p: LowerPlatform, within_s: float = 1.0) -> None:
    try:
        frame = await p.answer(within_s)
    except TimeoutError:
        return
    assert frame is None or frame.header.msg_id != 0x9400, "a ticket of another tenant"


async def test_the_centre_supervises_an_overspeed_of_a_platforms_vehicle(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    centre, enterprise = "op-key-0123456789", "ent-key-0123456789"
    api_port = free_port()
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[
            ApiKeySpec(name="zhang", sha256=hash_key(centre), role="operator"),
            ApiKeySpec(
                name="acme",
                sha256=hash_key(enterprise),
                role="enterprise",
                tenants=("chem-logistics",),
            ),
        ],
    )
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    stop = asyncio.Event()
    async with running_hub(hub):
        task = asyncio.create_task(gw.run(stop))
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
            host, port = gw.server.address  # type: ignore[misc]
            p = LowerPlatform(20180920, keys=KEYS, encrypt=True)
            await p.connect(host, port)
            assert (await p.login(7001, b"s3cret!8")) is not None
            coach = LowerPlatform(33000001, v2019=True)
            await coach.connect(host, port)
            assert (await coach.login(8001, b"pw2019")) is not None
            for i in range(5):
                fix = gnss_2011(t0 + timedelta(seconds=5 * i), 31.2 + i * 0.0012, 121.4, 90)
                await p.positions("苏AD1234", [fix])
            base = f"http://127.0.0.1:{api_port}"
            async with (
                httpx.AsyncClient(
                    base_url=base, headers={"Authorization": f"Bearer {centre}"}
                ) as api,
                httpx.AsyncClient(
                    base_url=base, headers={"Authorization": f"Bearer {enterprise}"}
                ) as ent,
            ):

                async def raised() -> Any:
                    rows = await get_json(api, "/api/v1/alarms", kind="overspeed")
                    return rows[0] if rows else None

                alarm = await eventually(raised, 20, "the hub's overspeed alarm")
                deadline = int((datetime.now(UTC) + timedelta(hours=2)).timestamp()) * 1000
                body = {"deadline": deadline, "level": "urgent", "note": "请立即处置"}
                url = f"/api/v1/alarms/{alarm['id']}/supervise"
                refused = await ent.post(url, json=body)
                assert refused.status_code == 403, refused.text
                r = await api.post(url, json=body)
                assert r.status_code == 200, r.text
                got = r.json()
                assert got["published"] is True
                sid = got["supervision_id"]

                frame = await _ticket(p)
                msg = DownWarnMsg.decode(frame.body, False)
                assert (msg.plate, msg.color, msg.sub_id) == ("苏AD1234", 2, 0x9401)
                req = SuperviseRequest.decode(msg.data)
                assert req == SuperviseRequest(
                    3, 0x0001, alarm["started_ts"] // 1000, sid, deadline // 1000, 0, "zhang"
                )
                await _nothing(coach)  # the other tenant's platform gets none of it
                assert gw.server.counters["acme-gps.supervise_sent"] == 1

                answer = WarnMsg("苏AD1234", 2, 0x1401, SuperviseAnswer(sid, 1).encode())
                await p.send(0x1400, answer.encode(False))

                async def answered() -> Any:
                    one = await get_json(api, f"/api/v1/alarms/{alarm['id']}")
                    return [e for e in one["events"] if e["actor"] == "acme-gps (JT/T 809)"]

                said = await eventually(answered, 20, "the platform's answer on the journal")
                assert said[0]["comment"] == f"督办 #{sid} 应答: 1 已处理完毕"
                one = await get_json(api, f"/api/v1/alarms/{alarm['id']}")
                mine = [e for e in one["events"] if e["id"] == sid]
                assert mine and mine[0]["actor"] == "zhang"
                assert mine[0]["comment"].startswith("督办 (紧急, 截止 ")

                # the platform gone: the next ticket waits for its login
                await p.close()
                await eventually(
                    lambda: asyncio.sleep(0, "acme-gps" not in gw.server.online), 5, "logout"
                )
                r2 = await api.post(url, json=body | {"level": "normal"})
                assert r2.status_code == 200, r2.text
                sid2 = r2.json()["supervision_id"]
                await eventually(
                    lambda: asyncio.sleep(0, gw.server.counters["acme-gps.supervise_kept"]),
                    10,
                    "the ticket kept",
                )
                p2 = LowerPlatform(20180920, keys=KEYS, encrypt=True)
                await p2.connect(host, port)
                assert (await p2.login(7001, b"s3cret!8")) is not None
                again = SuperviseRequest.decode(DownWarnMsg.decode((await _ticket(p2)).body).data)
                assert (again.supervision_id, again.level) == (sid2, 1)
                await p2.close()
                await coach.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


ENTERPRISE = "ent-key-0123456789"  # acme's (chem-logistics) key in `_raised`


@contextlib.asynccontextmanager
async def _raised(
    mosquitto: Any, tmp_path: Path, gw_config: Jt809Config | None = None
) -> AsyncIterator[tuple[Any, ...]]:
    """A hub, the gateway, acme-gps logged in and its tanker's overspeed alarm raised: (gateway,
    the centre's API client, the platform, the alarm, the hub)."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    centre, api_port = "op-key-0123456789", free_port()
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[
            ApiKeySpec(name="zhang", sha256=hash_key(centre), role="operator"),
            ApiKeySpec(
                name="acme",
                sha256=hash_key(ENTERPRISE),
                role="enterprise",
                tenants=("chem-logistics",),
            ),
        ],
    )
    gw = make_gateway(gw_config or config(), registry, mosquitto.port, tmp_path / "spool")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    stop = asyncio.Event()
    async with running_hub(hub):
        task = asyncio.create_task(gw.run(stop))
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
            p = LowerPlatform(20180920, keys=KEYS, encrypt=True)
            await p.connect(*gw.server.address)  # type: ignore[misc]
            assert (await p.login(7001, b"s3cret!8")) is not None
            for i in range(5):
                fix = gnss_2011(t0 + timedelta(seconds=5 * i), 31.2 + i * 0.0012, 121.4, 90)
                await p.positions("苏AD1234", [fix])
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {centre}"},
            ) as api:

                async def raised() -> Any:
                    rows = await get_json(api, "/api/v1/alarms", kind="overspeed")
                    return rows[0] if rows else None

                alarm = await eventually(raised, 20, "the hub's overspeed alarm")
                yield gw, api, p, alarm, hub
            await p.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_a_broker_restart_loses_no_ticket_and_no_answer(mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with _raised(mosquitto, tmp_path) as (gw, api, p, alarm, _):
        mosquitto.stop()
        deadline = int((datetime.now(UTC) + timedelta(hours=1)).timestamp()) * 1000
        r = await api.post(f"/api/v1/alarms/{alarm['id']}/supervise", json={"deadline": deadline})
        assert r.status_code == 200, r.text
        assert r.json()["published"] is False  # kept by the hub until the broker is back
        sid = r.json()["supervision_id"]
        mosquitto.start()
        ticket = SuperviseRequest.decode(DownWarnMsg.decode((await _ticket(p, 30)).body).data)
        assert ticket.supervision_id == sid
        # the same command delivered again (QoS 1 after a reconnection): not sent twice
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            again = {
                "command": "supervise_alarm", "supervision_id": sid, "alarm_id": alarm["id"],
                "kind": "overspeed", "ts": alarm["started_ts"], "deadline": deadline,
                "level": "normal",
            }  # fmt: skip
            topic = "hazardhub/v1/chem-logistics/vehicles/tanker-01/command"
            await client.publish(topic, orjson.dumps(again), qos=1)
        await eventually(
            lambda: asyncio.sleep(0, gw.server.counters["supervise_duplicate"]), 10, "duplicate"
        )
        await _nothing(p)
        # the platform answers while the broker is away: the gateway keeps it
        mosquitto.stop()
        answer = WarnMsg("苏AD1234", 2, 0x1401, SuperviseAnswer(sid, 3).encode())
        await p.send(0x1400, answer.encode(False))
        await eventually(
            lambda: asyncio.sleep(0, gw.server.counters["acme-gps.supervise_answers"]), 10, "0x1401"
        )
        mosquitto.start()

        async def answered() -> Any:
            one = await get_json(api, f"/api/v1/alarms/{alarm['id']}")
            return [e for e in one["events"] if e["actor"] == "acme-gps (JT/T 809)"]

        said = await eventually(answered, 30, "the platform's answer on the journal")
        assert [e["comment"] for e in said] == [f"督办 #{sid} 应答: 3 将来处理"]


async def test_an_answer_to_no_supervision_is_counted(mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with _raised(mosquitto, tmp_path) as (_, api, p, alarm, _):
        answer = WarnMsg("苏AD1234", 2, 0x1401, SuperviseAnswer(987654, 1).encode())
        await p.send(0x1400, answer.encode(False))

        async def counted() -> Any:
            r = await api.get("/metrics")
            return 'hazardhub_supervision_answers_total{outcome="unknown"} 1' in r.text

        await eventually(counted, 20, "the unknown answer counted")
        one = await get_json(api, f"/api/v1/alarms/{alarm['id']}")
        assert not [e for e in one["events"] if e["actor"] == "acme-gps (JT/T 809)"]
