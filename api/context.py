"""What the routes share: the context the composition root builds, and its dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmDesk
from alerts.gatewayalarms import configured_points
from alerts.notify.notifier import Notifier
from alerts.statedb import AlarmRow, StateDB
from api.auth import WRITERS, KeyRing, Principal, current_principal, request_principal
from api.configadmin import ConfigAdmin
from api.readywatch import ReadinessWatch
from api.stream import Broadcaster
from ingest.metrics import Metrics
from ingest.store.base import TimeSeriesStore
from telemetry.registry import Registry

__all__ = [
    "CENTRE_ROLES",
    "KNOWN_QUERY",
    "WRITE",
    "WRITERS",
    "AppContext",
    "Caller",
    "CommandNotSentError",
    "Ctx",
    "WriteGuard",
    "acked_for",
    "check_record_sensor",
    "check_record_site",
    "is_centre",
    "not_found",
    "query_tenants",
    "record_scope",
    "require_reviewer",
    "require_writer",
]


async def _no_events(events: Sequence[AlarmEvent]) -> None:
    return None


class CommandNotSentError(Exception):
    """A vehicle's command neither published nor kept (`send_command`): the reason."""


@dataclass(slots=True)
class AppContext:
    """What the API reads; the composition root builds it."""

    registry: Registry
    store: TimeSeriesStore
    statedb: StateDB
    metrics: Metrics
    keys: KeyRing
    # why the hub judges nothing now (no broker, the store refusing readings), None when it does
    not_ready: Callable[[], str | None] = lambda: None
    stream: Broadcaster | None = None
    desk: AlarmDesk | None = None
    notifier: Notifier | None = None
    # where lifecycle events made through the API go: the stream, the alarm topic, the notifier
    on_events: Callable[[Sequence[AlarmEvent]], Awaitable[None]] = _no_events
    # the running configuration and its changes (None: this hub does not change it live)
    config: ConfigAdmin | None = None
    # a vehicle's command (tenant, vehicle, payload, until ms) on its command topic: published
    # now (True) or kept until the hub is connected again (False); CommandNotSentError when it
    # is neither (the hub's queue full); None: this hub publishes none (`api.alarmsupervise`)
    send_command: Callable[[str, str, bytes, int], Awaitable[bool]] | None = None
    # since when the hub has been not ready for its present cause (`/readyz`, the dashboard)
    readiness: ReadinessWatch = field(init=False)

    def __post_init__(self) -> None:
        self.readiness = ReadinessWatch(self._not_ready_now)

    def _not_ready_now(self) -> str | None:
        # through the field, not its value at the start: a test may set `not_ready` later
        return self.not_ready()


Caller = Annotated[Principal, Depends(current_principal)]


async def _ctx(request: Request) -> AppContext:
    """Async on purpose (as every dependency here): FastAPI runs a plain `def` dependency in its
    thread pool, a thread hop per request for a lookup."""
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(_ctx)]


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


CENTRE_ROLES = frozenset({"admin", "operator"})


def narrowed(ctx: AppContext, caller: Principal, tenant: str | None) -> list[str]:
    """The tenants a list covers: the caller's, or only `tenant` when given. A tenant the
    caller may not see (or none of that name) is 404, as if it did not exist, never an empty
    list that says nothing."""
    tenants = caller.scope(ctx.registry.tenants)
    if tenant is None:
        return tenants
    if tenant not in tenants:
        raise not_found(f"tenant {tenant!r}")
    return [tenant]


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _takes_many(annotation: object) -> bool:
    """Whether a query parameter so annotated takes several values (`sensor=a&sensor=b`)."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (Union, UnionType, Annotated):
        return any(_takes_many(a) for a in get_args(annotation))
    return False


def _single_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares that take one value, its dependencies' included."""
    names = {f.alias for f in dependant.query_params if not _takes_many(f.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= _single_names(sub)
    return names


# a route's (query parameters, those of one value), by its dependant: walked once, not per
# request (an app's routes live as long as it; bounded for a process that makes many apps)
_NAMES: dict[int, tuple[Dependant, frozenset[str], frozenset[str]]] = {}


def _names_of(dependant: Dependant) -> tuple[frozenset[str], frozenset[str]]:
    got = _NAMES.get(id(dependant))
    if got is None or got[0] is not dependant:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        got = _NAMES[id(dependant)] = (
            dependant,
            frozenset(_query_names(dependant)),
            frozenset(_single_names(dependant)),
        )
    return got[1], got[2]


async def _known_query(request: Request, caller: Caller) -> None:
    """A query parameter the route does not take is 422, naming it and those it takes: FastAPI
    lets it be, and `GET /latest?tenant=x` answered every tenant's readings as if it held (a
    night dispatcher read them as tenant x's), `?dryrun=true` on a change made the change. `_`
    (a browser's cache-buster) is let be. A parameter of one value given twice is 422 too.
    After the key: a caller without one is 401 first."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if not request.query_params:
        return
    known, single = _names_of(route.dependant)
    unknown = sorted(set(request.query_params) - known - {"_"})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"unknown query parameter(s) {unknown}; this route takes: {takes}",
        )
    # one value only: FastAPI keeps the last of `site=a&site=b` and the answer read as both
    # sites' (helper-180)
    twice = sorted(n for n in single if len(request.query_params.getlist(n)) > 1)
    if twice:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"query parameter(s) {twice} given more than once; each takes one value here",
        )


# every /api/v1 router's: a query parameter the route does not take is refused, never ignored
KNOWN_QUERY = [Depends(_known_query)]


def check_site(ctx: AppContext, tenants: list[str], site: str | None) -> None:
    """A `site` filter names a site of one of `tenants` (those the caller sees): any other is
    404, as if it did not exist, never an empty answer that reads as 'nothing there'. A site id
    that two or more of them configure (`hx-chem/tank-farm`, `ly-chem/tank-farm`) is 422 without
    `tenant=`: the answer would hold both enterprises' as one site's (a handover printed and
    signed for the tank farm held another company's alarms). `vehicles`, every tenant's
    vehicles, spans tenants by design."""
    if site is None:
        return
    if not any(site in ctx.registry.sites_of(t) for t in tenants):
        raise not_found(f"site {site!r}")
    among = set(tenants)
    owners = [
        t.id
        for t in ctx.registry.config.tenants
        if t.id in among and any(s.id == site for s in t.sites)
    ]
    if len(owners) > 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"site {site!r} is a site of {len(owners)} tenants this key sees ({', '.join(owners)}):"
            " give tenant= with site=, one enterprise's site at a time",
        )


def query_tenants(ctx: AppContext, caller: Principal) -> list[str] | None:
    """The tenants whose records (alarms, notifications) a query of the caller covers: None
    (every one, no filter) for a key of all tenants, else the tenants on its key, configured now
    or not. An enterprise removed from the configuration keeps its alarms, and the keys that see
    it keep seeing them (as `GET /alarms/{id}` always did), in lists as one by one."""
    return None if caller.tenants is None else sorted(caller.tenants)


_HAS_ALARMS = "SELECT 1 FROM alarms WHERE tenant = ? LIMIT 1"


async def record_scope(ctx: AppContext, caller: Principal, tenant: str | None) -> list[str] | None:
    """The tenants an alarm list or report covers (`query_tenants`: None is every tenant), or
    only `tenant` when given: one the caller does not see, or that is neither configured nor on
    record (none of that name), is 404, never an empty answer. A removed enterprise's alarms
    are the record: they stay in the lists and reports, `tenant=` narrowing to them too
    (helper-120: they vanished from every list while each answered by its id)."""
    if tenant is None:
        return query_tenants(ctx, caller)
    if not caller.sees(tenant):
        raise not_found(f"tenant {tenant!r}")
    if tenant not in ctx.registry.tenants:
        found = await asyncio.to_thread(ctx.statedb.query, _HAS_ALARMS, (tenant,))
        if not found:
            raise not_found(f"tenant {tenant!r}")
    return [tenant]


# alarms on record of a site or of a point (sensor), per column the caller names
_ON_RECORD = {
    "site": "SELECT 1 FROM alarms WHERE site = ?",
    "sensor": "SELECT 1 FROM alarms WHERE sensor = ?",
}


def _on_record(ctx: AppContext, tenants: list[str] | None, column: str, value: str) -> bool:
    """Whether alarms of `tenants` (None: every tenant) are on record with `column` (site,
    sensor) = `value`."""
    sql = _ON_RECORD[column]
    params: list[str] = [value]
    if tenants is not None:
        sql += f" AND tenant IN ({','.join('?' * len(tenants))})"
        params += tenants
    return bool(tenants is None or tenants) and bool(ctx.statedb.query(sql + " LIMIT 1", params))


async def check_record_site(ctx: AppContext, tenants: list[str] | None, site: str | None) -> None:
    """`check_site` for the alarm lists and reports over `tenants` (`record_scope`): a site of
    a removed enterprise, or removed from the configuration, names its alarms on record too."""
    if site is None:
        return
    known = ctx.registry.tenants
    configured = list(known) if tenants is None else [t for t in tenants if t in known]
    if any(site in ctx.registry.sites_of(t) for t in configured):
        check_site(ctx, configured, site)
        return
    if not await asyncio.to_thread(_on_record, ctx, tenants, "site", site):
        raise not_found(f"site {site!r}")


def _configured_point(registry: Registry, tenants: list[str] | None, point: str) -> bool:
    """Whether `point` is the alarm point of a configured device or gateway of `tenants`."""
    tenant = point.partition(":")[2].partition("/")[0]
    if tenants is not None and tenant not in tenants:
        return False
    devices, gateways = configured_points(registry)
    return point in devices or point in gateways


async def check_record_sensor(
    ctx: AppContext, tenants: list[str] | None, sensor: str | None
) -> None:
    """404 for a sensor the caller's tenants neither have configured nor have alarms of on
    record: a mistyped `?sensor=` read as 'no alarms' (helper-133), every other filter is
    refused. A device's, gateway's or removed sensor's alarms are named by their record."""
    if sensor is None:
        return
    if "," in sensor:  # no id holds a comma: a list, which this filter does not take
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"sensor {sensor[:200]!r}: one sensor id here (ids hold no comma); ask one sensor "
            "at a time, or a site (site=)",
        )
    info = ctx.registry.sensor(sensor)
    if info is not None and (tenants is None or info.tenant in tenants):
        return
    if _configured_point(ctx.registry, tenants, sensor):  # a device's, a gateway's, none yet
        return
    if not await asyncio.to_thread(_on_record, ctx, tenants, "sensor", sensor):
        raise not_found(f"sensor {sensor!r}")


def require_writer(caller: Principal) -> None:
    """Viewers read; every write route starts here."""
    if caller.role not in WRITERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key may only read")


def require_centre(caller: Principal) -> None:
    """Shelving, silences and sensors out of service hide alarms from everyone, the
    supervising centre included: its operators' and admins', not an enterprise's."""
    require_writer(caller)
    if caller.role not in CENTRE_ROLES:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "shelves, silences and sensors out of service are the monitoring centre's "
            "(operator or admin keys): they would hide this company's alarms from the centre",
        )


def is_centre(caller: Principal) -> bool:
    """The monitoring centre itself: an admin or operator key of every tenant (`tenants` null).
    Its close of a serious alarm is its own review; an enterprise's key (or a centre role
    limited to some tenants) submits it for that review (`alerts.lifecycle.disposal_action`)."""
    return caller.role in CENTRE_ROLES and caller.tenants is None


def acked_for(caller: Principal, row: AlarmRow) -> bool:
    """Whether the alarm is acknowledged by the caller's side: the supervising centre's
    (`centre_acked`) for a centre key, the enterprise's (`acked`, the site's ISA state) for any
    other. The acknowledgement a caller gives is its side's (`alerts.desk.AlarmDesk.act`)."""
    return bool(row.centre_acked) if is_centre(caller) else bool(row.acked)


REVIEW_IS_CENTRES = (
    "reviewing an enterprise's closing (审核销号: approve, return) is the monitoring centre's "
    "(an admin or operator key of every tenant), never the enterprise's own"
)


def require_reviewer(caller: Principal) -> None:
    """Approving or returning a closing: the centre's (403 otherwise)."""
    require_writer(caller)
    if not is_centre(caller):
        raise HTTPException(status.HTTP_403_FORBIDDEN, REVIEW_IS_CENTRES)


def _writer(caller: Caller) -> None:
    require_writer(caller)


# the dependencies of every write route: a viewer gets its 403 before the body is validated
# (a bad body would otherwise answer 422 first); `WriteGuard` checks it before the body is read
WRITE = [Depends(_writer)]

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WriteGuard(APIRoute):
    """A route whose writes (`POST`, `PUT`, `PATCH`, `DELETE`) check the key before anything
    else: FastAPI reads and parses a JSON body before it runs any dependency, so a viewer's
    write of a body that does not parse answered 422 (and a body was read for a key that may not
    write). No key, or one that does not authenticate, is 401 here; a viewer's, 403."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[None, None, Response]]:
        handler = super().get_route_handler()
        if not (self.methods or set()) & _WRITES:
            return handler

        async def guarded(request: Request) -> Response:
            require_writer(await request_principal(request))
            return await handler(request)

        return guarded
