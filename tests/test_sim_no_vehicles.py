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
