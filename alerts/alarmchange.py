"""One level change of one alarm row, in the batch of its transaction (`AlarmBatch`): a raise
makes the row, an escalation or de-escalation moves it, a clear ends it; each adds its journal
event. The lifecycle columns follow `alerts.lifecycle`, the disposal deadline the tier.
`alerts.alarms.AlarmBook` is built on it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from alerts.alarmevent import (
    AT_ACTION,
    AT_CLEARED_AT,
    AT_DISPOSAL,
    AT_DUE,
    AT_ENDED_TS,
    AT_ISA,
    AT_LAST_TS,
    AT_LEVEL,
    AT_LEVEL_NAME,
    AT_PEAK,
    AT_RAISED_AT,
    AT_SHELVED,
    AT_STARTED_TS,
    AT_STATE,
    AT_TIER,
    AT_VALUE,
    LIFECYCLE_AT,
    AlarmBatch,
    AlarmEvent,
    disposal_due,
    lifecycle_columns,
    lifecycle_key,
    row_lifecycle,
)
from alerts.alarmrows import Shelf
from alerts.lifecycle import Lifecycle, step
from alerts.statedb import ALARM_COLUMNS
from alerts.table import kind_name
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry

__all__ = ["AlarmRows", "cst"]

_STEPS_KEPT = 4096  # process steps remembered (`AlarmRows._step`)
_CST = timezone(timedelta(hours=8))


def cst(ms: int, fmt: str = "%Y-%m-%d %H:%M CST") -> str:
    """An event time in China Standard Time, as a journal's comment says it."""
    return datetime.fromtimestamp(ms / 1000, _CST).strftime(fmt)


def _shelf_said(shelf: Shelf) -> str:
    """Who shelved the point, when, until when and why, as a journal event says it."""
    return (
        f"{shelf.actor} 搁置 shelved the point at {cst(shelf.at)} until {cst(shelf.until)}: "
        f"{shelf.reason}"
    )


def _above(shelf: Shelf | None, level: int) -> bool:
    """A level above the one the point was shelved at: the shelve ends."""
    return shelf is not None and shelf.level is not None and level > shelf.level


class AlarmRows:
    def __init__(self, registry: Registry, disposal: DisposalSpec | None) -> None:
        self._registry = registry
        self._disposal = disposal or DisposalSpec()
        # a process action's lifecycle columns by the lifecycle before it, and a disposal step's
        # deadline (ms after the raise) by tier: both are few, and asked for on every change
        self._steps: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._due_after: dict[tuple[str, str], int | None] = {}

    def _change(
        self,
        work: AlarmBatch,
        key: tuple[str, str, str, str, str, int],
        after: int,
        described: tuple[str, str, str],
        ts: int,
        value: float,
        arrival: int,
        *,
        suppressed: bool = False,
        comment: str = "",
        gateway: str | None = None,
    ) -> None:
        """Apply one level change to the alarm of its point, in `work`: a raise, escalation,
        de-escalation or clear, and its journal event. `gateway`: the gateway a new alarm
        names, when not its device's (a gateway's own alarms, the data a gateway lost)."""
        tenant, site, device, sensor, rule, side = key
        level_name, tier, action = described
        point = (sensor, rule, side)
        row = work.open.get(point)
        if row is not None and after == row[AT_LEVEL]:
            return  # no change (a fleet episode seen again after a restart)
        stored = value if math.isfinite(value) else None
        # the events a shelve of the point adds after this change's: (kind, comment, actor)
        shelf_events: list[tuple[str, str, str | None]] = []
        shelf = work.shelves.get(point)
        if row is None:
            if after <= 0:
                return  # a change below an alarm that is no longer active: nothing to record
            kind = "raised"
            if _above(shelf, after):  # a yellow chatter shelved does not hide a red alarm
                assert shelf is not None
                comment = _joined(comment, f"above the level shelved: {_shelf_said(shelf)}; ended")
                work.ended[point] = (ts, arrival, comment)
                del work.shelves[point]
                shelf = None
            until = None if shelf is None else shelf.until
            lc = self._step(("raise", until, suppressed, sensor in work.oos), None)
            row = [
                work.next_alarm,
                tenant,
                site,
                device,
                sensor,
                rule,
                side,
                after,
                level_name,
                tier,
                action,
                "active",
                ts,  # started
                None,  # ended
                arrival,  # raised at
                None,  # cleared at
                after,  # peak level
                ts,  # last ts
                stored,
                *lc[:4],  # acked, shelved until, suppressed, out of service
                lc[4],  # disposal
                self._due(lc[4], tier, arrival),
                *lc[5:7],  # overdue, ISA state
                self._gateway(tenant, site, device) if gateway is None else gateway,
                None,  # disposal from: the raise
                lc[7],  # the centre's acknowledgement
            ]
            work.next_alarm += 1
            work.new[row[0]] = row
            work.open[point] = row
            if shelf is not None:  # born shelved: the journal says by whom (its actor) and why
                shelf_events.append(("shelved", _shelf_said(shelf), shelf.actor))
        elif after == 0:
            kind = "cleared"
            # never before it started: a no-data alarm raised on the hub's clock while a
            # gateway's link was down ends at the first reading its spool then brings, which
            # was measured before the raise's stamp (the silence was the link's): a moment then
            ts = max(ts, row[AT_STARTED_TS])
            self._set_lifecycle(row, self._step(lifecycle_key("clear", row), row))
            row[AT_STATE] = "cleared"
            row[AT_ENDED_TS] = ts
            row[AT_CLEARED_AT] = arrival
            row[AT_LAST_TS] = ts
            row[AT_VALUE] = stored
            del work.open[point]
            work.touch(row)
        else:
            up = after > row[AT_LEVEL]
            kind = "escalated" if up else "deescalated"
            if up and row[AT_SHELVED] is not None and _above(shelf, after):
                assert shelf is not None
                self._set_lifecycle(row, self._step(lifecycle_key("unshelve", row), row))
                # said by the escalation itself, annunciated once (an event of its own before it
                # was a second notification of the same change)
                said = f"escalated above the level shelved: {_shelf_said(shelf)}; ended"
                comment = _joined(comment, said)
                work.ended[point] = (ts, arrival, said)
                del work.shelves[point]
            key_ = lifecycle_key("escalate", row) if up else lifecycle_key("deescalate", row)
            self._set_lifecycle(row, self._step(key_, row))
            due = self._due(row[AT_DISPOSAL], tier, row[AT_RAISED_AT])
            # a higher tier is due sooner; a lower one keeps the deadline it had
            if due is not None and row[AT_DUE] is not None:
                due = min(due, row[AT_DUE])
            row[AT_LEVEL] = after
            row[AT_LEVEL_NAME] = level_name
            row[AT_TIER] = tier
            row[AT_ACTION] = action
            row[AT_PEAK] = max(row[AT_PEAK], after)
            row[AT_LAST_TS] = ts
            row[AT_VALUE] = stored
            row[AT_DUE] = due
            work.touch(row)
        change = (after, level_name, tier, stored)
        self._journal(work, key, row, kind, ts, arrival, change, comment)
        for extra, said, actor in shelf_events:
            self._journal(work, key, row, extra, ts, arrival, change, said, actor)

    @staticmethod
    def _journal(
        work: AlarmBatch,
        key: tuple[str, str, str, str, str, int],
        row: list[Any],
        kind: str,
        ts: int,
        arrival: int,
        change: tuple[int, str, str, float | None],
        comment: str,
        actor: str | None = None,
    ) -> None:
        """Journal one event of the row's: (level, level name, tier, value) of the change."""
        tenant, site, device, sensor, rule, side = key
        after, level_name, tier, stored = change
        event_id = work.next_event
        work.next_event += 1
        isa = row[AT_ISA]
        journal = (event_id, row[0], kind, ts, arrival, after, level_name, tier, stored)
        work.rows.append((*journal, actor, comment, isa))
        work.events.append(
            AlarmEvent(
                row[0],
                kind,
                tenant,
                site,
                device,
                sensor,
                rule,
                kind_name(side),
                after,
                level_name,
                tier,
                row[AT_ACTION],
                math.nan if stored is None else stored,
                ts,
                arrival,
                event_id,
                isa,
                row[AT_DISPOSAL],
                actor,
                comment,
            )
        )

    def _step(self, key: tuple[Any, ...], row: list[Any] | None) -> tuple[Any, ...]:
        """The lifecycle columns (`LIFECYCLE_AT`) after a process action (`alerts.lifecycle`
        decides; remembered by the lifecycle before it, which `key` holds)."""
        got = self._steps.get(key)
        if got is None:
            if row is None:  # a raise: ("raise", shelved until, suppressed, out of service)
                lc = step(
                    Lifecycle(shelved_until=key[1], suppressed=key[2], out_of_service=key[3]),
                    "raise",
                )
            else:
                lc = step(row_lifecycle(row), key[0])
            cols = lifecycle_columns(lc)
            got = tuple(cols[ALARM_COLUMNS[i]] for i in LIFECYCLE_AT)
            if len(self._steps) >= _STEPS_KEPT:
                self._steps.clear()
            self._steps[key] = got
        return got

    @staticmethod
    def _set_lifecycle(row: list[Any], cols: tuple[Any, ...]) -> None:
        for i, v in zip(LIFECYCLE_AT, cols, strict=True):
            row[i] = v

    def _due(self, disposal: str, tier: str, raised_at: int) -> int | None:
        """`disposal_due` of the book's deadlines, remembered per disposal step and tier."""
        key = (disposal, tier)
        if key not in self._due_after:
            self._due_after[key] = disposal_due(self._disposal, disposal, tier, 0)
        after = self._due_after[key]
        return None if after is None else raised_at + after

    def _gateway(self, tenant: str, site: str, device: str) -> str:
        dev = self._registry.devices.get((tenant, site, device))
        return dev.spec.gateway if dev is not None else ""


def _joined(first: str, then: str) -> str:
    return f"{first}; {then}" if first else then
