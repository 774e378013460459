"""A position message (docs/mqtt.md "Position") into a vehicle's track and speed readings (no
I/O); `ingest.pipeline.Pipeline` hands it the messages of the position topics (moved out of
it as it was)."""

from __future__ import annotations

import numpy as np

from ingest.handled import Handled, Refusing
from ingest.positions import PositionError, decode_positions
from ingest.store.base import PositionBatch, ReadingBatch, no_fix
from telemetry.registry import Registry
from telemetry.topics import PositionTopic

__all__ = ["PositionMessages"]

DAY_MS = 86_400_000


class PositionMessages(Refusing):
    """The position half of `ingest.pipeline.Pipeline`, which sets the attributes."""

    registry: Registry

    def _said_times(self, ts: np.ndarray) -> str:
        """Which times were out of the window, and the window: epoch seconds, the usual
        mistake, named as such."""
        shown = []
        for t in ts[:3].tolist():
            hint = " (epoch seconds? ts is in milliseconds)" if 0 < t < 100_000_000_000 else ""
            shown.append(f"ts {t}{hint}")
        more = f" and {len(ts) - 3} more" if len(ts) > 3 else ""
        return (
            f"outside the accepted times (at most {self.max_future_ms // 1000} s ahead of the "
            f"hub's clock: set the sender's clock by NTP; {self.max_past_ms // DAY_MS} days "
            f"behind): {', '.join(shown)}{more}"
        )

    def _position(self, topic: PositionTopic, payload: bytes, arrival_ms: int) -> Handled:
        vehicle = self.registry.vehicles.get((topic.tenant, topic.vehicle))
        if vehicle is None:
            return self._reject(
                "position",
                "unknown_vehicle",
                f"tenant {topic.tenant!r} has no vehicle {topic.vehicle!r}",
            )
        try:
            cols = decode_positions(payload)
        except PositionError as exc:
            return self._reject("position", "decode_error", str(exc))
        reasons = [f"bad_record: record {i}: {why}" for i, why in cols.rejected[:20]]
        if cols.rejected:
            self.metrics.inc(
                "hazardhub_readings_rejected_total", len(cols.rejected), reason="bad_record"
            )
        future, past = self._time_mask(cols.ts, arrival_ms)
        keep = ~(future | past)
        if (~keep).any():
            count = int((~keep).sum())
            self.metrics.inc("hazardhub_readings_rejected_total", count, reason="bad_time")
            reasons.append(f"bad_time: {count} record(s) {self._said_times(cols.ts[~keep])}")
        n = int(keep.sum())
        if n == 0 and reasons:
            self.metrics.inc("hazardhub_messages_rejected_total", reason="no_valid_record")
            return Handled("position", reasons=reasons, rejected_whole=True)
        idx = np.full(n, vehicle.speed_sensor, dtype=np.int32)
        positions = PositionBatch(
            idx,
            cols.ts[keep],
            cols.lat[keep],
            cols.lon[keep],
            cols.speed_kmh[keep],
            cols.heading_deg[keep],
            cols.alarm_flags[keep],
            cols.driver[keep] if cols.driver.any() else None,
            cols.driver_names or None,
        )
        # a report without a fix (0/0, kept for its alarm bits) has no speed worth judging: it
        # would clear an overspeed and write 0 km/h into the history
        fixed = ~no_fix(cols.lat[keep], cols.lon[keep])
        m = int(fixed.sum())
        readings = ReadingBatch(
            idx[fixed],
            cols.ts[keep][fixed],
            cols.speed_kmh[keep][fixed],
            np.zeros(m, dtype=np.uint8),
            np.zeros(m, dtype=np.int64),
            cols.seq[keep][fixed],
        )
        return Handled("position", readings=readings, positions=positions, reasons=reasons)
