"""Which vehicle a JT/T 808 terminal is, when the configuration and the terminal disagree: a
terminal whose configured phone number and registration plate name two different vehicles is
refused and both are named in a warning (real gateway, real sockets); an auth code naming another
vehicle than the number is configured for is refused; a connection that replaces another of the
same vehicle is a warning."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from jt808_helpers import DOC_CONFIG, Vehicle, make_gateway, running

from gateway.jt808.directory import Conflict, Directory, VehicleRef
from hazardhub.settings import load_registry
from simulators.jt808 import Jt808Terminal
from telemetry.jt808 import PlatformResponse, RegisterResponse

from services import MosquittoService


@pytest.fixture
def doc_config(tmp_path: Path) -> Path:
    """The configuration of docs/jt808.md (`DOC_CONFIG`), in a file."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(DOC_CONFIG, encoding="utf-8")
    return cfg


async def test_a_terminal_claiming_another_vehicles_plate_is_refused(
    mosquitto: MosquittoService,
    doc_config: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.jt808")
    gw = make_gateway(load_registry(doc_config), mosquitto.port, tmp_path / "spool")
    async with (
        running(gw) as (_, port),
        Jt808Terminal("127.0.0.1", port, "13800000001", "苏A·D1234") as own,
        Jt808Terminal("127.0.0.1", port, "013800000001", "苏A·D5678") as other,
    ):
        await own.login()
        # tanker-01's number with tanker-02's plate: "terminal already registered"
        reg = await other.register()
        assert (reg.result, reg.auth_code) == (RegisterResponse.TERMINAL_REGISTERED, "")
        assert not own.closed.is_set()
        # with tanker-01's code it is tanker-01 (the number is the same), and replaces own
        answer = await other.authenticate(own.auth_code)
        assert answer.result == PlatformResponse.OK
        await asyncio.wait_for(own.closed.wait(), 5)
    (conflict, replaced) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "terminal 013800000001 is configured for chem-logistics/tanker-01" in (
        conflict.getMessage()
    )
    assert "plate 苏A·D5678 names chem-logistics/tanker-02" in conflict.getMessage()
    assert "chem-logistics/tanker-01: terminal 013800000001 from 127.0.0.1:" in (
        replaced.getMessage()
    )
    assert "replaces its connection from 127.0.0.1:" in replaced.getMessage()
    assert gw.server.counters["terminal_conflict"] == 1 and gw.server.counters["replaced"] == 1


def test_an_auth_code_for_another_vehicle_than_the_number_is_configured_for() -> None:
    # 13900000009 registered by plate as bus-2; later the configuration gives bus-1 that number
    before = Directory([Vehicle("bus-2", "粤B00002")])  # type: ignore[list-item]
    result, ref = before.register("013900000009", "粤B00002")
    assert result == RegisterResponse.OK and ref == VehicleRef("t1", "bus-2")
    assert before.check("013900000009", ref) == ref
    after = Directory(
        [Vehicle("bus-1", "粤A12345", "13900000009"), Vehicle("bus-2", "粤B00002")],  # type: ignore[list-item]
    )
    conflict = after.check("013900000009", ref)
    assert conflict == Conflict(
        "013900000009", VehicleRef("t1", "bus-1"), (VehicleRef("t1", "bus-2"),), "auth code"
    )
    # registering again with its plate is refused too; with bus-1's plate (or none) it is bus-1
    assert after.register("013900000009", "粤B00002")[0] == RegisterResponse.TERMINAL_REGISTERED
    assert after.register("013900000009", "粤A12345") == (
        RegisterResponse.OK,
        VehicleRef("t1", "bus-1"),
    )
    assert after.register("013900000009", "") == (RegisterResponse.OK, VehicleRef("t1", "bus-1"))
