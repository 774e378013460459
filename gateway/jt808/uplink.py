"""The JT/T 808 gateway's MQTT uplink: position records through the durable spool, QoS 1.

A `gateway.uplink.SpoolUplink` like the Modbus gateway's publisher: every JSON array of records
is committed to the spool before the terminal gets its 0x8001, then published in order, and
leaves the spool when the broker acknowledged it. Each array goes in an envelope
(`telemetry.posenvelope`) numbered when it is spooled: the process's start as its epoch, a seq
per vehicle from 0 (`telemetry.numbering`, as the Modbus gateway numbers its batches), so that
the hub dedupes one sent again after a broker outage and counts those the broker dropped. Spool
drops are reported per vehicle on ``{root}/{tenant}/gateways/{gateway}/dropped``.

Positions a connection holds until its blind-area backlog came (`gateway.jt808.hold`) are kept
aside in the same spool (`hold`), as durable, and `release`d into it in time order. Those a
gateway killed while holding left there are released when the next one starts, each
connection's sorted by time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import orjson

from gateway.jt808.directory import VehicleRef
from gateway.jt808.hold import Release
from gateway.spool import DropReport, Held, Spool, Spooled
from gateway.uplink import SpoolUplink
from telemetry.brokertls import BrokerTls
from telemetry.numbering import Numbering
from telemetry.posenvelope import encode_envelope
from telemetry.topics import TopicLayout

__all__ = ["PositionUplink"]

log = logging.getLogger(__name__)

# records per published array: a terminal's blind area of 12,000 (one 0x0704 may hold 65,535)
# went as one array of 1.5 MB, which the hub refuses whole (at most 10,000), after the terminal
# was told it was taken (helper-139)
ARRAY_MAX = 1000
_T = TypeVar("_T")


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
        tls: BrokerTls | None = None,
        window: int = 200,
        backoff_max_s: float = 10.0,
        epoch: int | None = None,
    ) -> None:
        """`epoch`: the session the envelopes are numbered in (default: `clock_ms` now)."""
        super().__init__(
            host,
            port,
            spool=spool,
            client_id=f"hazardhub-jt808-{gateway}",
            name=gateway,
            username=username,
            password=password,
            tls=tls,
            backoff_max_s=backoff_max_s,
            window=window,
        )
        self._layout = layout
        self.gateway = gateway
        self._clock = clock_ms
        self.numbering = Numbering(clock_ms() if epoch is None else epoch)
        self.published = 0
        self.latencies_ms: list[int] = []  # receive-to-PUBACK, drained by whoever reports them
        self.recovered = self._release_left()

    def _release_left(self) -> int:
        """Release what a gateway killed while holding left aside: each connection's positions
        in time order, after what it had handed on. How many positions."""
        kept: dict[str, list[Held]] = defaultdict(list)
        for held in self.spool.held():
            kept[held.key].append(held)
        n = 0
        for key, rows in kept.items():
            records: list[dict[str, object]] = []
            for row in rows:
                records.extend(orjson.loads(row.payload))
            records.sort(key=lambda r: cast(int, r["ts"]))
            first = rows[0]
            self.spool.release(
                key, self._arrays(first.topic, first.device, first.epoch, records, orjson.dumps)
            )
            n += len(records)
        if n:
            log.warning(
                "%s: %d positions held by a gateway that stopped without handing them on "
                "(killed?): handed on now, in time order",
                self.gateway,
                n,
            )
        return n

    def _arrays(
        self,
        topic: str,
        device: str,
        received_ms: int,
        items: Sequence[_T],
        encode: Callable[[Sequence[_T]], bytes],
    ) -> list[tuple[str, bytes, str, int, int, int]]:
        """`items` as spool batches of enveloped JSON arrays of at most `ARRAY_MAX` each
        (`encode` makes one array), each with the vehicle's next seq; none: one empty array.
        The spool's epoch column keeps `received_ms` (the latency is measured from it)."""
        out = []
        for lo in range(0, max(1, len(items)), ARRAY_MAX):
            part = items[lo : lo + ARRAY_MAX]
            seq = self.numbering.take(device)
            payload = encode_envelope(self.numbering.epoch, seq, encode(part))
            out.append((topic, payload, device, received_ms, seq, len(part)))
        return out

    def submit(
        self, ref: VehicleRef, records: tuple[dict[str, object], ...], received_ms: int
    ) -> None:
        """Commit the records to the spool as JSON arrays of at most `ARRAY_MAX` (synchronously,
        in one transaction: they must be durable before the terminal is acknowledged)."""
        topic = self._layout.position(ref.tenant, ref.vehicle)
        device = f"{ref.tenant}/{ref.vehicle}"
        self.spool.push_many(self._arrays(topic, device, received_ms, records, orjson.dumps))
        self.wake()

    def hold(self, key: str, ref: VehicleRef, parts: Sequence[bytes], received_ms: int) -> None:
        """Keep one message's records (each one's JSON) aside under `key`: committed (the
        terminal may be acknowledged), not sent until `release`."""
        topic = self._layout.position(ref.tenant, ref.vehicle)
        device = f"{ref.tenant}/{ref.vehicle}"
        self.spool.hold(key, topic, _array(parts), device, received_ms, len(parts))

    def release(self, key: str, ref: VehicleRef, release: Release) -> None:
        """Send what `key` held, as `release` says (in one transaction: forgotten aside, queued
        to be sent, the rest kept aside)."""
        topic = self._layout.position(ref.tenant, ref.vehicle)
        device = f"{ref.tenant}/{ref.vehicle}"
        batches = self._arrays(topic, device, release.received_ms, release.parts, _array)
        keep = None
        if release.kept:
            payload = _array(release.kept)
            keep = Held(key, topic, payload, device, release.received_ms, len(release.kept))
        self.spool.release(key, batches, keep)
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


def _array(parts: Sequence[bytes]) -> bytes:
    """The JSON array of records already JSON each (as `orjson.dumps` of the list gives)."""
    return b"[" + b",".join(parts) + b"]"
