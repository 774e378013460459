"""Gateways offline: what the hub knows of its gateways' links to the broker, and which of their
alarms must change. Pure: statuses and the time are given.

A gateway publishes its status retained on `{root}/{tenant}/gateways/{gateway}/status`: `online`
when it connects, `offline` when it stops, and the broker publishes its last will `offline` when
the gateway's connection dies (a killed process, a host without power, a cut link: after 1.5 times
its keep-alive). A gateway offline for `grace_ms` raises one alarm per site it serves (the sites of
the configured devices that name it), on the sensor `gateway:{tenant}/{site}/{gateway}`; the
gateway's `online` clears them. Until the gateway says one or the other (a hub just started),
nothing is raised or cleared: the retained status comes at each connection of the hub, so what
the broker knows is what the hub judges; a status heard before the hub's connection counts only
once heard again. An empty retained status (deleted: a gateway taken out of use) clears like
`online`.

A gateway the configuration's devices name (`expect`) from which the hub has heard no status at
all for `never_ms` since its first connection to the broker (or since the gateway was named, by
a reload after it) never connected (commissioning not finished, a wrong MQTT login, a wrong
topic root): it raises the same alarms, marked `never`, stamped when the hub began to wait. Its
first `online` clears them; an `offline` keeps them (an ordinary outage from then on). The wait
is counted again by a restarted hub (an alarm already active is kept, not raised twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "GATEWAY_RULE",
    "GatewayChange",
    "GatewayWatch",
    "gateway_alarm_id",
    "gateway_sites",
]

GATEWAY_RULE = "gateway"  # the rule of a gateway's offline alarms
_KEPT = 65_536  # statuses kept at most (gateways not configured are forgotten first)


def gateway_alarm_id(tenant: str, site: str, gateway: str) -> str:
    return f"gateway:{tenant}/{site}/{gateway}"


def gateway_sites(
    devices: Iterable[tuple[str, str, str]],
) -> dict[tuple[str, str], tuple[str, ...]]:
    """The sites each (tenant, gateway) serves, from (tenant, site, gateway) of every device."""
    sites: dict[tuple[str, str], set[str]] = {}
    for tenant, site, gateway in devices:
        sites.setdefault((tenant, gateway), set()).add(site)
    return {k: tuple(sorted(v)) for k, v in sorted(sites.items())}


@dataclass(frozen=True, slots=True)
class GatewayChange:
    tenant: str
    site: str
    gateway: str
    offline: bool  # True: raise, False: clear
    ts: int  # when the hub heard the status that decides it (never: when it began to wait)
    never: bool = False  # raised for a gateway never heard from (no status at all)

    @property
    def alarm_id(self) -> str:
        return gateway_alarm_id(self.tenant, self.site, self.gateway)


class GatewayWatch:
    """The last status heard of each (tenant, gateway) and since when; and what must change."""

    def __init__(self) -> None:
        # (tenant, gateway) -> (online, when the hub first heard that status in a row)
        self._status: dict[tuple[str, str], tuple[bool, int]] = {}
        # the statuses not heard again since the hub's connection to the broker began: what
        # they say may have changed while the hub was away (the broker sends each one again)
        self._stale: set[tuple[str, str]] = set()
        self.forgotten = 0  # statuses dropped to keep the bound
        self._began: int | None = None  # the hub's first connection to the broker
        # the gateways the configuration's devices name -> when they were named, if after the
        # hub's first connection (None: before it, waited for from that connection)
        self._named: dict[tuple[str, str], int | None] = {}

    def new_session(self, at: int) -> None:
        """The hub (re)connected to the broker at `at`: every status counts again only once
        heard again (the retained ones come at the subscription). An `offline` heard again keeps
        its first time: the hub cannot tell whether the gateway came back meanwhile. The first
        connection starts the wait for the gateways never heard from."""
        self._stale = set(self._status)
        if self._began is None:
            self._began = at

    def expect(self, gateways: Iterable[tuple[str, str]], at: int) -> None:
        """The (tenant, gateway) pairs the configuration's devices name, as of `at` (the start,
        a reload): one named after the hub's first connection is waited for from `at`, one
        named still from when it was first; those no longer named are forgotten."""
        added = None if self._began is None else at
        self._named = {k: self._named.get(k, added) for k in sorted(set(gateways))}

    def heard(
        self,
        tenant: str,
        gateway: str,
        online: bool,
        at: int,
        known: Mapping[tuple[str, str], object] | None = None,
    ) -> None:
        """The gateway said `online` (or offline) at `at`; a status repeated keeps its first
        time (a retained `offline` that comes again at the hub's reconnection is the same
        outage). At the bound, the statuses of gateways not in `known` go first."""
        key = (tenant, gateway)
        self._stale.discard(key)
        was = self._status.get(key)
        if was is not None and was[0] == online:
            return
        if was is None and len(self._status) >= _KEPT:
            self._forget(known or {})
        self._status[key] = (online, at)

    def _forget(self, known: Mapping[tuple[str, str], object]) -> None:
        strangers = [k for k in self._status if k not in known]
        drop = strangers or list(self._status)
        for k in drop[: max(1, len(drop) // 2)]:
            del self._status[k]
            self._stale.discard(k)
            self.forgotten += 1

    def status(self, tenant: str, gateway: str) -> tuple[bool, int] | None:
        return self._status.get((tenant, gateway))

    def changes(
        self,
        sites: Mapping[tuple[str, str], tuple[str, ...]],
        active: set[str],
        now: int,
        grace_ms: int,
        never_ms: int = 0,
    ) -> list[GatewayChange]:
        """The alarms to raise (a gateway offline for `grace_ms` or more at `now`, or one
        expected and never heard from for `never_ms`, for each site it serves without one
        active) and to clear (a gateway online, for each of its active ones). `active`: the ids
        of the gateway alarms active now. `grace_ms`, `never_ms` 0: raise none of that kind."""
        out: list[GatewayChange] = []
        for key, served in sites.items():
            heard = self._status.get(key)
            if heard is None:
                out += self._never(key, served, active, now, never_ms)
                continue
            if key in self._stale:
                continue
            online, since = heard
            tenant, gateway = key
            for site in served:
                on = gateway_alarm_id(tenant, site, gateway) in active
                if online and on:
                    out.append(GatewayChange(tenant, site, gateway, False, since))
                elif not online and not on and grace_ms > 0 and now - since >= grace_ms:
                    out.append(GatewayChange(tenant, site, gateway, True, since))
        return out

    def _never(
        self,
        key: tuple[str, str],
        served: tuple[str, ...],
        active: set[str],
        now: int,
        never_ms: int,
    ) -> list[GatewayChange]:
        """The alarms of a gateway never heard from, if expected and waited for `never_ms`."""
        if key not in self._named or self._began is None or never_ms <= 0:
            return []
        named = self._named[key]
        since = self._began if named is None else named
        if now - since < never_ms:
            return []
        tenant, gateway = key
        return [
            GatewayChange(tenant, site, gateway, True, since, never=True)
            for site in served
            if gateway_alarm_id(tenant, site, gateway) not in active
        ]
