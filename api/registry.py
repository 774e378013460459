"""The registry over HTTP: tenants, sites, devices, sensors, voting groups, vehicles, rule packs and
the fleet's geofences; the whole configuration exported and imported as YAML; its revisions.

Everyone reads what their key sees (another tenant's objects answer 404); only admins change
anything: the registry is the supervision centre's record, and a sensor's levels are the
regulations' numbers, so an enterprise does not edit its own. Every change is checked whole, as a
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

import orjson
import yaml
from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status

from api.auth import Principal
from api.configadmin import ConfigAdmin, ConfigRefusedError, StaleRevisionError, document, mask
from api.context import AppContext, Caller, Ctx, not_found, require_writer
from telemetry.registry import safe_yaml

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


@dataclass(slots=True)
class _Loc:
    items: list[Any]  # the collection
    key: str  # the key field of its items
    index: int | None  # the object's place, None for the collection itself
    path: tuple[Any, ...]  # document path of the collection
    tenant: str | None  # the tenant the path is under


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


def _admin(ctx: AppContext, caller: Principal) -> ConfigAdmin:
    require_writer(caller)
    if caller.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the registry is changed by admins")
    return _config(ctx)


def _config(ctx: AppContext) -> ConfigAdmin:
    if ctx.config is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "this hub does not change its configuration live"
        )
    return ctx.config


def _segments(path: str) -> list[str]:
    segs = [s for s in path.split("/") if s]
    if not segs or len(segs) > _MAX_SEGMENTS:
        raise not_found(f"registry path {path!r}")
    return segs


def _expect(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, "If-Match: not a revision")
    return int(text)


def _relative(errors: list[dict[str, Any]], path: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Field errors inside the edited object located from the object; the others whole."""
    out = []
    for e in errors:
        loc = list(e["loc"])
        if len(loc) > len(path) + 1 and tuple(loc[1 : 1 + len(path)]) == path:
            loc = ["body", *loc[1 + len(path) :]]
        out.append({**e, "loc": loc})
    return out


async def _change(
    ctx: AppContext,
    caller: Principal,
    edit: Any,
    *,
    comment: str,
    source: Any = "api",
    if_match: str | None,
    dry_run: bool,
    rel: tuple[Any, ...] = (),
) -> int:
    admin = _admin(ctx, caller)
    try:
        return await admin.change(
            edit,
            actor=caller.name,
            comment=comment,
            source=source,
            expect_rev=_expect(if_match),
            dry_run=dry_run,
        )
    except StaleRevisionError as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from exc
    except ConfigRefusedError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, _relative(exc.errors, rel)
        ) from exc


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        if "yaml" in request.headers.get("content-type", ""):
            return safe_yaml(raw.decode("utf-8"))
        return orjson.loads(raw)
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body"], "msg": f"not valid YAML or JSON: {exc}", "type": "parse_error"}],
        ) from exc


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body"], "msg": "an object is expected", "type": "type_error"}],
        )
    return value


DryRun = Annotated[bool, Query(description="check the change without making it")]
IfMatch = Annotated[str | None, Header(description="the revision the change is based on")]
RegPath = Annotated[str, Path(description="see the module description", max_length=1000)]


def registry_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["registry"])

    @r.get("/registry/{path:path}")
    def read(path: RegPath, ctx: Ctx, caller: Caller, response: Response) -> Any:
        """A collection (a list) or one object of the registry, as the configuration has it."""
        admin = _config(ctx)
        segs = _segments(path)
        doc = document(admin.current())
        response.headers["ETag"] = f'"{admin.rev}"'
        if segs == ["fleet"]:
            if caller.role not in ("admin", "operator") or caller.tenants is not None:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "the fleet settings span tenants")
            return mask(doc.get("fleet", {}))
        loc = _locate(doc, segs, caller)
        if loc.index is not None:
            return mask(loc.items[loc.index])
        items = loc.items
        if segs == ["tenants"]:
            items = [t for t in items if caller.sees(str(t.get("id")))]
        return mask(items)

    @r.post("/registry/{path:path}", status_code=status.HTTP_201_CREATED)
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
        _admin(ctx, caller)
        segs = _segments(path)
        body = _object(await _body(request))
        probe = _locate(document(_config(ctx).current()), segs, caller)
        if probe.index is not None or segs == ["fleet"]:
            raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, "POST to a collection")
        ident = body.get(probe.key)
        if any(isinstance(it, dict) and it.get(probe.key) == ident for it in probe.items):
            raise HTTPException(status.HTTP_409_CONFLICT, f"{ident!r} exists already")

        def edit(doc: dict[str, Any]) -> dict[str, Any]:
            _locate(doc, segs, caller).items.append(body)
            return doc

        rev = await _change(
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

    @r.put("/registry/{path:path}")
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
        _admin(ctx, caller)
        segs = _segments(path)
        body = _object(await _body(request))
        if segs == ["fleet"]:

            def edit_fleet(doc: dict[str, Any]) -> dict[str, Any]:
                doc["fleet"] = body
                return doc

            rev = await _change(
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
        probe = _locate(document(_config(ctx).current()), segs, caller)
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

        rev = await _change(
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

    @r.delete("/registry/{path:path}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete(
        path: RegPath,
        ctx: Ctx,
        caller: Caller,
        if_match: IfMatch = None,
        dry_run: DryRun = False,
    ) -> Response:
        """Remove an object (and what it holds). What still refers to it is named (422)."""
        _admin(ctx, caller)
        segs = _segments(path)
        probe = _locate(document(_config(ctx).current()), segs, caller)
        if probe.index is None:
            raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, "DELETE an object")

        def edit(doc: dict[str, Any]) -> dict[str, Any]:
            loc = _locate(doc, segs, caller)
            assert loc.index is not None
            del loc.items[loc.index]
            return doc

        rev = await _change(
            ctx,
            caller,
            edit,
            comment=f"delete {'/'.join(segs)}",
            if_match=if_match,
            dry_run=dry_run,
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"ETag": f'"{rev}"'})

    @r.get("/geofences")
    def geofences(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
        """The geofences for the map: speed zones and forbidden areas (public rules of the
        road) for everyone; an approved-route corridor only with the vehicles the caller sees,
        and not at all when it sees none of them."""
        reg = ctx.registry
        visible = {f"{t}/{v}" for (t, v) in reg.vehicles if caller.sees(t)}
        bare: dict[str, list[str]] = {}
        for t, v in reg.vehicles:
            bare.setdefault(v, []).append(f"{t}/{v}")
        out = []
        for fence in reg.config.fleet.geofences:
            item = fence.model_dump(mode="json", exclude_none=True)
            if fence.kind == "corridor":
                refs = [r for ref in fence.vehicles for r in bare.get(ref, [ref])]
                seen = [r for r in refs if r in visible]
                if not seen:
                    continue
                item["vehicles"] = [r.split("/", 1)[1] for r in seen]
            out.append(item)
        return out

    @r.get("/config", response_class=Response)
    def export(
        ctx: Ctx,
        caller: Caller,
        fmt: Annotated[str, Query(alias="format", pattern="^(yaml|json)$")] = "yaml",
    ) -> Response:
        """The whole configuration (admins), secrets hidden; import it back with PUT."""
        admin = _admin(ctx, caller)
        data = mask(document(admin.current()))
        headers = {"ETag": f'"{admin.rev}"', "Cache-Control": "no-store"}
        if fmt == "json":
            return Response(orjson.dumps(data), media_type="application/json", headers=headers)
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        return Response(text, media_type="application/yaml", headers=headers)

    @r.put("/config")
    async def import_config(
        request: Request,
        ctx: Ctx,
        caller: Caller,
        response: Response,
        comment: Annotated[str, Query(max_length=500)] = "import",
        if_match: IfMatch = None,
        dry_run: DryRun = False,
    ) -> dict[str, Any]:
        """Replace the whole configuration (YAML with `Content-Type: application/yaml`, or
        JSON). Secrets shown as ******** keep their running values."""
        _admin(ctx, caller)
        body = _object(await _body(request))
        rev = await _change(
            ctx,
            caller,
            lambda _doc: body,
            comment=comment,
            source="import",
            if_match=if_match,
            dry_run=dry_run,
        )
        response.headers["ETag"] = f'"{rev}"'
        return {"rev": rev, "dry_run": dry_run}

    @r.get("/config/revisions")
    def revisions(
        ctx: Ctx,
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> list[dict[str, Any]]:
        """The configuration's revisions, newest first: who, when, why, from where."""
        admin = _admin(ctx, caller)
        return [
            {
                "rev": r.rev,
                "created_ms": r.created_ms,
                "actor": r.actor,
                "comment": r.comment,
                "source": r.source,
                "running": r.rev == admin.rev,
            }
            for r in admin.db.revisions(limit, before)
        ]

    @r.post("/config/revisions/{rev}/restore")
    async def restore(
        rev: Annotated[int, Path(ge=1, le=2**62)],
        ctx: Ctx,
        caller: Caller,
        response: Response,
        dry_run: DryRun = False,
    ) -> dict[str, Any]:
        """Go back to an earlier revision (recorded as a new one)."""
        admin = _admin(ctx, caller)
        old = admin.db.revision(rev)
        if old is None:
            raise not_found(f"revision {rev}")
        new = await _change(
            ctx,
            caller,
            lambda _doc: old.document,
            comment=f"restore revision {rev}",
            if_match=None,
            dry_run=dry_run,
        )
        response.headers["ETag"] = f'"{new}"'
        return {"rev": new, "dry_run": dry_run, "restored": rev}

    return r
