"""`simulate scenario` drives the vehicles the scenario names, not every vehicle of the
configuration: a tank-farm rehearsal against the demo drove its whole fleet too, and the hub
raised 20 `drift` alarms nobody rehearsed. `--all-vehicles` drives every one (as before),
`--no-fleet` none, `--tenant` one tenant's (as `simulate fleet --tenant`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from simulators.scenario_spec import ScenarioSpec

from services import MosquittoService, free_port

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "examples" / "scenarios"
TANKER_ONLY = """
name: tanker-only
duration_s: 60
events:
  - {at_s: 10, vehicle: tanker-01, to: 40, over_s: 5}
"""


def demo_on_free_ports(tmp_path: Path) -> Path:
    text = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
    ports = {p: str(free_port()) for p in set(re.findall(r"port: (\d+)", text))}
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(re.sub(r"port: (\d+)", lambda m: f"port: {ports[m.group(1)]}", text))
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    return cfg


async def _vehicles_heard(port: int, args: list[str]) -> tuple[set[str], str]:
    """The vehicles whose positions reach the broker while `simulate scenario args` runs, and
    what it printed."""
    heard: set[str] = set()
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("hazardhub/v1/+/vehicles/+/position", qos=1)
            ready.set()
            async for msg in client.messages:
                heard.add(str(msg.topic).split("/")[-2])

    sub = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(ready.wait(), 5)
        sim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hazardhub",
            "simulate",
            "scenario",
            *args,
            "--broker",
            f"127.0.0.1:{port}",
            "--duration",
            "1.5",
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sim.communicate(), 60)
        assert sim.returncode == 0, err.decode()[-2000:]
        await asyncio.sleep(0.5)
    finally:
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub
    return heard, out.decode()


@pytest.mark.parametrize(
    ("scenario", "more", "expected", "said"),
    [
        ("tank-overfill.yaml", [], set(), "the scenario drives none: it names none of the 3"),
        ("tanker-only", [], {"tanker-01"}, "drives the 1 it names of the 3"),
        ("tanker-only", ["--no-fleet"], set(), "--no-fleet: no vehicle driven"),
        (
            "tank-overfill.yaml",
            ["--all-vehicles"],
            {"tanker-01", "coach-07", "charter-03"},
            "fleet: 3 vehicles -> mqtt",
        ),
        (
            "tank-overfill.yaml",
            ["--all-vehicles", "--tenant", "acme-chem"],
            {"tanker-01"},
            "only tenant(s) acme-chem",
        ),
    ],
)
async def test_a_scenario_drives_the_vehicles_it_names(  # type: ignore[no-untyped-def]
    mosquitto: MosquittoService, tmp_path: Path, scenario, more, expected, said
) -> None:
    cfg = demo_on_free_ports(tmp_path)
    path = SCENARIOS / scenario
    if scenario == "tanker-only":
        path = tmp_path / "tanker-only.yaml"
        path.write_text(TANKER_ONLY, encoding="utf-8")
    heard, out = await _vehicles_heard(mosquitto.port, [str(path), "-c", str(cfg), *more])
    assert heard == expected, out
    assert said in out, out


def test_the_names_of_vehicles_in_a_scenario() -> None:
    spec = ScenarioSpec.model_validate(
        {
            "name": "x",
            "duration_s": 10,
            "baseline": {"gas-panel": {}},
            "clock_skew_s": {"coach-07": 5},
            "lose_packages": {"charter-03": 0.5},
            "duplicates": 0.25,  # every vehicle's: names none
            "events": [{"at_s": 1, "vehicle": "tanker-01", "to": 50}],
        }
    )
    assert spec.named_vehicles() == {"gas-panel", "coach-07", "charter-03", "tanker-01"}
