"""What a routed event becomes in the outbox, for `alerts.notify.notifier`'s routing and timers.

One event to one subscription is a row of its own (a timer's, a subscription without grouping,
or the first event of a group window), or an append to the open group of the subscription and
site, made in order in the routing transaction (`_write`); the event's JSON and the subject
line are made here too. Split from `alerts.notify.notifier`, whose `Notifier` extends
`Enqueuing` and sets up the attributes declared here; the code moved as it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from alerts.kinds import TIER_RANK, alarm_value_unit, value_unit
from alerts.notify.delivery import CHANNEL, guarded_json
from alerts.notify.objects import NotifyCatalog
from alerts.notify.stages import EventView
from alerts.notify.store import NotifyStore
from telemetry.notifyconfig import ChannelSpec, SubscriptionSpec
from telemetry.registry import Registry

__all__ = ["Enqueuing", "SensorFacts"]

_MAX_GROUP = 500  # events in one grouped notification


class Enqueuing:
    """The outbox rows of `Notifier`, which sets up every attribute declared here."""

    store: NotifyStore
    catalog: NotifyCatalog  # its `guarded`: the enterprises' objects
    _window_end: dict[tuple[str, str, str], int]  # the grouping windows written
    _window_new: dict[tuple[str, str, str], int]  # and those of the routing not written yet
    _channel_json: dict[tuple[int, bool], tuple[ChannelSpec, str]]
    _rows: list[tuple[Any, ...]]  # outbox rows for the next write (`_write`)
    _group_ops: list[tuple[str, str, str, int, dict[str, Any], tuple[Any, ...]]]

    def _write(self, con: Any) -> int:
        """The open transaction's outbox work: the group appends in order (an event that finds
        its group full or gone opens a new one), then the rows of their own together. Returns
        the group rows made or grown."""
        made = 0
        for sub_key, tenant, site, now, event, row in self._group_ops:
            if self.store.append_to_group(con, sub_key, tenant, site, now, event, _MAX_GROUP):
                made += 1
            else:
                made += self.store.add_outbox_rows(con, [row])
        self.store.add_outbox_rows(con, self._rows)
        self._rows, self._group_ops = [], []
        return made

    def _enqueue(
        self,
        tenant: str,
        sub: SubscriptionSpec,
        site: str,
        event: dict[str, Any],
        channel: ChannelSpec,
        now: int,
        key: str | None,
        alone: tuple[str, str] | None = None,
        stem: str | None = None,
    ) -> int:
        """One event to one subscription: a row of its own (timers, no grouping, or the first
        of a window), or added to the open group of the subscription and site (done by `_write`
        in the transaction, in order). `alone`: the row's events JSON and subject, when the
        caller made them already. `stem`: what names the row in its key instead of the event's
        id (an event the journal does not hold). Returns the rows of their own it made."""
        ident = stem or str(event["event_id"])
        sub_key = f"{tenant}/{sub.id}"
        window = int(sub.group_window_s * 1000)
        # the subscription's own channel, or a step of its escalation policy: an enterprise's
        # object makes a guarded one (where its webhook may connect: alerts.notify.netguard)
        source = (
            ("subscription", tenant, sub.id)
            if channel is sub.channel
            else ("escalation", tenant, sub.escalation or "")
        )
        guarded = source in self.catalog.guarded  # a set replaced whole, never changed in place
        cached = self._channel_json.get((id(channel), guarded))
        if cached is None or cached[0] is not channel:  # by identity: model equality is slow
            text = CHANNEL.dump_json(channel).decode()
            cached = self._channel_json[(id(channel), guarded)] = (
                channel,
                guarded_json(text, guarded),
            )
        channel_json = cached[1]
        group = False
        if key is None and window > 0:
            where = (sub_key, tenant, site)
            end = self._window_new.get(where, self._window_end.get(where, 0))
            if end > now:
                key = f"{sub_key}:g{ident}"
                due, open_until, group = end, end, True
            else:
                self._window_new[where] = now + window
                key = f"{sub_key}:e{ident}"
                due, open_until = now, None
        else:
            key = key or f"{sub_key}:e{ident}"
            due, open_until = now, None
        events_json, subject = alone or (orjson.dumps([event]).decode(), _subject([event]))
        row = (
            key,
            tenant,
            site,
            sub_key,
            channel_json,
            subject,
            events_json,
            now,
            due,
            open_until,
            int(event["event_id"]),
            int(event["arrival"]),
        )
        if group:  # added to the open group, or a group of its own when that is full or gone
            self._group_ops.append((sub_key, tenant, site, now, event, row))
            return 0
        self._rows.append(row)  # written together at the end of the transaction
        return 1


_FACTS_MAX = 200_000  # sensors (and alarm kinds) remembered; more: forgotten and begun again


class SensorFacts:
    """What the registry says of an event's sensor, the same for every event of it: its kind
    and gateway (the stages' `EventView`), and its names, location, tag and the value's unit
    (the event's JSON, `_event_json`). Remembered per sensor (and alarm kind, which the unit
    depends on) for one registry: another one (a hot reload) forgets them all. Routing asked
    the registry for them again for every event, several lookups each."""

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._views: dict[tuple[str, str, str, str], tuple[str, str]] = {}
        self._fields: dict[tuple[str, str, str, str, str], tuple[str, str, str, str, str, str]] = {}

    def _of(self, registry: Registry) -> None:
        if registry is not self._registry or len(self._fields) + len(self._views) > _FACTS_MAX:
            self._registry, self._views, self._fields = registry, {}, {}

    def kind_and_gateway(
        self, registry: Registry, tenant: str, site: str, device: str, sensor: str
    ) -> tuple[str, str]:
        """The sensor's kind and its device's gateway ("" when none is known); a gateway's
        offline alarm (`gateway:<id>`) is of kind gateway, its device the gateway."""
        self._of(registry)
        where = (tenant, site, device, sensor)
        found = self._views.get(where)
        if found is None:
            found = self._views[where] = sensor_kind_and_gateway(
                registry, tenant, site, device, sensor
            )
        return found

    def fields(self, registry: Registry, view: EventView) -> tuple[str, str, str, str, str, str]:
        """(tenant name, site name, device name, location, tag, unit) of the event's sensor."""
        self._of(registry)
        where = (view.tenant, view.site, view.device, view.sensor, view.alarm_kind)
        found = self._fields.get(where)
        if found is None:
            found = self._fields[where] = _registry_fields(registry, view)
        return found


def sensor_kind_and_gateway(
    registry: Registry, tenant: str, site: str, device: str, sensor: str
) -> tuple[str, str]:
    """`SensorFacts.kind_and_gateway`, asked of the registry."""
    if sensor.startswith("gateway:"):  # a gateway's offline alarm: its device is the gateway
        return "gateway", device
    if sensor.startswith("hazard:"):  # a hidden-danger item's deadline: no sensor, no device
        return "", ""
    info = registry.sensor_of(tenant, sensor, site, device)
    dev = registry.devices.get((tenant, site, device))
    return (
        info.kind if info is not None else "device",
        dev.spec.gateway if dev is not None else "",
    )


def _registry_fields(
    registry: Registry | None, view: EventView
) -> tuple[str, str, str, str, str, str]:
    """`SensorFacts.fields`, asked of the registry (None: names, location and tag empty)."""
    if registry is None:
        return ("", "", "", "", "", value_unit(view.alarm_kind, ""))
    info = registry.sensor_of(view.tenant, view.sensor, view.site, view.device)
    # a gateway's alarm names no device (its device column is the gateway's id)
    device = "" if view.sensor.startswith("gateway:") else view.device
    names = registry.names(view.tenant, view.site, device)
    return (
        *names,
        info.location if info is not None else "",
        info.tag if info is not None else "",
        alarm_value_unit(registry, info, view.alarm_kind),
    )


def _event_json(
    raw: dict[str, Any],
    view: EventView,
    registry: Registry | None = None,
    facts: SensorFacts | None = None,
) -> dict[str, Any]:
    """One event as notifications carry it; `registry` gives its sensor as configured (its
    location, a vehicle's plate, and the unit of the value: a failed verification's is its
    feedback's); a device's or gateway's alarm has none. `facts`: where the registry's
    answers are remembered."""
    if facts is not None and registry is not None:
        names = facts.fields(registry, view)
    else:
        names = _registry_fields(registry, view)
    value = raw.get("value")
    return {
        "event_id": raw["event_id"],
        "alarm_id": raw["alarm_id"],
        "kind": view.kind,
        "annunciated": view.match_kind,
        "tenant": view.tenant,
        "tenant_name": names[0],
        "site": view.site,
        "site_name": names[1],
        "device": view.device,
        "device_name": names[2],
        "sensor": view.sensor,
        "sensor_kind": view.sensor_kind,
        "location": names[3],
        "tag": names[4],
        "alarm_kind": view.alarm_kind,
        "side": view.alarm_kind,
        "level": raw["level"],
        "level_name": raw["level_name"],
        "tier": view.tier,
        "peak_tier": peak_tier(view),
        "action": raw["action"],
        "value": value if isinstance(value, float) and math.isfinite(value) else None,
        "unit": names[5],
        "ts": raw["ts"],
        "arrival": raw["arrival"],
        "isa_state": view.isa_state,
        "disposal": raw["disposal"],
        "actor": raw.get("actor"),
        "comment": raw.get("comment") or "",
    }


def peak_tier(view: EventView) -> str:
    """The highest tier the alarm reached, as far as the event tells: its own tier, and the
    tiers it had for a clear, a step down or a missed deadline (an overdue of an alarm that
    reached red, now at blue, was told as blue alone: a centre routing on the tier took it for a
    minor one, helper-126)."""
    had = [t for t in view.tiers_had.split(",") if t]
    return max([view.tier, *had], key=lambda t: TIER_RANK.get(t, 0))


def _subject(events: Sequence[dict[str, Any]]) -> str:
    """`[RED] 华信化工 tank-farm t101-temp above hihi escalated`: the tier, the enterprise's name
    (its id when it has none: two enterprises may both have a `tank-farm`, helper-115), the site,
    the sensor (a vehicle's plate), what and the event."""
    e = events[0]
    more = f" (+{len(events) - 1})" if len(events) > 1 else ""
    who = e.get("tenant_name") or e.get("tenant", "")
    # a vehicle by its plate (helper-116: `petrol-02.speed` said nothing to a fleet's manager)
    what = e.get("location") if e.get("site") == "vehicles" and e.get("location") else e["sensor"]
    tier, peak = str(e["tier"]).upper(), str(e.get("peak_tier") or e["tier"]).upper()
    head = f"[{tier}]" if peak == tier else f"[{tier}, reached {peak}]"
    line = f"{head} {who} {e['site']} {what} {e['alarm_kind']} {e['level_name']} {e['kind']}{more}"
    # one line, whatever the names hold: a name folded in YAML (`name: >`) ends with a line
    # break, and a subject with one is refused, so every channel's notification of the
    # enterprise died (helper-118); the words of all the parts at once, one space between
    # (an empty part leaves nothing: one split, not one per part)
    return " ".join(line.split())
