"""A vehicle is bound to the terminal that first registered it (real gateway, real sockets): any
TCP client could register with tanker-01's phone number (or tanker-02's plate), get the same
auth code as the real terminal, replace its connection and raise its alarms (helper-107's
audit). Now another terminal is refused with the standard's result, the code is random and dies
at the next registration, and only `hazardhub jt808 unbind` moves a vehicle to a new terminal."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import jt808_helpers
import pytest
from jt808_helpers import TWO_TENANTS, registry_of

from gateway.jt808 import Jt808Server
from gateway.jt808.bindings import BINDINGS_FILE, Bindings, Refused, Terminal
from gateway.jt808.directory import VehicleRef
from hazardhub.cli import main as cli
from simulators.jt808 import Jt808Terminal
from telemetry.jt808 import PlatformResponse, Register, RegisterResponse
from telemetry.registry import Registry


@pytest.fixture(name="registry")
def _registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


@contextlib.asynccontextmanager
async def serving(registry: Registry, spool: Path, **kw: object) -> AsyncIterator[Jt808Server]:
    """A server whose bindings are kept in `spool`."""
    async with jt808_helpers.serving(registry, bindings_file=spool / BINDINGS_FILE, **kw) as server:
        yield server


def _port(server: Jt808Server) -> int:
    assert server.address is not None
    return server.address[1]


def _register(terminal_id: str, plate: str = "") -> Register:
    """Another maker's terminal (the simulator's are HZHUB/SIM-808, id derived from the phone)."""
    return Register(44, 300, "EVIL", "X-1", terminal_id, 2 if plate else 0, plate)


async def test_another_terminal_cannot_take_a_bound_vehicle(
    registry: Registry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.jt808")
    async with serving(registry, tmp_path) as server:
        port = _port(server)
        async with (
            Jt808Terminal("127.0.0.1", port, "13800000001", "苏A·D1234") as tanker1,
            Jt808Terminal("127.0.0.1", port, "13900000002", "苏A·D5678") as tanker2,
            Jt808Terminal("127.0.0.1", port, "13800000001") as thief1,
            Jt808Terminal("127.0.0.1", port, "13700000099") as thief2,
        ):
            await tanker1.login()
            await tanker2.login()
            # tanker-01's number (it is configured with it) from another terminal, no plate
            reg = await thief1.send(_register("6666666"))
            assert reg == RegisterResponse(0, RegisterResponse.VEHICLE_REGISTERED, "")
            # tanker-02 (no terminal configured) by its plate, from any number
            reg = await thief2.send(_register("7777777", "苏A·D5678"))
            assert reg == RegisterResponse(0, RegisterResponse.VEHICLE_REGISTERED, "")
            # no code to guess from: the old deterministic form is no code at all
            assert (await thief1.authenticate("hh1:chem-logistics:tanker-01:0")).result == 1
            assert not tanker1.closed.is_set() and not tanker2.closed.is_set()
            assert (await tanker1.heartbeat()).result == PlatformResponse.OK
            assert len(server.by_vehicle) == 2
    assert server.counters["binding_refused"] == 2 and server.counters["replaced"] == 0
    refused = [r.getMessage() for r in caplog.records if "binding_refused" in r.getMessage()]
    assert len(refused) == 1  # once a minute at most: anyone can send registrations
    assert "registration of chem-logistics/tanker-01 by terminal EVIL/X-1/6666666" in refused[0]
    bound = f"HZHUB/SIM-808/{tanker1.terminal_id} (phone 13800000001)"
    assert f"bound to terminal {bound}" in refused[0]
    assert "hazardhub jt808 unbind --vehicle chem-logistics/tanker-01" in refused[0]


async def test_a_new_registration_kills_the_old_code_and_a_live_session_is_replaced_by_its_code(
    registry: Registry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.jt808")
    async with serving(registry, tmp_path) as server:
        port = _port(server)
        async with Jt808Terminal("127.0.0.1", port, "13800000001", "苏A·D1234") as first:
            await first.login()
            old = first.auth_code
            assert old is not None and old.startswith("hh2:") and len(old) == 36
            async with Jt808Terminal("127.0.0.1", port, "13800000001", "苏A·D1234") as again:
                reg = await again.register()  # the same terminal, on a new connection
                assert reg.result == RegisterResponse.OK and reg.auth_code != old
                assert (await again.authenticate(old)).result == PlatformResponse.FAILED
                # its own code, while its old connection lives: it replaces it, and says so
                assert (await again.authenticate()).result == PlatformResponse.OK
                await asyncio.wait_for(first.closed.wait(), 5)
    (replaced,) = [r.getMessage() for r in caplog.records if "replaces" in r.getMessage()]
    assert replaced.count("127.0.0.1:") == 2


async def test_an_operator_unbinds_a_vehicle_for_a_new_terminal_and_bindings_survive_a_restart(
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        serving(registry, tmp_path) as server,
        Jt808Terminal("127.0.0.1", _port(server), "13800000001", "苏A·D1234") as old,
    ):
        await old.login()
    async with serving(registry, tmp_path) as server:  # restarted: the binding and code kept
        port = _port(server)
        async with Jt808Terminal("127.0.0.1", port, "13800000001") as new:
            assert (await new.send(_register("1234567"))).result == 1  # type: ignore[union-attr]
            assert cli(["jt808", "bindings", "--spool-dir", str(tmp_path)]) == 0
            assert f"chem-logistics/tanker-01\tterminal HZHUB/SIM-808/{old.terminal_id}" in (
                capsys.readouterr().out
            )
            # the terminal was changed: the operator frees the vehicle while the gateway runs
            vehicle = "chem-logistics/tanker-01"
            assert cli(["jt808", "unbind", "--spool-dir", str(tmp_path), "--vehicle", vehicle]) == 0
            said = capsys.readouterr().out
            assert f"unbound from terminal HZHUB/SIM-808/{old.terminal_id}" in said
            reg = await new.send(_register("1234567"))
            assert isinstance(reg, RegisterResponse) and reg.result == RegisterResponse.OK
            assert (await new.authenticate(reg.auth_code)).result == PlatformResponse.OK
        async with Jt808Terminal("127.0.0.1", port, "13800000001") as old_again:
            assert (await old_again.authenticate(old.auth_code)).result == 1
            # ... and the old terminal is now the one refused
            assert (await old_again.register()).result == RegisterResponse.VEHICLE_REGISTERED
    assert cli(["jt808", "unbind", "--spool-dir", str(tmp_path), "--vehicle", "x/y"]) == 1


def test_a_bound_terminal_is_refused_for_another_vehicle_and_only_hashes_are_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / BINDINGS_FILE
    store = Bindings(path)
    a, b = VehicleRef("t", "a"), VehicleRef("t", "b")
    box = Terminal("MK", "M1", "0000042", "13800000042")
    code = store.register(a, box, 1000)
    assert isinstance(code, str)
    refused = store.register(b, box, 2000)  # 终端已被注册
    assert isinstance(refused, Refused) and refused.result == RegisterResponse.TERMINAL_REGISTERED
    assert refused.bound.vehicle == a
    # a terminal that sends no terminal id is told apart by its phone number
    blank = Terminal("MK", "M1", "", "13800000043")
    assert isinstance(store.register(b, blank, 3000), str)
    other_blank = Terminal("MK", "M1", "", "13800000044")
    refused = store.register(b, other_blank, 3000)
    assert isinstance(refused, Refused) and refused.result == RegisterResponse.VEHICLE_REGISTERED
    store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert code.encode() not in stored
    assert hashlib.sha256(code.encode()).hexdigest().encode() in stored
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_a_code_of_before_the_upgrade_is_refused_and_the_terminal_registers_again(
    registry: Registry,
    tmp_path: Path,
) -> None:
    # the deterministic code the gateway gave tanker-01's terminal before (docs of before)
    secret = b"test-secret-0123456789"
    msg = b"13800000001\x00chem-logistics\x00tanker-01"
    legacy = "hh1:chem-logistics:tanker-01:" + hmac.new(secret, msg, "sha256").hexdigest()[:20]
    async with (
        serving(registry, tmp_path, secret=secret) as server,
        Jt808Terminal("127.0.0.1", _port(server), "13800000001", "苏A·D1234") as tanker1,
    ):
        assert (await tanker1.authenticate(legacy)).result == PlatformResponse.FAILED
        await tanker1.login()  # registers (first: binds), then authenticates
    assert server.counters["auth_failed"] == 1 and server.counters["authenticated"] == 1
