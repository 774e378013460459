"""The demo's wait for the hub to be ready, ended by a stop before it was (pure asyncio)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from types import SimpleNamespace

from hazardhub.demo import _wait_ready


def _hub() -> SimpleNamespace:
    return SimpleNamespace(
        ingest=SimpleNamespace(ready=asyncio.Event()), api_started=asyncio.Event()
    )


def _run(body) -> list[dict]:
    """Run `body(hub, stop)` and collect what asyncio reported to the loop's exception handler
    (a future whose exception nobody retrieved is reported when it is collected)."""
    reported: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        await body(_hub(), asyncio.Event())
        gc.collect()
        await asyncio.sleep(0)
        gc.collect()

    asyncio.run(main())
    return reported


def test_a_stop_before_the_hub_is_subscribed_leaves_no_unretrieved_cancellation():
    """A Ctrl-C while the API served and ingest was not yet subscribed printed a CancelledError
    traceback ('exception was never retrieved') into the demo's log."""

    async def body(hub, stop):
        hub.api_started.set()
        asyncio.get_running_loop().call_later(0.01, stop.set)
        await asyncio.wait_for(_wait_ready(hub, stop), 2)

    assert _run(body) == []


def test_it_returns_once_both_are_ready_and_not_before():
    async def body(hub, stop):
        waiting = asyncio.ensure_future(_wait_ready(hub, stop))
        hub.ingest.ready.set()
        await asyncio.sleep(0.02)
        assert not waiting.done()
        hub.api_started.set()
        await asyncio.wait_for(waiting, 2)
        assert not stop.is_set()

    assert _run(body) == []


def test_a_configuration_of_ones_own_is_simulated_at_its_starting_values_and_told_so(capsys):
    """`hazardhub demo --config crane.yaml`: every point read 0.0 (the demo's story knows its
    own devices only) while `simulate modbus` gave the starting values; the banner told of the
    demo's methane and tanker and linked a sensor the configuration does not have."""
    from hazardhub.demo import DemoOptions, _banner, simulated_devices
    from hazardhub.settings import load
    from simulators.timeline import ScenarioSpec, compile_scenario

    root = Path(__file__).resolve().parent.parent
    path = root / "examples" / "crane.yaml"
    registry = load(path).registry()
    devices = [d for devs in simulated_devices(registry, lambda: 0.0).values() for d in devs]
    assert devices
    steady = compile_scenario(ScenarioSpec(name="steady", duration_s=60.0), registry)
    for dev in devices:
        values = dev.values_at(5.0)
        assert any(v != 0.0 for v in values.values()), values
    load_pct = [d.values_at(5.0)["load_pct"] for d in devices if "load_pct" in d.values_at(0.0)]
    owner = next(iter(steady.point_signals))
    assert load_pct[0] == steady.point_signals[owner]["load_pct"].value_at(5.0) != 0.0

    _banner(DemoOptions(config=path, data_dir=Path("/tmp/x")), 1883, "k", registry)
    said = capsys.readouterr().out
    assert "face methane" not in said and "face1301-ch4-t1" not in said
    assert str(path) in said and f"/sensors/{min(s.id for s in registry.sensors)}/latest" in said


def test_the_demos_own_configuration_plays_its_story():
    from hazardhub.demo import simulated_devices
    from hazardhub.settings import load

    registry = load(Path(__file__).resolve().parent.parent / "examples" / "demo.yaml").registry()
    devices = [d for devs in simulated_devices(registry, lambda: 0.0).values() for d in devs]
    feeds = [d.values_at(40.0)["feed"] for d in devices if "feed" in d.values_at(0.0)]
    assert feeds == [0.0]  # the power cut of the story at 33-56 s
