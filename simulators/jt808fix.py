"""What a simulated JT/T 808 terminal measures and who it is: a position fix (`Fix`), its
0x0200 body (`location_of`), and the terminal id of a vehicle (`terminal_id`). Split from
`simulators.jt808`, which re-exports these names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from telemetry.jt808.messages import Extra, Location, Status, ms_to_bcd_time

__all__ = ["Fix", "location_of", "terminal_id"]

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
