"""What a hazmat truck carries and who drives it, end to end over real sockets: lower platforms
(JT/T 809-2011 encrypted, and 2019) send a vehicle's terminal registration (0x1201), its
driver (0x120C) and its e-waybill (0x120D) -> the JT/T 809 gateway -> Mosquitto -> the hub ->
`GET /api/v1/vehicles/{id}` answers them, tenant-scoped, the latest of each, and still after
the hub restarted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from jt809_helpers import KEYS, LowerPlatform, config, make_gateway

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from telemetry.config import ApiKeySpec
from telemetry.jt809 import DriverInfo, Ewaybill, ExgMsg, Register, SubId

from e2e_helpers import eventually, running_hub
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
version: 1
jt808_gateways: [jt808, jt809]
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat}
  - id: coach-co
    vehicles:
      - {id: coach-07, plate: 苏B·K5678, class: coach}
"""
OP, COACH, VIEW = "op-key-0123456789", "coach-key-0123456789", "view-key-0123456789"
WAYBILL = "运单号 YD20261202001; UN1203 汽油 (gasoline), 3类, 18.5 t; 南京 -> 苏州"


def _hub(registry: Any, tmp_path: Path, broker_port: int, api_port: int) -> Hub:
    return Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=broker_port, api_port=api_port),
        extra_keys=[
            ApiKeySpec(name="op", sha256=hash_key(OP), role="operator"),
            ApiKeySpec(
                name="coach", sha256=hash_key(COACH), role="enterprise", tenants=("coach-co",)
            ),
            ApiKeySpec(
                name="wall", sha256=hash_key(VIEW), role="viewer", tenants=("chem-logistics",)
            ),
        ],
    )


async def _vehicle(api_port: int, key: str, vehicle: str) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"}
    ) as api:
        return await api.get(f"/api/v1/vehicles/{vehicle}")


async def test_a_platforms_driver_waybill_and_registration_reach_the_vehicles_answer(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    api_port = free_port()
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    stop = asyncio.Event()
    async with running_hub(_hub(registry, tmp_path, mosquitto.port, api_port)):
        task = asyncio.create_task(gw.run(stop))
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            host, port = gw.server.address  # type: ignore[misc]
            acme = LowerPlatform(20180920, keys=KEYS, encrypt=True)
            await acme.connect(host, port)
            assert (await acme.login(7001, b"s3cret!8")) is not None
            # a waybill whose EWAYBILL_LENGTH runs past its body: refused, counted, link goes on
            bad = Ewaybill("UN1203").encode()[:-1]
            await acme.send(0x1200, ExgMsg("苏AD1234", 2, SubId.REPORT_EWAYBILL_INFO, bad).encode())
            await acme.report(
                "苏AD1234", Register("3201000001", "70111", "ZT-8", "A1B2C3D", "13800000001")
            )
            await acme.report("苏AD1234", DriverInfo("李四", "320102198001011111", "old", "旧"))
            await acme.report(
                "苏AD1234",
                DriverInfo("张三", "320102199001011234", "3201000000001", "南京市交通运输局"),
            )
            await acme.report("苏AD1234", Ewaybill(WAYBILL))
            coach = LowerPlatform(33000001, v2019=True)
            await coach.connect(host, port)
            assert (await coach.login(8001, b"pw2019")) is not None
            await coach.report(
                "苏BK5678", DriverInfo("王五", "320102198501012222", "C1", "苏州", 1_893_456_000)
            )

            async def arrived() -> Any:
                r = await _vehicle(api_port, OP, "tanker-01")
                doc = r.json()
                return (
                    doc
                    if doc.get("waybill") and doc.get("driver") and doc.get("registration")
                    else None
                )

            tanker = await eventually(arrived, 20, "the tanker's driver, waybill, registration")

            async def coach_arrived() -> Any:
                doc = (await _vehicle(api_port, COACH, "coach-07")).json()
                return doc if doc.get("driver") else None

            coach_doc = await eventually(coach_arrived, 20, "the coach's driver")
            other = (await _vehicle(api_port, OP, "tanker-02")).json()
            foreign = await _vehicle(api_port, COACH, "tanker-01")
            await acme.close()
            await coach.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    counters = gw.server.counters
    assert counters["acme-gps.bad_body"] == 1
    assert (
        counters["acme-gps.registrations"],
        counters["acme-gps.drivers"],
        counters["acme-gps.waybills"],
    ) == (1, 2, 1)
    driver = tanker["driver"]
    assert {k: driver[k] for k in ("name", "id_number", "licence", "org", "valid_until")} == {
        "name": "张三",
        "id_number": "320102199001011234",
        "licence": "3201000000001",
        "org": "南京市交通运输局",
        "valid_until": None,
    }  # the latest of the two: 李四's was replaced
    assert (driver["platform"], driver["gateway"], driver["plate"]) == (
        "acme-gps",
        "jt809",
        "苏AD1234",
    )
    assert driver["at"] <= driver["received_at"]
    assert tanker["waybill"]["text"] == WAYBILL and tanker["waybill"]["truncated"] is False
    reg = tanker["registration"]
    assert {k: reg[k] for k in ("platform_id", "producer_id", "terminal_model")} == {
        "platform_id": "3201000001",
        "producer_id": "70111",
        "terminal_model": "ZT-8",
    }
    assert (reg["terminal_id"], reg["sim"], reg["imei"]) == ("A1B2C3D", "13800000001", "")
    assert coach_doc["driver"]["valid_until"] == 1_893_456_000_000
    assert coach_doc["waybill"] is None and coach_doc["registration"] is None
    assert (other["driver"], other["waybill"], other["registration"]) == (None, None, None)
    assert foreign.status_code == 404  # another enterprise's vehicle
    # a hub restarted has them still (the state database)
    async with running_hub(_hub(registry, tmp_path, mosquitto.port, api_port)):
        again = (await _vehicle(api_port, OP, "tanker-01")).json()
        shown = (await _vehicle(api_port, VIEW, "tanker-01")).json()
    assert again["driver"] == driver and again["waybill"] == tanker["waybill"]
    # a viewer key (a wall display) is shown the identity card's and the qualification
    # certificate's numbers masked, the rest as is
    masked = {"id_number": "3201**********1234", "licence": "3201*****0001"}
    assert shown["driver"] == {**driver, **masked}
    assert shown["waybill"] == tanker["waybill"]
