"""A JT/T 808 location report as the MQTT position record the hub reads (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry.activesafety import MAX_AFTER_MS, MAX_EVENTS, SafetyEvent, read_event
from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.messages import Alarm, Location, Status
from telemetry.jt808.safety import ADAS, DSM, SafetyBlock

__all__ = ["position_record", "safety_events"]

# the ADAS types whose type-specific byte 2 is the time to the vehicle or person ahead: forward
# collision, headway too short, pedestrian collision
_HEADWAY_TYPES = frozenset({1, 3, 4})


def _event(loc: Location, b: SafetyBlock, ts: int) -> dict[str, object]:
    """A block as a record's event: what the hub reads (`telemetry.activesafety`)."""
    ref = b.reference if b.ident_time.isdigit() else ""
    item = SafetyEvent(b.source, b.alarm_id, b.flag, b.type, b.level, ts, b.attachments, ref)
    rec = item.record()
    # where: the block's place (its hemisphere the report's: the block's vehicle status says
    # none); a block without one (zeros, out of range) says none
    if 0 < b.lat_e6 <= 90_000_000 and 0 < b.lon_e6 <= 180_000_000:
        rec["lat"] = b.lat_e6 / 1e6 * (-1 if loc.status & Status.SOUTH else 1)
        rec["lon"] = b.lon_e6 / 1e6 * (-1 if loc.status & Status.WEST else 1)
    rec["speed_kmh"] = b.speed_kmh
    if b.ident == DSM and b.type == 1:  # 疲劳程度, valid for a fatigue alarm only
        rec["fatigue"] = b.specific[0]
    if b.ident == ADAS and b.type in _HEADWAY_TYPES:  # 前车/行人距离, 100 ms
        rec["headway_s"] = b.specific[1] / 10
    return rec


def safety_events(loc: Location) -> tuple[list[dict[str, object]], list[str]]:
    """The ADAS and DSM blocks of a report as a record's `active_safety` events, and why each
    block left out is: a length neither layout has, a time that is no time, or anything the hub
    would refuse (it reads each event as `read_event` does: a flag above 2, a time after the
    report's ...), and the blocks beyond the `MAX_EVENTS` a record carries."""
    blocks, bad = loc.safety_blocks()
    try:
        record_ts = loc.ts_ms
    except Jt808Error:
        record_ts = -MAX_AFTER_MS - 1  # (the position is dropped, `bad_time`)
    out: list[dict[str, object]] = []
    why = list(bad)
    for b in blocks:
        try:
            ts = b.ts_ms
        except Jt808Error as exc:
            why.append(f"active-safety block {b.ident:#04x} alarm {b.alarm_id}: {exc}")
            continue
        rec = _event(loc, b, ts)
        try:
            read_event(rec, record_ts)
        except ValueError as exc:
            said = str(exc)
            if "after the report" in said:
                said = f"at {b.time}, after its report at {loc.time}"
            why.append(f"active-safety block {b.ident:#04x} alarm {b.alarm_id}: {said}")
            continue
        if len(out) == MAX_EVENTS:
            why.append(
                f"active-safety block {b.ident:#04x} alarm {b.alarm_id}: beyond the "
                f"{MAX_EVENTS} a record carries"
            )
            continue
        out.append(rec)
    return out, why


def position_record(
    loc: Location,
    v2019: bool = True,
    clearing: bool = False,
    safety: Sequence[dict[str, object]] = (),
) -> dict[str, object] | str:
    """The MQTT position record of a location, or why it cannot be one (a counter label).

    A report without a fix (status bit 1 clear), or whose place, speed or heading cannot be, is
    dropped, unless it carries alarm bits (an emergency button, a collision, the antenna cut
    that lost the fix). Then it is sent at lat 0, lon 0, speed 0, which the hub reads as "no
    fix" (`ingest.positions`): its bits are judged, its place (often the terminal's last fix,
    repeated) and speed are used nowhere. One without a valid time is dropped (nothing can be
    judged in event time). With `clearing` (the last report published of the terminal carried
    bits, or none was on this connection) one without bits goes too, for the bits it clears.
    The bits reserved in the terminal's version (a vendor's own) are cleared: 15-17 of 2013
    (`Alarm.ONLY_2019`), 31 of 2019 (`Alarm.ONLY_2013`). `safety`: the report's active-safety
    events (`safety_events`), carried in `active_safety`; a report without a fix that carries
    some is sent for them as for alarm bits."""
    alarm = loc.alarm & ~int(Alarm.ONLY_2013) if v2019 else loc.alarm & ~int(Alarm.ONLY_2019)
    try:
        ts = loc.ts_ms
    except Jt808Error:
        return "bad_time"
    lat, lon = loc.lat, loc.lon
    problem = (
        "no_fix"
        if not loc.status & Status.POSITIONED
        else "bad_position"
        if not (-90 <= lat <= 90 and -180 <= lon <= 180)
        else "bad_speed"
        if loc.speed_dkmh > 3000
        else "bad_heading"
        if loc.direction > 360
        else ""
    )
    if problem:
        if not alarm and not clearing and not safety:
            return problem
        bare: dict[str, object] = {  # its alarm bits, judged; no place, no speed
            "ts": ts,
            "lat": 0.0,
            "lon": 0.0,
            "speed_kmh": 0.0,
            "heading_deg": 0,
            "acc_on": bool(loc.status & Status.ACC_ON),
            "alarm_flags": alarm,
        }
        if safety:
            bare["active_safety"] = list(safety)
        return bare
    rec: dict[str, object] = {
        "ts": ts,
        "lat": lat,
        "lon": lon,
        "speed_kmh": loc.speed_kmh,
        "heading_deg": loc.direction,
        "acc_on": bool(loc.status & Status.ACC_ON),
        "alarm_flags": alarm,
    }
    if loc.altitude_m <= 9000:
        rec["alt_m"] = loc.altitude_m
    if safety:
        rec["active_safety"] = list(safety)
    return rec
