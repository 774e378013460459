"""Counters of the hub, rendered in the Prometheus text format for ``/metrics``."""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Callable

from telemetry.promtext import label_value, prom_number

__all__ = ["Metrics", "prom_number", "store_metrics"]

_HELP = {
    "hazardhub_messages_total": "MQTT messages received, by kind",
    "hazardhub_messages_rejected_total": "Messages rejected (dead-lettered), by reason",
    "hazardhub_messages_qos0_total": (
        "Messages published with QoS 0, by kind: judged, but lost when the hub is away or behind"
    ),
    "hazardhub_messages_dropped_total": (
        "QoS 0 messages dropped unjudged, by reason (qos0_inbox_full, qos0_session_end)"
    ),
    "hazardhub_ingest_lag_seconds": (
        "Gauge: the hub's clock minus the newest event time of the readings it judged last; "
        "a few poll periods when it keeps up, growing when it falls behind (or a gateway sends "
        "a backlog), and while a batch taken waits to be judged (a store held, a stuck judge) "
        "at least as long as it waits"
    ),
    "hazardhub_ingest_wait_seconds": (
        "Gauge: how long the messages judged last waited in the hub, taken to judged; while a "
        "batch taken waits to be judged, at least as long as it waits"
    ),
    "hazardhub_telemetry_batches_missing_total": (
        "Batches of a device never received: its seq jumped past them within a gateway's epoch, "
        "also across a hub restart (the broker dropped them, its queue for the hub full or lost "
        "in a restart; or the gateway's spool did, which its data_lost alarm says)"
    ),
    "hazardhub_messages_duplicate_total": (
        "Telemetry messages dropped as already seen (device, epoch, seq): judged, or being "
        "judged (a copy in the same batch)"
    ),
    "hazardhub_position_batches_missing_total": (
        "Position envelopes of a vehicle never received: their seq jumped past them within the "
        "publisher's epoch, also across a hub restart (like "
        "hazardhub_telemetry_batches_missing_total)"
    ),
    "hazardhub_positions_duplicate_total": (
        "Position envelopes dropped as already judged or being judged (vehicle, epoch, seq)"
    ),
    "hazardhub_positions_unsequenced_total": (
        "Position messages without an envelope (a bare object or array): neither deduped nor "
        "counted when the broker drops them"
    ),
    "hazardhub_readings_total": "Readings accepted and stored",
    "hazardhub_readings_rejected_total": "Readings rejected, by reason",
    "hazardhub_readings_late_total": (
        "Readings at or before the last judged event time of their sensor, not judged"
    ),
    "hazardhub_readings_late_in_window_total": (
        "Of the late readings not judged, those within the rule's lateness window but older "
        "than what is kept to rewind their sensor"
    ),
    "hazardhub_readings_rewound_total": (
        "Readings older than their sensor's newest judged one, judged in event-time order "
        "within the rule's lateness window"
    ),
    "hazardhub_positions_total": "Vehicle positions accepted and stored",
    "hazardhub_active_safety_events_total": (
        "ADAS and DSM events of 苏标 terminals judged, by outcome: alarmed (a raise, escalation, "
        "return or journal comment of its kind's alarm), repeated (sent again: nothing), "
        "recorded (an event type not alarmed), unknown_type (a vendor's own type), "
        "unmatched_end (the end of no open episode); and episodes: timed_out (no end within "
        "end_timeout_s), apart (a backfilled episode before the active alarm: its own alarm), "
        "merged (one overlapping the active alarm)"
    ),
    "hazardhub_active_safety_rejected_total": (
        "ADAS and DSM events left out of the positions that carried them (the position and its "
        "alarm bits kept; the dead letter says why), by reason: bad_event (does not read, or "
        "beyond 20 in a record), too_old (older than the hub takes a position)"
    ),
    "hazardhub_positions_late_total": (
        "Vehicle positions older than their vehicle's newest judged one and not judged by the "
        "fleet's rules (older than the fleet's lateness window, or before what it keeps): "
        "stored, on the track"
    ),
    "hazardhub_positions_late_in_window_total": (
        "Of the late positions not judged, those within the fleet's lateness window but older "
        "than the fixes kept to rewind their vehicle"
    ),
    "hazardhub_positions_rewound_total": (
        "Vehicle positions older than their vehicle's newest judged one, judged in event-time "
        "order within the fleet's lateness window"
    ),
    "hazardhub_clock_steps_total": (
        "Steps of the hub's wall clock (against its monotonic clock, more than 30 s between two "
        "ticks, either way): deadlines (no-data, overdue, shelves) follow the wall clock"
    ),
    "hazardhub_clock_last_step_seconds": (
        "Gauge: the size of the hub's last wall-clock step, seconds (positive: forward; 0: none)"
    ),
    "hazardhub_devices_clock_behind": (
        "Gauge: devices whose readings are refused as far behind their newest judged one (their "
        "gateway's clock fell back): page on > 0"
    ),
    "hazardhub_gateway_dropped_readings_total": (
        "Readings a gateway's spool dropped, as its drop reports say (data_lost alarms)"
    ),
    "hazardhub_dead_letters_pruned_total": (
        "Dead letters deleted, the oldest, beyond the number or bytes kept"
    ),
    "hazardhub_alarm_events_total": "Alarm events, by kind",
    "hazardhub_core_failures_total": (
        "Batches the rule core failed to judge (a bug): not acknowledged, delivered again"
    ),
    "hazardhub_tick_failures_total": (
        "Clock ticks whose alarms could not be written to the state database (tried again)"
    ),
    "hazardhub_config_reloads_total": "Configuration changes taken while running",
    "hazardhub_state_saves_total": "Periodic saves of the analytics state written",
    "hazardhub_state_save_failures_total": (
        "Periodic saves of the analytics state that failed (the next one tries again)"
    ),
    "hazardhub_store_retries_total": (
        "Writes retried after a retryable error: the time-series store's (readings) and the "
        "state database's (alarms, dead letters)"
    ),
    "hazardhub_store_unavailable_total": (
        "Store writes refused for the store's set-up (a full disk, a read-only file, a rotated "
        "password), by cause: each try counts; ingest holds the messages until it is fixed"
    ),
    "hazardhub_alarm_publish_failures_total": "Alarm events that could not be published over MQTT",
    "hazardhub_alarm_event_store_failures_total": (
        "Alarm events not written to the time-series store (the state database has them)"
    ),
    "hazardhub_notifications_held_total": "Matching notifications held back, by reason",
    "hazardhub_notifications_delivered_total": "Notifications delivered, by channel",
    "hazardhub_notification_failures_total": (
        "Failed tries to deliver notifications (retryable or not), by channel"
    ),
    "hazardhub_notifications_dead_total": "Notifications given up, by channel",
    "hazardhub_notification_latency_ms_sum": (
        "Sum of ms from the oldest event's arrival to delivery, by channel (divide by delivered)"
    ),
    "hazardhub_notifications_pruned_total": (
        "Delivered and dead notifications deleted after outbox_keep_days"
    ),
    "hazardhub_notifications_pending": "Gauge: notifications waiting to be delivered",
    "hazardhub_notifications_oldest_pending_seconds": (
        "Gauge: the age of the oldest notification waiting, 0 when none"
    ),
    "hazardhub_terminal_confirmations_total": (
        "Acknowledged terminal alarms whose command (0x8203) went to the JT/T 808 gateway"
    ),
    "hazardhub_terminal_confirmation_failures_total": (
        "Tries to publish a terminal confirmation without a broker connection (kept, tried again)"
    ),
    "hazardhub_terminal_confirmations_dropped_total": (
        "Terminal confirmations kept and dropped: more than 10,000 vehicles waiting"
    ),
    "hazardhub_driver_reminders_total": (
        "Reminders to drivers (JT/T 808 0x8300), by outcome: published, late, expired, full"
    ),
    "hazardhub_supervision_answers_total": (
        "JT/T 809 platforms' answers to the centre's supervisions (0x1401), by outcome: "
        "journaled, duplicate, unknown (no supervision of that id in the tenant)"
    ),
    "hazardhub_supervision_receipts_total": (
        "JT/T 809 gateways' receipts of the centre's supervisions (sent, kept, expired, "
        "dropped, no platform), by outcome: journaled, duplicate, unknown (no supervision of "
        "that id in the tenant)"
    ),
    "hazardhub_alarm_supervisions_total": (
        "The centre's alarm supervisions (报警督办, to JT/T 809 platforms), by outcome: "
        "published, kept (no broker), expired (past the deadline before published), full "
        "(not sent: the API answered 503)"
    ),
    "hazardhub_supervisions_overdue_total": (
        "The centre's alarm supervisions (报警督办) the hub's clock found past their deadline "
        "without a platform's answer (each once, journaled 超期未应答 on its alarm)"
    ),
    "hazardhub_api_errors_total": (
        "HTTP requests the API answered 500 for an unexpected error (a bug; the traceback is in"
        " the log), by route"
    ),
}

_GAUGES = frozenset(
    {
        "hazardhub_ingest_lag_seconds",
        "hazardhub_ingest_wait_seconds",
        "hazardhub_devices_clock_behind",
        "hazardhub_clock_last_step_seconds",
        "hazardhub_notifications_pending",
        "hazardhub_notifications_oldest_pending_seconds",
    }
)

_CHANNELS = ("email", "mqtt", "sse", "webhook")
_KINDS = ("dropped", "position", "status", "supervision", "telemetry", "vehicle_info")
# labelled counters whose label values are known in advance: each shown from the start, at 0
# (`increase(x[5m]) > 0` sees nothing of a series that first appears at 1). Those of other
# labels (reasons of rejection, causes, alarm kinds) appear at their first count.
_KNOWN: dict[str, tuple[str, tuple[str, ...]]] = {
    "hazardhub_messages_total": ("kind", _KINDS),
    "hazardhub_messages_qos0_total": ("kind", (*_KINDS, "other")),
    "hazardhub_messages_dropped_total": ("reason", ("qos0_inbox_full", "qos0_session_end")),
    "hazardhub_notifications_held_total": (
        "reason",
        ("inhibited", "out_of_service", "shelved", "silenced", "suppressed"),
    ),
    "hazardhub_notifications_delivered_total": ("channel", _CHANNELS),
    "hazardhub_notification_failures_total": ("channel", _CHANNELS),
    "hazardhub_notifications_dead_total": ("channel", _CHANNELS),
    "hazardhub_notification_latency_ms_sum": ("channel", _CHANNELS),
    "hazardhub_driver_reminders_total": ("outcome", ("expired", "full", "late", "published")),
    "hazardhub_supervision_answers_total": ("outcome", ("duplicate", "journaled", "unknown")),
    "hazardhub_supervision_receipts_total": ("outcome", ("duplicate", "journaled", "unknown")),
    "hazardhub_alarm_supervisions_total": ("outcome", ("expired", "full", "kept", "published")),
}
_OPEN = frozenset(
    {
        "hazardhub_messages_rejected_total",
        "hazardhub_readings_rejected_total",
        "hazardhub_store_unavailable_total",
        "hazardhub_alarm_events_total",
        "hazardhub_api_errors_total",
    }
)


class Metrics:
    """Thread-safe labelled counters, and a few gauges (`set`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        # gauges whose value is read when rendered (`watch`)
        self._watched: dict[str, Callable[[float], float]] = {}

    def watch(self, name: str, at_least: Callable[[float], float]) -> None:
        """Render the unlabelled gauge `name` as `at_least(value set last)`: a gauge that must
        move while nothing sets it (the ingest lag while a batch waits to be judged)."""
        self._watched[name] = at_least

    def set(self, name: str, value: float, **labels: str) -> None:
        """A gauge (one of `_GAUGES`): the value now."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[name][key] = value

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0) + amount

    def get(self, name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self._values.get(name, {}).get(key, 0)

    def total(self, name: str) -> float:
        with self._lock:
            return sum(self._values.get(name, {}).values())

    def render(self) -> str:
        lines: list[str] = []
        watched = {name: at_least(self.get(name)) for name, at_least in self._watched.items()}
        with self._lock:
            names = sorted(set(_HELP) | set(self._values))
            for name in names:
                lines.append(f"# HELP {name} {_HELP.get(name, name)}")
                kind = "gauge" if name in _GAUGES else "counter"
                lines.append(f"# TYPE {name} {kind}")
                series = dict(self._values.get(name, {}))
                if name in watched:
                    series[()] = watched[name]
                if name in _KNOWN:
                    label, known = _KNOWN[name]
                    for v in known:
                        series.setdefault(((label, v),), 0)
                elif not series and name not in _OPEN:
                    series[()] = 0
                for key, value in sorted(series.items()):
                    label = ",".join(f'{k}="{label_value(v)}"' for k, v in key)
                    said = prom_number(value)
                    lines.append(f"{name}{{{label}}} {said}" if label else f"{name} {said}")
        return "\n".join(lines) + "\n"


# the store's own numbers (`BufferedStore.stats`: InfluxDB behind the disk spool), by their path
# in its dataclass: (type, HELP). Counters count since the hub started.
_STORE: dict[str, tuple[str, str]] = {
    "written_rows": ("counter", "Rows InfluxDB took directly"),
    "spooled_rows": ("counter", "Rows written to the disk spool (InfluxDB away, slow or refusing)"),
    "drained_rows": ("counter", "Spooled rows InfluxDB took later"),
    "refused_lines": ("counter", "Rows InfluxDB refused in partial writes (logged)"),
    "rejected_rows": (
        "counter",
        "Spooled rows InfluxDB refused for good, moved to the spool's rejected/ folder (logged)",
    ),
    "unknown_rows": (
        "counter",
        "Spooled rows of sensors no longer configured, not written (logged)",
    ),
    "failed_writes": ("counter", "Writes that failed with a permanent error (the caller was told)"),
    "inner_failures": ("counter", "Retryable failures of InfluxDB (its writes spooled meanwhile)"),
    "unavailable_failures": (
        "counter",
        "Of those, refusals of InfluxDB's set-up (401/403, 404, 413, a series limit)",
    ),
    "inner_up": (
        "gauge",
        "1 when InfluxDB took the last write tried; 0 while it is away or refusing and writes "
        "go to the disk spool",
    ),
    "spool_pending_records": ("gauge", "Records in the disk spool not yet written to InfluxDB"),
    "spool_pending_bytes": (
        "gauge",
        "Bytes in the disk spool not yet written to InfluxDB; at spool_max_bytes ingest holds "
        "and judges nothing",
    ),
    "spool_max_bytes": ("gauge", "The disk spool's limit (--spool-max-mb)"),
    "spool_disk_bytes": ("gauge", "Bytes of the disk spool's segment files on disk"),
    "spool_segments": ("gauge", "Segment files of the disk spool"),
    "spool_appended_records": ("counter", "Records appended to the disk spool"),
    "spool_appended_bytes": ("counter", "Bytes appended to the disk spool"),
    "spool_drained_records": ("counter", "Spooled records written to InfluxDB"),
    "spool_drained_bytes": ("counter", "Spooled bytes written to InfluxDB"),
    "spool_full_refusals": (
        "counter",
        "Writes the disk spool refused, full: ingest holds and judges nothing (page on any)",
    ),
    "spool_corrupt_segments": (
        "counter",
        "Spool segments cut short when opened (a torn tail or lost data)",
    ),
}


def store_metrics(stats: object) -> str:
    """The store's numbers (a dataclass, nested ones walked: `hazardhub_store_spool_...`) in the
    Prometheus text format: counters as `..._total`, gauges as gauges. Until the release after
    2026-12, each counter is also said under its old name (typed gauge, without `_total`), so
    that dashboards can move over (docs/operations.md, Upgrading)."""
    if not dataclasses.is_dataclass(stats) or isinstance(stats, type):
        return ""
    lines: list[str] = []

    def walk(path: str, value: object) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(f"{path}_{f.name}" if path else f.name, getattr(value, f.name))
            return
        if not isinstance(value, bool | int | float):
            return
        kind, help_text = _STORE.get(path, ("gauge", f"The store's {path}"))
        name = f"hazardhub_store_{path}"
        said = prom_number(value)
        if kind == "counter":
            lines.extend(
                (
                    f"# HELP {name}_total {help_text}",
                    f"# TYPE {name}_total counter",
                    f"{name}_total {said}",
                    f"# HELP {name} Deprecated, removed in the next release: {name}_total",
                    f"# TYPE {name} gauge",
                    f"{name} {said}",
                )
            )
        else:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {said}"))

    walk("", stats)
    return "\n".join(lines) + ("\n" if lines else "")
