"""A position message (docs/mqtt.md "Position") into a vehicle's track and speed readings (no
I/O); `ingest.pipeline.Pipeline` hands it the messages of the position topics.

An envelope numbered by its publisher (`telemetry.posenvelope`) is deduped and its gaps counted
like a telemetry batch's, on (tenant, ``vehicles``, vehicle, epoch, seq) in the same
`SeenSeqs` (a site cannot be named ``vehicles``); a bare object or array is taken as before,
unnumbered, and counted so (`hazardhub_positions_unsequenced_total`).
"""

from __future__ import annotations

import numpy as np

from ingest.futuretime import FutureWatch
from ingest.handled import Handled, Refusing
from ingest.positions import PositionColumns, PositionError, decode_positions
from ingest.seen import SeenSeqs
from ingest.store.base import PositionBatch, ReadingBatch, no_fix
from telemetry.activesafety import SafetyEvent
from telemetry.posenvelope import EnvelopeError
from telemetry.registry import Registry
from telemetry.topics import PositionTopic

__all__ = ["VEHICLES", "PositionMessages", "vehicle_key"]

DAY_MS = 86_400_000
VEHICLES = "vehicles"  # the site of a vehicle's key, reserved in the topic layout


def vehicle_key(tenant: str, vehicle: str) -> tuple[str, str, str]:
    """The key a vehicle's envelopes are numbered under, beside the devices'."""
    return (tenant, VEHICLES, vehicle)


class PositionMessages(Refusing):
    """The position half of `ingest.pipeline.Pipeline`, which sets the attributes."""

    registry: Registry
    seen: SeenSeqs
    future: FutureWatch

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
            f"hub's clock: a time ahead means the sender's or the hub's clock is off, set both "
            f"by NTP; {self.max_past_ms // DAY_MS} days behind): {', '.join(shown)}{more}"
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
        except EnvelopeError as exc:
            return self._reject("position", "bad_envelope", str(exc))
        except PositionError as exc:
            return self._reject("position", "decode_error", str(exc))
        mark = None
        if cols.numbered is None:
            self.metrics.inc("hazardhub_positions_unsequenced_total")
        else:
            mark = (vehicle_key(topic.tenant, topic.vehicle), *cols.numbered)
            if mark in self.seen:  # judged already: acknowledged, not judged again
                self.metrics.inc("hazardhub_positions_duplicate_total")
                return Handled("position", mark=mark, duplicate=True)
        reasons = [f"bad_record: record {i}: {why}" for i, why in cols.rejected[:20]]
        if cols.rejected:
            self.metrics.inc(
                "hazardhub_readings_rejected_total", len(cols.rejected), reason="bad_record"
            )
        future, past = self._time_mask(cols.ts, arrival_ms)
        keep = ~(future | past)
        self.future.arrived(
            f"{topic.tenant}/{topic.vehicle}",
            int(keep.sum()),
            int(future.sum()),
            int(cols.ts[future].max()) - arrival_ms if future.any() else 0,
            arrival_ms,
        )
        if (~keep).any():
            count = int((~keep).sum())
            self.metrics.inc("hazardhub_readings_rejected_total", count, reason="bad_time")
            reasons.append(f"bad_time: {count} record(s) {self._said_times(cols.ts[~keep])}")
        n = int(keep.sum())
        if n == 0 and reasons:
            self.metrics.inc("hazardhub_messages_rejected_total", reason="no_valid_record")
            # an envelope is judged all the same: its number taken, so that it is no gap (the
            # dead letter says what became of it)
            return Handled("position", mark=mark, reasons=reasons, rejected_whole=mark is None)
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
            cols.acc[keep] if (cols.acc >= 0).any() else None,
            self._kept_safety(cols, keep, vehicle.speed_sensor, arrival_ms, reasons),
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
        return Handled(
            "position", readings=readings, positions=positions, mark=mark, reasons=reasons
        )

    def _kept_safety(
        self,
        cols: PositionColumns,
        keep: np.ndarray,
        vehicle: int,
        arrival_ms: int,
        reasons: list[str],
    ) -> tuple[tuple[int, SafetyEvent], ...]:
        """The active-safety events of the records kept (not those of a record refused for
        its time), as (vehicle, event). An event that did not read (`cols.safety_rejected`), or
        older than the hub takes a position (`max_past_ms`), is left out, counted
        (`hazardhub_active_safety_rejected_total`) and said in `reasons` (the dead letter);
        its position and alarm bits go on."""
        bad = [why for i, why in cols.safety_rejected if keep[i]]
        if bad:
            self.metrics.inc("hazardhub_active_safety_rejected_total", len(bad), reason="bad_event")
            reasons.extend(f"bad_safety: {why}" for why in bad[:20])
        oldest = arrival_ms - self.max_past_ms
        out = []
        old = []
        for i, ev in cols.safety:
            if not keep[i]:
                continue
            if ev.ts < oldest:
                old.append(ev)
                continue
            out.append((vehicle, ev))
        if old:
            self.metrics.inc("hazardhub_active_safety_rejected_total", len(old), reason="too_old")
            shown = ", ".join(f"{ev.source} alarm id {ev.alarm_id} at ts {ev.ts}" for ev in old[:3])
            reasons.append(
                f"old_safety: {len(old)} active-safety event(s) more than "
                f"{self.max_past_ms // DAY_MS} days before the hub's clock: {shown}"
            )
        return tuple(out)
