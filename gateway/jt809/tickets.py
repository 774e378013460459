"""The centre's alarm supervisions (报警督办) on their way to the lower platforms: the hub's
`supervise_alarm` command (`api.alarmsupervise`) becomes a 0x9400 / 0x9401 to the platform that
serves the vehicle.

The vehicle's platform is the one of its tenant that last sent its positions (since the gateway
started), else the tenant's only platform; with several and none known, the ticket is counted
`supervise_no_platform` and dropped (logged at warning level: 督办 again once the vehicle's
platform sent a position). The ticket goes on the platform's sub link when it is up (0x9400 is a
sub-link message: DOWN_WARN_MSG), else on its main link (JT/T 809-2019 lets the upper platform
use the main link while the sub link is down; a 2011 platform that refuses it there answers
nothing). A platform not logged in gets it at its next login (on its sub link once that is up,
or on the main link after the sub link's `timeout_s`: `server`): kept (at most `max_kept` per
platform, the oldest dropped, counted `supervise_full`; saved across a restart:
`gateway.jt809.waiting`), dropped once past the supervision's end (`supervise_expired`). A
ticket is sent once: the same supervision id again (MQTT's QoS 1 delivers again after a broker
or gateway reconnection) is counted `supervise_duplicate`. Counted per platform
(`{platform}.supervise_sent` ...), a command of no platform as `supervise.{outcome}`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.jt808.directory import VehicleRef
from gateway.jt809.config import PlatformSpec
from telemetry.jt809 import DownWarnMsg, SubId, SuperviseRequest, warn_source, warn_type
from telemetry.registry import Registry

__all__ = ["Ticket", "Tickets", "read_ticket"]

log = logging.getLogger(__name__)

_LEVELS = {"urgent": 0, "normal": 1}
_SEEN = 100_000  # supervision ids remembered as sent


@dataclass(frozen=True, slots=True)
class Ticket:
    tenant: str
    vehicle: str
    alarm_id: int
    kind: str
    request: SuperviseRequest

    @property
    def end_ms(self) -> int:
        return self.request.end_s * 1000


def _int(doc: dict[str, object], key: str, top: int) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < top:
        raise ValueError(f"{key} is not a number of 0 .. {top - 1}")
    return v


def _str(doc: dict[str, object], key: str) -> str:
    v = doc.get(key, "")
    if not isinstance(v, str):
        raise ValueError(f"{key} is not text")
    return v


def read_ticket(tenant: str, vehicle: str, doc: dict[str, object]) -> Ticket:
    """The ticket of a `supervise_alarm` command; ValueError saying what is wrong."""
    kind, level = _str(doc, "kind"), doc.get("level")
    if not isinstance(level, str) or level not in _LEVELS:
        raise ValueError("level is neither urgent nor normal")
    request = SuperviseRequest(
        warn_source(kind),
        warn_type(kind),
        _int(doc, "ts", 2**53) // 1000,
        _int(doc, "supervision_id", 2**32),
        _int(doc, "deadline", 2**53) // 1000,
        _LEVELS[level],
        _str(doc, "supervisor"),
        _str(doc, "tel"),
        _str(doc, "email"),
    )
    request.encode()  # a field too long for its width: ValueError
    return Ticket(tenant, vehicle, _int(doc, "alarm_id", 2**63), kind, request)


class Tickets:
    def __init__(
        self,
        platforms: list[PlatformSpec],
        registry: Registry,
        *,
        send: Callable[[str, DownWarnMsg], str | None],
        count: Callable[[str | None, str], None],
        clock_ms: Callable[[], int],
        max_kept: int = 1000,
    ) -> None:
        """`send(platform, message)`: on the platform's link ("sub" or "main"), or None when it
        is not logged in; `count(platform, kind)`: the server's counters. `receipt(ticket,
        outcome, platform, link)` (set later, `gateway.jt809.commands`): what became of a
        ticket, for the hub's journal: sent (on `link`), kept (the platform not logged in),
        expired, dropped (too many kept), no_platform."""
        self._by_tenant: dict[str, list[str]] = {}
        for p in platforms:
            self._by_tenant.setdefault(p.tenant, []).append(p.name)
        self.registry = registry
        self._send, self._count, self.clock_ms = send, count, clock_ms
        self.max_kept = max_kept
        self.receipt: Callable[[Ticket, str, str | None, str | None], None] = (
            lambda ticket, outcome, platform, link: None
        )
        # the platform that last sent the vehicle's positions, and the plate colour it gave
        self.served: dict[VehicleRef, tuple[str, int]] = {}
        self.kept: dict[str, deque[Ticket]] = {}
        self.changes = 0  # moves with `kept` (`gateway.jt809.waiting` saves it when it moved)
        self._seen: OrderedDict[int, None] = OrderedDict()

    def tenants(self) -> set[str]:
        return set(self._by_tenant)

    def serves(self, ref: VehicleRef, platform: str, color: int) -> None:
        self.served[ref] = (platform, color)

    def take(self, tenant: str, vehicle: str, doc: dict[str, object]) -> str:
        """One `supervise_alarm` command: what happened (counted)."""
        try:
            ticket = read_ticket(tenant, vehicle, doc)
        except ValueError as exc:
            log.warning("jt809: supervision of %s/%s unreadable: %s", tenant, vehicle, exc)
            return self._said(None, "supervise_rejected")
        if ticket.request.supervision_id in self._seen:
            return self._said(None, "supervise_duplicate")
        spec = self.registry.vehicles.get((tenant, vehicle))
        names = self._by_tenant.get(tenant, [])
        name = self.served.get(VehicleRef(tenant, vehicle), (None, 0))[0]
        if name is None and len(names) == 1:
            name = names[0]
        if spec is None or name is None:
            log.warning(
                "jt809: supervision %d of %s/%s: %s",
                ticket.request.supervision_id, tenant, vehicle,
                "no such vehicle" if spec is None else
                "no platform of the tenant has sent its positions yet (督办 it again later)",
            )  # fmt: skip
            self.receipt(ticket, "no_platform", None, None)
            return self._said(None, "supervise_no_platform")
        self._remember(ticket.request.supervision_id)
        if ticket.end_ms <= self.clock_ms():
            self.receipt(ticket, "expired", name, None)
            return self._said(name, "supervise_expired")
        how = self._send(name, self._message(ticket))
        if how is not None:
            return self._sent(name, ticket, how)
        kept = self.kept.setdefault(name, deque())
        if len(kept) >= self.max_kept:
            self.receipt(kept.popleft(), "dropped", name, None)
            self._count(name, "supervise_full")
        kept.append(ticket)
        self.changes += 1
        self.receipt(ticket, "kept", name, None)
        log.info(
            "jt809: %s: supervision %d of %s/%s kept for its next login",
            name, ticket.request.supervision_id, tenant, vehicle,
        )  # fmt: skip
        return self._said(name, "supervise_kept")

    def logged_in(self, name: str) -> None:
        """Send what was kept for the platform (a ticket past its end dropped)."""
        kept = self.kept.pop(name, deque())
        self.changes += bool(kept)
        now = self.clock_ms()
        while kept:
            ticket = kept.popleft()
            if ticket.end_ms <= now:
                self.receipt(ticket, "expired", name, None)
                self._count(name, "supervise_expired")
                continue
            how = self._send(name, self._message(ticket))
            if how is None:  # gone again: kept
                kept.appendleft(ticket)
                self.kept[name] = kept
                return
            self._sent(name, ticket, how)

    def restore(self, name: str, tickets: list[Ticket]) -> None:
        """Tickets kept for the platform before a restart (`gateway.jt809.waiting`)."""
        kept = self.kept.setdefault(name, deque())
        for ticket in tickets[-self.max_kept :]:
            self._remember(ticket.request.supervision_id)
            kept.append(ticket)

    def _message(self, ticket: Ticket) -> DownWarnMsg:
        spec = self.registry.vehicles.get((ticket.tenant, ticket.vehicle))
        plate = spec.spec.plate.replace("·", "") if spec is not None else ""
        color = self.served.get(VehicleRef(ticket.tenant, ticket.vehicle), ("", 2))[1]
        return DownWarnMsg(plate, color, SubId.WARN_URGE_TODO_REQ, ticket.request.encode())

    def _sent(self, name: str, ticket: Ticket, how: str) -> str:
        log.info(
            "jt809: %s: supervision %d of %s/%s (alarm %d, %s) sent on the %s link",
            name, ticket.request.supervision_id, ticket.tenant, ticket.vehicle,
            ticket.alarm_id, ticket.kind, how,
        )  # fmt: skip
        self.receipt(ticket, "sent", name, how)
        return self._said(name, "supervise_sent")

    def _said(self, name: str | None, kind: str) -> str:
        self._count(name, kind)
        return kind

    def _remember(self, sid: int) -> None:
        self._seen[sid] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
