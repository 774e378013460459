"""The MQTT fleet's "broker unreachable" warning names the broker it cannot reach, as the
JT/T 808 fleet's names its platform: it said only the client library's error, which names an
address for a refused connection but not for a timeout, a lost link or a refused login."""

from __future__ import annotations

import asyncio
import logging

from simulators.fleet import FleetPublisher, SimulatedVehicle
from simulators.signals import Constant
from telemetry.topics import TopicLayout

from services import free_port

ROUTE = ((31.0, 120.0), (31.01, 120.01))


async def test_the_warning_names_host_and_port(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="simulators.fleet")
    closed = free_port()  # nothing listens there
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    fleet = FleetPublisher(
        [SimulatedVehicle("acme-chem", "tanker-01", ROUTE, Constant(60.0), seed=1)],
        host="127.0.0.1",
        port=closed,
        layout=TopicLayout(),
        clock=lambda: loop.time() - t0,
        start_wall_ms=1_800_000_000_000,
        period_s=0.1,
        drain_s=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    await asyncio.sleep(0.4)
    stop.set()
    await asyncio.wait_for(task, 5)
    said = [r.getMessage() for r in caplog.records if "broker unreachable" in r.getMessage()]
    assert said and all(f"broker unreachable at 127.0.0.1:{closed} (" in m for m in said), said
