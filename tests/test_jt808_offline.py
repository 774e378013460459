"""The JT/T 808 gateway's status: one retained status with a last will in each tenant whose
vehicles it serves (`gateway.jt808.presence`), and the hub's `gateway_offline` alarm of those
tenants' vehicles when it dies (real Mosquitto, a real `hazardhub jt808` process killed with
kill -9, the hub and its API in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from gateway.jt808.presence import Presence
from hazardhub.settings import load_registry
from telemetry.errors import ConfigError
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, HubAccess, eventually, get_json, interrupt, running_hub

CONFIG = """
version: 1
gateway_offline_s: 1.5
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
  - id: coach-co
    vehicles:
      - {id: coach-07, plate: 苏B·K5678, class: coach}
  - id: north-coal
    sites:
      - id: face-1301
"""
FLEETS = ("chem-logistics", "coach-co")  # north-coal has no vehicles: the gateway serves none


async def retained(port: int, topics: list[str]) -> dict[str, bytes]:
    """The retained message of each topic (as a client subscribing now gets it)."""
    got: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", port) as c:
        for t in topics:
            await c.subscribe(t, qos=1)

        async def read() -> None:
            async for m in c.messages:
                got[str(m.topic)] = m.payload if isinstance(m.payload, bytes) else b""
                if len(got) == len(topics):
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), 2.0)
    return got


def presence_of(mosquitto, uplink: asyncio.Event, lost: asyncio.Event, tenants) -> Presence:
    return Presence(
        mosquitto.host,
        mosquitto.port,
        layout=TopicLayout(),
        tenants=tenants,
        gateway="jt808",
        uplink_connected=uplink,
        uplink_lost=lost,
    )


async def test_a_gateway_going_down_on_an_error_says_offline_itself(mosquitto, tmp_path):
    """Another task's error cancels the status connections (and the Modbus uplink): leaving
    them disconnects cleanly, which makes the broker drop the will; so each says `offline`
    before it goes, or the status would stand `online` for a dead gateway."""
    from gateway.spool import Spool

    from e2e_helpers import coal_uplink

    uplink, lost = asyncio.Event(), asyncio.Event()
    uplink.set()
    presence = presence_of(mosquitto, uplink, lost, FLEETS)
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20, max_age_s=3600, clock_ms=lambda: 0)
    modbus = coal_uplink(mosquitto.port, spool)
    topics = [presence.topic(t) for t in FLEETS] + [str(modbus.status_topic)]

    async def crash() -> None:
        await eventually(lambda: asyncio.sleep(0, len(presence.online) == 2), 5, "online")
        await asyncio.wait_for(modbus.connected.wait(), 5)
        assert await retained(mosquitto.port, topics) == dict.fromkeys(topics, b"online")
        raise RuntimeError("disk full")

    stop = asyncio.Event()
    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(presence.run(stop))
            tg.create_task(modbus.run(stop))
            tg.create_task(crash())
    spool.close()
    assert await retained(mosquitto.port, topics) == dict.fromkeys(topics, b"offline")


async def test_presence_says_online_per_tenant_only_with_the_uplink_and_offline_at_a_stop(
    mosquitto,
):
    uplink, lost = asyncio.Event(), asyncio.Event()
    presence = presence_of(mosquitto, uplink, lost, ["coach-co", "chem-logistics", "coach-co"])
    topics = [presence.topic(t) for t in FLEETS]
    stop = asyncio.Event()
    task = asyncio.create_task(presence.run(stop))
    try:
        await asyncio.sleep(0.5)
        assert presence.online == set(), "no online while the positions cannot reach the broker"
        assert await retained(mosquitto.port, topics) == {}
        uplink.set()
        await eventually(lambda: asyncio.sleep(0, presence.online == set(FLEETS)), 5, "online")
        assert await retained(mosquitto.port, topics) == dict.fromkeys(topics, b"online")
        # the positions' connection lost: offline; back: online again
        uplink.clear()
        lost.set()
        await eventually(lambda: asyncio.sleep(0, presence.online == set()), 5, "offline")
        assert await retained(mosquitto.port, topics) == dict.fromkeys(topics, b"offline")
        lost.clear()
        uplink.set()
        await eventually(lambda: asyncio.sleep(0, presence.online == set(FLEETS)), 5, "again")
        assert await retained(mosquitto.port, topics) == dict.fromkeys(topics, b"online")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert await retained(mosquitto.port, topics) == dict.fromkeys(topics, b"offline")


def start_jt808(cfg: Path, broker: int, spool: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "jt808", "-c", str(cfg)),
            *("--listen", "127.0.0.1:0", "--broker", f"127.0.0.1:{broker}"),
            *("--spool-dir", str(spool)),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "HAZARDHUB_JT808_SECRET": "s" * 32},
    )


@pytest.mark.slow
async def test_a_killed_jt808_gateway_raises_an_offline_alarm_per_fleet_until_it_is_back(
    mosquitto, tmp_path
):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    access = HubAccess()
    spool, log = tmp_path / "spool", tmp_path / "jt808.log"
    gw = start_jt808(cfg, mosquitto.port, spool, log)
    client = access.client()

    async def alarms(state: str) -> list[dict[str, object]]:
        got: list[dict[str, object]] = await get_json(client, "/api/v1/alarms", kind="no_data")
        return [a for a in got if a["rule"] == "gateway" and a["state"] == state]

    try:
        async with running_hub(access.hub(registry, tmp_path / "hub", mosquitto.port)) as h:
            watch = h.ingest.dispatcher.gateways

            def heard() -> bool:
                return all(watch.status(t, "jt808") is not None for t in FLEETS)

            await eventually(lambda: asyncio.sleep(0, heard()), 20, "online " + log.read_text())
            assert all(watch.status(t, "jt808")[0] for t in FLEETS)  # type: ignore[index]
            assert watch.status("north-coal", "jt808") is None
            assert await alarms("active") == []

            gw.send_signal(signal.SIGKILL)
            gw.wait(timeout=10)

            async def raised() -> list[dict[str, object]]:
                got = await alarms("active")
                return got if len(got) >= len(FLEETS) else []

            found = await eventually(raised, 15, "an offline alarm of each fleet")
            assert sorted((a["tenant"], a["site"], a["device"], a["sensor"]) for a in found) == [
                (t, "vehicles", "jt808", f"gateway:{t}/vehicles/jt808") for t in FLEETS
            ]
            assert {(a["level_name"], a["tier"], a["side"]) for a in found} == {
                ("gateway_offline", "orange", "no_data")
            }

            gw = start_jt808(cfg, mosquitto.port, spool, log)

            async def cleared() -> list[dict[str, object]]:
                got = await alarms("cleared")
                return got if len(got) == len(FLEETS) else []

            done = await eventually(cleared, 20, "the alarms cleared " + log.read_text())
            assert {a["id"] for a in done} == {a["id"] for a in found}
    finally:
        await client.aclose()
        interrupt(gw)


def test_the_jt808_command_refuses_a_name_the_configuration_does_not_list(tmp_path, capsys):
    from hazardhub import cli

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    assert cli.main(["jt808", "-c", str(cfg), "--name", "jt808-b"]) == 2
    err = capsys.readouterr().err
    assert "'jt808-b' is not in the configuration's jt808_gateways ['jt808']" in err


def test_a_device_may_not_take_a_jt808_gateways_name(tmp_path):
    device = """
        devices:
          - id: rtu-1
            profile: coal-substation
            gateway: {gw}
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
"""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG + device.format(gw="jt808"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"devices\.0\.gateway: 'jt808' names a JT/T 808"):
        load_registry(cfg, [ROOT / "profiles"])
    # named otherwise, the centre's gateway may take any other name
    cfg.write_text(
        CONFIG.replace("version: 1", "version: 1\njt808_gateways: [centre-a, centre-b]")
        + device.format(gw="jt808"),
        encoding="utf-8",
    )
    reg = load_registry(cfg, [ROOT / "profiles"])
    assert reg.config.jt808_gateways == ("centre-a", "centre-b")


def test_one_terminal_number_on_two_vehicles_is_refused_by_the_hub_too(tmp_path):
    """helper-139 gave a second vehicle (another company's, through the admin API) the number
    of one already configured with more leading zeros, as a 2019 header writes it: `check` and
    the hub took it, the JT/T 808 gateway died at its next reload with the whole fleet. The hub
    refuses it now (compared without leading zeros), and so does a number of zeros."""
    cfg = tmp_path / "hub.yaml"
    for terminal, said in (
        ('"0013800000001"', "also chem-logistics/tanker-01's"),
        ('"00000000000000000000"', "is no terminal's number"),
        # unquoted, YAML reads a number: its leading zeros gone, so it says to quote it
        ("13900000009", 'in quotes, terminal: "13900000009"'),
    ):
        cfg.write_text(
            CONFIG.replace(
                "      - {id: coach-07, plate: 苏B·K5678, class: coach}",
                f"      - {{id: coach-07, plate: 苏B·K5678, class: coach, terminal: {terminal}}}",
            ),
            encoding="utf-8",
        )
        with pytest.raises(ConfigError, match=said):
            load_registry(cfg, [ROOT / "profiles"])


async def test_a_gateway_whose_new_configuration_it_cannot_serve_keeps_the_last(tmp_path, caplog):
    """A configuration change the gateway's directory refuses is logged and not taken: the
    gateway goes on with the configuration it had (it died, every terminal cut off)."""
    import logging

    from gateway.following import follow_configuration
    from gateway.jt808 import Jt808Gateway

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    reg = load_registry(cfg, [ROOT / "profiles"])
    gw = Jt808Gateway(
        reg,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", 1),
        spool_dir=tmp_path / "spool",
        secret=b"s" * 32,
    )

    def refused(registry):
        raise ConfigError("JT/T 808 terminal 13800000001 is configured for two vehicles")

    gw.server.use = refused  # type: ignore[method-assign]
    before = gw.server.directory
    stop = asyncio.Event()
    caplog.set_level(logging.ERROR)
    task = asyncio.create_task(follow_configuration("jt808", lambda: reg, gw.use, 0.05, stop))
    await asyncio.sleep(0.3)
    assert not task.done(), task
    stop.set()
    await asyncio.wait_for(task, 2)
    assert gw.server.directory is before
    assert any("NOT taken" in r.getMessage() for r in caplog.records)
    gw.spool.close()


def test_the_jt808_command_serves_the_configuration_the_hub_runs(monkeypatch, tmp_path):
    """A fleet added through the hub's API (a newer revision in its registry.db) is served, and
    its status held, by a gateway given --data-dir; without it, the file alone."""
    import gateway.jt808
    from api.configadmin import ConfigAdmin, document
    from api.registrydb import RegistryDB
    from hazardhub import cli
    from hazardhub.settings import load

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    loaded = load(cfg)
    data = tmp_path / "data"
    db = RegistryDB(data / "registry.db")

    async def switch(registry, rev):  # the running hub would switch here
        return None

    admin = ConfigAdmin(db, loaded.registry, switch)
    admin.startup(loaded.registry(), str(cfg))
    doc = document(loaded.config)
    doc["tenants"].append(
        {"id": "new-fleet", "vehicles": [{"id": "t9", "plate": "苏A·D9999", "class": "hazmat"}]}
    )
    asyncio.run(admin.change(lambda _d: doc, actor="root", comment="new fleet", source="api"))
    db.close()
    served: list[set[str]] = []

    class Recorded:
        def __init__(self, registry, **kw: object) -> None:
            served.append({t for t, _ in registry.vehicles})

        def metrics(self) -> tuple[dict[str, int], dict[str, float]]:
            return {}, {}

    monkeypatch.setattr(gateway.jt808, "Jt808Gateway", Recorded)
    monkeypatch.setattr(cli, "_run", lambda main: 0)
    assert cli.main(["jt808", "-c", str(cfg)]) == 0
    assert cli.main(["jt808", "-c", str(cfg), "--data-dir", str(data)]) == 0
    assert served == [set(FLEETS), {*FLEETS, "new-fleet"}]


async def test_a_vehicle_added_while_the_gateway_runs_registers_and_its_fleet_is_watched(
    mosquitto, tmp_path
):
    """A vehicle added through the hub's API (followed with --data-dir): its terminal was
    refused as 'vehicle not in the database' until the gateway restarted (helper-66). The
    gateway takes the configuration as it changes: the terminal registers, and the new fleet's
    status is held."""
    from gateway.jt808 import Jt808Gateway
    from simulators.jt808 import Jt808Terminal
    from telemetry.jt808.messages import RegisterResponse

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    before = load_registry(cfg, [ROOT / "profiles"])
    added = CONFIG.replace(
        "  - id: north-coal",
        "  - id: new-fleet\n    vehicles:\n"
        '      - {id: t9, plate: 苏A·D9999, class: hazmat, terminal: "13900000009"}\n'
        "  - id: north-coal",
    )
    cfg.write_text(added, encoding="utf-8")
    after = load_registry(cfg, [ROOT / "profiles"])
    changed = asyncio.Event()

    def follow():
        return after if changed.is_set() else None

    gw = Jt808Gateway(
        before,
        listen=("127.0.0.1", 0),
        broker=(mosquitto.host, mosquitto.port),
        spool_dir=tmp_path / "spool",
        secret=b"s" * 32,
        follow=follow,
        follow_every_s=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        host, port = gw.server.address  # type: ignore[misc]
        async with Jt808Terminal(host, port, "13900000009", "苏A·D9999") as terminal:
            reg = await terminal.register()
            assert reg.result in (RegisterResponse.NO_VEHICLE, RegisterResponse.NO_TERMINAL)
        changed.set()
        topic = gw.presence.topic("new-fleet")
        await eventually(lambda: asyncio.sleep(0, "new-fleet" in gw.presence.online), 5, "held")
        async with Jt808Terminal(host, port, "13900000009", "苏A·D9999") as terminal:
            await terminal.login()  # registers and authenticates, or raises
        assert (await retained(mosquitto.port, [topic])) == {topic: b"online"}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
