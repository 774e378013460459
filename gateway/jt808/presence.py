"""The JT/T 808 gateway's status in each tenant it serves, with a last will per tenant.

A Modbus gateway serves one tenant and states its status retained on
``{root}/{tenant}/gateways/{gateway}/status`` over its uplink, whose last will says `offline`
when the connection dies. The JT/T 808 gateway serves the vehicles of every tenant, and MQTT
gives a connection one will: so it keeps one small connection per tenant (no subscription,
nothing but the will, `online` at connect and `offline` at a clean stop). The hub raises a
`gateway_offline` alarm of the tenant's vehicles when one says `offline` long enough
(`alerts.gateways`), so that a dead JT/T 808 gateway shows in minutes, not as each moving
vehicle's silence.

`online` is said while the uplink (the positions' connection) is connected, `offline` when it is
lost: a gateway whose positions cannot reach the broker is not online. A
gateway going down on an error says `offline` itself before it disconnects, since a clean
disconnect makes the broker drop the will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import aiomqtt

from telemetry.brokertls import BrokerTls, tls_context
from telemetry.mqttclient import BrokerClient
from telemetry.topics import TopicLayout

__all__ = ["Presence"]

log = logging.getLogger(__name__)


class Presence:
    """Owns one MQTT connection per tenant, each holding the gateway's status there."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        layout: TopicLayout,
        tenants: Iterable[str],
        gateway: str,
        uplink_connected: asyncio.Event,
        uplink_lost: asyncio.Event,
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        keepalive_s: int = 30,
        backoff_max_s: float = 10.0,
    ) -> None:
        self._host, self._port = host, port
        self._layout = layout
        self.tenants = tuple(sorted(set(tenants)))
        self.gateway = gateway
        self._uplink, self._uplink_lost = uplink_connected, uplink_lost
        self._username, self._password = username, password
        self._tls = tls
        self._keepalive = keepalive_s
        self._backoff_max = backoff_max_s
        self.online: set[str] = set()  # the tenants where `online` stands now
        self._group: asyncio.TaskGroup | None = None
        self._stop: asyncio.Event | None = None

    def topic(self, tenant: str) -> str:
        return self._layout.gateway_status(tenant, self.gateway)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the status in every tenant until `stop`, then say `offline` in each; a tenant
        given by `follow` later gets its own."""
        self._stop = stop
        async with asyncio.TaskGroup() as tg:
            self._group = tg
            for tenant in self.tenants:
                self._start(tenant)
            await stop.wait()

    def follow(self, tenants: Iterable[str]) -> None:
        """The tenants served now: a new one gets its status (one that left keeps its last:
        the hub watches a tenant's status only while it has vehicles)."""
        for tenant in sorted(set(tenants) - set(self.tenants)):
            self.tenants = (*self.tenants, tenant)
            if self._group is not None:
                self._start(tenant)

    def _start(self, tenant: str) -> None:
        assert self._group is not None and self._stop is not None
        self._group.create_task(self._hold(tenant, self._stop), name=f"jt808-status-{tenant}")

    async def _hold(self, tenant: str, stop: asyncio.Event) -> None:
        topic = self.topic(tenant)
        will = aiomqtt.Will(topic, b"offline", qos=1, retain=True)
        backoff = 0.2
        while not stop.is_set():
            if not await _first(self._uplink, stop):
                return
            try:
                async with BrokerClient(
                    self._host,
                    self._port,
                    identifier=f"hazardhub-jt808-{self.gateway}-status-{tenant}",
                    username=self._username,
                    password=self._password,
                    tls_context=tls_context(self._tls),
                    will=will,
                    keepalive=self._keepalive,
                ).stopped_by(stop) as client:
                    backoff = 0.2
                    try:
                        if await self._say(client, tenant, stop):
                            return
                    except asyncio.CancelledError:
                        # the process is going down on an error of another task: leaving the
                        # block disconnects cleanly and the broker drops the will, so say it
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(
                                client.publish(topic, b"offline", qos=1, retain=True), 2.0
                            )
                        raise
            except aiomqtt.MqttError as exc:
                if stop.is_set():
                    return
                log.warning(
                    "%s: status in %s: broker unreachable (%s); retry in %.1fs",
                    self.gateway,
                    tenant,
                    exc,
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, self._backoff_max)
            finally:
                self.online.discard(tenant)

    async def _say(self, client: aiomqtt.Client, tenant: str, stop: asyncio.Event) -> bool:
        """`online` while the uplink is connected, `offline` when it is lost (and `online`
        again when it is back), until `stop` (True, `offline` said) or the connection is lost
        (raises `MqttError`)."""
        topic = self.topic(tenant)
        while True:
            await client.publish(topic, b"online", qos=1, retain=True)
            self.online.add(tenant)
            stopped = await _lost_or_stopped(client, stop, self._uplink_lost)
            await client.publish(topic, b"offline", qos=1, retain=True)
            self.online.discard(tenant)
            if stopped or not await _first(self._uplink, stop):
                return True


async def _first(ready: asyncio.Event, stop: asyncio.Event) -> bool:
    """Wait for `ready` (True) or `stop` (False)."""
    if ready.is_set() or stop.is_set():
        return not stop.is_set()
    waits = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return not stop.is_set()


async def _lost_or_stopped(
    client: aiomqtt.Client, stop: asyncio.Event, uplink_lost: asyncio.Event
) -> bool:
    """Wait until `stop` (True), the uplink is lost (False), or the connection is lost (raises
    `MqttError`)."""

    async def lost() -> None:
        async for _ in client.messages:  # nothing subscribed: ends only with the connection
            pass

    reader = asyncio.ensure_future(lost())
    waits = [reader, asyncio.ensure_future(stop.wait()), asyncio.ensure_future(uplink_lost.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        if reader.done() and reader.exception() is not None:
            raise aiomqtt.MqttError("the connection ended")
    return stop.is_set()
