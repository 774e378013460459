"""The JT/T 809 gateway's uplink: the JT/T 808 gateway's (`gateway.jt808.uplink`: the spool,
the numbered envelopes, QoS 1), with the positions of many vehicles committed in one
transaction (`submit_many`): a platform's messages are not answered one by one, so what one
read brought is committed at once. A vehicle's registration, driver and waybill a platform
reported (`gateway.jt809.reports`) go through the same spool, unnumbered (`submit_report`), as
messages of no readings: one the spool drops is counted `reports_dropped`, not lost positions."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from gateway.jt808.directory import VehicleRef
from gateway.jt808.uplink import PositionUplink
from gateway.jt809.reports import Report

__all__ = ["REPORT_VERSION", "PlatformUplink"]

REPORT_VERSION = 1  # `v` of the vehicle info payload (docs/mqtt.md)


class PlatformUplink(PositionUplink):
    def submit_many(
        self, items: Sequence[tuple[VehicleRef, tuple[dict[str, object], ...]]], received_ms: int
    ) -> None:
        """Commit each vehicle's records (in the order given, a vehicle's together) to the
        spool as enveloped arrays, in one transaction."""
        merged: dict[VehicleRef, list[dict[str, object]]] = {}
        for ref, records in items:
            merged.setdefault(ref, []).extend(records)
        batches = []
        for ref, rows in merged.items():
            topic = self._layout.position(ref.tenant, ref.vehicle)
            device = f"{ref.tenant}/{ref.vehicle}"
            batches += self._arrays(topic, device, received_ms, rows, orjson.dumps)
        self.spool.push_many(batches)
        self._count_dropped()
        self.wake()

    def submit_report(self, report: Report, received_ms: int) -> None:
        """Commit a vehicle's report to the spool, published on its `info` topic: the hub keeps
        the latest of each kind by `at` (a copy delivered again changes nothing)."""
        ref = report.ref
        doc = {
            "v": REPORT_VERSION,
            "kind": report.kind,
            "platform": report.platform,
            "gateway": self.gateway,
            "at": received_ms,
            "plate": report.plate,
            "color": report.color,
            report.kind: report.fields,
        }
        topic = self._layout.vehicle_info(ref.tenant, ref.vehicle)
        device = f"{ref.tenant}/{ref.vehicle}"
        # a message, not a reading of the vehicle: dropped by the spool's limits, it is counted
        # `reports_dropped`, never reported as positions lost (the hub raised data_lost for it)
        self.spool.push_message(topic, orjson.dumps(doc), device, received_ms)
        self._count_dropped()
        self.wake()

    def _count_dropped(self) -> None:
        """Count the vehicles' reports the spool dropped (its limits: the oldest batches go)."""
        dropped = sum(self.spool.take_messages_dropped().values())
        if dropped:
            self.counters["reports_dropped"] += dropped
