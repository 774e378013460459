"""The registry over HTTP: tenants, sites, devices, sensors, voting groups, vehicles, rule packs and
the fleet's geofences; the whole configuration exported and imported as YAML; its revisions.

Everyone reads what their key sees (another tenant's objects answer 404); only admins change
anything: the registry is the supervision centre's record, and a sensor's levels are the
regulations' numbers, so an enterprise does not edit its own. An admin limited to some tenants
changes what is under those tenants (their sites, devices, sensors, groups and vehicles, and
replaces a tenant of its own), not what spans tenants: adding or removing a tenant, rule packs,
the fleet settings and geofences, the whole configuration and its revisions need an admin of
every tenant. Every change is checked whole, as a
configuration file would be, recorded as a revision and taken by the running hub without a
restart. A response carries the revision as its ETag; a write with ``If-Match`` is refused (412)
when the configuration moved on since.

Paths under ``/api/v1/registry/``::

    tenants[/{tenant}]
    tenants/{tenant}/sites[/{site}]            tenants/{tenant}/vehicles[/{vehicle}]
    tenants/{tenant}/sites/{site}/devices[/{device}]
    tenants/{tenant}/sites/{site}/groups[/{group}]
    tenants/{tenant}/sites/{site}/devices/{device}/sensors[/{sensor}]
    rule-packs[/{name}]                        fleet        geofences[/{id}]

GET a collection or an object; POST an object to its collection (201); PUT an object (replace);
DELETE it (204). ``?dry_run=true`` checks a change without making it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from api.auth import Principal
from api.configadmin import document, mask
from api.configroutes import (
    DryRun,
    IfMatch,
    admin_of,
    change,
    config_of,
    config_router,
    object_body,
    read_body,
    seen_fences,
    seen_vehicles,
    whole_admin_of,
)
from api.context import CENTRE_ROLES, WRITE, AppContext, Caller, Ctx, WriteGuard, not_found
from api.hidden import hide_receivers

__all__ = ["registry_router"]

# (url name, document field, key field, kind of the items)
_CHILDREN: dict[str, dict[str, tuple[str, str, str]]] = {
    "root": {
        "tenants": ("tenants", "id", "tenant"),
        "rule-packs": ("rule_packs", "name", "pack"),
        "geofences": ("fleet.geofences", "id", "geofence"),
    },
    "tenant": {"sites": ("sites", "id", "site"), "vehicles": ("vehicles", "id", "vehicle")},
    "site": {"devices": ("devices", "id", "device"), "groups": ("groups", "id", "group")},
    "device": {"sensors": ("sensors", "id", "sensor")},
}
_MAX_SEGMENTS = 10


def _fleet_seen(ctx: AppContext, caller: Principal, fleet: dict[str, Any]) -> dict[str, Any]:
    """The fleet settings as a key of some tenants is shown them: every setting, the geofences
    as `GET /geofences` shows them, and of the coaches exempt from the night ban its own."""
    out = dict(fleet)
    if isinstance(fleet.get("geofences"), list):
        fences = [f for f in fleet["geofences"] if isinstance(f, dict)]
        out["geofences"] = seen_fences(ctx.registry, caller, fences)
    if isinstance(fleet.get("exempt"), list):
        out["exempt"] = seen_vehicles(ctx.registry, caller, [str(v) for v in fleet["exempt"]])
    return out


@dataclass(slots=True)
class _Loc:
    items: list[Any]  # the collection
    key: str  # the key field of its items
    index: int | None  # the object's place, None for the collection itself
    path: tuple[Any, ...]  # document path of the collection
    tenant: str | None  # the tenant the path is under


def _check_writer(ctx: AppContext, caller: Principal, segs: list[str], depth: int) -> None:
    """An admin changes the registry; one limited to some tenants only what is `depth` or more
    segments deep under ``tenants/`` (its tenants' objects: `_locate` answers 404 for the
    others), never what spans tenants: the tenants themselves, rule packs, the fleet."""
    admin_of(ctx, caller)
    if segs[0] != "tenants" or len(segs) < depth:
        whole_admin_of(ctx, caller)


def _segments(path: str) -> list[str]:
    segs = [s for s in path.split("/") if s]
    if not segs or len(segs) > _MAX_SEGMENTS:
        raise not_found(f"registry path {path!r}")
    return segs


def _locate(doc: dict[str, Any], segs: list[str], caller: Principal) -> _Loc:
    node: dict[str, Any] = doc
    kind = "root"
    path: tuple[Any, ...] = ()
    tenant: str | None = None
    i = 0
    while True:
        child = _CHILDREN.get(kind, {}).get(segs[i])
        if child is None:
            raise not_found(f"registry path {'/'.join(segs)!r}")
        dotted, key, child_kind = child
        *parents, field = dotted.split(".")
        for name in parents:  # a collection inside an object (the fleet's geofences)
            inner = node.get(name)
            node[name] = inner if isinstance(inner, dict) else {}
            node = node[name]
            path = (*path, name)
        found = node.get(field)
        items: list[Any] = found if isinstance(found, list) else []
        node[field] = items
        if child_kind == "geofence" and (
            caller.role not in ("admin", "operator") or caller.tenants is not None
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the fleet settings span tenants")
        if i + 1 == len(segs):
            return _Loc(items, key, None, (*path, field), tenant)
        ident = segs[i + 1]
        index = next(
            (j for j, it in enumerate(items) if isinstance(it, dict) and it.get(key) == ident),
            None,
        )
        if child_kind == "tenant":
            tenant = ident
            if not caller.sees(ident):
                index = None
        if index is None:
            raise not_found(f"{child_kind} {ident!r}")
        if i + 2 == len(segs):
            return _Loc(items, key, index, (*path, field), tenant)
        node = items[index]
        path = (*path, field, index)
        kind = child_kind
        i += 2


# a tenant's notification objects with channels: those of the configuration are the centre's
_RECEIVER_FIELDS = ("subscriptions", "escalation_policies")


def _shown(data: Any, caller: Principal, *, tenants: bool) -> Any:
    """`data` as `caller` reads it: secrets hidden (`mask`), and for an enterprise's or a
    viewer's key the centre's receivers in the tenants' subscriptions and escalation policies
    too (`tenants`: `data` is a tenant or a list of them), as `/subscriptions` shows them."""
    shown = mask(data)
    if not tenants or caller.role in CENTRE_ROLES:
        return shown

    def tenant(t: Any) -> Any:
        if not isinstance(t, dict):
            return t
        out = dict(t)
        for field in _RECEIVER_FIELDS:
            if isinstance(out.get(field), list):
                out[field] = [
                    hide_receivers(x, receivers=False) if isinstance(x, dict) else x
                    for x in out[field]
                ]
        return out

    return [tenant(t) for t in shown] if isinstance(shown, list) else tenant(shown)


RegPath = Annotated[str, Path(description="see the module description", max_length=1000)]


def registry_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["registry"])

    @r.get("/registry/{path:path}")
    def read(path: RegPath, ctx: Ctx, caller: Caller, response: Response) -> Any:
        """A collection (a list) or one object of the registry, as the configuration has it."""
        admin = config_of(ctx)
        segs = _segments(path)
        doc = document(admin.current())
        response.headers["ETag"] = f'"{admin.rev}"'
        if segs == ["fleet"]:
            fleet = mask(doc.get("fleet", {}))
            if caller.role in ("admin", "operator") and caller.tenants is None:
                return fleet
            # an enterprise reads the settings its vehicles are judged by (the limits, the
            # zones, its own corridors and exemptions), never another's routes; it changes none
            return _fleet_seen(ctx, caller, fleet)
        loc = _locate(doc, segs, caller)
        tenants = segs[0] == "tenants" and len(segs) <= 2  # their notification objects in
        if loc.index is not None:
            return _shown(loc.items[loc.index], caller, tenants=tenants)
        items = loc.items
        if segs == ["tenants"]:
            items = [t for t in items if caller.sees(str(t.get("id")))]
        return _shown(items, caller, tenants=tenants)

    @r.post("/registry/{path:path}", status_code=status.HTTP_201_CREATED, dependencies=WRITE)
    async def create(
        path: RegPath,
        request: Request,
        ctx: Ctx,
        caller: Caller,
        response: Response,
        if_match: IfMatch = None,
        dry_run: DryRun = False,
    ) -> dict[str, Any]:
        """Add an object to a collection; 409 when its id is taken."""
        segs = _segments(path)
        _check_writer(ctx, caller, segs, 3)
        body = object_body(await read_body(request))
        probe = _locate(document(config_of(ctx).current()), segs, caller)
        if probe.index is not None or segs == ["fleet"]:
            raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, "POST to a collection")
        ident = body.get(probe.key)
        if any(isinstance(it, dict) and it.get(probe.key) == ident for it in probe.items):
            raise HTTPException(status.HTTP_409_CONFLICT, f"{ident!r} exists already")

        def edit(doc: dict[str, Any]) -> dict[str, Any]:
            _locate(doc, segs, caller).items.append(body)
            return doc

        rev = await change(
            ctx,
            caller,
            edit,
            comment=f"add {'/'.join(segs)}/{ident}",
            if_match=if_match,
            dry_run=dry_run,
            rel=(*probe.path, len(probe.items)),
        )
        response.headers["ETag"] = f'"{rev}"'
        return {"rev": rev, "dry_run": dry_run, "item": mask(body)}

    @r.put("/registry/{path:path}", dependencies=WRITE)
    async def replace(
        path: RegPath,
        request: Request,
        ctx: Ctx,
        caller: Caller,
        response: Response,
        if_match: IfMatch = None,
        dry_run: DryRun = False,
    ) -> dict[str, Any]:
        """Replace an object (its id stays the one in the path); `fleet` is replaced whole."""
        segs = _segments(path)
        _check_writer(ctx, caller, segs, 2)
        body = object_body(await read_body(request))
        if segs == ["fleet"]:

            def edit_fleet(doc: dict[str, Any]) -> dict[str, Any]:
                doc["fleet"] = body
                return doc

            rev = await change(
                ctx,
                caller,
                edit_fleet,
                comment="replace fleet",
                if_match=if_match,
                dry_run=dry_run,
                rel=("fleet",),
            )
            response.headers["ETag"] = f'"{rev}"'
            return {"rev": rev, "dry_run": dry_run, "item": mask(body)}
        probe = _locate(document(config_of(ctx).current()), segs, caller)
        if probe.index is None:
            raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, "PUT to an object")
        body.setdefault(probe.key, segs[-1])
        if body[probe.key] != segs[-1]:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["body", probe.key],
                        "msg": "differs from the path",
                        "type": "value_error",
                    }
                ],
            )

        def edit(doc: dict[str, Any]) -> dict[str, Any]:
            loc = _locate(doc, segs, caller)
            assert loc.index is not None
            loc.items[loc.index] = body
            return doc

        rev = await change(
            ctx,
            caller,
            edit,
            comment=f"replace {'/'.join(segs)}",
            if_match=if_match,
            dry_run=dry_run,
            rel=(*probe.path, probe.index),
        )
        response.headers["ETag"] = f'"{rev}"'
        return {"rev": rev, "dry_run": dry_run, "item": mask(body)}

    @r.delete("/registry/{path:path}", status_code=status.HTTP_204_NO_CONTENT, dependencies=WRITE)
    async def delete(
        path: RegPath,
        ctx: Ctx,
        caller: Caller,
        if_match: IfMatch = None,
        dry_run: DryRun = False,
    ) -> Response:
        """Remove an object (and what it holds). What still refers to it is named (422)."""
        segs = _segments(path)
        _check_writer(ctx, caller, segs, 3)
        probe = _locate(document(config_of(ctx).current()), segs, caller)
        if probe.index is None:
            raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, "DELETE an object")

        def edit(doc: dict[str, Any]) -> dict[str, Any]:
            loc = _locate(doc, segs, caller)
            assert loc.index is not None
            del loc.items[loc.index]
            return doc

        rev = await change(
            ctx,
            caller,
            edit,
            comment=f"delete {'/'.join(segs)}",
            if_match=if_match,
            dry_run=dry_run,
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"ETag": f'"{rev}"'})

    r.include_router(config_router())
    return r
