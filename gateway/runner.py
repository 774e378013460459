"""One gateway process: pollers for its devices feeding one MQTT publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.bus import ModbusBus
from gateway.poller import DevicePoller, wall_ms
from gateway.publisher import MqttPublisher
from gateway.spool import Spool
from telemetry.brokertls import BrokerTls
from telemetry.codec import TelemetryBatch
from telemetry.registry import DeviceInfo, Registry
from telemetry.topics import TopicLayout

__all__ = ["Gateway", "spread_phase"]

log = logging.getLogger(__name__)


def spread_phase(
    i: int, n: int, period_s: float, *, within_s: float = 1.0, groups: int = 4
) -> float:
    """Start offset of the i-th of n devices: in `groups` steps over min(period, within_s).

    Devices of one group start together: the event loop serves their requests in the same
    turns (cheaper than one wake-up per device), and the groups keep bursts small."""
    if n <= 0:
        return 0.0
    return min(period_s, within_s) * (i * groups // n) / groups


class Gateway:
    """Polls the devices that the configuration assigns to (tenant, gateway) and publishes them."""

    def __init__(
        self,
        registry: Registry,
        *,
        tenant: str,
        gateway: str,
        broker_host: str,
        broker_port: int,
        layout: TopicLayout,
        spool_dir: Path,
        epoch: int | None = None,
        spool_max_bytes: int = 256 * 1024 * 1024,
        spool_max_age_s: float = 7 * 86400,
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        report_every_s: float = 60.0,
    ) -> None:
        self.tenant, self.gateway = tenant, gateway
        self.report_every_s = report_every_s
        self.epoch = wall_ms() if epoch is None else epoch
        self.devices = [
            d for d in registry.devices.values() if d.tenant == tenant and d.spec.gateway == gateway
        ]
        self.spool = Spool(
            spool_dir / f"spool-{tenant}-{gateway}.db",
            max_bytes=spool_max_bytes,
            max_age_s=spool_max_age_s,
            clock_ms=wall_ms,
        )
        self.publisher = MqttPublisher(
            broker_host,
            broker_port,
            tenant=tenant,
            gateway=gateway,
            layout=layout,
            spool=self.spool,
            username=username,
            password=password,
            tls=tls,
        )
        self.buses: dict[tuple[str, str], ModbusBus] = {}
        for d in self.devices:
            endpoint = d.spec.modbus.endpoint()
            if endpoint not in self.buses:
                slowest = max(
                    x.spec.modbus.timeout_s
                    for x in self.devices
                    if x.spec.modbus.endpoint() == endpoint
                )
                self.buses[endpoint] = ModbusBus(d.spec.modbus, timeout_s=slowest)
        # the devices' first cycles spread over (at most) the first second, in config order
        self.pollers = [
            DevicePoller(
                d,
                self._sink_for(d),
                gateway=gateway,
                epoch=self.epoch,
                bus=self.buses[d.spec.modbus.endpoint()],
                phase_s=spread_phase(i, len(self.devices), d.spec.modbus.poll_s),
                counters=self.publisher.counters,
            )
            for i, d in enumerate(self.devices)
        ]

    def metrics(self) -> tuple[dict[str, int], dict[str, float]]:
        """What the gateway counted (its uplink's ``publish_refused`` ...) and holds now, for
        `gateway.metricsserver`."""
        state = {
            "devices": float(len(self.devices)),
            "spool_batches": float(self.publisher.pending),
            "spool_bytes": float(self.spool.size_bytes),
            "broker_connected": float(self.publisher.connected.is_set()),
        }
        return dict(self.publisher.counters), state

    def _sink_for(self, device: DeviceInfo) -> Callable[[TelemetryBatch], Awaitable[None]]:
        async def sink(batch: TelemetryBatch) -> None:
            await self.publisher.submit_batch(device, batch)

        return sink

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then stop polling, drain the uplink and say offline."""
        uplink_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.publisher.run(uplink_stop), name=f"uplink-{self.gateway}")
            tg.create_task(self._report(uplink_stop), name=f"report-{self.gateway}")
            pollers = [
                tg.create_task(p.run(stop), name=f"poll-{p.device.spec.id}") for p in self.pollers
            ]
            if pollers:
                await asyncio.wait(pollers)
            else:
                await stop.wait()
            uplink_stop.set()
        for bus in self.buses.values():
            bus.close()
        self.spool.close()
        log.info("gateway %s/%s stopped", self.tenant, self.gateway)

    async def _report(self, stop: asyncio.Event) -> None:
        """Log the uplink's counters that changed (``publish_refused``) every `report_every_s`,
        and once more at the end."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.report_every_s):
                    await stop.wait()
            self.publisher.report_counters()
