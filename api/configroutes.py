"""The whole configuration over HTTP: export and import as YAML (admins), its revisions and a
rollback; the geofences for the map; and what the registry routes (`api.registry`) share:
admin checks, revisions as ETags, field errors located from the edited object.

A change is checked whole, recorded as a revision and taken by the running hub without a
restart (`api.configadmin`). Secrets are exported as ``********`` and an import that keeps
``********`` keeps the running secret.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
import yaml
from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status

from api.auth import Principal
from api.configadmin import ConfigAdmin, ConfigRefusedError, StaleRevisionError, document, mask
from api.configlimits import refuse_over_limits
from api.context import WRITE, AppContext, Caller, Ctx, WriteGuard, not_found, require_writer
from api.yamlbody import YamlTooLargeError, load_yaml
from telemetry.registry import Registry

__all__ = [
    "DryRun",
    "IfMatch",
    "admin_of",
    "change",
    "config_of",
    "config_router",
    "object_body",
    "read_body",
    "whole_admin_of",
]


def admin_of(ctx: AppContext, caller: Principal) -> ConfigAdmin:
    """The live configuration, for an admin (of every tenant, or of some: the registry routes
    then keep it to the objects under its tenants)."""
    require_writer(caller)
    if caller.role != "admin":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the configuration and the registry are an admin key's, to read and to change",
        )
    return config_of(ctx)


def whole_admin_of(ctx: AppContext, caller: Principal) -> ConfigAdmin:
    """The live configuration, for an admin of every tenant: what spans tenants (the whole
    configuration, its revisions, the tenants themselves, rule packs, the fleet settings) is
    neither shown to nor changed by an admin limited to some."""
    admin = admin_of(ctx, caller)
    if caller.tenants is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this spans tenants: it needs an admin key of every tenant (this key is limited to"
            " some)",
        )
    return admin


def config_of(ctx: AppContext) -> ConfigAdmin:
    if ctx.config is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "this hub does not change its configuration live"
        )
    return ctx.config


def _expect(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, "If-Match: not a revision")
    return int(text)


def _relative(errors: list[dict[str, Any]], path: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Field errors inside the edited object, or of the object itself (`["body"]`), located
    from the object; the others whole."""
    out = []
    for e in errors:
        loc = list(e["loc"])
        if len(loc) > len(path) and tuple(loc[1 : 1 + len(path)]) == path:
            loc = ["body", *loc[1 + len(path) :]]
        out.append({**e, "loc": loc})
    return out


async def change(
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
    admin = admin_of(ctx, caller)
    try:
        return await admin.change(
            edit,
            actor=caller.name,
            comment=comment,
            source=source,
            expect_rev=_expect(if_match),
            dry_run=dry_run,
            # a tenant's subscriptions, policies and silences counted with the API's
            vet=functools.partial(refuse_over_limits, ctx.notifier),
        )
    except StaleRevisionError as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from exc
    except ConfigRefusedError as exc:
        errors = _relative(exc.errors, rel)
        if caller.tenants is not None:
            errors = _unseen(errors, document(admin.current()), caller, ctx.registry)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, errors) from exc


# what a key limited to some tenants is told of an error in another tenant's part
_ELSEWHERE = (
    "the change conflicts with the configuration outside this key's tenants (an id it uses is"
    " taken there, for one): where and what is not said"
)


# a sensor id of the change that is used elsewhere too (`telemetry.registry`)
_USED_TWICE = re.compile(r"sensor id '([^']*)' is used twice")
# a plate or a terminal number of the change that another vehicle has (`telemetry.registrychecks`)
_ALSO = re.compile(r"^(plate|terminal) (.+?) is also ([^/\s]+)/\S+'s\b")
_OTHERS_VEHICLE = {
    "plate": "{what} {value} is taken by another enterprise's vehicle: a plate names one vehicle"
    " of the whole hub, every enterprise's (compared without its dot, spaces and dashes)",
    "terminal": "{what} {value} is taken by another enterprise's vehicle: a terminal's number"
    " names one vehicle of the whole hub, every enterprise's (compared without leading zeros)",
}


def _taken(msg: str, caller: Principal, registry: Registry) -> str:
    """`msg` for a key limited to some tenants: a sensor id of its change that another tenant
    uses is said to be taken, no more ("used twice" told it another enterprise has a sensor of
    that id, and the error's place in the configuration told where: helper-120); so is a plate
    or a terminal number of another tenant's vehicle ("is also north-coal/coal-truck-7's" let
    an admin of one enterprise look up whose a plate or a SIM is with a dry run: helper-220)."""
    also = _ALSO.match(msg)
    if also is not None:
        what, value, tenant = also.groups()
        if caller.sees(tenant):
            return msg
        return _OTHERS_VEHICLE[what].format(what=what, value=value)
    found = _USED_TWICE.search(msg)
    info = registry.sensor(found.group(1)) if found else None
    if found is None or info is None or caller.sees(info.tenant):
        return msg
    return (
        f"sensor id {found.group(1)!r} is taken: sensor ids are unique across the hub, every"
        " enterprise's; choose another"
    )


def _unseen(
    errors: list[dict[str, Any]], doc: dict[str, Any], caller: Principal, registry: Registry
) -> list[dict[str, Any]]:
    """The errors for a key limited to some tenants: one located in another tenant's part of
    the configuration (a sensor id used there too) would say where that tenant has what; it
    becomes one error of the change, saying neither. One located in the change that says a
    sensor id of another tenant is used twice says only that the id is taken."""
    tenants = doc.get("tenants") or []
    out: list[dict[str, Any]] = []
    elsewhere = {"loc": ["body"], "msg": _ELSEWHERE, "type": "config_error"}
    for e in errors:
        loc = e["loc"]
        if len(loc) > 2 and loc[1] == "tenants" and isinstance(loc[2], int):
            t = tenants[loc[2]] if loc[2] < len(tenants) else None
            if not (isinstance(t, dict) and caller.sees(str(t.get("id")))):
                if elsewhere not in out:
                    out.append(elsewhere)
                continue
        out.append({**e, "msg": _taken(str(e["msg"]), caller, registry)})
    return out


def _parse(raw: bytes, is_yaml: bool) -> Any:
    try:
        if is_yaml:
            return load_yaml(raw.decode("utf-8"))
        return orjson.loads(raw)
    except YamlTooLargeError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from exc
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body"], "msg": f"not valid YAML or JSON: {exc}", "type": "parse_error"}],
        ) from exc


async def read_body(request: Request) -> Any:
    """The body as plain data: YAML (`Content-Type: application/yaml`; 413 for one whose aliases
    expand it past `api.yamlbody.MAX_NODES`) or JSON, parsed off the event loop."""
    raw = await request.body()
    is_yaml = "yaml" in request.headers.get("content-type", "")
    return await asyncio.to_thread(_parse, raw, is_yaml)


def object_body(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body"], "msg": "an object is expected", "type": "type_error"}],
        )
    return value


DryRun = Annotated[bool, Query(description="check the change without making it")]
IfMatch = Annotated[str | None, Header(description="the revision the change is based on")]


def seen_vehicles(registry: Registry, caller: Principal, refs: Sequence[str]) -> list[str]:
    """The vehicles of `refs` (ids, or `tenant/id` where two tenants share an id) the caller
    sees, as ids."""
    visible = {f"{t}/{v}" for (t, v) in registry.vehicles if caller.sees(t)}
    bare: dict[str, list[str]] = {}
    for t, v in registry.vehicles:
        bare.setdefault(v, []).append(f"{t}/{v}")
    found = [r for ref in refs for r in bare.get(ref, [ref])]
    return [r.split("/", 1)[1] for r in found if r in visible]


def seen_fences(
    registry: Registry, caller: Principal, fences: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The geofences the caller is shown: every speed zone and forbidden area (public rules of
    the road); a corridor only with the vehicles it sees, none without them."""
    out = []
    for fence in fences:
        if fence.get("kind") == "corridor":
            seen = seen_vehicles(registry, caller, fence.get("vehicles") or ())
            if not seen:
                continue
            fence = {**fence, "vehicles": seen}  # noqa: PLW2901 (the corridor as shown)
        out.append(fence)
    return out


def config_router() -> APIRouter:
    """The routes under /config and /geofences; `api.registry` mounts them under /api/v1."""
    r = APIRouter(route_class=WriteGuard, tags=["registry"])

    @r.get("/geofences")
    def geofences(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
        """The geofences for the map: speed zones and forbidden areas (public rules of the
        road) for everyone; an approved-route corridor only with the vehicles the caller sees,
        and not at all when it sees none of them."""
        fleet = ctx.registry.config.fleet
        fences = [f.model_dump(mode="json", exclude_none=True) for f in fleet.geofences]
        return seen_fences(ctx.registry, caller, fences)

    @r.get("/config", response_class=Response)
    def export(
        ctx: Ctx,
        caller: Caller,
        fmt: Annotated[str, Query(alias="format", pattern="^(yaml|json)$")] = "yaml",
    ) -> Response:
        """The whole configuration (admins of every tenant), secrets hidden; import it back with
        PUT."""
        admin = whole_admin_of(ctx, caller)
        data = mask(document(admin.current()))
        headers = {"ETag": f'"{admin.rev}"', "Cache-Control": "no-store"}
        if fmt == "json":
            return Response(orjson.dumps(data), media_type="application/json", headers=headers)
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        return Response(text, media_type="application/yaml", headers=headers)

    @r.put("/config", dependencies=WRITE)
    async def importconfig_of(
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
        whole_admin_of(ctx, caller)
        body = object_body(await read_body(request))
        rev = await change(
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
        admin = whole_admin_of(ctx, caller)
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

    @r.post("/config/revisions/{rev}/restore", dependencies=WRITE)
    async def restore(
        rev: Annotated[int, Path(ge=1, le=2**62)],
        ctx: Ctx,
        caller: Caller,
        response: Response,
        dry_run: DryRun = False,
    ) -> dict[str, Any]:
        """Go back to an earlier revision (recorded as a new one)."""
        admin = whole_admin_of(ctx, caller)
        old = admin.db.revision(rev)
        if old is None:
            raise not_found(f"revision {rev}")
        new = await change(
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
