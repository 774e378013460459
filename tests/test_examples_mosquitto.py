"""`examples/mosquitto-test.conf`, the broker docs/simulators.md starts for a try on one
machine: Mosquitto 2.0 takes every line of it and serves on its loopback listener (here moved
to a free port)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import paho.mqtt.publish as publish
import paho.mqtt.subscribe as subscribe

from services import MOSQUITTO, _tcp_open, free_port

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "examples" / "mosquitto-test.conf"


def test_the_test_brokers_configuration_serves_with_raised_queue_limits(tmp_path: Path) -> None:
    text = CONF.read_text()
    assert re.search(r"^listener 1883 127\.0\.0\.1$", text, re.M)
    assert re.search(r"^max_queued_messages 100000$", text, re.M)
    assert (
        "mosquitto -c examples/mosquitto-test.conf" in (ROOT / "docs" / "simulators.md").read_text()
    )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text.replace("listener 1883 ", f"listener {port} "))
    broker = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while not _tcp_open("127.0.0.1", port) and time.monotonic() < deadline:
            assert broker.poll() is None, broker.communicate()[0].decode()
            time.sleep(0.05)
        publish.single("t/x", b"retained", hostname="127.0.0.1", port=port, retain=True)
        got = subscribe.simple("t/x", hostname="127.0.0.1", port=port)
        assert got.payload == b"retained"
    finally:
        broker.terminate()
        broker.wait(timeout=10)
