"""A new mine connected by its own point definitions: the simulated mine's JC file is taken,
draft-config drafts the hub's configuration and the point map from it, the hub's loader takes the
draft, and a real hub with the mine-files process on a real Mosquitto raises the methane alarm of
an SS file through the drafted configuration."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from gateway.minefiles import MineFilesConfig, MineFilesGateway, resolve
from hazardhub.cli import main
from hazardhub.settings import load, read_text
from simulators.mt1201 import MineSimulator, SimPoint, point_of_kind
from simulators.signals import Constant
from telemetry.registry import parse_document

from e2e_helpers import HubAccess, eventually, get_json, hub_ready
from minefiles_rig import MINE, SITE_ONLY_YAML, now_s, taken, upload

RETURN = f"{MINE}-001A01"


@pytest.mark.slow
async def test_a_drafted_configuration_raises_the_methane_alarm(mosquitto, tmp_path) -> None:
    incoming, state, out = tmp_path / "ftp", tmp_path / "state", tmp_path / "draft"
    hub_yaml, mines_yaml = tmp_path / "hub.yaml", tmp_path / "mines.yaml"
    # before: the mine's site, and the mine without a point map
    hub_yaml.write_text(SITE_ONLY_YAML, encoding="utf-8")
    settings = f"incoming: {incoming}\nsettle_s: 0\nscan_s: 0.1\n"
    mines_yaml.write_text(
        settings + f"mines:\n  '{MINE}': {{tenant: north-coal, site: face-1301}}\n",
        encoding="utf-8",
    )
    points = (
        point_of_kind("001A01", "methane", "1301回风巷", alarm_high=1.0, rise_at_s=0.0),
        point_of_kind("001A02", "methane", "1301综采工作面", alarm_high=1.0, rise_at_s=None),
        point_of_kind("001A03", "co", "1301回风巷", alarm_high=24.0, rise_at_s=None),
        SimPoint("001D01", "馈电", "", "1301工作面", Constant(1.0), range_high=1.0),
        SimPoint("009X01", "顶板离层", "mm", "1301", Constant(3.0), range_high=100.0),
    )
    t0 = now_s() * 1000 - 60_000
    sim = MineSimulator(upload(incoming), MINE, points, start_ms=t0)
    jc = sim.definitions(0.0)
    # the mine has uploaded every 10 s for a while (its files taken: in done/, flat as an
    # older version left them; draft-config reads the day folders too)
    history = MineSimulator(incoming / "done", MINE, points, start_ms=t0 - 100_000)
    for t in range(0, 50, 10):
        history.real_time(float(t))
    first = parse_document(read_text(mines_yaml), MineFilesConfig, "mines.yaml")
    taker = MineFilesGateway(
        resolve(first, load(hub_yaml).registry(), "mines.yaml"),
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=state,
    )
    await taker.scan()  # takes the JC file: the definitions are kept
    assert taken(incoming, jc.name).exists()

    argv = ["mine-files", "-c", str(hub_yaml), "--mines", str(mines_yaml)]
    draft = [*argv, "--state-dir", str(state), "draft-config", "--mine", MINE, "--out", str(out)]
    assert main(draft) == 0
    hub_yaml.write_text(read_text(out / f"{MINE}.hub.yaml"), encoding="utf-8")
    mines_yaml.write_text(settings + read_text(out / f"{MINE}.mines.yaml"), encoding="utf-8")

    registry = load(hub_yaml).registry()  # the hub's own loader takes the draft
    by_id = {s.id: s for s in registry.sensors}
    assert by_id[RETURN].rule == "coal-methane.return-t2" and by_id[RETURN].tag == "T2"
    assert by_id[f"{MINE}-001A02"].rule == "coal-methane.face-t1"
    assert by_id[f"{MINE}-001A03"].rule == "coal-gas.co"
    assert by_id[f"{MINE}-001D01"].kind == "power_feed" and by_id[f"{MINE}-001D01"].rule == ""
    assert by_id[f"{MINE}-009X01"].kind == "other"
    assert {s.no_data_s for s in registry.sensors} == {60.0}  # 3 x the 10 s uploads seen

    access = HubAccess()
    hub = access.hub(registry, tmp_path / "hub", mosquitto.port)
    hub_stop = asyncio.Event()
    hub_task = asyncio.create_task(hub.run(hub_stop))
    proc = None
    try:
        await eventually(lambda: hub_ready(hub), 10, "the hub to subscribe and serve")
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "hazardhub", *argv),
                *("--state-dir", str(state), "--broker", f"127.0.0.1:{mosquitto.port}"),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = sim.real_time(60.0)  # 001A01 at 1.6 % from 30 s to 90 s
        async with access.client() as client:

            async def alarms() -> list[dict[str, object]]:
                return await get_json(client, "/api/v1/alarms", sensor=RETURN)  # type: ignore[no-any-return]

            found = await eventually(alarms, 20, "the return-air methane alarm")
        assert taken(incoming, peak.name).exists()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        hub_stop.set()
        await hub_task
    assert proc.returncode == 0, err
    assert len(found) == 1, found
    assert found[0]["rule"] == "coal-methane.return-t2"
    assert found[0]["started_ts"] == t0 + 60_000  # the record's own time
