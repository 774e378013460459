"""The driving time in the per-position reference (`alerts.vehicles.reference`): the rolling
24 h's slots and the daily rule over them (`_roll`, `_rolling`), a change of driver
(`_take_over`, the crew's rule: `alerts.vehicles.crew`) and the driving of the days before
(`_past`). Split from `alerts.vehicles.reference`, whose `ReferenceFleet` extends `DrivingTime`
and sets up the attributes declared here; the code moved as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from alerts.vehicles.state import NO_KEY, ROLL_SLOT_MS, ROLL_SLOTS, EventKind
from alerts.vehicles.table import DAY_MS, FleetTable

if TYPE_CHECKING:
    from alerts.vehicles.reference import Vehicle

__all__ = ["DrivingTime"]


class DrivingTime:
    """The driving-time bookkeeping of `ReferenceFleet`, which sets up every attribute declared
    here."""

    table: FleetTable
    vehicles: list[Vehicle]

    def _roll(self, veh: Vehicle, t: int, drive: int) -> None:
        """Move the rolling 24 h's slots on to a fix at `t` and add its interval's driving."""
        if veh.roll_slot == NO_KEY and veh.has_fix:  # saved without slots: the day's at the last
            veh.roll_ms = [0] * ROLL_SLOTS
            veh.roll_slot = veh.last_ts // ROLL_SLOT_MS
            veh.roll_ms[veh.roll_slot % ROLL_SLOTS] = veh.daily_ms if veh.day != NO_KEY else 0
            yday = veh.day - 1  # the day before's in the last slot before its midnight
            if veh.day != NO_KEY and veh.week_day[yday % 7] == yday:
                eve = ((yday + 1) * DAY_MS - self.table.offset_ms - 1) // ROLL_SLOT_MS
                if eve < veh.roll_slot and veh.roll_slot - eve < ROLL_SLOTS - 1:
                    veh.roll_ms[eve % ROLL_SLOTS] += veh.week_ms[yday % 7]
        q = t // ROLL_SLOT_MS
        if veh.roll_slot == NO_KEY or q - veh.roll_slot >= ROLL_SLOTS:
            veh.roll_ms = [0] * ROLL_SLOTS
        else:
            for x in range(veh.roll_slot + 1, q + 1):
                veh.roll_ms[x % ROLL_SLOTS] = 0
        veh.roll_slot = q
        veh.roll_ms[q % ROLL_SLOTS] += drive
        veh.roll_sum = sum(veh.roll_ms)

    def _rolling(self, slot: int, t: int, drive: int, emit: Callable[..., None]) -> None:
        """The daily rule over the rolling 24 h at a fix at `t` whose interval drove `drive`."""
        veh, limit = self.vehicles[slot], int(self.table.daily_ms[slot])
        if veh.roll_slot == NO_KEY and veh.has_fix:  # as `_roll` seeds it
            self._roll(veh, veh.last_ts, 0)
        if veh.daily_raised:
            q = t // ROLL_SLOT_MS
            if veh.roll_slot == NO_KEY:  # restored without a saved state: ended now
                emit(EventKind.FATIGUE_DAILY_END, t, 0.0)
                veh.daily_raised = False
            else:  # the first slot boundary since the last fix whose 24 h are within the limit
                for b in range(veh.roll_slot + 1, q + 1):
                    held = sum(
                        veh.roll_ms[x % ROLL_SLOTS]
                        for x in range(b - ROLL_SLOTS + 1, veh.roll_slot + 1)
                    )
                    if held <= limit:
                        emit(EventKind.FATIGUE_DAILY_END, b * ROLL_SLOT_MS, held / 1000.0)
                        veh.daily_raised = False
                        break
        self._roll(veh, t, drive)
        # the 24 h at the fix: its slot and the 287 before it, not the one 24 h before (as a
        # boundary's 24 h: `alerts.vehicles.fatigue._rolling`)
        day24 = veh.roll_sum - veh.roll_ms[(veh.roll_slot + 1) % ROLL_SLOTS]
        if day24 > limit and not veh.daily_raised:
            emit(EventKind.FATIGUE_DAILY, t, day24 / 1000.0)
            veh.daily_raised = True

    def _take_over(self, slot: int, driver: int, t: int, emit: Callable[..., None]) -> None:
        """Another driver at this fix (`alerts.vehicles.crew`, which states the rule)."""
        veh, min_rest = self.vehicles[slot], int(self.table.min_rest_ms[slot])
        old = veh.driver
        if not old:
            veh.driver = driver
            return
        # the episodes end with the driver they were about
        if veh.cont_raised:
            emit(EventKind.FATIGUE_CONTINUOUS_END, t, veh.rest_ms / 1000.0)
        if veh.daily_raised:  # value: the day's driving, or the 24 h's
            daily = sum(veh.roll_ms) if self.table.daily_rolling[slot] else veh.daily_ms
            emit(EventKind.FATIGUE_DAILY_END, t, daily / 1000.0)
        if veh.weekly_raised:
            emit(EventKind.FATIGUE_WEEKLY_END, t, (veh.daily_ms + _past(veh, veh.day)) / 1000.0)
        veh.driver = driver
        veh.cont_raised = veh.daily_raised = veh.weekly_raised = False
        left = veh.last_ts if veh.has_fix else t
        if driver in veh.crew_driver:
            j = veh.crew_driver.index(driver)
            rest = veh.crew_rest[j] + max(0, left - veh.crew_out[j])
            came = (
                0 if rest >= min_rest else veh.crew_cont[j],
                rest,
                veh.crew_day[j],
                veh.crew_daily[j],
                list(veh.crew_week_ms[j]),
                list(veh.crew_week_day[j]),
                list(veh.crew_roll_ms[j]),
                veh.crew_roll_slot[j],
            )
        else:
            j = (
                veh.crew_driver.index(0)
                if 0 in veh.crew_driver
                else veh.crew_out.index(min(veh.crew_out))
            )
            came = (0, min_rest, NO_KEY, 0, [0] * 7, [NO_KEY] * 7, [0] * ROLL_SLOTS, NO_KEY)
        veh.crew_driver[j], veh.crew_out[j] = old, left
        veh.crew_cont[j], veh.crew_rest[j] = veh.cont_ms, veh.rest_ms
        veh.crew_day[j], veh.crew_daily[j] = veh.day, veh.daily_ms
        veh.crew_week_ms[j], veh.crew_week_day[j] = list(veh.week_ms), list(veh.week_day)
        veh.crew_roll_ms[j], veh.crew_roll_slot[j] = list(veh.roll_ms), veh.roll_slot
        veh.cont_ms, veh.rest_ms, veh.day, veh.daily_ms, veh.week_ms, veh.week_day = came[:6]
        veh.roll_ms, veh.roll_slot = came[6], came[7]
        veh.roll_sum = sum(veh.roll_ms)


def _past(veh: Vehicle, day: int) -> int:
    """Driving in the 6 local days before `day`."""
    return sum(
        ms for ms, d in zip(veh.week_ms, veh.week_day, strict=True) if day - 6 <= d <= day - 1
    )
