"""The terminal's own alarms: the JT/T 808 alarm bits of each position (table 24 of the 2019
standard) become alarms. A bit that goes from 0 to 1 raises the alarm of that bit on the vehicle,
from 1 to 0 clears it, in event time and per vehicle; an operator's acknowledgement of one is
what the platform confirms back to the terminal with 0x8203.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerts.table import TERMINAL_KINDS
from alerts.vehicles.state import Positions

__all__ = [
    "LATE_BITS",
    "TERMINAL_BITS",
    "TERMINAL_SIDE0",
    "TerminalAlarms",
    "TerminalChange",
    "terminal_bit",
    "terminal_kind",
]

TERMINAL_SIDE0 = 32  # alarm kind number of bit 0; bit b is TERMINAL_SIDE0 + b

# bit -> (kind, tier, action); the bits hazardhub raises (the others are status noise)
TERMINAL_BITS: dict[int, tuple[str, str, str]] = {
    0: ("terminal_emergency", "red", "紧急报警: 立即联系驾驶员 call the driver now"),
    1: ("terminal_overspeed", "orange", "终端超速报警 the terminal reports overspeed"),
    2: ("terminal_fatigue", "orange", "终端疲劳驾驶报警 the terminal reports fatigue"),
    3: ("terminal_danger", "yellow", "危险预警 danger warning from the terminal"),
    4: ("terminal_gnss_fault", "yellow", "GNSS 模块故障 check the positioning module"),
    5: ("terminal_antenna_cut", "yellow", "GNSS 天线未接或被剪断 antenna cut: check it"),
    6: ("terminal_antenna_short", "yellow", "GNSS 天线短路 antenna short circuit"),
    7: ("terminal_power_low", "yellow", "主电源欠压 main power low"),
    8: ("terminal_power_off", "orange", "主电源掉电 main power off: tampering?"),
    11: ("terminal_camera_fault", "blue", "摄像头故障 camera fault"),
    15: ("terminal_illegal_driving", "orange", "违规行驶 driving at a forbidden time (2019)"),
    16: ("terminal_tyre_pressure", "yellow", "胎压预警 tyre pressure: stop and check (2019)"),
    17: ("terminal_blind_zone", "yellow", "右转盲区异常 right-turn blind zone (2019)"),
    18: ("terminal_day_driving", "orange", "当天累计驾驶超时 over the day's driving time"),
    19: ("terminal_parking", "yellow", "超时停车 parked too long"),
    20: ("terminal_area", "yellow", "进出区域 entered or left an area"),
    21: ("terminal_route", "yellow", "进出路线 entered or left a route"),
    22: (
        "terminal_segment_time",
        "yellow",
        "路段行驶时间不足/过长 road-segment time too short or long",
    ),
    23: ("terminal_off_route", "orange", "路线偏离报警 off the route"),
    26: ("terminal_stolen", "red", "车辆被盗 vehicle stolen"),
    27: ("terminal_illegal_ignition", "red", "车辆非法点火 illegal ignition"),
    28: ("terminal_illegal_move", "red", "车辆非法位移 illegal displacement"),
    29: ("terminal_collision", "red", "碰撞预警 collision: call the driver and rescue"),
    30: ("terminal_rollover", "red", "侧翻预警 rollover: call the driver and rescue"),
    31: ("terminal_door_open", "orange", "非法开门 a door opened illegally (2013)"),
}
_MASK = np.uint32(sum(1 << b for b in TERMINAL_BITS))
# the red bits are events someone must act on even after the fact (a collision, a rollover, the
# emergency button in a tunnel): a position older than the vehicle's newest judged one (a blind
# area uploaded after it) still raises them, as an episode over by the vehicle's newest position
LATE_BITS = tuple(b for b, (_, tier, _) in TERMINAL_BITS.items() if tier == "red")
_LATE_MASK = sum(1 << b for b in LATE_BITS)
# a blind area is a hole between two live positions more than HOLE_MS apart (terminals report
# every 10-30 s while driving); only a position inside one of a vehicle's last HOLES holes is a
# blind area's: an older one is a live position delivered again (MQTT at least once), which
# raised a collision a second time (helper-137)
HOLE_MS = 60_000
HOLES = 4
assert {b: k for b, (k, _, _) in TERMINAL_BITS.items()} == TERMINAL_KINDS
_KIND_BIT = {kind: bit for bit, (kind, _, _) in TERMINAL_BITS.items()}


def terminal_kind(side: int) -> str | None:
    """The alarm kind of a terminal alarm's side, or None."""
    bit = side - TERMINAL_SIDE0
    found = TERMINAL_BITS.get(bit)
    return found[0] if found else None


def terminal_bit(kind: str) -> int | None:
    return _KIND_BIT.get(kind)


# flags, newest, late_ts, late_flags, holes
Checkpoint = tuple[
    dict[int, int],
    npt.NDArray[np.int64],
    dict[int, int],
    dict[int, int],
    dict[int, tuple[tuple[int, int], ...]],
]


@dataclass(frozen=True, slots=True)
class TerminalChange:
    vehicle: int  # registry index of the vehicle's speed sensor
    bit: int
    level: int  # 1 raised, 0 cleared
    ts: int


class TerminalAlarms:
    """The last alarm bits of each vehicle, and the changes each batch brings."""

    def __init__(self) -> None:
        self.flags: dict[int, int] = {}
        # the newest position judged, per vehicle (registry index; -1: none), kept by every
        # batch, those without alarm bits too: it tells a blind area uploaded after it
        self.newest = np.full(0, -1, np.int64)
        # of positions older than that (blind areas uploaded late): the newest judged and its
        # red bits, per vehicle (a backlog in several batches is one episode; one sent twice,
        # or older than what was judged of it, raises nothing again)
        self.late_ts: dict[int, int] = {}
        self.late_flags: dict[int, int] = {}
        # the last HOLES holes between live positions per vehicle, (start, end) exclusive; tuples,
        # so that a checkpoint (every batch) copies the dict alone
        self.holes: dict[int, tuple[tuple[int, int], ...]] = {}

    def restore(self, active: Iterable[tuple[int, int]]) -> None:
        """(vehicle, bit) of the terminal alarms still active after a restart."""
        for vehicle, bit in active:
            self.flags[vehicle] = self.flags.get(vehicle, 0) | (1 << bit)

    @property
    def last_ts(self) -> dict[int, int]:
        """The newest position judged, by vehicle (those with one)."""
        seen = np.flatnonzero(self.newest >= 0)
        return dict(zip(seen.tolist(), self.newest[seen].tolist(), strict=True))

    def set_last_ts(self, vehicle: int, ts: int) -> None:
        self._grow(vehicle + 1)
        self.newest[vehicle] = ts

    def _grow(self, n: int) -> None:
        if n > self.newest.shape[0]:
            more = np.full(max(n, 2 * self.newest.shape[0]), -1, np.int64)
            more[: self.newest.shape[0]] = self.newest
            self.newest = more

    def checkpoint(self) -> Checkpoint:
        """What `undo` puts back when the batch's alarms could not be recorded."""
        return (
            dict(self.flags),
            self.newest.copy(),
            dict(self.late_ts),
            dict(self.late_flags),
            dict(self.holes),
        )

    def undo(self, saved: Checkpoint) -> None:
        flags, newest, late_ts, late_flags, holes = saved
        self.flags, self.newest = dict(flags), newest.copy()
        self.late_ts, self.late_flags = dict(late_ts), dict(late_flags)
        self.holes = dict(holes)

    def _find_holes(self, batch: Positions) -> None:
        """Record the holes between the batch's live positions, and between a vehicle's newest
        judged one and its first of the batch (before `newest` moves)."""
        live = np.flatnonzero(batch.ts > self.newest[batch.vehicle])
        if not live.shape[0]:
            return
        v, ts = batch.vehicle[live], batch.ts[live]
        order = np.lexsort((ts, v))
        v, ts = v[order], ts[order]
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        start = np.ones(v.shape[0], np.bool_)
        start[1:] = v[1:] != v[:-1]
        prev[start] = self.newest[v[start]]
        # (before a vehicle's first position: a hole too, nothing of it was judged live)
        hole = np.flatnonzero((ts - prev > HOLE_MS) | (prev < 0))
        since = np.where(prev[hole] < 0, -(2**62), prev[hole])
        for vehicle, a, b in zip(v[hole].tolist(), since.tolist(), ts[hole].tolist(), strict=True):
            self.holes[vehicle] = (*self.holes.get(vehicle, ()), (a, b))[-HOLES:]

    def _in_hole(self, vehicle: int, ts: int) -> bool:
        return any(a < ts < b for a, b in self.holes.get(vehicle, ()))

    def judge(self, batch: Positions, flags: npt.NDArray[np.uint32]) -> list[TerminalChange]:
        """The bit changes of the batch, per vehicle in event time. A position at or before a
        vehicle's newest judged one (a blind area uploaded after it) changes none of the alarms
        of now; its red bits (`LATE_BITS`) not active now raise an alarm at its time, cleared
        at the first later such position without the bit, else at the vehicle's newest
        position (which says the bit is off now)."""
        if not len(flags):
            return []
        self._grow(int(batch.vehicle.max()) + 1)
        self._find_holes(batch)
        if not flags.any() and not self.flags:  # (no vehicle holds an alarm bit: nothing to
            if self.late_flags:  # compare; the newest positions kept)
                self._late_without_bits(batch)
            np.maximum.at(self.newest, batch.vehicle, batch.ts)
            return []
        order = np.lexsort((batch.ts, batch.vehicle))
        vehicles = batch.vehicle[order].tolist()
        stamps = batch.ts[order].tolist()
        bits = (flags[order] & _MASK).tolist()
        newest = self.newest
        changes: list[TerminalChange] = []
        raised: dict[int, int] = {}  # vehicle -> the late bits raised and not yet cleared
        for vehicle, ts, now in zip(vehicles, stamps, bits, strict=True):
            if ts <= newest[vehicle]:
                self._late(vehicle, ts, now, raised, changes)
                continue
            newest[vehicle] = ts
            before = self.flags.get(vehicle, 0)
            diff = before ^ now
            if not diff:
                continue
            for bit in TERMINAL_BITS:
                if diff >> bit & 1:
                    changes.append(TerminalChange(vehicle, bit, now >> bit & 1, ts))
            if now:
                self.flags[vehicle] = now
            else:
                self.flags.pop(vehicle, None)
        for vehicle, late in raised.items():  # over by the newest position: off now (unless
            end, still = int(newest[vehicle]), late & ~self.flags.get(vehicle, 0)  # on again)
            changes.extend(TerminalChange(vehicle, b, 0, end) for b in LATE_BITS if still >> b & 1)
        return changes

    def _late_without_bits(self, batch: Positions) -> None:
        """A blind area's next positions, without alarm bits: its episode is over."""
        keys = np.fromiter(self.late_flags, np.int64, len(self.late_flags))
        for vehicle in keys[np.isin(keys, batch.vehicle)].tolist():
            ts = batch.ts[batch.vehicle == vehicle]
            late = ts[(ts <= self.newest[vehicle]) & (ts > self.late_ts.get(vehicle, -1))]
            late = late[[self._in_hole(vehicle, t) for t in late.tolist()]]
            if late.shape[0]:
                self.late_ts[vehicle] = int(late.max())
                del self.late_flags[vehicle]

    def _late(
        self, vehicle: int, ts: int, now: int, raised: dict[int, int], out: list[TerminalChange]
    ) -> None:
        if ts <= self.late_ts.get(vehicle, -1) or not self._in_hole(vehicle, ts):
            return  # sent again (a blind area's, or a live one), or older: nothing new
        self.late_ts[vehicle] = ts
        bits = now & _LATE_MASK & ~self.flags.get(vehicle, 0)  # (active now: already raised)
        before = self.late_flags.get(vehicle, 0)
        if bits:
            self.late_flags[vehicle] = bits
        else:
            self.late_flags.pop(vehicle, None)
        on, off = bits & ~before, raised.get(vehicle, 0) & ~bits
        for bit in LATE_BITS:
            if on >> bit & 1:
                out.append(TerminalChange(vehicle, bit, 1, ts))
            elif off >> bit & 1:
                out.append(TerminalChange(vehicle, bit, 0, ts))
        if on or off:
            raised[vehicle] = (raised.get(vehicle, 0) | on) & ~off
