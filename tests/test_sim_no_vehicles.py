"""`hazardhub simulate` of a configuration without vehicles opens no MQTT connection for them
(its fleet client connected for nothing and ended a normal run with an MqttCodeError traceback,
helper-126)."""

from __future__ import annotations

import logging
from pathlib import Path

from services import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_no_vehicles_no_fleet_connection(capsys, caplog):
    from hazardhub.cli import main

    caplog.set_level(logging.DEBUG)
    closed = free_port()  # nothing listens: a connection attempt would be said unreachable
    args = ["simulate", "fleet", "-c", str(ROOT / "examples" / "crane.yaml")]
    assert main([*args, "--broker", f"127.0.0.1:{closed}", "--duration", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "fleet: no vehicles to send" in out, out
    assert not [r for r in caplog.records if r.name.startswith(("simulators.fleet", "aiomqtt"))]


def test_a_scenario_without_start_played_fast_is_warned_of(caplog, mosquitto):
    """Without a `start` positions keep wall-clock times: played at 5x the vehicles cover five
    times the ground in the same time, and the hub raised a GPS drift per vehicle and fix
    (helper-139: 157 in 30 s, from the docs' own recipe). The simulator says so."""
    from hazardhub.cli import main

    caplog.set_level(logging.WARNING)
    scenario = ROOT / "examples" / "scenarios" / "hazmat-overspeed.yaml"
    args = ["simulate", "fleet", "-c", str(ROOT / "examples" / "demo.yaml"), "--scenario"]
    args += [str(scenario), "--broker", f"127.0.0.1:{mosquitto.port}", "--duration", "0.2"]
    main([*args, "--accel", "5"])
    said = [r.getMessage() for r in caplog.records if r.name == "hazardhub.simulate"]
    assert any("has no start" in m and "--accel 1" in m for m in said), said
    caplog.clear()
    main([*args, "--accel", "1"])
    assert not [r for r in caplog.records if "has no start" in r.getMessage()]


def test_a_farm_whose_port_is_taken_says_so_in_one_line(tmp_path, capsys):
    """A Modbus farm started on a port another simulator still held ended in a traceback
    (helper-142): one line, exit code 2."""
    import re
    import socket

    from hazardhub.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = (ROOT / "examples" / "crane.yaml").read_text()
        cfg = tmp_path / "crane.yaml"
        cfg.write_text(re.sub(r"port: \d+", f"port: {port}", text))
        (tmp_path / "profiles").symlink_to(ROOT / "profiles")
        assert main(["simulate", "modbus", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use): is another" in err
