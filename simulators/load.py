"""Synthetic gateways: telemetry at a given rate of readings per second, for load tests.

Publishes with paho-mqtt on its own network thread (aiomqtt tops out near 10k messages/s here), one
message per device and cycle with `batch` readings, QoS 1. `config_yaml` writes the hazardhub
configuration whose devices these are, so that a hub accepts the load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from telemetry.codec import TelemetryBatch, encode
from telemetry.topics import TopicLayout

__all__ = ["LoadGenerator", "LoadReport", "config_yaml"]

log = logging.getLogger(__name__)
TENANT, SITE = "load", "load"


def config_yaml(devices: int, batch: int) -> str:
    """A configuration with the load generator's devices (one profile of `batch` points)."""
    points = "\n".join(
        f"      - {{name: p{i}, table: holding, address: {i}, dtype: uint16}}" for i in range(batch)
    )

    def sensors(d: int) -> str:
        return ", ".join(f"{{id: ld{d}-p{i}, point: p{i}, kind: other}}" for i in range(batch))

    devs = "\n".join(
        f"          - {{id: ld{d}, profile: load-{batch}, sensors: [{sensors(d)}]}}"
        for d in range(devices)
    )
    return (
        "version: 1\n"
        f"device_profiles:\n  - name: load-{batch}\n    points:\n{points}\n"
        f"tenants:\n  - id: {TENANT}\n    sites:\n      - id: {SITE}\n        devices:\n{devs}\n"
    )


@dataclass(slots=True)
class LoadReport:
    seconds: float
    messages: int
    readings: int
    per_second: list[int]

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


class LoadGenerator:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        rate: float,
        devices: int = 100,
        batch: int = 100,
        layout: TopicLayout | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.rate, self.devices, self.batch = rate, devices, batch
        self._layout = layout or TopicLayout()
        self._clock = clock_ms
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hazardhub-load")
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(100_000)
        self._acked = 0
        self._client.on_publish = self._on_publish
        self._host, self._port = host, port
        self._epoch = clock_ms()
        self._seq = [0] * devices
        self._keys = tuple(f"p{i}" for i in range(batch))
        self._key = np.arange(batch, dtype=np.uint16)
        self._quality = np.zeros(batch, dtype=np.uint8)
        self._rng = np.random.default_rng(1)

    def _on_publish(self, *_: object) -> None:
        self._acked += 1  # PUBACK of a QoS 1 message

    def _message(self, device: int) -> tuple[str, bytes]:
        now = self._clock()
        b = TelemetryBatch(
            "load-gw",
            f"ld{device}",
            self._epoch,
            self._seq[device],
            self._keys,
            self._key,
            np.full(self.batch, now, dtype=np.int64),
            self._rng.random(self.batch) * 100,
            self._quality,
        )
        self._seq[device] += 1
        return self._layout.telemetry(TENANT, SITE, f"ld{device}"), encode(b)

    def run(self, seconds: float, stop: threading.Event | None = None) -> LoadReport:
        """Publish for `seconds` (or until `stop`); returns what was sent."""
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        messages_per_s = self.rate / self.batch
        per_second: list[int] = []
        sent = 0
        start = time.perf_counter()
        device = 0
        try:
            while time.perf_counter() - start < seconds and not (stop and stop.is_set()):
                second_start = time.perf_counter()
                count = 0
                target = int(messages_per_s)
                while count < target and time.perf_counter() - second_start < 1.0:
                    topic, payload = self._message(device)
                    self._client.publish(topic, payload, qos=1)
                    device = (device + 1) % self.devices
                    count += 1
                    # spread the second's messages evenly
                    ahead = count / messages_per_s - (time.perf_counter() - second_start)
                    if ahead > 0.005:
                        time.sleep(ahead)
                rest = 1.0 - (time.perf_counter() - second_start)
                if rest > 0:
                    time.sleep(rest)
                per_second.append(count * self.batch)
                sent += count
                log.info("sent %d readings/s", count * self.batch)
            elapsed = time.perf_counter() - start
            deadline = time.perf_counter() + 30
            while self._acked < sent and time.perf_counter() < deadline:
                time.sleep(0.05)  # everything sent must be acknowledged by the broker
        finally:
            self._client.loop_stop()
            self._client.disconnect()
        if self._acked < sent:
            log.warning("%d messages were not acknowledged by the broker", sent - self._acked)
        return LoadReport(elapsed, self._acked, self._acked * self.batch, per_second)
