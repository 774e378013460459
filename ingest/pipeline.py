"""Decode, validate and dedupe one MQTT message into columnar batches (no I/O).

Every message ends in exactly one of: accepted (perhaps with some readings rejected, each counted
and reported), duplicate (already stored), or rejected whole (dead letter with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from alerts.alarmevent import device_alarm_id
from alerts.gatewayalarms import DataLoss
from ingest.clocks import ClockWatch
from ingest.dropreport import read_drop_report
from ingest.metrics import Metrics
from ingest.positions import PositionError, decode_positions
from ingest.store.base import PositionBatch, ReadingBatch, no_fix
from telemetry.codec import MAX_FUTURE_MS, TelemetryBatch, decode
from telemetry.errors import DecodeError, TopicError
from telemetry.quality import Quality
from telemetry.registry import Registry
from telemetry.topics import (
    GatewayStatusTopic,
    PositionTopic,
    TelemetryTopic,
    Topic,
    TopicLayout,
)

__all__ = ["Handled", "Pipeline", "SeenSeqs"]

DAY_MS = 86_400_000


@dataclass(slots=True)
class Handled:
    """What one message became."""

    kind: str  # telemetry | position | status | dropped | other
    readings: ReadingBatch | None = None
    positions: PositionBatch | None = None
    mark: tuple[tuple[str, str, str], int, int] | None = None  # (device key, epoch, seq)
    duplicate: bool = False
    reasons: list[str] = field(default_factory=list)  # why (some of) it was rejected
    rejected_whole: bool = False
    # a gateway's status: (tenant, gateway, online, the hub's clock when it arrived)
    status: tuple[str, str, bool, int] | None = None
    # a gateway's report of batches its spool dropped, per point (`alerts.gatewayalarms`)
    losses: tuple[DataLoss, ...] = ()


class SeenSeqs:
    """The (epoch, seq) numbers already stored, per device: for each of its last `epochs`
    epochs (a gateway's starts), the highest seq seen and a bitmask of the `per_device` seqs
    below it. A few hundred bytes per device, however long the hub runs (an ordered set of
    pairs took about 250 bytes per message until it was full: 200 MB for 200 devices).
    A seq older than the window is not known (stored again: the store's writes are
    idempotent, the core counts it late)."""

    def __init__(self, per_device: int = 4096, epochs: int = 4) -> None:
        self._limit = per_device
        self._full = (1 << per_device) - 1
        self._epochs = epochs
        # device -> epoch -> [highest seq, bit d set: seq highest - d seen]
        self._seen: dict[tuple[str, str, str], dict[int, list[int]]] = {}

    def __contains__(self, item: tuple[tuple[str, str, str], int, int]) -> bool:
        dev, epoch, seq = item
        found = self._seen.get(dev, {}).get(epoch)
        if found is None:
            return False
        high, mask = found
        d = high - seq
        return 0 <= d < self._limit and bool(mask >> d & 1)

    def last_epoch(self, dev: tuple[str, str, str]) -> int | None:
        """The highest epoch of `dev` in the window, if any."""
        return max(self._seen.get(dev, {}), default=None)

    def highs(self) -> list[tuple[tuple[str, str, str], int, int]]:
        """(device, epoch, highest seq) of every epoch in the window, oldest epoch first."""
        return [
            (dev, e, found[0]) for dev, epochs in self._seen.items() for e, found in epochs.items()
        ]

    def high(self, dev: tuple[str, str, str], epoch: int) -> int | None:
        """The highest seq of `dev` seen in `epoch`, if it is in the window."""
        found = self._seen.get(dev, {}).get(epoch)
        return None if found is None else found[0]

    def restore(self, dev: tuple[str, str, str], epoch: int, seq: int) -> None:
        """What a hub before this one judged (`ingest.seqjournal`): `seq` of `epoch` is the
        newest known; the seqs below it are not known one by one (one of them again is stored
        again and judged late, never counted missing)."""
        epochs = self._seen.setdefault(dev, {})
        found = epochs.get(epoch)
        if found is not None:
            if seq > found[0]:
                found[0], found[1] = seq, 1
            return
        while len(epochs) >= self._epochs:
            del epochs[next(iter(epochs))]
        epochs[epoch] = [seq, 1]

    def add(self, item: tuple[tuple[str, str, str], int, int]) -> int:
        """Mark a batch stored; the number of the device's batches its seq jumped past (within
        its epoch: a gateway numbers its batches from 0 at each start), never received."""
        dev, epoch, seq = item
        epochs = self._seen.setdefault(dev, {})
        found = epochs.get(epoch)
        if found is None:
            while len(epochs) >= self._epochs:  # the oldest epoch the window heard of goes
                del epochs[next(iter(epochs))]
            epochs[epoch] = [seq, 1]
            return 0
        high, mask = found
        if seq > high:
            shift = seq - high
            found[0] = seq
            found[1] = ((mask << shift) | 1) & self._full if shift < self._limit else 1
            return shift - 1
        if high - seq < self._limit:
            found[1] = mask | (1 << (high - seq))
        return 0


class Pipeline:
    def __init__(
        self,
        registry: Registry,
        layout: TopicLayout,
        metrics: Metrics,
        *,
        max_future_ms: int = MAX_FUTURE_MS,
        max_past_ms: int = 400 * DAY_MS,
        seen: SeenSeqs | None = None,
    ) -> None:
        self.registry = registry
        self.layout = layout
        self.metrics = metrics
        self.max_future_ms = max_future_ms
        self.max_past_ms = max_past_ms
        self.seen = seen or SeenSeqs()
        self.clocks = ClockWatch(metrics)  # devices whose gateway's clock fell back
        # (sensor index per payload key, -1: unknown; whether every key is known)
        self._lookups: dict[tuple[tuple[str, str, str], tuple[str, ...]], tuple[np.ndarray, bool]]
        self._lookups = {}
        self._topics: dict[str, Topic] = {}

    def set_registry(self, registry: Registry) -> None:
        """A new configuration: devices and sensors are looked up in it from now on."""
        self.registry = registry
        self._lookups = {}

    def _lookup(
        self, dev_key: tuple[str, str, str], keys: tuple[str, ...]
    ) -> tuple[np.ndarray, bool]:
        """Sensor index per payload key (-1: unknown) and whether all are known; a device sends
        the same keys every cycle, so the answer is cached (bounded)."""
        cached = self._lookups.get((dev_key, keys))
        if cached is None:
            index = np.array(
                [-1 if (i := self.registry.sensor_index(*dev_key, k)) is None else i for k in keys],
                dtype=np.int32,
            )
            cached = (index, bool(index.size == 0 or index.min() >= 0))
            if len(self._lookups) >= 16_384:
                self._lookups.clear()
            self._lookups[(dev_key, keys)] = cached
        return cached

    def _parse(self, topic: str) -> Topic:
        """`TopicLayout.parse`, cached (bounded): a device publishes on the same topic."""
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = self.layout.parse(topic)  # raises TopicError: not cached
            if len(self._topics) >= 65_536:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def handle(self, topic: str, payload: bytes, arrival_ms: int) -> Handled:
        try:
            parsed = self._parse(topic)
        except TopicError as exc:
            return self._reject("other", "bad_topic", str(exc))
        if isinstance(parsed, TelemetryTopic):
            self.metrics.inc("hazardhub_messages_total", kind="telemetry")
            return self._telemetry(parsed, payload, arrival_ms)
        if isinstance(parsed, PositionTopic):
            self.metrics.inc("hazardhub_messages_total", kind="position")
            return self._position(parsed, payload, arrival_ms)
        if isinstance(parsed, GatewayStatusTopic) and parsed.kind == "status":
            self.metrics.inc("hazardhub_messages_total", kind="status")
            return self._status(parsed, payload, arrival_ms)
        if isinstance(parsed, GatewayStatusTopic):
            self.metrics.inc("hazardhub_messages_total", kind="dropped")
            return self._dropped(parsed, payload, arrival_ms)
        return self._reject("other", "unexpected_topic", f"the hub does not consume {topic!r}")

    def _status(self, topic: GatewayStatusTopic, payload: bytes, arrival_ms: int) -> Handled:
        """A gateway's retained status, `online` or `offline` (`alerts.gateways`). An empty one
        is the retained status deleted (a gateway taken out of use): it clears like `online`."""
        if payload not in (b"", b"online", b"offline"):
            shown = payload[:40].decode("utf-8", "replace")
            return self._reject(
                "status", "bad_status", f"a gateway status is online or offline, not {shown!r}"
            )
        online = payload != b"offline"
        return Handled("status", status=(topic.tenant, topic.gateway, online, arrival_ms))

    def _dropped(self, topic: GatewayStatusTopic, payload: bytes, arrival_ms: int) -> Handled:
        """A gateway's drop report (docs/mqtt.md): the readings of one device (or vehicle,
        `tenant/vehicle`) its spool had to drop, kept as a `data_lost` alarm of each."""
        try:
            report = read_drop_report(payload, topic.gateway)
        except ValueError as exc:
            return self._reject("dropped", "bad_drop_report", str(exc))
        future, past = self._time_mask(
            np.array([report.last_created, report.first_created], np.int64), arrival_ms
        )
        if future.any() or past.any():
            return self._reject(
                "dropped",
                "bad_drop_report",
                f"the gap {report.first_created}-{report.last_created} ms is out of the hub's "
                f"time range (like telemetry: at most {self.max_future_ms // 1000} s ahead, "
                f"{self.max_past_ms // DAY_MS} days back)",
            )
        points = self._lost_points(topic, report.device, report.site)
        if not points:
            return self._reject(
                "dropped",
                "unknown_device",
                f"gateway {topic.gateway!r} reports drops of {report.device!r}, which is not "
                f"configured in tenant {topic.tenant!r}",
            )
        return Handled(
            "dropped",
            losses=tuple(
                DataLoss(
                    topic.tenant,
                    site,
                    device,
                    sensor,
                    topic.gateway,
                    report.batches,
                    report.readings,
                    report.first_created,
                    report.last_created,
                    report.reason,
                )
                for site, device, sensor in points
            ),
        )

    def _lost_points(
        self, topic: GatewayStatusTopic, device: str, site: str | None
    ) -> list[tuple[str, str, str]]:
        """(site, device, alarm sensor) of the point a drop report names: a vehicle
        (`tenant/vehicle`, from the JT/T 808 gateway), or the tenant's device of that id (at
        `site`, when the report says) that the reporting gateway serves. A report of an older
        gateway without the site names every such device: each gets the report."""
        reg = self.registry
        if "/" in device:
            if topic.gateway not in reg.config.jt808_gateways:  # only they spool positions
                return []
            tenant, _, vehicle = device.partition("/")
            info = reg.vehicles.get((tenant, vehicle)) if tenant == topic.tenant else None
            if info is None or site not in (None, "vehicles"):
                return []
            return [("vehicles", vehicle, reg.sensors[info.speed_sensor].id)]
        return [
            (s, d, device_alarm_id(t, s, d))
            for (t, s, d), dev in reg.devices.items()
            if t == topic.tenant
            and d == device
            and dev.spec.gateway == topic.gateway
            and site in (None, s)
        ]

    def _reject(self, kind: str, reason: str, text: str) -> Handled:
        self.metrics.inc("hazardhub_messages_rejected_total", reason=reason)
        return Handled(kind, reasons=[f"{reason}: {text}"], rejected_whole=True)

    def _time_mask(self, ts: np.ndarray, arrival_ms: int) -> tuple[np.ndarray, np.ndarray]:
        future = ts > arrival_ms + self.max_future_ms
        past = ts < arrival_ms - self.max_past_ms
        return future, past

    def _telemetry(self, topic: TelemetryTopic, payload: bytes, arrival_ms: int) -> Handled:
        dev_key = (topic.tenant, topic.site, topic.device)
        device = self.registry.devices.get(dev_key)
        if device is None:
            return self._reject(
                "telemetry",
                "unknown_device",
                f"tenant {topic.tenant!r} has no device {topic.device!r} in site {topic.site!r}",
            )
        try:
            batch = decode(payload)
        except DecodeError as exc:
            return self._reject("telemetry", "decode_error", str(exc))
        if batch.device != topic.device:
            return self._reject(
                "telemetry",
                "device_mismatch",
                f"payload names device {batch.device!r}, topic names {topic.device!r}",
            )
        mark = (dev_key, batch.epoch, batch.seq)
        if mark in self.seen:
            self.metrics.inc("hazardhub_messages_duplicate_total")
            return Handled("telemetry", mark=mark, duplicate=True)
        lookup, all_known = self._lookup(dev_key, batch.keys)
        n = len(batch)
        sensor = lookup[batch.key] if n else np.zeros(0, dtype=np.int32)
        if n and all_known:
            # the common case, found with a few reductions: nothing to drop, no copies
            ts, value = batch.ts, batch.value
            floor = self._clock_floor(mark)
            if (
                bool(np.isfinite(value).all())
                and int(ts.max()) <= arrival_ms + self.max_future_ms
                and int(ts.min()) >= max(arrival_ms - self.max_past_ms, floor or 0)
            ):
                if self.clocks.is_behind(dev_key):
                    self.clocks.in_step(dev_key, int(ts.max()))
                readings = ReadingBatch(
                    sensor,
                    ts,
                    value,
                    batch.quality,
                    np.full(n, batch.epoch, dtype=np.int64),
                    np.full(n, batch.seq, dtype=np.int64),
                )
                return Handled("telemetry", readings=readings, mark=mark)
        return self._telemetry_checked(batch, sensor, mark, arrival_ms)

    def _telemetry_checked(
        self,
        batch: TelemetryBatch,
        sensor: np.ndarray,
        mark: tuple[tuple[str, str, str], int, int],
        arrival_ms: int,
    ) -> Handled:
        """Readings one by one: what is unknown, not finite or out of time is dropped and said."""
        reasons: list[str] = []
        keep = np.ones(len(batch), dtype=np.bool_)

        def drop(mask: np.ndarray, reason: str, text: str) -> None:
            count = int((mask & keep).sum())
            if count:
                keep[mask] = False
                self.metrics.inc("hazardhub_readings_rejected_total", count, reason=reason)
                reasons.append(f"{reason}: {count} reading(s) {text}")

        unknown = sensor < 0
        if unknown.any():
            names = sorted({batch.keys[int(k)] for k in batch.key[unknown]})[:10]
            drop(unknown, "unknown_sensor", f"name sensor keys not configured: {names}")
        with np.errstate(invalid="ignore"):
            measured = (batch.quality == Quality.GOOD) | (batch.quality == Quality.OUT_OF_RANGE)
            bad_value = measured & ~np.isfinite(batch.value)
        drop(
            bad_value,
            "non_finite",
            "have quality good or out_of_range (a measurement) but a NaN or infinite value",
        )
        future, past = self._time_mask(batch.ts, arrival_ms)
        drop(
            future,
            "future_time",
            f"are more than {self.max_future_ms} ms ahead of the hub's clock: set the "
            "gateway's clock (NTP)",
        )
        drop(past, "past_time", f"are more than {self.max_past_ms} ms in the past")
        self._clock_behind(batch, mark, keep, drop)
        n = int(keep.sum())
        readings = ReadingBatch(
            sensor[keep],
            batch.ts[keep],
            batch.value[keep],
            batch.quality[keep],
            np.full(n, batch.epoch, dtype=np.int64),
            np.full(n, batch.seq, dtype=np.int64),
        )
        return Handled("telemetry", readings=readings, mark=mark, reasons=reasons)

    def _clock_behind(
        self,
        batch: TelemetryBatch,
        mark: tuple[tuple[str, str, str], int, int],
        keep: np.ndarray,
        drop: Callable[[np.ndarray, str, str], None],
    ) -> None:
        """Refuse the readings far behind the device's newest acknowledged one (`ClockWatch`)."""
        dev = mark[0]
        floor = self._clock_floor(mark)
        if floor is None:
            return
        behind = (batch.ts < floor) & keep
        refused = int(behind.sum())
        if not refused:
            if keep.any():
                self.clocks.in_step(dev, int(batch.ts[keep].max()))
            return
        oldest = int(batch.ts[behind].min())
        drop(
            behind,
            "clock_behind",
            f"are more than {self.clocks.behind_ms // 60_000} min behind the device's newest "
            "reading judged: its gateway's clock fell back (set it by NTP); not stored, not "
            "judged",
        )
        self.clocks.behind(dev, refused, oldest, mark[1], self.seen.last_epoch(dev))

    def _clock_floor(self, mark: tuple[tuple[str, str, str], int, int]) -> int | None:
        """The device's readings older than this are its gateway's clock gone back
        (`ClockWatch`); None for a message of a gateway session the hub knows that is not
        newer than the newest it has of it (a backlog sent late, a second uplink: helper-158
        found such readings 90 minutes old refused and an alarm raised): stored late, as ever.
        A session the hub does not know, or a message newer than its newest, may be a clock
        gone back (a gateway restarted with its clock behind starts a session of its own)."""
        dev, epoch, seq = mark
        high = self.seen.high(dev, epoch)
        if high is not None and seq <= high:
            return None
        return self.clocks.floor(dev)

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
