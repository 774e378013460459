"""Counters of the hub, rendered in the Prometheus text format for ``/metrics``."""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["Metrics", "prom_number"]

_HELP = {
    "hazardhub_messages_total": "MQTT messages received, by kind",
    "hazardhub_messages_rejected_total": "Messages rejected (dead-lettered), by reason",
    "hazardhub_ingest_lag_seconds": (
        "Gauge: the hub's clock minus the newest event time of the readings it judged last; "
        "a few poll periods when it keeps up, growing when it falls behind (or a gateway sends "
        "a backlog)"
    ),
    "hazardhub_ingest_wait_seconds": (
        "Gauge: how long the messages judged last waited in the hub, taken to judged"
    ),
    "hazardhub_telemetry_batches_missing_total": (
        "Batches of a device never received: its seq jumped past them within a gateway's epoch "
        "(the broker dropped them, its queue for the hub full; or the gateway's spool did, "
        "which its data_lost alarm says)"
    ),
    "hazardhub_messages_duplicate_total": (
        "Telemetry messages dropped as already seen (device, epoch, seq)"
    ),
    "hazardhub_readings_total": "Readings accepted and stored",
    "hazardhub_readings_rejected_total": "Readings rejected, by reason",
    "hazardhub_readings_late_total": (
        "Readings at or before the last judged event time of their sensor"
    ),
    "hazardhub_positions_total": "Vehicle positions accepted and stored",
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
    "hazardhub_alarm_events_total": "Alarm events, by kind",
    "hazardhub_store_retries_total": "Store writes retried after a retryable error",
    "hazardhub_alarm_publish_failures_total": "Alarm events that could not be published over MQTT",
    "hazardhub_alarm_event_store_failures_total": (
        "Alarm events not written to the time-series store (the state database has them)"
    ),
}


_GAUGES = frozenset({"hazardhub_ingest_lag_seconds", "hazardhub_ingest_wait_seconds"})


def _escape(value: str) -> str:
    """Escape a label value of the Prometheus text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe labelled counters, and a few gauges (`set`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)

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
        with self._lock:
            names = sorted(set(_HELP) | set(self._values))
            for name in names:
                lines.append(f"# HELP {name} {_HELP.get(name, name)}")
                kind = "gauge" if name in _GAUGES else "counter"
                lines.append(f"# TYPE {name} {kind}")
                series = self._values.get(name) or {(): 0}
                for key, value in sorted(series.items()):
                    label = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                    said = prom_number(value)
                    lines.append(f"{name}{{{label}}} {said}" if label else f"{name} {said}")
        return "\n".join(lines) + "\n"


def prom_number(value: float) -> str:
    """A counter to the unit (`:g` said 3.23229e+06 past a million: no count reconciles)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
