"""Decode, validate and dedupe one MQTT message into columnar batches (no I/O).

Every message ends in exactly one of: accepted (perhaps with some readings rejected, each counted
and reported), duplicate (already stored), or rejected whole (dead letter with the reason).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alerts.alarmevent import device_alarm_id
from alerts.gatewayalarms import DataLoss
from ingest.clocks import ClockWatch
from ingest.dropreport import read_drop_report
from ingest.futuretime import FutureWatch
from ingest.handled import Handled
from ingest.metrics import Metrics
from ingest.positionmsg import DAY_MS, PositionMessages
from ingest.seen import SeenSeqs
from ingest.store.base import ReadingBatch
from ingest.supervisionmsg import read_answer
from ingest.vehicleinfomsg import read_vehicle_info
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
    VehicleInfoTopic,
)

__all__ = ["DAY_MS", "Handled", "Pipeline", "SeenSeqs"]


class Pipeline(PositionMessages):
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
        # readings refused as from the future: said, and whose clock is off (the hub's?)
        self.future = FutureWatch(max_future_ms)
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
        if isinstance(parsed, VehicleInfoTopic):
            self.metrics.inc("hazardhub_messages_total", kind="vehicle_info")
            return self._vehicle_info(parsed, payload, arrival_ms)
        if isinstance(parsed, GatewayStatusTopic) and parsed.kind == "status":
            self.metrics.inc("hazardhub_messages_total", kind="status")
            return self._status(parsed, payload, arrival_ms)
        if isinstance(parsed, GatewayStatusTopic) and parsed.kind == "supervision":
            self.metrics.inc("hazardhub_messages_total", kind="supervision")
            return self._supervision(parsed, payload)
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

    def _supervision(self, topic: GatewayStatusTopic, payload: bytes) -> Handled:
        """A JT/T 809 gateway's report of a platform's answer to the centre's supervision
        (docs/mqtt.md), from a gateway of `jt808_gateways` only."""
        try:
            answer = read_answer(topic.tenant, topic.gateway, payload)
        except ValueError as exc:
            return self._reject("supervision", "bad_supervision_answer", str(exc))
        if topic.gateway not in self.registry.config.jt808_gateways:
            return self._reject(
                "supervision",
                "bad_supervision_answer",
                f"gateway {topic.gateway!r} is none of jt808_gateways",
            )
        return Handled("supervision", answer=answer)

    def _vehicle_info(self, topic: VehicleInfoTopic, payload: bytes, arrival_ms: int) -> Handled:
        """What a JT/T 809 platform reported of a configured vehicle (docs/mqtt.md), through a
        gateway of `jt808_gateways`; kept by the flush (`alerts.vehiclereports`)."""
        try:
            report = read_vehicle_info(topic.tenant, topic.vehicle, payload)
        except ValueError as exc:
            return self._reject("vehicle_info", "bad_vehicle_info", str(exc))
        if (topic.tenant, topic.vehicle) not in self.registry.vehicles:
            return self._reject(
                "vehicle_info",
                "unknown_vehicle",
                f"tenant {topic.tenant!r} has no vehicle {topic.vehicle!r}",
            )
        if report.gateway not in self.registry.config.jt808_gateways:
            return self._reject(
                "vehicle_info",
                "bad_vehicle_info",
                f"gateway {report.gateway!r} is none of jt808_gateways",
            )
        if report.at > arrival_ms + self.max_future_ms:
            return self._reject(
                "vehicle_info",
                "future_time",
                f"at is {(report.at - arrival_ms) // 1000} s ahead of the hub's clock (more "
                f"than {self.max_future_ms // 1000} s is refused): set the gateway's clock by NTP",
            )
        return Handled("vehicle_info", report=report)

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
                self.future.arrived(f"{topic.tenant}/{batch.gateway}", n, 0, 0, arrival_ms)
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
        future &= keep
        ahead_ms = int(batch.ts[future].max()) - arrival_ms if future.any() else 0
        drop(
            future,
            "future_time",
            f"are up to {ahead_ms // 1000} s ahead of the hub's clock (more than "
            f"{self.max_future_ms // 1000} s is refused): the sender's or the hub's clock is "
            "off (set both by NTP)",
        )
        drop(past, "past_time", f"are more than {self.max_past_ms} ms in the past")
        self._clock_behind(batch, mark, keep, drop)
        n = int(keep.sum())
        self.future.arrived(
            f"{mark[0][0]}/{batch.gateway}", n, int(future.sum()), ahead_ms, arrival_ms
        )
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
