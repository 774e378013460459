"""What the routing of `alerts.notify.notifier` does with one event: the view the stages read
(`alerts.notify.stages`), the subscriptions that match it, the lifecycle gate, inhibition and
silences, then the outbox rows (`alerts.notify.enqueue`). And the release: the alarms a gateway's
or device's alarm held back, told when it clears while they stay active and unacknowledged.
Split from `alerts.notify.notifier`, whose `Notifier` extends `Routing` and sets up the
attributes declared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from alerts.notify.enqueue import Enqueuing, _event_json, _subject
from alerts.notify.objects import NotifyCatalog
from alerts.notify.stages import (
    EventView,
    annunciates,
    explained_by,
    holders,
    inhibited_by,
    matches,
    silenced_by,
)
from alerts.table import kind_name
from telemetry.notifyconfig import SubscriptionSpec
from telemetry.registry import Registry

__all__ = ["Counter", "Routing"]


class Counter(Protocol):
    def inc(self, name: str, amount: float = 1, **labels: str) -> None: ...


class Routing(Enqueuing):
    """The routing stages of `Notifier`, which sets up every attribute declared here."""

    _registry: Registry
    _metrics: Counter | None
    catalog: NotifyCatalog
    # per tenant: its subscriptions and the ones that match each kind of event (`_matching`)
    _matched: dict[str, tuple[Sequence[SubscriptionSpec], dict[tuple[str, ...], Any]]]

    def _count(self, name: str, amount: float = 1, **labels: str) -> None:
        if self._metrics is not None and amount:
            self._metrics.inc(name, amount, **labels)

    def _view(self, e: dict[str, Any]) -> EventView:
        info = self._registry.sensor(e["sensor"])
        side = int(e["side_index"])
        sensor, device = e["sensor"], e["device"]
        if sensor.startswith("gateway:"):  # a gateway's offline alarm: its device is the gateway
            sensor_kind, gateway = "gateway", device
        else:
            dev = self._registry.devices.get((e["tenant"], e["site"], device))
            sensor_kind = info.kind if info is not None else "device"
            gateway = dev.spec.gateway if dev is not None else ""
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
        )

    def _gate(
        self,
        view: EventView,
        active: dict[str, list[tuple[str, str]]],
        down: frozenset[str],
        now: int,
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
        held = self._gate(view, active, down, now)
        if held is not None:
            self._count("hazardhub_notifications_held_total", len(subs), reason=held)
            return 0
        told = self._not_explained(view, subs, down)
        if len(told) < len(subs):
            n = len(subs) - len(told)
            self._count("hazardhub_notifications_held_total", n, reason="inhibited")
        subs = told
        if not subs:
            return 0
        body = _event_json(raw, view)
        alone = (orjson.dumps([body]).decode(), _subject([body]))  # the same for every row
        made = 0
        for sub in subs:
            made += self._enqueue(view.tenant, sub, view.site, body, sub.channel, now, None, alone)
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

    def _freed(
        self, ro: Any, views: Sequence[EventView]
    ) -> list[tuple[EventView, EventView, dict[str, Any]]]:
        """The alarms a gateway's offline or a device's comm-loss alarm held back (active,
        unacknowledged, no data or fault) that the clears among `views` free, as (the clear,
        the freed alarm's view as `released`, its row). Alarms raised among `views` are routed
        with them instead."""
        here = {v.alarm_id for v in views if v.kind == "raised"}
        out = []
        for clear in views:
            if clear.kind != "cleared" or clear.sensor_kind not in ("gateway", "device"):
                continue
            for r in self.store.held_back(ro, clear.tenant, clear.site):
                if int(r["alarm_id"]) in here:
                    continue
                view = self._view({**r, "kind": "released", "event_id": 0})
                if any(h.sensor == clear.sensor for h in holders(view)):
                    out.append((clear, view, r))
        return out

    def _release(
        self,
        freed: Sequence[tuple[EventView, EventView, dict[str, Any]]],
        active: dict[str, list[tuple[str, str]]],
        down: frozenset[str],
        now: int,
    ) -> int:
        """Tell the subscriptions that held an alarm back (they were told of the gateway's or
        device's alarm that has now cleared) of it, as `released`, unless something holds it
        still; once per alarm, subscription and clear (the outbox key)."""
        made = 0
        for clear, view, r in freed:
            held_by = next(h for h in holders(view) if h.sensor == clear.sensor)
            subs = tuple(s for s in self._matching(view) if matches(s, view.tenant, held_by))
            if not subs or self._gate(view, active, down, now) is not None:
                continue
            r2 = {**r, "kind": "released", "event_id": 0, "arrival": now}
            body = _event_json(r2, view)
            for sub in self._not_explained(view, subs, down):
                key = f"{view.tenant}/{sub.id}:u{view.alarm_id}:{clear.event_id}"
                made += self._enqueue(view.tenant, sub, view.site, body, sub.channel, now, key)
        return made

    def _matching(self, view: EventView) -> tuple[SubscriptionSpec, ...]:
        """The tenant's subscriptions that match the event (`matches`), remembered by what
        matching reads of it, until the tenant's subscriptions change."""
        tenant = view.tenant
        subs = self.catalog.subs.get(tenant, ())
        known = self._matched.get(tenant)
        if known is None or known[0] is not subs:
            known = self._matched[tenant] = (subs, {})
        what = (view.site, view.sensor_kind, view.tier, view.alarm_kind, view.match_kind)
        found: tuple[SubscriptionSpec, ...] | None = known[1].get(what)
        if found is None:
            found = known[1][what] = tuple(s for s in subs if matches(s, tenant, view))
        return found
