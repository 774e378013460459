"""The JT/T 809 gateway's uplink: the JT/T 808 gateway's (`gateway.jt808.uplink`: the spool,
the numbered envelopes, QoS 1), with the positions of many vehicles committed in one
transaction (`submit_many`): a platform's messages are not answered one by one, so what one
read brought is committed at once."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from gateway.jt808.directory import VehicleRef
from gateway.jt808.uplink import PositionUplink

__all__ = ["PlatformUplink"]


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
        self.wake()
