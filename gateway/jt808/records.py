"""A JT/T 808 location report as the MQTT position record the hub reads (pure)."""

from __future__ import annotations

from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.messages import Alarm, Location, Status

__all__ = ["position_record"]


def position_record(
    loc: Location, v2019: bool = True, clearing: bool = False
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
    (`Alarm.ONLY_2019`), 31 of 2019 (`Alarm.ONLY_2013`)."""
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
        if not alarm and not clearing:
            return problem
        return {  # its alarm bits, judged; no place, no speed
            "ts": ts,
            "lat": 0.0,
            "lon": 0.0,
            "speed_kmh": 0.0,
            "heading_deg": 0,
            "acc_on": bool(loc.status & Status.ACC_ON),
            "alarm_flags": alarm,
        }
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
    return rec
