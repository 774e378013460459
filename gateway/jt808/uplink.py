"""The JT/T 808 gateway's MQTT uplink: position records through the durable spool, QoS 1.

A `gateway.uplink.SpoolUplink` like the Modbus gateway's publisher: every JSON array of records
is committed to the spool before the terminal gets its 0x8001, then published in order, and
leaves the spool when the broker acknowledged it. Spool drops are reported per vehicle on
``{root}/{tenant}/gateways/{gateway}/dropped``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson

from gateway.jt808.directory import VehicleRef
from gateway.spool import DropReport, Spool, Spooled
from gateway.uplink import SpoolUplink
from telemetry.topics import TopicLayout

__all__ = ["PositionUplink"]


class PositionUplink(SpoolUplink):
    """Owns one MQTT connection and the spool of the JT/T 808 gateway."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        layout: TopicLayout,
        spool: Spool,
        gateway: str = "jt808",
        clock_ms: Callable[[], int],
        username: str | None = None,
        password: str | None = None,
        window: int = 200,
        backoff_max_s: float = 10.0,
    ) -> None:
        super().__init__(
            host,
            port,
            spool=spool,
            client_id=f"hazardhub-jt808-{gateway}",
            name=gateway,
            username=username,
            password=password,
            backoff_max_s=backoff_max_s,
            window=window,
        )
        self._layout = layout
        self.gateway = gateway
        self._clock = clock_ms
        self._seq = 0
        self.published = 0
        self.latencies_ms: list[int] = []  # receive-to-PUBACK, drained by whoever reports them

    def submit(
        self, ref: VehicleRef, records: tuple[dict[str, object], ...], received_ms: int
    ) -> None:
        """Commit one JSON array of records to the spool (synchronously: it must be durable
        before the terminal is acknowledged)."""
        topic = self._layout.position(ref.tenant, ref.vehicle)
        payload = orjson.dumps(records)
        self._seq += 1
        self.spool.push(
            topic, payload, f"{ref.tenant}/{ref.vehicle}", received_ms, self._seq, len(records)
        )
        self.wake()

    def _dropped_topic(self, report: DropReport) -> str:
        tenant = report.device.partition("/")[0]  # drops are counted per tenant/vehicle
        return self._layout.gateway_dropped(tenant, self.gateway)

    def _sent(self, items: Sequence[Spooled]) -> None:
        now = self._clock()
        self.latencies_ms.extend(now - item.epoch for item in items)
        self.published += len(items)
        if len(self.latencies_ms) > 100_000:
            del self.latencies_ms[:50_000]
