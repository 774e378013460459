"""Through the real hub: an MT/T 1201 real-time file with 1.6 % methane at a return-air sensor
raises the hub's methane alarm at the record's own time; the same file taken again (a restart
before the broker acknowledged it) raises nothing more and stores nothing twice."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from gateway.minefiles import MineFilesGateway

from e2e_helpers import HubAccess, eventually, get_json, hub_ready
from minefiles_rig import hub_registry, mines, now_s, reading, taken, upload, write_file


async def _take(gw: MineFilesGateway, done: object) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await eventually(done, 10, "the file acknowledged")  # type: ignore[arg-type]
    finally:
        stop.set()
        await task


@pytest.mark.slow
async def test_methane_in_a_file_raises_the_hubs_alarm_at_the_records_time(
    mosquitto, tmp_path
) -> None:
    registry = hub_registry()
    access = HubAccess()
    hub = access.hub(registry, tmp_path / "hub", mosquitto.port)
    incoming = tmp_path / "ftp"
    t = now_s() * 1000 - 10_000
    path = write_file(
        upload(incoming),
        "SS",
        [
            reading("001A01", 0.50, "0", t - 4000),
            reading("001A01", 0.62, "0", t - 2000),
            reading("001A01", 1.60, "0", t),  # return airway T2: alarm and power cut at 1.0 %
            reading("001A02", 0.30, "0", t),
        ],
        t,
    )
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    hub_stop = asyncio.Event()
    hub_task = asyncio.create_task(hub.run(hub_stop))

    async def done() -> bool:
        return taken(incoming, path.name).exists()

    try:
        await eventually(lambda: hub_ready(hub), 10, "the hub to subscribe and serve")
        state = tmp_path / "state"
        await _take(
            MineFilesGateway(
                mines(incoming, registry),
                broker_host="127.0.0.1",
                broker_port=mosquitto.port,
                state_dir=state,
            ),
            done,
        )
        async with access.client() as client:

            async def alarms() -> list[dict[str, object]]:
                return await get_json(client, "/api/v1/alarms", sensor="t2-return")  # type: ignore[no-any-return]

            first = await eventually(alarms, 10, "the return-air methane alarm")
            latest = await get_json(client, "/api/v1/sensors/t2-return/latest")
            assert (latest["ts"], latest["value"]) == (t, 1.6)

            # taken again: a restart re-sends a file the broker had not acknowledged
            taken(incoming, path.name).unlink()
            shutil.copy(copy, path)
            again = MineFilesGateway(
                mines(incoming, registry),
                broker_host="127.0.0.1",
                broker_port=mosquitto.port,
                state_dir=state,
            )
            await _take(again, done)
            await asyncio.sleep(1.0)  # the hub has judged it (nothing to wait for: no change)
            second = await alarms()
            stored = await hub.store.count_by_seq("north-coal", "kj")
    finally:
        hub_stop.set()
        await hub_task

    assert len(first) == 1, first
    alarm = first[0]
    assert alarm["rule"] == "coal-methane.return-t2"
    assert alarm["started_ts"] == t  # the record's own data time, not the arrival
    raised = alarm["events"][0]  # type: ignore[index]
    assert raised["kind"] == "raised" and raised["ts"] == t and raised["value"] == 1.6
    assert [a["id"] for a in second] == [alarm["id"]]
    assert second[0]["events"] == alarm["events"]
    # one store row per (sensor, time): the re-sent readings overwrote, not added
    assert sum(stored.values()) == 4, stored
