"""An enterprise platform's vehicle overspeeding, end to end over real sockets: a lower platform
(JT/T 809-2011, encrypted) sends a tanker's positions at 90 km/h -> the JT/T 809 gateway ->
Mosquitto -> the hub raises its fleet `overspeed` alarm, in the positions' own (China) time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from jt809_helpers import KEYS, LowerPlatform, config, gnss_2011, make_gateway

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from telemetry.config import ApiKeySpec

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
"""


async def test_an_overspeed_sent_by_a_platform_raises_the_hubs_alarm(mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    key = "op-key-0123456789"
    api_port = free_port()
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key(key), role="operator")],
    )
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    stop = asyncio.Event()
    async with running_hub(hub):
        task = asyncio.create_task(gw.run(stop))
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            host, port = gw.server.address  # type: ignore[misc]
            p = LowerPlatform(20180920, keys=KEYS, encrypt=True)
            await p.connect(host, port)
            assert (await p.login(7001, b"s3cret!8")) is not None
            # 90 km/h for 30 s on a hazmat tanker (60 km/h): live fixes every 5 s, then a
            # backfill (0x1203) of the next three
            for i in range(4):
                fix = gnss_2011(t0 + timedelta(seconds=5 * i), 31.2 + i * 0.0012, 121.4, 90)
                await p.positions("苏AD1234", [fix])
            await p.positions(
                "苏AD1234",
                [
                    gnss_2011(t0 + timedelta(seconds=5 * i), 31.2 + i * 0.0012, 121.4, 90)
                    for i in (4, 5, 6)
                ],
            )
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {key}"},
            ) as api:

                async def raised():  # type: ignore[no-untyped-def]
                    rows = await get_json(api, "/api/v1/alarms", kind="overspeed")
                    return rows[0] if rows else None

                alarm = await eventually(raised, 20, "the hub's overspeed alarm")
            await p.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert (alarm["sensor"], alarm["rule"]) == ("tanker-01.speed", "fleet")
    # raised at the fix where the run had lasted overspeed_min_s (10 s): the third, in the
    # positions' own time (their China date and time read as such)
    assert alarm["started_ts"] == int((t0 + timedelta(seconds=10)).timestamp() * 1000)
    assert gw.server.counters["acme-gps.positions"] == 7
