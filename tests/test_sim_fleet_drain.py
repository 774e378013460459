"""The JT/T 808 fleet's end-of-run drain is bounded: a terminal that lost sub-packages on purpose
(`lose_packages`) waits up to 30 s per message for the platform's 0x8003, and its drain, which
never looked at the stop, waited for each one: a run went on 4.5 minutes past its end, deaf to
SIGINT and SIGTERM. Against a platform that never asks, the fleet now stops `drain_s` after its
end and says the fixes it did not send."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from jt808_helpers import serving

from gateway.jt808 import PacketPolicy
from simulators.farm import ScenarioRunner
from simulators.fleet import Jt808Fleet, SimulatedVehicle
from simulators.scenario_spec import ScenarioSpec
from simulators.timeline import compile_scenario

from e2e_helpers import tanker_registry

SCENARIO = {
    "name": "lost-sub-packages-never-asked",
    "start": "2025-03-01T10:00:00+08:00",
    "duration_s": 40,
    "routes": {"tanker-01": [[31.0, 120.0], [31.01, 120.01]]},
    "events": [{"at_s": 2, "vehicle": "tanker-01", "mode": "link_loss", "for_s": 30}],
    "package_body": 200,  # a 0x0704 of 30 fixes (903 bytes) in 5 sub-packages
    "lose_packages": {"tanker-01": 0.25},
}
ACCEL, PERIOD = 20.0, 0.05  # a fix every scenario second: the run lasts 2 s


@pytest.mark.parametrize("early", [False, True])
async def test_the_drain_ends_drain_s_after_the_stop_with_fixes_lost_on_purpose(  # type: ignore[no-untyped-def]
    tmp_path: Path, caplog, early: bool
) -> None:
    """`early`: stopped (SIGINT) while it waits for the platform's ask, before the end."""
    caplog.set_level(logging.DEBUG, logger="simulators.fleet")
    reg = tanker_registry(tmp_path)
    compiled = compile_scenario(ScenarioSpec.model_validate(SCENARIO), reg)
    info = next(v for v in reg.vehicles.values() if v.spec.id == "tanker-01")
    route = compiled.spec.route("tanker-01")
    assert route is not None
    vehicle = SimulatedVehicle(
        info.tenant, "tanker-01", route, compiled.vehicle_speeds["tanker-01"]
    )
    ScenarioRunner(compiled, {}, lambda: 0.0, ACCEL, {"tanker-01": vehicle})  # its modes, quirks
    # a platform that never asks for the missing sub-packages
    async with serving(reg, packets=PacketPolicy(max_asks=0)) as server:
        assert server.address is not None
        host, port = server.address
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fleet = Jt808Fleet(
            [(vehicle, "13800000001", "")],
            host=host,
            port=port,
            clock=lambda: (loop.time() - t0) * ACCEL,
            start_wall_ms=int(time.time() * 1000),
            period_s=PERIOD,
            accel=ACCEL,
            end_s=compiled.spec.duration_s,
            drain_s=1.0,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(fleet.run(stop))
        # the link is back at 32 s (1.6 s): its blind area goes as sub-packaged uploads
        await asyncio.sleep(1.8 if early else compiled.spec.duration_s / ACCEL)
        stop.set()
        stopped = loop.time()
        await asyncio.wait_for(run, 10)  # it waited 30 s per message lost in part
        took = loop.time() - stopped
    assert took < 2.5, took
    assert fleet.packages_lost >= 1 and fleet.packages_asks == 0
    assert fleet.waiting > 0
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"fleet: stopped with {fleet.waiting} fixes of 1 terminals not sent" in said, said
