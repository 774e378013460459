"""The pure stages of the notification pipeline: subscription match, the lifecycle gate,
inhibition and silences. Each takes what it needs and the time; nothing here reads a clock.

A journal event passes, in order:
  1. match: the subscription's tenant, sites, sensor kinds, tiers, alarm kinds and events;
  2. the lifecycle gate: an alarm that is shelved, suppressed by design or out of service is not
     annunciated (its own lifecycle events still are);
  3. inhibition: a sensor's `above` alarm inhibits its trend alarms (`early_warning`, `rate`)
     of a lower tier, which it explains (`TRENDS`); and a device's comm loss its sensors'
     no-data and fault alarms, a gateway offline those of its devices and sensors, for the
     subscriptions that are told of the device's or the gateway's alarm (the others are told
     of the event);
  4. silences and weekly maintenance windows (China Standard Time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from alerts.kinds import TIER_RANK
from telemetry.notifyconfig import SilenceSpec, SubscriptionSpec

__all__ = [
    "CST",
    "TIER_RANK",
    "TRENDS",
    "EventView",
    "annunciates",
    "explained_by",
    "frees_trends",
    "higher_holder",
    "holders",
    "inhibited_by",
    "matches",
    "silenced_by",
]

CST = timezone(timedelta(hours=8), "CST")
_GATED = frozenset({"shelved", "suppressed", "out_of_service"})
# what the process or the clock says about the alarm itself: held back by the gate
_PROCESS = frozenset({"raised", "escalated", "deescalated", "cleared", "repeat", "escalation"})
# the ends and steps down of an alarm: a higher alarm of the sensor does not inhibit them
_ENDS = frozenset({"cleared", "deescalated"})
# the alarms a higher alarm of the same sensor inhibits: its trend alarms, the early warning
# (the trend reaches the next level above) and the rate of rise, which its `above` alarm of a
# higher tier explains: both are about the value rising, and while it is above a threshold
# that news is the threshold alarm's. A `below` alarm explains no rise, and every other kind
# is a condition of its own, never inhibited by another: a sensor's fault, frozen value,
# maintenance, calibration due, failed action (each says something the threshold alarm does
# not) and a vehicle's (overspeed, fatigue, corridor, forbidden area, the terminal's and the
# active-safety DSM/ADAS alarms, all on the vehicle's speed sensor: a driver's fatigue during
# an overspeed is news of its own, helper-241)
TRENDS = frozenset({"early_warning", "rate"})
_EXPLAINS_TRENDS = frozenset({"above"})
# "released": an alarm held back by its gateway's or device's alarm, which cleared while it
# stays active and unacknowledged (`alerts.notify.routing`)
_RETURNS = frozenset({"unshelved", "unsuppressed", "in_service", "released"})


class EventView(NamedTuple):
    """What the stages need to know of one journal event and its alarm (a named tuple: one is
    made per event routed, several times faster than a frozen dataclass)."""

    event_id: int
    alarm_id: int
    kind: str  # the journal's kind (raised, acknowledged, repeat ...)
    tenant: str
    site: str
    device: str
    sensor: str
    sensor_kind: str
    alarm_kind: str  # above, below, fault, no_data, ...
    tier: str  # the alarm's tier (a clear keeps the tier it had)
    isa_state: str  # the alarm's ISA state after the event
    active: bool  # the alarm's condition after the event
    gateway: str = ""  # the gateway of the alarm's device ("" when none is known)
    # a clear's, a step down's or an overdue's: every tier the alarm had (comma-separated); the
    # same for a
    # return whose clear was held back meanwhile (told as that clear); "" otherwise
    tiers_had: str = ""

    @property
    def match_kind(self) -> str:
        """The kind a subscription sees: an alarm that comes back from a shelf, a suppression
        or out of service while still active and unacknowledged is annunciated as raised; one
        that ended while it was hidden, as cleared (who was told of its raise heard nothing of
        its end: a receiver kept a red alarm it believed active, helper-99)."""
        # (a release is of an alarm that still waits for whom the subscription tells: the
        # site's may be acknowledged while the centre's is not, `alerts.notify.store.waits_for`)
        waits = self.isa_state == "unack" or self.kind == "released"
        if self.kind in _RETURNS and self.active and waits:
            return "raised"
        if self.kind in _RETURNS and not self.active and self.tiers_had:
            return "cleared"  # `tiers_had` is set only for a return whose clear was held back
        return self.kind


def matches(sub: SubscriptionSpec, tenant: str, ev: EventView) -> bool:
    """Whether the subscription hears the event. `Routing._matching` remembers the answers by
    the event's fields read here (site, sensor kind, tier, alarm kind, match kind, tiers had):
    a field read here must go into its key."""
    m = sub.match
    return (
        sub.enabled
        and tenant == ev.tenant
        and (not m.sites or ev.site in m.sites)
        and (not m.sensor_kinds or ev.sensor_kind in m.sensor_kinds)
        and (not m.tiers or ev.tier in m.tiers or _had_tier(ev, m.tiers))
        and (not m.alarm_kinds or ev.alarm_kind in m.alarm_kinds)
        and ev.match_kind in m.events
    )


def _had_tier(ev: EventView, tiers: Sequence[str]) -> bool:
    """A clear, a step down or a missed disposal deadline of an alarm that was, at some time,
    at one of `tiers`: who was told of it at red hears it end, though it ends at yellow, and
    hears that it is overdue, though it is yellow by then."""
    return bool(ev.tiers_had) and any(t in tiers for t in ev.tiers_had.split(","))


def annunciates(ev: EventView) -> bool:
    """The lifecycle gate: False for a process event of a shelved, suppressed or
    out-of-service alarm."""
    return not (ev.kind in _PROCESS and ev.isa_state in _GATED)


def inhibited_by(
    ev: EventView, active_by_sensor: Mapping[str, Iterable[tuple[str, str]]]
) -> str | None:
    """Why the event is inhibited by a higher alarm of its sensor, or None: a trend alarm's
    (`TRENDS`) while the sensor's `above` alarm of a higher tier is active. `active_by_sensor`:
    the active alarms of each sensor as (alarm kind, tier). Any other kind is never inhibited
    (data lost by a gateway, say, a record of its own reported while the device's comm-loss
    alarm, on the same `device:` point, is still active)."""
    if ev.alarm_kind not in TRENDS or (ev.kind not in _PROCESS and ev.match_kind != "raised"):
        return None
    if ev.kind in _ENDS:  # an end is never held back: who was told of the raise must hear it
        return None
    rank = TIER_RANK.get(ev.tier, 0)
    for kind, tier in active_by_sensor.get(ev.sensor, ()):
        if kind in _EXPLAINS_TRENDS and TIER_RANK.get(tier, 0) > rank:
            return f"a higher alarm of the sensor is active ({kind}, {tier})"
    return None


def higher_holder(sensor: str) -> str:
    """What holds back a trend alarm of `sensor` inhibited at its raise, as the outbox's holds
    name it (`alerts.notify.routing`): the sensor's `above` alarm, whichever it is."""
    return f"higher:{sensor}"


def frees_trends(ev: EventView) -> str | None:
    """The holder (`higher_holder`) whose holds the event may end: an `above` alarm that clears
    or steps down (the trend alarms it held back are told if nothing holds them still)."""
    if ev.alarm_kind in _EXPLAINS_TRENDS and ev.kind in _ENDS:
        return higher_holder(ev.sensor)
    return None


def holders(ev: EventView) -> tuple[EventView, ...]:
    """The alarms that would explain the event's no-data or fault alarm, as their raise: its
    gateway offline (`alerts.gateways`, which explains its devices' comm loss too) and its
    device in comm loss. None for other kinds, and for a gateway's own alarm."""
    if ev.alarm_kind not in ("no_data", "fault") or ev.sensor.startswith("gateway:"):
        return ()
    found: list[EventView] = []
    if ev.gateway:
        found.append(_holder(ev, f"gateway:{ev.tenant}/{ev.site}/{ev.gateway}", ev.gateway))
    if not ev.sensor.startswith("device:"):
        found.append(_holder(ev, f"device:{ev.tenant}/{ev.site}/{ev.device}", ev.device))
    return tuple(found)


def _holder(ev: EventView, sensor: str, device: str) -> EventView:
    kind = sensor.partition(":")[0]  # gateway | device
    return EventView(
        0,
        0,
        "raised",
        ev.tenant,
        ev.site,
        device,
        sensor,
        kind,
        "no_data",
        "orange",
        "unack",
        True,
        ev.gateway,
    )


def explained_by(ev: EventView, down: frozenset[str]) -> tuple[EventView, ...]:
    """The active alarms of a gateway offline or a device in comm loss (`down`: their ids)
    that explain the event's no-data or fault alarm, as their raise. A subscription that is
    told of one of them (it matches its raise) is not told of the event: inhibition. An end
    (clear, step down) is never explained: who was told of the raise (the device's comm loss
    raised a second before its gateway went offline) must hear it; who was not is held back
    by the hold recorded at the raise (`alerts.notify.routing`)."""
    if ev.kind in _ENDS or (ev.kind not in _PROCESS and ev.match_kind != "raised"):
        return ()
    return tuple(h for h in holders(ev) if h.sensor in down)


def _in_window(s: SilenceSpec, now_ms: int) -> bool:
    if s.starts is not None and now_ms < s.starts:
        return False
    if s.ends is not None and now_ms >= s.ends:
        return False
    r = s.recurrence
    if r is None:
        return True
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(CST)
    hh, mm = (int(x) for x in r.start.split(":"))
    # a window may have started today or on an earlier day and still be running
    for days_back in range(8):
        day = local - timedelta(days=days_back)
        start = day.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if start.weekday() in r.weekdays and start <= local < start + timedelta(
            minutes=r.duration_min
        ):
            return True
    return False


def silenced_by(silences: Iterable[SilenceSpec], ev: EventView, now_ms: int) -> str | None:
    """The id of the first silence that holds the event back at `now_ms`, or None."""
    for s in silences:
        if (
            (not s.sites or ev.site in s.sites)
            and (not s.devices or ev.device in s.devices)
            and (not s.sensors or ev.sensor in s.sensors)
            and (not s.alarm_kinds or ev.alarm_kind in s.alarm_kinds)
            and _in_window(s, now_ms)
        ):
            return s.id
    return None
