"""`simulate scenario --accel N` says what playing fast does to the hub's judgement. Readings keep
the gateway's wall-clock stamps, so the hub's on/off delays, rate windows and the gateway's polls
last N times as long in scenario time: at 5x a tank's HI held 11 s never passed its 5 s on-delay
and its clear came 40 s late, with no word from the simulator. It now warns at its start (a log
line and a printed one) with the configuration's numbers; the stamps are unchanged."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from hazardhub.settings import load
from hazardhub.simulate import load_scenario
from simulators.accel import accel_caveat
from simulators.timeline import compile_scenario

from services import free_port

ROOT = Path(__file__).resolve().parent.parent
OVERFILL = ROOT / "examples" / "scenarios" / "tank-overfill.yaml"


def rehearsal(tmp_path: Path) -> Path:
    """The demo on free ports, T-101's level on the rule with delays (HI: on 5 s, off 10 s),
    its RTU polled every 2 s."""
    text = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
    ports = {p: str(free_port()) for p in set(re.findall(r"port: (\d+)", text))}
    text = re.sub(r"port: (\d+)", lambda m: f"port: {ports[m.group(1)]}", text)
    text = text.replace(
        'id: t101-level, point: level, kind: level, location: "T-101", '
        "rule: chem-process.tank-level-10m",
        'id: t101-level, point: level, kind: level, location: "T-101", '
        "rule: chem-process.tank-level-hilo",
    )
    lines = text.splitlines()
    at = next(k for k, line in enumerate(lines) if "id: tank1-rtu" in line)
    k = next(k for k in range(at, len(lines)) if "modbus:" in lines[k])
    lines[k] = lines[k].replace("poll_s: 1.0", "poll_s: 2.0")
    assert "poll_s: 2.0" in lines[k]
    cfg = tmp_path / "demo.yaml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    return cfg


def test_the_caveat_names_the_longest_delay_and_the_poll_times_accel(tmp_path: Path) -> None:
    reg = load(rehearsal(tmp_path)).registry()
    compiled = compile_scenario(load_scenario(OVERFILL, None), reg)
    said = accel_caveat(compiled, reg, 5)
    assert said is not None
    assert "(t101-level hi off_delay_s: 10 s) lasts 50 scenario seconds" in said, said
    assert "a poll every 2 s (tank1-rtu) is one every 10 scenario seconds" in said, said
    assert "levels held shorter than 60 scenario seconds may be missed" in said, said
    assert "compare against an expected timeline at --accel 1" in said
    assert accel_caveat(compiled, reg, 1) is None
    # a scenario that drives no device (the fleet's): nothing to say of polls
    fleet = compile_scenario(
        load_scenario(ROOT / "examples" / "scenarios" / "hazmat-overspeed.yaml", None), reg
    )
    assert accel_caveat(fleet, reg, 5) is None


def test_simulate_scenario_warns_at_its_start(tmp_path: Path, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    from hazardhub.cli import main

    caplog.set_level(logging.WARNING)
    cfg = rehearsal(tmp_path)
    closed = free_port()
    args = ["simulate", "scenario", str(OVERFILL), "-c", str(cfg), "--duration", "0.2"]
    args += ["--broker", f"127.0.0.1:{closed}"]
    assert main([*args, "--accel", "5"]) == 0
    out = capsys.readouterr().out
    logged = [r.getMessage() for r in caplog.records if r.name == "hazardhub.simulate"]
    for said in (out, "\n".join(logged)):
        assert "played 5x" in said and "lasts 50 scenario seconds" in said, said
        assert "levels held shorter than 60 scenario seconds may be missed" in said, said
    caplog.clear()
    assert main([*args, "--accel", "1"]) == 0
    assert "scenario seconds" not in capsys.readouterr().out
    assert not [r for r in caplog.records if "scenario seconds" in r.getMessage()]
