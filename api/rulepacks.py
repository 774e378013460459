"""The rule packs in force over HTTP: every pack the running hub's sensors may name (``pack.rule``),
the shipped ones (``profiles/rules/``), a site's folders' and the configuration's own
(``rule_packs:``), each with its rules as they judge. Read by every key: the packs are the
regulations' numbers, not an enterprise's data; the count of sensors using a rule counts only the
sensors the key sees. Changing the configuration's own packs is ``/api/v1/registry/rule-packs``
(an admin's); the shipped and folder packs change with their files and a restart.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.context import AppContext, Caller, Ctx, not_found
from telemetry.ruleconfig import RulePack

__all__ = ["rule_pack_router", "spec_json"]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class RulePublic(_Public):
    name: str = Field(description="as sensors name it: `pack.rule`")
    spec: dict[str, Any] = Field(description="the rule as configured: levels, delays, options")
    sensors: int = Field(description="sensors the key sees that are judged by this rule")


class RulePackPublic(_Public):
    name: str
    description: str
    source: str = Field(description="the regulation or standard its numbers come from")
    origin: str = Field(
        description="`profiles`: a file of the shipped or a site's profiles folder; "
        "`configuration`: the configuration's own `rule_packs:` (which wins over a file's pack "
        "of the same name)"
    )
    rules: list[RulePublic]


def spec_json(spec: BaseModel) -> dict[str, Any]:
    """A rule, or a part of one, as the configuration says it (what is not set left out)."""
    return spec.model_dump(mode="json", exclude_none=True)


def _public(ctx: AppContext, pack: RulePack, used: Counter[str]) -> RulePackPublic:
    inline = any(p.name == pack.name for p in ctx.registry.config.rule_packs)
    return RulePackPublic(
        name=pack.name,
        description=pack.description,
        source=pack.source,
        origin="configuration" if inline else "profiles",
        rules=[
            RulePublic(
                name=f"{pack.name}.{rule}",
                spec=spec_json(spec),
                sensors=used[f"{pack.name}.{rule}"],
            )
            for rule, spec in pack.rules.items()
        ],
    )


def _used(ctx: AppContext, caller: Principal) -> Counter[str]:
    return Counter(s.rule for s in ctx.registry.sensors if caller.sees(s.tenant) and s.rule)


def rule_pack_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["rule-packs"])

    @r.get("/rule-packs", response_model=list[RulePackPublic])
    def list_packs(ctx: Ctx, caller: Caller) -> list[RulePackPublic]:
        """Every rule pack in force, by name, with its rules and how many of the caller's
        sensors each judges."""
        used = _used(ctx, caller)
        packs = ctx.registry.packs
        return [_public(ctx, packs[name], used) for name in sorted(packs)]

    @r.get("/rule-packs/{name}", response_model=RulePackPublic)
    def get_pack(name: str, ctx: Ctx, caller: Caller) -> RulePackPublic:
        pack = ctx.registry.packs.get(name)
        if pack is None:
            raise not_found(f"rule pack {name!r}")
        return _public(ctx, pack, _used(ctx, caller))

    return r
