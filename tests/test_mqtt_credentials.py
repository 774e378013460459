"""Generated Mosquitto users and ACLs, checked against a real broker: a gateway may publish only
under its own tenant, wrong passwords and anonymous clients are refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from hazardhub.mqttauth import acl_text, plan_users, write_files
from hazardhub.settings import load
from telemetry.topics import TopicLayout

from services import MosquittoService

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def secured(tmp_path):
    users = plan_users(load(ROOT / "examples" / "demo.yaml").registry(), TopicLayout())
    write_files(users, tmp_path / "auth")
    broker = MosquittoService(
        tmp_path / "mq", auth=(tmp_path / "auth" / "passwd", tmp_path / "auth" / "acl")
    ).launch()
    try:
        yield broker, {u.name: u.password for u in users}, tmp_path / "auth"
    finally:
        broker.stop()


def client(broker, user: str, password: str | None) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host, broker.port, username=user, password=password, identifier=f"t-{user}"
    )


async def test_each_user_publishes_only_under_its_tenant(secured):
    broker, passwords, folder = secured
    assert (folder / "credentials.txt").stat().st_mode & 0o777 == 0o600
    assert "hazardhub-hub" in passwords and "north-coal.gw1" in passwords
    assert all(p not in (folder / "passwd").read_text() for p in passwords.values())
    got: list[str] = []

    async def hub() -> None:
        async with client(broker, "hazardhub-hub", passwords["hazardhub-hub"]) as c:
            await c.subscribe("hazardhub/v1/#", qos=1)
            async for m in c.messages:
                got.append(str(m.topic))

    listener = asyncio.create_task(hub())
    await asyncio.sleep(0.3)
    layout = TopicLayout()
    async with client(broker, "north-coal.gw1", passwords["north-coal.gw1"]) as gw:
        await gw.publish(layout.telemetry("north-coal", "face-1301", "kj-sub-3"), b"x", qos=1)
        await gw.publish(layout.telemetry("acme-chem", "tank-farm", "tank1-rtu"), b"x", qos=1)
        await gw.publish(layout.alarms("north-coal", "face-1301"), b"forged", qos=1)
        # the tenant's alarm topic with a telemetry suffix (`+/+/telemetry` matched it): the
        # enterprise's `alarms/#` subscribers got a forged clear (helper-73)
        forged = layout.alarms("north-coal", "face-1301") + "/telemetry"
        await gw.publish(forged, b'{"kind": "cleared"}', qos=1)
        await gw.publish("hazardhub/v1/north-coal/vehicles/x/telemetry", b"x", qos=1)
        # a gateway's status raises and clears its offline alarm: only its own
        await gw.publish(layout.gateway_status("north-coal", "gw1"), b"online", qos=1)
        await gw.publish(layout.gateway_status("acme-chem", "gw1"), b"offline", qos=1)
    async with client(broker, "swift-coach", passwords["swift-coach"]) as ent:
        await ent.publish(layout.position("swift-coach", "coach-07"), b"{}", qos=1)
        await ent.publish(layout.position("acme-chem", "tanker-01"), b"{}", qos=1)
        # the centre's JT/T 808 gateway's status in its own tenant: it would clear the offline
        # alarm of its vehicles
        await ent.publish(layout.gateway_status("swift-coach", "jt808"), b"online", qos=1)
        # what a JT/T 809 platform said of a vehicle (its driver, its waybill): the gateways'
        await ent.publish(layout.vehicle_info("swift-coach", "coach-07"), b"{}", qos=1)
    async with client(broker, "north-coal", passwords["north-coal"]) as ent:
        await ent.publish(layout.gateway_status("north-coal", "gw1"), b"online", qos=1)  # its own
        forged = layout.alarms("north-coal", "face-1301") + "/telemetry"  # not a site's
        await ent.publish(forged, b'{"kind": "cleared"}', qos=1)
    async with client(broker, "hazardhub-jt808", passwords["hazardhub-jt808"]) as jt:
        await jt.publish(layout.position("acme-chem", "tanker-01"), b"[]", qos=1)
        await jt.publish(layout.vehicle_info("acme-chem", "tanker-01"), b"{}", qos=1)
        await jt.publish(layout.gateway_status("north-coal", "gw1"), b"offline", qos=1)
        # its own name's status and drop reports in any tenant, no other gateway's (a drop
        # report of gw1 would raise a forged data_lost alarm of gw1's devices)
        await jt.publish(layout.gateway_status("swift-coach", "jt808"), b"online", qos=1)
        await jt.publish(layout.gateway_dropped("acme-chem", "jt808"), b"{}", qos=1)
        await jt.publish(layout.gateway_dropped("north-coal", "gw1"), b"{}", qos=1)
    await asyncio.sleep(0.5)
    listener.cancel()
    assert sorted(got) == sorted(
        [
            layout.telemetry("north-coal", "face-1301", "kj-sub-3"),
            layout.gateway_status("north-coal", "gw1"),
            layout.position("swift-coach", "coach-07"),
            layout.position("acme-chem", "tanker-01"),
            layout.vehicle_info("acme-chem", "tanker-01"),
            layout.gateway_status("swift-coach", "jt808"),
            layout.gateway_dropped("acme-chem", "jt808"),
            layout.gateway_status("north-coal", "gw1"),
        ]
    )


async def test_wrong_password_and_anonymous_are_refused(secured):
    broker = secured[0]
    for user, password in (("north-coal.gw1", "wrong"), ("nobody", "x"), (None, None)):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, username=user, password=password):
                pass


def test_acl_lists_each_users_topics():
    users = plan_users(load(ROOT / "examples" / "demo.yaml").registry(), TopicLayout())
    text = acl_text(users)
    block = text.split("user north-coal.gw1\n")[1].split("\n\n")[0]
    assert "topic write hazardhub/v1/north-coal/face-1301/+/telemetry" in block
    assert "/+/+/telemetry" not in block  # the sites of its devices, never any
    assert "acme-chem" not in block


async def test_gateway_uplink_logs_in_with_its_user(secured, tmp_path):
    import numpy as np

    from gateway.publisher import MqttPublisher
    from gateway.spool import Spool
    from telemetry.codec import TelemetryBatch

    broker, passwords, _ = secured
    reg = load(ROOT / "examples" / "demo.yaml").registry()
    device = reg.devices[("north-coal", "face-1301", "kj-sub-3")]
    spool = Spool(tmp_path / "s.db", clock_ms=lambda: 0)
    pub = MqttPublisher(
        broker.host,
        broker.port,
        tenant="north-coal",
        gateway="gw1",
        layout=TopicLayout(),
        spool=spool,
        username="north-coal.gw1",
        password=passwords["north-coal.gw1"],
    )
    got: list[str] = []

    async def hub() -> None:
        async with client(broker, "hazardhub-hub", passwords["hazardhub-hub"]) as c:
            await c.subscribe("hazardhub/v1/north-coal/#", qos=1)
            async for m in c.messages:
                got.append(str(m.topic))

    listener = asyncio.create_task(hub())
    stop = asyncio.Event()
    runner = asyncio.create_task(pub.run(stop))
    await asyncio.sleep(0.3)
    await pub.submit_batch(
        device,
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            1,
            0,
            ("ch4_t1",),
            np.zeros(1, np.uint16),
            np.array([1], np.int64),
            np.array([0.5]),
            np.zeros(1, np.uint8),
        ),
    )
    for _ in range(50):
        if any(t.endswith("/telemetry") for t in got):
            break
        await asyncio.sleep(0.1)
    stop.set()
    await runner
    listener.cancel()
    assert "hazardhub/v1/north-coal/face-1301/kj-sub-3/telemetry" in got
    assert "hazardhub/v1/north-coal/gateways/gw1/status" in got
    spool.close()


def test_credentials_follow_the_configuration_the_hub_runs(tmp_path):
    """A tenant added through the API (a newer revision in the hub's registry.db) gets its MQTT
    user with --data-dir; a configuration file changed since wins, as at the hub's start."""
    import shutil

    import yaml

    from api.configadmin import ConfigAdmin, document
    from api.registrydb import RegistryDB
    from hazardhub.cli import main

    config = tmp_path / "hub.yaml"
    shutil.copy(ROOT / "examples" / "demo.yaml", config)
    loaded = load(config)
    data = tmp_path / "data"
    db = RegistryDB(data / "registry.db")

    async def switch(registry, rev):  # the running hub would switch here
        return None

    admin = ConfigAdmin(db, loaded.registry, switch)
    admin.startup(loaded.registry(), str(config))
    doc = document(loaded.config)
    doc["tenants"].append({"id": "new-chem", "name": "New Chem"})
    asyncio.run(admin.change(lambda _d: doc, actor="root", comment="new tenant", source="api"))
    db.close()

    def users(*extra: str) -> str:
        out = tmp_path / "auth"
        shutil.rmtree(out, ignore_errors=True)
        assert main(["mqtt-credentials", "-c", str(config), "--out", str(out), *extra]) == 0
        return (out / "acl").read_text()

    assert "user new-chem" not in users()  # the file alone
    assert "user new-chem" in users("--data-dir", str(data))
    # the file edited since the hub read it: the file is what the hub will run
    text = yaml.safe_load(config.read_text())
    text["tenants"][0]["name"] = "renamed"
    config.write_text(yaml.safe_dump(text, allow_unicode=True))
    assert "user new-chem" not in users("--data-dir", str(data))


# tenant acme with one Modbus device behind gateway GW (replaced by each test)
ACME_GATEWAY = """
version: 1
tenants:
  - id: acme
    sites:
      - id: farm
        devices:
          - {id: rtu, profile: coal-substation, gateway: GW, modbus: {host: 127.0.0.1, port: 1502}}
"""


def test_users_of_one_name_are_refused(tmp_path, capsys):
    """Tenant `acme.gw1` beside tenant `acme`'s gateway `gw1` (or a tenant called
    hazardhub-jt808) made two users of one name: Mosquitto took the last password and merged
    the two ACLs, so one could publish the other's gateway status and one could not log in."""
    from hazardhub.cli import main

    clash = ACME_GATEWAY.replace("GW", "gw1") + "  - id: acme.gw1\n  - id: hazardhub-jt808\n"
    config = tmp_path / "hub.yaml"
    config.write_text(clash, encoding="utf-8")
    assert main(["mqtt-credentials", "-c", str(config), "--out", str(tmp_path / "auth")]) == 2
    err = capsys.readouterr().err
    assert "MQTT users named twice: acme.gw1, hazardhub-jt808" in err
    assert not (tmp_path / "auth" / "passwd").exists()


def test_a_second_run_keeps_the_passwords_unless_rotated(tmp_path):
    """Adding one device handed every site a new password (helper-65): a run over the folder of
    before keeps each user's, a new user gets its own, and --rotate makes all new."""
    from hazardhub.cli import main

    config = ROOT / "examples" / "demo.yaml"
    out = tmp_path / "auth"

    def passwords() -> dict[str, str]:
        lines = (out / "credentials.txt").read_text().splitlines()[1:]
        return dict(line.split(" ", 1) for line in lines)

    assert main(["mqtt-credentials", "-c", str(config), "--out", str(out)]) == 0
    first = passwords()
    assert main(["mqtt-credentials", "-c", str(config), "--out", str(out)]) == 0
    assert passwords() == first
    assert main(["mqtt-credentials", "-c", str(config), "--out", str(out), "--rotate"]) == 0
    rotated = passwords()
    assert rotated.keys() == first.keys()
    assert all(rotated[u] != first[u] for u in first)


def test_a_name_that_changed_meaning_does_not_keep_its_password(tmp_path):
    """Gateway acme.gw1 removed, tenant acme.gw1 added: the kept password of the gateway's
    login would have let its installer log in as the other company (helper-70)."""
    from hazardhub.cli import main

    base = ACME_GATEWAY
    config, out = tmp_path / "hub.yaml", tmp_path / "auth"

    def run(text: str) -> dict[str, str]:
        config.write_text(text, encoding="utf-8")
        assert main(["mqtt-credentials", "-c", str(config), "--out", str(out)]) == 0
        lines = (out / "credentials.txt").read_text().splitlines()[1:]
        return {name: password for name, password, _ in (line.split() for line in lines)}

    first = run(base.replace("GW", "gw1"))
    second = run(base.replace("GW", "gw2") + "  - id: acme.gw1\n")
    assert first["acme"] == second["acme"]  # the same tenant keeps its own
    assert "acme.gw1" in first and "acme.gw1" in second
    assert first["acme.gw1"] != second["acme.gw1"]  # a gateway's then, a tenant's now


def _api_tenant(tmp_path: Path) -> tuple[Path, Path]:
    """The demo configuration file, and a hub data folder whose registry adds tenant new-chem
    through the API."""
    import shutil

    from api.configadmin import ConfigAdmin, document
    from api.registrydb import RegistryDB

    config = tmp_path / "hub.yaml"
    shutil.copy(ROOT / "examples" / "demo.yaml", config)
    loaded = load(config)
    data = tmp_path / "data"
    db = RegistryDB(data / "registry.db")

    async def switch(registry, rev):
        return None

    admin = ConfigAdmin(db, loaded.registry, switch)
    admin.startup(loaded.registry(), str(config))
    doc = document(loaded.config)
    doc["tenants"].append({"id": "new-chem", "name": "New Chem"})
    asyncio.run(admin.change(lambda _d: doc, actor="root", comment="new tenant", source="api"))
    db.close()
    return config, data


def test_a_run_that_drops_users_says_so(tmp_path, capsys):
    """Run again without --data-dir, the users of tenants added through the API lost their
    login unsaid ("for 7 users" instead of 8, helper-149 finding 16)."""
    from hazardhub.cli import main

    config, data = _api_tenant(tmp_path)
    out = tmp_path / "auth"
    argv = ["mqtt-credentials", "-c", str(config), "--out", str(out)]
    assert main([*argv, "--data-dir", str(data)]) == 0
    said = capsys.readouterr()
    assert "for 8 users" in said.out and "warning" not in said.err
    assert main(argv) == 0
    said = capsys.readouterr()
    assert "for 7 users" in said.out
    assert "warning: 1 user of " in said.err
    assert "lost the login: new-chem: were they added through the API?" in said.err
    assert "run again with --data-dir" in said.err
    assert main([*argv, "--data-dir", str(data)]) == 0  # back: nothing dropped
    assert "warning" not in capsys.readouterr().err


def test_passwd_and_acl_are_private_and_keep_their_owner(tmp_path, capsys):
    """passwd and acl were 0644 (helper-149 finding 19): now 0600, and a file given to the
    broker's user (`chown mosquitto:`) stays its after the next run."""
    import os
    import pwd
    import stat

    from hazardhub.cli import main

    out = tmp_path / "auth"
    argv = ["mqtt-credentials", "-c", str(ROOT / "examples" / "demo.yaml"), "--out", str(out)]
    assert main(argv) == 0
    files = [out / "passwd", out / "acl", out / "credentials.txt"]
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    try:
        broker = pwd.getpwnam("mosquitto")
    except KeyError:
        broker = None
    if broker is not None:  # Mosquitto could not read them: said, with the command
        assert f"chown mosquitto: {out / 'passwd'} {out / 'acl'}" in capsys.readouterr().err
    if os.geteuid() != 0:
        return
    owner = (broker.pw_uid, broker.pw_gid) if broker is not None else (65534, 65534)
    for f in files[:2]:
        os.chown(f, *owner)
    capsys.readouterr()
    assert main(argv) == 0
    assert [(f.stat().st_uid, f.stat().st_gid) for f in files[:2]] == [owner] * 2
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    if broker is not None:
        assert "chown" not in capsys.readouterr().err
    assert not list(out.glob(".*.new"))
