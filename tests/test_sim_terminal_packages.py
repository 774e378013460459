"""The simulated JT/T 808 terminal's sub-packaged messages, for testing a platform's handling of
them: a long message (a 0x0704 blind-area upload) split into sub-packages of at most
`package_body` bytes, each its own serial; a share of them lost on purpose (`lose_packages`);
the platform's request for the missing ones (0x8003) answered 0x0001 result 0 and the asked
sub-packages sent again, with their first serials or new ones (`resend_packages`). Played
through a real JT/T 808 gateway (its ask shortened through its `PacketPolicy`) and a real
Mosquitto: every position arrives once, and the gateway's `packets_asked` (and `packet_resent`
for new serials) agree with the terminal's counts. Before, the terminal answered 0x8003 with
0x0001 result 3 (not supported): a lost sub-package lost the whole message."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jt808_helpers import PHONE, VEHICLE_TOPIC, fix, make_gateway, positions_on, running

from gateway.jt808 import PacketPolicy
from hazardhub.settings import load
from simulators.farm import ScenarioRunner
from simulators.fleet import Jt808Fleet, SimulatedVehicle
from simulators.jt808 import Jt808Terminal
from simulators.jt808packets import LossPlan, read_resend
from simulators.scenario_spec import ScenarioSpec
from simulators.timeline import compile_scenario
from telemetry.jt808 import PlatformResponse
from telemetry.registry import parse_document

from e2e_helpers import eventually, tanker_registry

FAST = PacketPolicy(ask_after_ms=300, max_asks=3, max_age_ms=5_000)  # (ticks 1 s apart)
SCENARIO = {
    "name": "lost-sub-packages",
    "start": "2025-03-01T10:00:00+08:00",
    "duration_s": 60,
    "routes": {
        "tanker-01": [[31.0, 120.0], [31.01, 120.01]],
        "tanker-02": [[32.0, 119.0], [32.01, 119.01]],
    },
    "events": [{"at_s": 5, "vehicle": "tanker-01", "mode": "link_loss", "for_s": 40}],
    "package_body": 200,  # a 0x0704 of 30 fixes (903 bytes) in 5 sub-packages
    "lose_packages": {"tanker-01": 0.25},
    "resend_packages": "new",
}
ACCEL, PERIOD = 10.0, 0.1  # a fix every scenario second: t = 0, 1, ..., 60


async def _now(value: bool) -> bool:
    return value


def test_the_scenario_compiles_the_options(tmp_path: Path) -> None:
    reg = tanker_registry(tmp_path)
    compiled = compile_scenario(ScenarioSpec.model_validate(SCENARIO), reg)
    one, two = compiled.terminal_quirks["tanker-01"], compiled.terminal_quirks["tanker-02"]
    assert (one.package_body, one.lose_packages, one.new_serials) == (200, 0.25, True)
    assert (two.package_body, two.lose_packages, two.new_serials) == (200, 0.0, True)
    plain = compile_scenario(ScenarioSpec.model_validate({**SCENARIO, "lose_packages": 0.5}), reg)
    assert plain.terminal_quirks["tanker-02"].lose_packages == 0.5
    with pytest.raises(ValueError, match=r"lose_packages: 2\.0 is not a share"):
        ScenarioSpec.model_validate({**SCENARIO, "lose_packages": 2.0})
    with pytest.raises(ValueError, match="package_body"):
        ScenarioSpec.model_validate({**SCENARIO, "package_body": 1024})
    with pytest.raises(ValueError, match="resend_packages"):
        ScenarioSpec.model_validate({**SCENARIO, "resend_packages": "fresh"})
    with pytest.raises(ValueError, match="lose_packages: no vehicle 'tanker-09'"):
        compile_scenario(
            ScenarioSpec.model_validate({**SCENARIO, "lose_packages": {"tanker-09": 0.1}}), reg
        )


@given(st.floats(0.0, 1.0), st.lists(st.integers(1, 20), min_size=1, max_size=30))
def test_the_loss_plan_loses_its_share_and_never_a_whole_message(
    share: float, totals: list[int]
) -> None:
    plan = LossPlan(share)
    lost = [plan.lost(total) for total in totals]
    for total, gone in zip(totals, lost, strict=True):
        assert gone <= set(range(1, total + 1)) and len(gone) < total
    n, k = sum(totals), sum(len(g) for g in lost)
    assert k <= share * n + 1e-6 and (share == 1.0 or k >= share * n - len(totals) - 1)


@given(st.integers(0, 0xFFFF), st.lists(st.integers(1, 0xFFFF), max_size=255), st.booleans())
def test_the_request_body_is_read_in_2013_and_2019(
    first: int, indexes: list[int], v2019: bool
) -> None:
    count = struct.pack(">H", len(indexes)) if v2019 else bytes((len(indexes),))
    body = struct.pack(">H", first) + count + struct.pack(f">{len(indexes)}H", *indexes)
    assert read_resend(body, v2019) == (first, tuple(indexes))
    with pytest.raises(ValueError):
        read_resend(body + b"\0", v2019)


@pytest.mark.parametrize("new_serials", [False, True])
async def test_lost_sub_packages_are_sent_again_on_the_gateways_ask(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path, new_serials: bool
) -> None:
    gw = make_gateway(tanker_registry(tmp_path), mosquitto.port, tmp_path / "jt808", packets=FAST)
    async with positions_on(mosquitto.port) as got, running(gw, commands=True) as (host, port):
        async with Jt808Terminal(
            host,
            port,
            PHONE,
            timeout_s=4.0,
            max_body=300,
            lose_packages=0.3,
            new_serials=new_serials,
        ) as t:
            await t.login()
            for start in (0, 40, 80):  # 40 fixes: 1,203 bytes, 5 sub-packages
                answer = await t.backfill([fix(start + i) for i in range(40)])
                assert answer is not None and answer.result == PlatformResponse.OK
            await t.logout()
        await eventually(
            lambda: _now(sum(len(rs) for rs in got.values()) >= 120), 5, "all published"
        )
        await asyncio.sleep(0.3)  # (a copy published would come after)
    stamps = sorted(int(r["ts"]) for rs in got.values() for r in rs)
    assert stamps == [fix(i).ts_ms for i in range(120)]  # each once
    counters, p = gw.server.counters, t.packages
    assert p.lost == 4 and p.resent == p.lost and p.refused == 0  # 0.3 of 15
    assert counters["packets_asked"] == p.asks == 3  # one message at a time: one ask each
    assert counters["packet_resent"] == (p.resent if new_serials else 0)
    assert counters["incomplete_packets"] == counters["packet_repeated"] == 0
    assert t.retransmitted == 0 and t.unsupported == 1  # (0x8702: no card reader)


async def test_a_fleet_loses_sub_packages_of_its_blind_area_and_every_fix_arrives_once(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
) -> None:
    reg = tanker_registry(tmp_path)
    compiled = compile_scenario(ScenarioSpec.model_validate(SCENARIO), reg)
    vehicles = [
        SimulatedVehicle(v.tenant, v.spec.id, route, compiled.vehicle_speeds[v.spec.id])
        for v in reg.vehicles.values()
        if (route := compiled.spec.route(v.spec.id)) is not None
    ]
    runner = ScenarioRunner(compiled, {}, lambda: 0.0, ACCEL, {v.id: v for v in vehicles})
    gw = make_gateway(reg, mosquitto.port, tmp_path / "jt808", packets=FAST)
    phones = {"tanker-01": "13800000001", "tanker-02": "13800000002"}
    async with running(gw, commands=True) as (host, port), positions_on(mosquitto.port) as got:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fleet = Jt808Fleet(
            [(v, phones[v.id], "") for v in vehicles],
            host=host,
            port=port,
            clock=lambda: (loop.time() - t0) * ACCEL,
            start_wall_ms=int(time.time() * 1000),
            period_s=PERIOD,
            accel=ACCEL,
            end_s=compiled.spec.duration_s,
            drain_s=15.0,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(fleet.run(stop))
        await asyncio.sleep(compiled.spec.duration_s / ACCEL)
        stop.set()
        await asyncio.wait_for(run, 30)
        assert fleet.waiting == 0
        await eventually(
            lambda: _now(sum(len(rs) for rs in got.values()) >= fleet.sent), 10, "all published"
        )
        await asyncio.sleep(0.3)
    for vehicle in ("tanker-01", "tanker-02"):
        stamps = sorted(int(r["ts"]) for r in got[VEHICLE_TOPIC.format(vehicle)])
        assert stamps == [runner.epoch_ms + t * 1000 for t in range(61)], vehicle  # each once
    counters = gw.server.counters
    assert fleet.backfills >= 2 and fleet.packages_lost >= 2
    assert fleet.packages_resent == fleet.packages_lost == counters["packet_resent"]
    assert fleet.packages_asks == counters["packets_asked"] >= 2
    assert counters["incomplete_packets"] == 0


def test_the_documented_scenario_compiles_against_the_demo() -> None:
    """docs/simulators.md's scenario of lost sub-packages, played against the demo's vehicles:
    the 4th sub-package of each upload of 30 fixes (903 bytes: 4 sub-packages of 300) lost."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "simulators.md").read_text(encoding="utf-8")
    section = doc.split("### Sub-packages, lost on purpose and asked for again", 1)[1]
    snippet = section.split("cat > lost-packages.yaml <<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    spec = parse_document(snippet, ScenarioSpec, "docs/simulators.md")
    compiled = compile_scenario(spec, load(root / "examples" / "demo.yaml").registry())
    tanker = compiled.terminal_quirks["tanker-01"]
    assert (tanker.package_body, tanker.lose_packages, tanker.new_serials) == (300, 0.25, True)
    assert compiled.terminal_quirks["coach-07"].lose_packages == 0.0
    plan = LossPlan(tanker.lose_packages)
    assert [plan.lost(-(-903 // 300)) for _ in range(2)] == [{4}, {4}]
