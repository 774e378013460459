"""The InfluxDB schema: measurements, tags and fields, as Grafana and the ``influx`` CLI see them.

::

    reading,device=<device>,kind=<kind>,sensor=<sensor id>,site=<site>,tenant=<tenant>
        quality=<int>i,epoch=<int>i,seq=<int>i,value=<float> <event time, ms>

    position,tenant=<tenant>,vehicle=<vehicle id>
        lat=<float>,lon=<float>,speed_kmh=<float>,heading_deg=<float> <event time, ms>

    alarm_event,device=<device>,kind=<raised|escalated|deescalated|cleared>,rule=<rule>,
        sensor=<sensor id>,side=<above|below>,site=<site>,tenant=<tenant>
        alarm_id=<int>i,level=<int>i,level_name="<text>",tier="<text>",action="<text>",
        arrival=<int>i,value=<float> <event time of the reading that caused it, ms>

- ``sensor`` is the registry's sensor id (unique in a hub); the other reading tags describe it.
  ``quality`` is a `telemetry.quality.Quality` code; ``epoch``/``seq`` name the telemetry message
  the reading came in (see `TimeSeriesStore.count_by_seq`).
- A reading without a value (NaN: comm loss, sensor fault) is stored without ``value``; its
  ``quality``, ``epoch`` and ``seq`` are there, so nothing vanishes. A position's ``speed_kmh`` /
  ``heading_deg`` and an alarm event's ``value`` are left out the same way when NaN.
- Idempotence: a point is (series, time); writing it again overwrites the fields it carries
  (InfluxDB merges fields: a NaN reading re-written over a stored value at the same time leaves
  that value). An alarm event is one point per (sensor, rule, side, kind, event time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.alarms import AlarmEvent
from ingest.store.lineproto import FieldValue, format_line, series_key
from telemetry.registry import SensorInfo

__all__ = [
    "ALARM_EVENT",
    "POSITION",
    "READING",
    "alarm_event_from_row",
    "alarm_lines",
    "position_key",
    "reading_key",
]

READING = "reading"
POSITION = "position"
ALARM_EVENT = "alarm_event"


def reading_key(s: SensorInfo) -> str:
    tags = {"tenant": s.tenant, "site": s.site, "device": s.device, "sensor": s.id, "kind": s.kind}
    return series_key(READING, tags)


def position_key(s: SensorInfo) -> str:
    return series_key(POSITION, {"tenant": s.tenant, "vehicle": s.device})


def alarm_lines(events: Sequence[AlarmEvent]) -> tuple[list[str], int]:
    """Line-protocol lines (with "\\n") of alarm events, and how many could not be written
    (an infinite value or a time outside InfluxDB's range). Alarm events are few: one line at a
    time in Python is fine here."""
    lines: list[str] = []
    skipped = 0
    for e in events:
        key = series_key(
            ALARM_EVENT,
            {
                "tenant": e.tenant,
                "site": e.site,
                "device": e.device,
                "sensor": e.sensor,
                "rule": e.rule,
                "side": e.side,
                "kind": e.kind,
            },
        )
        fields: dict[str, FieldValue] = {
            "alarm_id": int(e.alarm_id),
            "level": int(e.level),
            "level_name": e.level_name,
            "tier": e.tier,
            "action": e.action,
            "arrival": int(e.arrival),
        }
        if not math.isnan(e.value):
            fields["value"] = float(e.value)
        try:
            lines.append(format_line(key, fields, int(e.ts)) + "\n")
        except ValueError:
            skipped += 1
    return lines, skipped


def alarm_event_from_row(
    tags: Mapping[str, str], columns: Sequence[str], row: Sequence[Any]
) -> AlarmEvent:
    """An alarm event from a ``SELECT * ... GROUP BY *`` row of ``alarm_event``."""
    col = dict(zip(columns, row, strict=True))
    value = col.get("value")
    return AlarmEvent(
        alarm_id=int(col["alarm_id"]),
        kind=tags.get("kind", ""),
        tenant=tags.get("tenant", ""),
        site=tags.get("site", ""),
        device=tags.get("device", ""),
        sensor=tags.get("sensor", ""),
        rule=tags.get("rule", ""),
        side=tags.get("side", ""),
        level=int(col["level"]),
        level_name=str(col.get("level_name") or ""),
        tier=str(col.get("tier") or ""),
        action=str(col.get("action") or ""),
        value=math.nan if value is None else float(value),
        ts=int(col["time"]),
        arrival=int(col["arrival"]),
    )
