"""A gateway killed (kill -9): the broker publishes its last will, the hub raises one
`gateway_offline` alarm after the grace, keeps that one alarm over a hub restart while the gateway
stays down, and clears it when the gateway is back; a gateway that never connected raises the
same alarm, marked never connected, likewise (real Mosquitto, a real `hazardhub gateway` process
polling a real Modbus simulator, the hub and its API in this process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hazardhub.hub import Hub
from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document

from e2e_helpers import ROOT, HubAccess, eventually, get_json, interrupt, running_hub

GATEWAY_ALARM = "gateway:north-coal/face-1301/gw1"


def config(port: int, never_s: float = 300) -> str:
    return f"""
version: 1
gateway_offline_s: 1.5
gateway_never_connected_s: {never_s}
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: kj-sub-3
            profile: coal-substation
            gateway: gw1
            modbus: {{host: 127.0.0.1, port: {port}, unit: 1, poll_s: 0.25, timeout_s: 0.5}}
            sensors:
              - {{id: ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}}
              - {{id: feed, point: feed, kind: power_feed}}
"""


def start_gateway(cfg: Path, broker: int, spool: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "gateway", "-c", str(cfg)),
            *("--tenant", "north-coal", "--gateway", "gw1"),
            *("--broker", f"127.0.0.1:{broker}", "--spool-dir", str(spool)),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
async def test_a_killed_gateway_raises_one_offline_alarm_until_it_is_back(mosquitto, tmp_path):
    profiles, packs = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "coal-substation")
    sim = ModbusSimServer(
        [SimulatedDevice(prof, 1, {"ch4_t1": Constant(0.3), "feed": Constant(1)}, lambda: 0.0)]
    )
    await sim.start()
    cfg = tmp_path / "site.yaml"
    cfg.write_text(config(sim.port))
    registry = build_registry(
        parse_document(cfg.read_text(), HubConfig, str(cfg)), profiles, packs, str(cfg)
    )
    access = HubAccess()

    def hub() -> Hub:
        return access.hub(registry, tmp_path / "hub", mosquitto.port)

    spool, log = tmp_path / "spool", tmp_path / "gw.log"
    gw = start_gateway(cfg, mosquitto.port, spool, log)
    client = access.client()

    async def gateway_alarms() -> list[dict[str, object]]:
        got: list[dict[str, object]] = await get_json(
            client, "/api/v1/alarms", sensor=GATEWAY_ALARM
        )
        return got

    try:
        async with running_hub(hub()) as h:

            async def polled() -> bool:
                r = await client.get("/api/v1/sensors/ch4-t1/latest")
                return r.status_code == 200

            await eventually(polled, 20, "the gateway's readings at the hub " + log.read_text())
            assert h.ingest.dispatcher.gateways.status("north-coal", "gw1") is not None
            assert await gateway_alarms() == [], "online: no alarm"

            gw.send_signal(signal.SIGKILL)
            gw.wait(timeout=10)

            async def raised() -> list[dict[str, object]]:
                return [a for a in await gateway_alarms() if a["state"] == "active"]

            [alarm] = await eventually(raised, 15, "the gateway's offline alarm")
            assert (alarm["level_name"], alarm["tier"], alarm["side"]) == (
                "gateway_offline",
                "orange",
                "no_data",
            )
            assert (alarm["site"], alarm["device"]) == ("face-1301", "gw1")
            assert alarm["rule"] == "gateway"

        # the hub restarts while the gateway is still down: the retained last will comes again,
        # the same alarm stays active and none is raised twice
        async with running_hub(hub()) as h:
            await eventually(
                lambda: asyncio.sleep(0, h.ingest.dispatcher.gateways.status("north-coal", "gw1")),
                10,
                "the retained status at the restarted hub",
            )
            await asyncio.sleep(3.0)  # twice the grace, several ticks
            again = await gateway_alarms()
            assert [(a["id"], a["state"]) for a in again] == [(alarm["id"], "active")]

            gw = start_gateway(cfg, mosquitto.port, spool, log)

            async def cleared() -> list[dict[str, object]]:
                return [a for a in await gateway_alarms() if a["state"] == "cleared"]

            [done] = await eventually(cleared, 20, "the alarm cleared by the gateway's online")
            assert done["id"] == alarm["id"]
            assert len(await gateway_alarms()) == 1
    finally:
        await client.aclose()
        interrupt(gw)
        await sim.stop()


@pytest.mark.slow
async def test_a_gateway_that_never_connected_raises_its_alarm_until_it_does(mosquitto, tmp_path):
    """No gateway runs: the hub raises gw1's alarm, never connected, 1.5 s after it connected
    to the broker, keeps that one over its restart, and the gateway's first `online` (its
    process started at last) clears it."""
    profiles, packs = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "coal-substation")
    sim = ModbusSimServer(
        [SimulatedDevice(prof, 1, {"ch4_t1": Constant(0.3), "feed": Constant(1)}, lambda: 0.0)]
    )
    await sim.start()
    cfg = tmp_path / "site.yaml"
    cfg.write_text(config(sim.port, never_s=1.5))
    registry = build_registry(
        parse_document(cfg.read_text(), HubConfig, str(cfg)), profiles, packs, str(cfg)
    )
    access = HubAccess()
    client = access.client()
    gw: subprocess.Popen[bytes] | None = None
    spool, log = tmp_path / "spool", tmp_path / "gw.log"

    async def gateway_alarms(state: str | None = None) -> list[dict[str, object]]:
        got: list[dict[str, object]] = await get_json(
            client, "/api/v1/alarms", sensor=GATEWAY_ALARM
        )
        return [a for a in got if state is None or a["state"] == state]

    try:
        async with running_hub(access.hub(registry, tmp_path / "hub", mosquitto.port)) as h:
            assert h.ingest.dispatcher.gateways.status("north-coal", "gw1") is None
            [alarm] = await eventually(
                lambda: gateway_alarms("active"), 15, "the alarm of a gateway never connected"
            )
            assert (alarm["level_name"], alarm["tier"], alarm["rule"], alarm["device"]) == (
                "gateway_offline",
                "orange",
                "gateway",
                "gw1",
            )
            assert "从未上线" in str(alarm["action"]), alarm["action"]

        async with running_hub(access.hub(registry, tmp_path / "hub", mosquitto.port)):
            await asyncio.sleep(3.0)  # twice the wait, several ticks
            again = await gateway_alarms()
            assert [(a["id"], a["state"]) for a in again] == [(alarm["id"], "active")]

            gw = start_gateway(cfg, mosquitto.port, spool, log)
            [done] = await eventually(
                lambda: gateway_alarms("cleared"), 20, "cleared by the gateway's online"
            )
            assert done["id"] == alarm["id"]
            assert len(await gateway_alarms()) == 1
    finally:
        await client.aclose()
        if gw is not None:
            interrupt(gw)
        await sim.stop()
