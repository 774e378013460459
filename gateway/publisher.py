"""The gateway's MQTT uplink: QoS 1 publishing from a bounded queue, reconnecting with backoff.

A batch leaves the queue only when the broker acknowledged it (PUBACK), so a broker that goes away
mid-send costs a re-send, never a batch. The queue is bounded (`queue_size` batches): when it is
full, the pollers wait for room and `MqttPublisher.full_waits` counts how often. A disk spool for
long outages belongs to the gateway issue that deepens this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass

import aiomqtt

from telemetry.codec import TelemetryBatch, encode
from telemetry.registry import DeviceInfo
from telemetry.topics import TopicLayout

__all__ = ["MqttPublisher", "Outgoing"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    device: str
    epoch: int
    seq: int
    readings: int


class MqttPublisher:
    """Owns one MQTT connection for one gateway of one tenant."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tenant: str,
        gateway: str,
        layout: TopicLayout,
        queue_size: int = 10_000,
        username: str | None = None,
        password: str | None = None,
        backoff_max_s: float = 10.0,
    ) -> None:
        self._host, self._port = host, port
        self._tenant, self._gateway = tenant, gateway
        self._layout = layout
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=queue_size)
        self._username, self._password = username, password
        self._backoff_max = backoff_max_s
        self.status_topic = layout.gateway_status(tenant, gateway)
        self.connected = asyncio.Event()
        self.full_waits = 0
        self._inflight: Outgoing | None = None  # taken from the queue, not yet acknowledged
        self.published: dict[str, dict[tuple[int, int], int]] = defaultdict(dict)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + (self._inflight is not None)

    async def submit_batch(self, device: DeviceInfo, batch: TelemetryBatch) -> None:
        topic = self._layout.telemetry(device.tenant, device.site, device.spec.id)
        item = Outgoing(topic, encode(batch), batch.device, batch.epoch, batch.seq, len(batch))
        if self._queue.full():
            self.full_waits += 1
            log.warning("uplink queue full (%d batches): polling waits", self._queue.maxsize)
        await self._queue.put(item)

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 5.0) -> None:
        """Publish until `stop` is set, then drain what is queued (within the timeout)."""
        backoff = 0.2
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier=f"hazardhub-gw-{self._tenant}-{self._gateway}",
                    username=self._username,
                    password=self._password,
                    will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
                    keepalive=30,
                ) as client:
                    await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    self.connected.set()
                    backoff = 0.2
                    log.info(
                        "gateway %s/%s connected to %s:%d",
                        self._tenant,
                        self._gateway,
                        self._host,
                        self._port,
                    )
                    await self._pump(client, stop, drain_timeout_s)
                    await client.publish(self.status_topic, b"offline", qos=1, retain=True)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if stop.is_set() and self._queue.empty() and self._inflight is None:
                    return
                log.warning(
                    "gateway %s/%s: broker unreachable (%s); retry in %.1fs",
                    self._tenant,
                    self._gateway,
                    exc,
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                if stop.is_set():
                    # one last attempt to drain is made by the next iteration only if time allows
                    drain_timeout_s = min(drain_timeout_s, 1.0)
                    if backoff >= self._backoff_max:
                        log.error(
                            "gateway %s/%s: stopping with %d batches unsent",
                            self._tenant,
                            self._gateway,
                            self.pending,
                        )
                        return
                backoff = min(backoff * 2, self._backoff_max)

    async def _pump(
        self, client: aiomqtt.Client, stop: asyncio.Event, drain_timeout_s: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if self._inflight is None:
                if stop.is_set():
                    if deadline is None:
                        deadline = loop.time() + drain_timeout_s
                    if self._queue.empty() or loop.time() > deadline:
                        return
                    self._inflight = self._queue.get_nowait()
                else:
                    getter = asyncio.ensure_future(self._queue.get())
                    stopper = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait(
                        {getter, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    stopper.cancel()
                    if getter in done:
                        self._inflight = getter.result()
                    else:
                        getter.cancel()
                        continue
            item = self._inflight
            await client.publish(item.topic, item.payload, qos=1)
            self.published[item.device][(item.epoch, item.seq)] = item.readings
            self._inflight = None
