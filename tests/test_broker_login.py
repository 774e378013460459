"""A broker that refuses the login of the hub or a gateway says so, naming the user and the
password variable, instead of "broker unreachable ([code:135] Not authorized)" (helper-149: an
unset $HAZARDHUB_MQTT_PASSWORD, a wrong or rotated password sent operators to the network)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.spool import Spool
from hazardhub.hub import Hub, HubSettings
from hazardhub.mqttauth import plan_users, write_files
from hazardhub.settings import load
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, coal_uplink, eventually, mine_registry
from services import MosquittoService, free_port


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[MosquittoService, dict[str, str]]]:
    users = plan_users(load(ROOT / "examples" / "demo.yaml").registry(), TopicLayout())
    write_files(users, tmp_path / "auth")
    broker = MosquittoService(
        tmp_path / "mq", auth=(tmp_path / "auth" / "passwd", tmp_path / "auth" / "acl")
    ).launch()
    try:
        yield broker, {u.name: u.password for u in users}
    finally:
        broker.stop()


def _said(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


@pytest.mark.parametrize(
    ("user", "password", "words"),
    [
        (
            "hazardhub-hub",
            None,
            "the broker refused the login of hazardhub-hub (not authorized): "
            "$HAZARDHUB_MQTT_PASSWORD is empty or unset",
        ),
        (
            "hazardhub-hub",
            "rotated-since",
            "the broker refused the login of hazardhub-hub (not authorized): "
            "check $HAZARDHUB_MQTT_PASSWORD",
        ),
        (None, None, "the broker refused an anonymous login (not authorized)"),
    ],
)
async def test_the_hub_says_the_broker_refused_its_login(
    secured: tuple[MosquittoService, dict[str, str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    user: str | None,
    password: str | None,
    words: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.service")
    broker, _ = secured
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(
            data_dir=tmp_path / "hub",
            broker_port=broker.port,
            broker_username=user,
            broker_password=password,
            api_port=free_port(),
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:

        async def refused() -> list[str]:
            return [m for m in _said(caplog, "ingest.service") if "refused" in m]

        said = await eventually(refused, 15, "the refusal said")
    finally:
        stop.set()
        await task
    assert said[0].startswith(f"hub: {words}"), said
    assert not [m for m in _said(caplog, "ingest.service") if "unreachable" in m]


async def test_a_gateway_says_the_broker_refused_its_login(
    secured: tuple[MosquittoService, dict[str, str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.uplink")
    broker, _ = secured
    spool = Spool(tmp_path / "s.db", clock_ms=lambda: 0)
    uplink = coal_uplink(broker.port, spool)
    uplink._username, uplink._password = "north-coal.gw1", "wrong"
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:

        async def refused() -> list[str]:
            return [m for m in _said(caplog, "gateway.uplink") if "refused" in m]

        said = await eventually(refused, 15, "the refusal said")
    finally:
        stop.set()
        await task
        spool.close()
    assert said[0].startswith(
        "north-coal/gw1: the broker refused the login of north-coal.gw1 (not authorized): "
        "check $HAZARDHUB_MQTT_PASSWORD"
    ), said
    assert not [m for m in _said(caplog, "gateway.uplink") if "unreachable" in m]
