"""The notification pipeline's timers (`alerts.notify.notifier`): while an alarm stays
unacknowledged, its subscriptions' repeats and the steps of their escalation policies (not
acknowledged within T: the next contact), written to the outbox like routed events, each key
once (the outbox keeps the keys sent per waiting alarm). Split from `alerts.notify.notifier`,
whose `Notifier` extends `Timers` and sets up the attributes declared here; the code moved as it
was.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from alerts.notify.enqueue import _event_json
from alerts.notify.routing import Routing
from alerts.notify.stages import matches
from alerts.notify.store import waits_for
from alerts.statedb import StateDB
from telemetry.notifyconfig import ChannelSpec, SubscriptionSpec

__all__ = ["Timers"]


class Timers(Routing):
    """The repeats and escalation steps of `Notifier`, which sets up every attribute declared
    here."""

    _db: StateDB
    clock: Callable[[], int]
    _timer_sent: dict[int, set[str]]  # per waiting alarm, the timer keys sent
    _timer_new: list[tuple[int, str]]  # the keys of the rows for the next write
    # the repeats of the next write that are the first their subscription hears of the alarm
    # (its raise was held back, nothing holds it now): by key, the hold they end
    _untold: dict[str, tuple[int, str]]

    def timers(self, now: int | None = None) -> int:
        """Repeats while an alarm stays unacknowledged, and the steps of escalation policies
        (not acknowledged within T: the next contact): by the centre for its own subscriptions,
        by the enterprise for the tenant's (`waits_for`)."""
        now = self.clock() if now is None else now
        if not any(self.catalog.timed.values()):
            return 0
        self._timer_new, self._rows, self._group_ops, self._untold = [], [], [], {}
        with self._db.snapshot() as ro:
            rows = self.store.unacknowledged(ro)
            active, down = self.store.inhibition_context(ro, {r["sensor"] for r in rows})
        # never told of the raise: no repeat, no step while something holds it back; told as
        # the raise once nothing does (a repeat after the silence that held the raise)
        # (the holds of the alarms this tick handles: not every hold of the outbox each tick)
        held = self.outbox.holds_of(
            {int(r["alarm_id"]) for r in rows if self.catalog.timed.get(r["tenant"])}
        )
        for r in rows:
            subs = self.catalog.timed.get(r["tenant"])
            if not subs:
                continue
            for sub in subs:
                if not waits_for(sub.id, r):  # acknowledged by whom the subscription tells
                    continue
                holder = held.get((int(r["alarm_id"]), f"{r['tenant']}/{sub.id}"))
                if not holder:
                    self._timer(sub, r, active, down, now, untold=holder == "")
        with self.outbox.transaction() as con:
            # a repeat or step sent before (a restart forgot `_timer_sent`; its outbox row may
            # be pruned) is not sent again: the outbox keeps the keys sent per waiting alarm
            fresh = self.outbox.claim_timer_keys(con, self._timer_new)
            self._rows = [row for row in self._rows if row[0] in fresh]
            self.outbox.unhold(con, [h for k, h in self._untold.items() if k in fresh])
            made = len(self._rows) + self._write(con)
            self.outbox.see_alarms(con, (int(r["alarm_id"]) for r in rows))
        # committed: remember what went out, and forget the alarms that are no longer waiting
        # for an acknowledgement
        waiting = {int(r["alarm_id"]) for r in rows}
        self._timer_sent = {a: k for a, k in self._timer_sent.items() if a in waiting}
        for alarm, key in self._timer_new:
            self._timer_sent.setdefault(alarm, set()).add(key)
        return made

    def _timer(
        self,
        sub: SubscriptionSpec,
        r: dict[str, Any],
        active: dict[str, list[tuple[str, str]]],
        down: frozenset[str],
        now: int,
        *,
        untold: bool = False,
    ) -> None:
        """The repeat and escalation step due for one waiting alarm and subscription, as rows
        for `timers` to write (and `_timer_new`, the keys it records). `untold`: the
        subscription was never told of the alarm (a silence held its raise): annunciated as
        raised, and its repeat ends the hold (`_untold`)."""
        age = now - int(r["raised_at"])
        tenant = r["tenant"]
        todo: list[tuple[str, str, ChannelSpec]] = []
        if sub.repeat_s:
            n = math.floor(age / (sub.repeat_s * 1000))
            if n >= 1:
                todo.append(("repeat", f"r{r['alarm_id']}:{n}", sub.channel))
        if sub.escalation:
            policy = self.catalog.policies.get((tenant, sub.escalation))
            if policy is not None:
                passed = [i for i, s in enumerate(policy.steps) if age >= s.after_s * 1000]
                if passed:
                    i = passed[-1]
                    todo.append(("escalation", f"x{r['alarm_id']}:{i}", policy.steps[i].channel))
        sent = self._timer_sent.get(int(r["alarm_id"]), set())
        for kind, suffix, channel in todo:
            key = f"{tenant}/{sub.id}:{suffix}"
            if key in sent:
                continue
            r2 = {**r, "kind": kind, "event_id": 0, "ts": now, "arrival": now}
            view = self._view(r2)
            if not matches(sub, tenant, view):
                continue
            if self._gate(view, active, now) is not None or not self._not_explained(
                view, (sub,), down
            ):
                continue  # held (silenced, inhibited): judged again on the next tick
            body = _event_json(r2, view, self._registry, self._facts)
            if untold:
                body["annunciated"] = "raised"
                if kind == "repeat":
                    self._untold[key] = (int(r["alarm_id"]), f"{tenant}/{sub.id}")
            self._enqueue(tenant, sub, r["site"], body, channel, now, key)
            self._timer_new.append((int(r["alarm_id"]), key))
