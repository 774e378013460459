"""What the mine-files gateway says of a file's contents: the mine's own alarms, the findings
of its point definitions, and of its readings the points and statuses not known, the readings
ahead of the clock and those older than ones already sent. Logged under the service's name."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from gateway.logtext import shown
from gateway.minefiles.convert import Converted
from gateway.minefiles.newest import Newest
from gateway.minefiles.points import Finding
from telemetry.codec import MAX_FUTURE_MS
from telemetry.mt1201 import AlarmRecord, format_time

__all__ = ["ALARMS_SAID", "conversion", "findings", "mine_alarms", "times"]

log = logging.getLogger("gateway.minefiles.service")
Once = Callable[[str, str, str], bool]  # (what, mine, item) -> not said before
ALARMS_SAID = 20  # a YC file's records logged one by one; the rest said as a count


def mine_alarms(
    name: str, mine: str, alarms: Sequence[AlarmRecord], counters: Counter[str]
) -> None:
    """Log the first `ALARMS_SAID` of a YC file's records at warning level (their peer text
    escaped: a field cannot forge a log line), the rest as a count; count them all."""
    counters["mine_alarms"] += len(alarms)
    for a in alarms[:ALARMS_SAID]:
        log.warning(
            "mine-files: mine %s reports point %s (%s) %s, level %s, from %s to %s, peak %s",
            mine,
            shown(a.point),
            shown(a.name),
            shown(a.alarm_status),
            shown(a.level) if a.level else "-",
            format_time(a.start_ms) if a.start_ms is not None else "-",
            format_time(a.end_ms) if a.end_ms is not None else "(going on)",
            "-" if a.peak_value is None else f"{a.peak_value:g}",
        )
    if len(alarms) > ALARMS_SAID:
        log.warning(
            "mine-files: %s: %d more alarm records of mine %s not logged one by one (counted: "
            "mine_alarms); the file is kept in done/",
            name,
            len(alarms) - ALARMS_SAID,
            mine,
        )


def findings(found: Sequence[Finding], counters: Counter[str], once: Once) -> None:
    for f in found:
        if f.kind in ("looser", "no_alarm"):
            counters[f"thresholds_{f.kind}"] += 1
            log.warning("mine-files: %s", f.describe())
        elif f.kind == "no_rule" and once("no_rule", f.mine, f.point):
            log.warning("mine-files: %s", f.describe())
        elif f.kind in ("unmapped", "hub_looser") and once(f.kind, f.mine, f.point):
            log.info("mine-files: %s", f.describe())


def conversion(mine: str, conv: Converted, counters: Counter[str], once: Once) -> None:
    counters["readings_no_value"] += conv.no_value
    for point in conv.unmapped:
        counters["points_unmapped"] += 1
        if once("unmapped", mine, point):
            log.warning(
                "mine-files: mine %s point %s has no hub sensor (map it in points:, or name "
                "a sensor %s-%s); its readings are dropped, counted (points_unmapped)",
                mine,
                shown(point),
                mine,
                shown(point),
            )
    for status in conv.unknown_status:
        counters["status_unknown"] += 1
        if once("status", mine, status):
            log.warning(
                "mine-files: mine %s: status %r is not known: its readings are taken as "
                "good; say what it means in status:",
                mine,
                status,
            )


def times(
    name: str,
    conv: Converted,
    now_s: float,
    newest: Newest,
    counters: Counter[str],
    again: bool = False,
) -> None:
    """Count and say the readings ahead of the clock (`now_s`), and those older than ones sent
    (then keep the newest sent); not of a file taken `again` (its earlier readings were sent)."""
    ahead = now_s * 1000 + MAX_FUTURE_MS
    future = sum(int((d.ts > ahead).sum()) for d in conv.devices)
    if future:
        counters["readings_future"] += future
        log.warning(
            "mine-files: %s: %d readings more than %d s ahead of this gateway's clock: the "
            "hub refuses them; is the mine system's clock (or this one) wrong?",
            name,
            future,
            MAX_FUTURE_MS // 1000,
        )
    late = newest.update(conv.devices, int(ahead))
    if late.readings and not again:
        counters["readings_late"] += late.readings
        log.warning(
            "mine-files: %s: %d readings of %d points are older than readings of theirs "
            "already sent, by up to %.0f s (a backlog?): the hub judges them only within "
            "its lateness_s (docs/rules.md, Late readings); older ones are stored and "
            "counted late there, never alarmed",
            name,
            late.readings,
            late.points,
            late.most_ms / 1000,
        )
