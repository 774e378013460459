"""What the routing of `alerts.notify.notifier` does with one event: the view the stages read
(`alerts.notify.stages`), the subscriptions that match it, the lifecycle gate, inhibition and
silences, then the outbox rows (`alerts.notify.enqueue`). And the holds: the alarms whose raise
a subscription was not told of (a gateway's or device's alarm, the `above` alarm of a trend
alarm's sensor, a silence held it back), told as `released` when their holder clears while
they stay active and unacknowledged, and whose first news a subscription hears (an escalation
above the `above` alarm, a repeat after the silence) is annunciated as their raise.
Split from `alerts.notify.notifier`, whose `Notifier` extends `Routing` and sets up the
attributes declared here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from alerts.notify.enqueue import Enqueuing, SensorFacts, _event_json, _subject
from alerts.notify.objects import NotifyCatalog
from alerts.notify.outboxdb import OutboxDB
from alerts.notify.stages import (
    EventView,
    annunciates,
    explained_by,
    frees_trends,
    higher_holder,
    inhibited_by,
    matches,
    silenced_by,
)
from alerts.notify.store import waits_for
from alerts.table import kind_name
from telemetry.notifyconfig import SubscriptionSpec
from telemetry.registry import Registry

__all__ = ["Counter", "Routing"]

_HOLDERS = ("gateway", "device")  # the sensor kinds of the alarms that hold others back
# the holders of those: nothing of an alarm they hold back is told before its release
_DOWN = ("gateway:", "device:")
# the kinds of event that tell an alarm held back by anything else, as its raise: it escalated
# above the `above` alarm of its sensor, came back from a shelf ... (a step down or a clear
# of an alarm a subscription never heard of is no news to it)
_NEWS = frozenset({"raised", "escalated"})


class Counter(Protocol):
    def inc(self, name: str, amount: float = 1, **labels: str) -> None: ...
    def set(self, name: str, value: float, **labels: str) -> None: ...


_BACK = frozenset({"unshelved", "unsuppressed", "in_service"})  # still active: told as raised


class Routing(Enqueuing):
    """The routing stages of `Notifier`, which sets up every attribute declared here."""

    _registry: Registry
    _facts: SensorFacts  # what the registry says of the events' sensors, remembered
    _metrics: Counter | None
    catalog: NotifyCatalog
    # per tenant: its subscriptions and the ones that match each kind of event (`_matching`)
    _matched: dict[str, tuple[Sequence[SubscriptionSpec], dict[tuple[str, ...], Any]]]
    outbox: OutboxDB
    # for the routing's outbox transaction: the holds made (holder) or ended (None) by
    # (alarm, subscription), the last word wins; and the repeats a release makes needless
    # (a holder '': nothing holds it any more, but the subscription was never told of it)
    _holds: dict[tuple[int, str], str | None]
    _held: dict[tuple[int, str], str]  # the holds of the routed events' alarms before the routing
    _released_repeats: list[tuple[int, str]]

    def _count(self, name: str, amount: float = 1, **labels: str) -> None:
        if self._metrics is not None and amount:
            self._metrics.inc(name, amount, **labels)

    def _view(self, e: dict[str, Any]) -> EventView:
        side = int(e["side_index"])
        sensor, device = e["sensor"], e["device"]
        sensor_kind, gateway = self._facts.kind_and_gateway(
            self._registry, e["tenant"], e["site"], device, sensor
        )
        return EventView(
            event_id=e["event_id"],
            alarm_id=e["alarm_id"],
            kind=e["kind"],
            tenant=e["tenant"],
            site=e["site"],
            device=device,
            sensor=sensor,
            sensor_kind=sensor_kind,
            alarm_kind=kind_name(side),
            # the event's own tier (a raise at yellow), the alarm's for a clear
            tier=e["tier"] if e["tier"] not in ("none", "") else e["alarm_tier"],
            isa_state=e["isa_state"],
            active=e["condition"] == "active",
            gateway=gateway,
            tiers_had=e.get("tiers_had") or "",
        )

    def _gate(
        self, view: EventView, active: dict[str, list[tuple[str, str]]], now: int
    ) -> str | None:
        if not annunciates(view):
            return view.isa_state
        if inhibited_by(view, active) is not None:
            return "inhibited"
        if silenced_by(self.catalog.silences.get(view.tenant, ()), view, now) is not None:
            return "silenced"
        return None

    def _route_one(
        self,
        view: EventView,
        raw: dict[str, Any],
        active: dict[str, list[tuple[str, str]]],
        down: frozenset[str],
        now: int,
    ) -> int:
        subs = self._matching(view)
        if not subs:
            return 0
        held = self._gate(view, active, now)
        if held is not None:
            self._count("hazardhub_notifications_held_total", len(subs), reason=held)
            if held in ("inhibited", "silenced"):
                self._hold_raise(view, subs, held)
            return 0
        told = self._not_explained(view, subs, down)
        if len(told) < len(subs):
            n = len(subs) - len(told)
            self._count("hazardhub_notifications_held_total", n, reason="inhibited")
            self._record_holds(view, subs, down)
        subs, first = self._not_held(view, told)
        if not subs:
            return 0
        body = _event_json(raw, view, self._registry, self._facts)
        alone = (orjson.dumps([body]).decode(), _subject([body]))  # the same for every row
        if first:  # the first news of an alarm whose raise those were not told of: as its raise
            news = {**body, "annunciated": "raised"}
            news_alone = (orjson.dumps([news]).decode(), _subject([news]))
        made = 0
        for sub in subs:
            if sub.id in first:
                made += self._enqueue(
                    view.tenant, sub, view.site, news, sub.channel, now, None, news_alone
                )
            else:
                made += self._enqueue(
                    view.tenant, sub, view.site, body, sub.channel, now, None, alone
                )
            back = view.kind in _BACK and view.match_kind == "raised"
            if (back or sub.id in first) and sub.repeat_s:
                # annunciated again as raised: the repeat
                # due now (one that fell in the shelve) says the same, and is not sent on top
                n = math.floor((now - int(raw["raised_at"])) / (sub.repeat_s * 1000))
                if n >= 1:
                    key = f"{view.tenant}/{sub.id}:r{view.alarm_id}:{n}"
                    self._released_repeats.append((view.alarm_id, key))
        return made

    def _not_explained(
        self, view: EventView, subs: tuple[SubscriptionSpec, ...], down: frozenset[str]
    ) -> tuple[SubscriptionSpec, ...]:
        """The subscriptions not told of a gateway's or device's alarm that explains the event
        (inhibition: those told are not told of the event too)."""
        by = explained_by(view, down)
        if not by:
            return subs
        return tuple(s for s in subs if not any(matches(s, view.tenant, h) for h in by))

    def _not_held(
        self, view: EventView, subs: tuple[SubscriptionSpec, ...]
    ) -> tuple[tuple[SubscriptionSpec, ...], frozenset[str]]:
        """Of the subscriptions the event would go to, those its alarm is not held back from,
        and the ids of those of them told it as the alarm's raise. One never told of the raise
        is not told of the rest (a step down, a clear, an acknowledgement) either; it is told
        when the holder clears (`_release`), or never if the alarm ended first. News of the
        alarm that passed the stages (an escalation above the `above` alarm that held it, a
        return from a shelf, after a silence) is the first it hears: told as the raise (a
        receiver cannot place an escalation of an alarm it never had), and the hold goes; but
        nothing of
        an alarm a device's comm loss or a gateway offline holds back goes before its release."""
        told: list[SubscriptionSpec] = []
        first: set[str] = set()
        for sub in subs:
            hold = (view.alarm_id, f"{view.tenant}/{sub.id}")
            holder = self._holds[hold] if hold in self._holds else self._held.get(hold)
            if holder is None:
                told.append(sub)
            elif view.active and _news(view) and not holder.startswith(_DOWN):
                told.append(sub)
                first.add(sub.id)
                self._holds[hold] = None
            elif not view.active:  # the alarm ended while held: nothing to release
                self._holds[hold] = None
        if len(told) < len(subs):
            n = len(subs) - len(told)
            self._count("hazardhub_notifications_held_total", n, reason="inhibited")
        return tuple(told), frozenset(first)

    def _hold_raise(self, view: EventView, subs: tuple[SubscriptionSpec, ...], why: str) -> None:
        """Remember the subscriptions the raise of an active alarm (or its return as raised)
        was held back from by a higher alarm of its sensor (its holder, `higher_holder`: told
        when that one clears or steps down, `_release`) or by a silence (holder '': told as
        raised with its next news, `_not_held`, or its next repeat)."""
        if not view.active or view.match_kind != "raised":
            return
        holder = higher_holder(view.sensor) if why == "inhibited" else ""
        for sub in subs:
            hold = (view.alarm_id, f"{view.tenant}/{sub.id}")
            before = self._holds[hold] if hold in self._holds else self._held.get(hold)
            if holder or before is None:  # a silence leaves a holder as it is
                self._holds[hold] = holder

    def _record_holds(
        self, view: EventView, subs: tuple[SubscriptionSpec, ...], down: frozenset[str]
    ) -> None:
        """Remember which subscriptions the event's alarm is held back from, and by which
        holder (the first one each is told of), to tell them when it clears (`_freed`). An
        event of an alarm no longer active forgets them."""
        by = explained_by(view, down)
        for sub in subs:
            holder = next((h.sensor for h in by if matches(sub, view.tenant, h)), None)
            if holder is None:
                continue
            hold = (view.alarm_id, f"{view.tenant}/{sub.id}")
            self._holds[hold] = holder if view.active else None

    def _freed(
        self, ro: Any, views: Sequence[EventView]
    ) -> list[tuple[EventView, str, str, dict[str, Any] | None]]:
        """The holds that the clears among `views` (a device's comm-loss or a gateway's
        offline alarm) and the clears and steps down of `above` alarms (`frees_trends`) end,
        as (the alarm's view as `released`, with its subscription key, holder and row; no row
        when it is no longer active and unacknowledged, its view then `active` when it is
        still active, shelved or acknowledged)."""
        # the clears of holders: a device's comm loss, a gateway offline (both kind no_data; a
        # device's data_lost, on the same point, holds nothing)
        cleared = [
            v.sensor
            for v in views
            if v.kind == "cleared" and v.sensor_kind in _HOLDERS and v.alarm_kind == "no_data"
        ]
        cleared += [h for v in views if (h := frees_trends(v)) is not None]
        if not cleared:
            return []
        holds = self.outbox.held_by(sorted(set(cleared)))
        rows = self.store.waiting(ro, sorted({a for a, _, _ in holds}))
        live = self.store.active_of(ro, sorted({a for a, _, _ in holds if a not in rows}))
        out: list[tuple[EventView, str, str, dict[str, Any] | None]] = []
        for alarm, sub_key, holder in holds:
            r = rows.get(alarm)
            if r is None:
                view = EventView(
                    0, alarm, "released", "", "", "", "", "", "", "", "", alarm in live
                )
            else:
                view = self._view({**r, "kind": "released", "event_id": 0})
            out.append((view, sub_key, holder, r))
        return out

    def _release(
        self,
        freed: Sequence[tuple[EventView, str, str, dict[str, Any] | None]],
        active: dict[str, list[tuple[str, str]]],
        down: frozenset[str],
        now: int,
    ) -> int:
        """Tell each subscription an alarm was held back from, now that its holder cleared (or
        stepped down), of the alarm as `released` (once: the hold goes), unless it is no longer
        waiting, the subscription no longer takes it, or something holds it still (another
        holder the subscription is told of, the `above` alarm of its sensor still higher: the
        hold moves to it; a silence: dropped, as any event held). One still active but not
        told (acknowledged, shelved meanwhile, silenced now) keeps a hold without holder: its
        next news is told as its raise (`_not_held`)."""
        made = 0
        for view, sub_key, _, r in freed:
            hold = (view.alarm_id, sub_key)
            if hold in self._holds and self._holds[hold] is None:
                continue  # told or ended by this routing's events
            self._holds[hold] = "" if view.active else None
            sub = self._subscription(view.tenant, sub_key) if r is not None else None
            if r is None or sub is None or not matches(sub, view.tenant, view):
                continue
            if not waits_for(sub.id, r):  # acknowledged meanwhile by whom it tells
                continue
            still = [h for h in explained_by(view, down) if matches(sub, view.tenant, h)]
            if still:  # held by another one the subscription is told of: it waits for that one
                self._holds[hold] = still[0].sensor
                continue
            gate = self._gate(view, active, now)
            if gate == "inhibited":  # stepped down, still above it: it waits for its clear
                self._holds[hold] = higher_holder(view.sensor)
            if gate is not None:
                continue
            self._holds[hold] = None
            r2 = {**r, "kind": "released", "event_id": 0, "arrival": now}
            body = _event_json(r2, view, self._registry, self._facts)
            stem = f"u{view.alarm_id}"
            made += self._enqueue(
                view.tenant, sub, view.site, body, sub.channel, now, None, None, stem
            )
            if sub.repeat_s:  # the repeat due now says the same: it is not sent on top
                n = math.floor((now - int(r["raised_at"])) / (sub.repeat_s * 1000))
                if n >= 1:
                    self._released_repeats.append(
                        (view.alarm_id, f"{sub_key}:r{view.alarm_id}:{n}")
                    )
        return made

    def _subscription(self, tenant: str, sub_key: str) -> SubscriptionSpec | None:
        for sub in self.catalog.subs.get(tenant, ()):
            if f"{tenant}/{sub.id}" == sub_key:
                return sub
        return None

    def _matching(self, view: EventView) -> tuple[SubscriptionSpec, ...]:
        """The tenant's subscriptions that match the event (`matches`), remembered by what
        matching reads of it, until the tenant's subscriptions change."""
        tenant = view.tenant
        subs = self.catalog.subs.get(tenant, ())
        known = self._matched.get(tenant)
        if known is None or known[0] is not subs:
            known = self._matched[tenant] = (subs, {})
        # (every field `matches` reads of the event: the tiers it had too, or a yellow alarm's
        # clear, routed first, is remembered as no match for a red one's, helper-146)
        what = (
            view.site,
            view.sensor_kind,
            view.tier,
            view.alarm_kind,
            view.match_kind,
            view.tiers_had,
        )
        found: tuple[SubscriptionSpec, ...] | None = known[1].get(what)
        if found is None:
            found = known[1][what] = tuple(s for s in subs if matches(s, tenant, view))
        return found


def _news(view: EventView) -> bool:
    """Whether the event tells an alarm a subscription was never told of, as its raise."""
    return view.kind in _NEWS or view.match_kind == "raised"
