"""What a simulated JT/T 808 terminal measures and who it is: a position fix (`Fix`), its
0x0200 body (`location_of`), an ADAS or DSM alarm of a 苏标 terminal at a fix (`safety_block`),
and the terminal id of a vehicle (`terminal_id`). Split from
`simulators.jt808`, which re-exports these names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from telemetry.activesafety import SafetyEvent
from telemetry.jt808.messages import Extra, Location, Status, ms_to_bcd_time
from telemetry.jt808.safety import ADAS, DSM, SafetyBlock

__all__ = ["Fix", "location_of", "safety_block", "terminal_id"]

_ID_WIDTH = 7  # the terminal id field: BYTE[7] in 2013, BYTE[30] in 2019 (the id fits both)
_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def terminal_id(key: str, salt: int = 0) -> str:
    """A terminal id of 7 capital letters and digits (the form JT/T 808 gives the field),
    derived from `key` (and `salt`, to step aside from a collision): the same key gives the
    same id at every run, so a platform's binding of a vehicle to its terminal (maker, model
    and terminal id) holds across restarts. Two keys share an id once in 36^7 (7.8e10)."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    n = int.from_bytes(digest, "big") % len(_ID_CHARS) ** _ID_WIDTH
    out = []
    for _ in range(_ID_WIDTH):
        n, r = divmod(n, len(_ID_CHARS))
        out.append(_ID_CHARS[r])
    return "".join(reversed(out))


@dataclass(frozen=True, slots=True)
class Fix:
    """One position as a terminal measures it (ts: epoch ms UTC; sent as GMT+8 BCD seconds)."""

    ts_ms: int
    lat: float
    lon: float
    speed_kmh: float = 0.0
    heading_deg: int = 0
    alt_m: int = 0
    acc_on: bool = True
    alarm: int = 0
    positioned: bool = True
    mileage_km: float | None = None
    signal: int | None = None
    satellites: int | None = None
    # the ADAS and DSM blocks of a 苏标 terminal (0x64, 0x65), then any other items as given
    # (a vendor's, or a block of a wrong length on purpose)
    safety: tuple[SafetyBlock, ...] = ()
    items: tuple[tuple[int, bytes], ...] = ()


def safety_block(fix: Fix, event: SafetyEvent, terminal: str) -> SafetyBlock:
    """The 苏标 block (T/JSATL 12-2017, a 7-byte terminal id) of `event` at `fix`: its place
    and speed the fix's, its time and identification the event's (`event.ref`'s terminal id,
    else `terminal`; the sequence is the alarm id's low byte)."""
    who = event.ref.split("/")[0] if event.ref else terminal
    when = ms_to_bcd_time(event.ts)
    return SafetyBlock(
        ADAS if event.source == "adas" else DSM,
        event.alarm_id,
        event.flag,
        event.type,
        event.level,
        bytes(5),
        min(255, round(fix.speed_kmh)),
        fix.alt_m,
        round(abs(fix.lat) * 1e6),
        round(abs(fix.lon) * 1e6),
        when,
        # T/JSATL 12-2017's vehicle status: bit 0 ACC, 1-5 turn signals, wiper, brake, card,
        # bit 10 positioned (no hemisphere: the report's says it)
        int(fix.acc_on) | int(fix.positioned) << 10,
        who.encode("ascii")[:_ID_WIDTH].ljust(_ID_WIDTH, b"\x00"),
        when,
        event.alarm_id & 0xFF,
        event.attachments,
    )


def location_of(fix: Fix) -> Location:
    status = Status.GPS | Status.BEIDOU
    if fix.acc_on:
        status |= Status.ACC_ON
    if fix.positioned:
        status |= Status.POSITIONED
    if fix.lat < 0:
        status |= Status.SOUTH
    if fix.lon < 0:
        status |= Status.WEST
    extras: list[tuple[int, bytes]] = []
    if fix.mileage_km is not None:
        extras.append((Extra.MILEAGE, round(fix.mileage_km * 10).to_bytes(4, "big")))
    if fix.signal is not None:
        extras.append((Extra.SIGNAL, bytes((fix.signal,))))
    if fix.satellites is not None:
        extras.append((Extra.SATELLITES, bytes((fix.satellites,))))
    extras.extend(block.item() for block in fix.safety)
    extras.extend(fix.items)
    return Location(
        fix.alarm,
        int(status),
        round(abs(fix.lat) * 1e6),
        round(abs(fix.lon) * 1e6),
        fix.alt_m,
        round(fix.speed_kmh * 10),
        fix.heading_deg,
        ms_to_bcd_time(fix.ts_ms),
        tuple(extras),
    )
