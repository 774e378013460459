"""A read-only MQTT user for the centre's early-warning system: every tenant's alarm topics,
nothing else, and nothing published (helper-241: a provincial subscriber needed a hand-written
ACL entry, which the next `mqtt-credentials` run overwrote). Checked against a real Mosquitto
with the generated password file and ACL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from hazardhub.cli import main
from hazardhub.mqttauth import ALARM_READER, plan_users
from hazardhub.settings import load
from telemetry.errors import ConfigError
from telemetry.topics import TopicLayout

from services import MosquittoService

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "demo.yaml"


def _passwords(out: Path) -> dict[str, tuple[str, str]]:
    lines = (out / "credentials.txt").read_text().splitlines()[1:]
    return {n: (p, k) for n, p, k in (line.split() for line in lines)}


def _client(broker: MosquittoService, user: str, password: str, role: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host, broker.port, username=user, password=password, identifier=f"{role}-{user}"
    )


async def test_an_alarm_reader_reads_every_tenants_alarms_and_publishes_nothing(tmp_path):
    out = tmp_path / "auth"
    args = ["mqtt-credentials", "-c", str(CONFIG), "--out", str(out)]
    assert main([*args, "--alarm-reader", "province-ews"]) == 0
    users = _passwords(out)
    assert users["province-ews"][1] == "alarm-reader"
    acl = (out / "acl").read_text()
    assert "user province-ews\ntopic read hazardhub/v1/+/alarms/#\n" in acl
    broker = MosquittoService(tmp_path / "mq", auth=(out / "passwd", out / "acl")).launch()
    layout = TopicLayout()
    reader_got: list[str] = []
    hub_got: list[tuple[str, bytes]] = []
    try:

        async def listen(user: str, into: list) -> None:  # type: ignore[type-arg]
            async with _client(broker, user, users[user][0], "listen") as c:
                await c.subscribe("hazardhub/v1/#", qos=1)  # the ACL narrows what it gets
                async for m in c.messages:
                    assert isinstance(m.payload, bytes)
                    into.append(
                        str(m.topic) if user == "province-ews" else (str(m.topic), m.payload)
                    )

        tasks = [
            asyncio.create_task(listen("province-ews", reader_got)),
            asyncio.create_task(listen("hazardhub-hub", hub_got)),
        ]
        await asyncio.sleep(0.4)
        async with _client(broker, "hazardhub-hub", users["hazardhub-hub"][0], "pub") as hub:
            await hub.publish(layout.alarms("north-coal", "face-1301"), b"{}", qos=1)
            await hub.publish(layout.alarms("acme-chem", "tank-farm"), b"{}", qos=1)
        async with _client(broker, "north-coal.gw1", users["north-coal.gw1"][0], "pub") as gw:
            await gw.publish(layout.telemetry("north-coal", "face-1301", "kj-sub-3"), b"x", qos=1)
        async with _client(broker, "province-ews", users["province-ews"][0], "pub") as reader:
            # a forged clear, a reading, a command: dropped by the broker
            await reader.publish(layout.alarms("acme-chem", "tank-farm"), b"forged", qos=1)
            await reader.publish(layout.telemetry("north-coal", "face-1301", "x"), b"forged", qos=1)
            command = layout.vehicle_command("acme-chem", "tanker-01")
            await reader.publish(command, b"f", qos=1)
        await asyncio.sleep(0.6)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        broker.stop()
    assert sorted(reader_got) == sorted(
        [layout.alarms("north-coal", "face-1301"), layout.alarms("acme-chem", "tank-farm")]
    )
    assert all(payload != b"forged" and payload != b"f" for _, payload in hub_got), hub_got
    assert len(hub_got) == 3  # the two alarms and the reading

    # a later run keeps it, with its password, without being asked again; dropped when asked
    assert main(args) == 0
    assert _passwords(out)["province-ews"] == users["province-ews"]
    assert main([*args, "--drop-alarm-reader", "province-ews"]) == 0
    assert "province-ews" not in _passwords(out)
    assert "province-ews" not in (out / "acl").read_text()
    assert main([*args, "--alarm-reader", "bad/name"]) == 2


@pytest.mark.parametrize(
    "name", ["", "bad/name", "a b", "a+", "a#", "a:b", 'ews"', "ews\\x", "ews\x01", "省预警"]
)
def test_an_alarm_readers_name_is_what_its_error_says(name: str) -> None:
    """The error said "letters, digits, '.', '-' or '_'" while the check refused only
    whitespace and `#+/:` (a quote, a backslash, a control character went into the password
    file and the ACL): check and text agree (helper-247)."""
    registry = load(CONFIG).registry()
    with pytest.raises(ConfigError, match=r"letters, digits, '\.', '-' or '_'"):
        plan_users(registry, TopicLayout(), readers=(name,))


def test_an_alarm_reader_may_be_named_with_dots_dashes_underscores() -> None:
    users = plan_users(load(CONFIG).registry(), TopicLayout(), readers=("Prov_ews-2.js",))
    assert [u.name for u in users if u.kind == ALARM_READER] == ["Prov_ews-2.js"]
