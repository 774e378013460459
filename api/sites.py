"""Sites over HTTP, with the GB 18218-2018 identification and grade computed from each site's
configured inventory (`telemetry.hazard`) beside the grade the site declares. Tenant-scoped: a
site of another tenant answers 404.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from api.auth import Principal
from api.context import AppContext, Caller, Ctx, narrowed, not_found
from telemetry import hazard
from telemetry.config import SiteSpec

__all__ = ["site_router"]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class HazardItemPublic(_Public):
    substance: str
    name: str
    cas: str | None
    quantity_t: float
    critical_t: float
    q_over_q: float
    beta: float
    critical_source: str  # table1 | config
    beta_source: str  # table3 | a GHS category (Table 4) | config
    # the configuration's critical_t where it differs from the built-in Q, which is used
    critical_t_given: float | None


class HazardPublic(_Public):
    s: float
    is_major: bool
    people_500m: int | None
    alpha: float | None
    r: float | None
    grade: int | None
    items: list[HazardItemPublic]


class SitePublic(_Public):
    tenant: str
    id: str
    kind: str
    name: str
    declared_grade: int | None
    hazard: HazardPublic | None  # None: no inventory configured
    mismatch: bool  # the declared grade contradicts the computed one


def _site_public(tenant: str, site: SiteSpec) -> SitePublic:
    found: HazardPublic | None = None
    mismatch = False
    if site.inventory is not None:
        a = hazard.assess([i.resolve() for i in site.inventory], site.people_500m)
        mismatch = a.differs_from(site.major_hazard_grade)
        found = HazardPublic(
            s=float(a.s),
            is_major=a.is_major,
            people_500m=site.people_500m,
            alpha=None if a.alpha is None else float(a.alpha),
            r=None if a.r is None else float(a.r),
            grade=a.grade,
            items=[
                HazardItemPublic(
                    substance=i.substance,
                    name=i.name,
                    cas=i.cas,
                    quantity_t=float(i.quantity_t),
                    critical_t=float(i.critical_t),
                    q_over_q=float(i.ratio),
                    beta=float(i.beta),
                    critical_source=i.critical_source,
                    beta_source=i.beta_source,
                    critical_t_given=(
                        None if i.critical_t_given is None else float(i.critical_t_given)
                    ),
                )
                for i in a.items
            ],
        )
    return SitePublic(
        tenant=tenant,
        id=site.id,
        kind=site.kind,
        name=site.name,
        declared_grade=site.major_hazard_grade,
        hazard=found,
        mismatch=mismatch,
    )


def _visible_sites(ctx: AppContext, caller: Principal) -> list[tuple[str, SiteSpec]]:
    return [(t.id, s) for t in ctx.registry.config.tenants if caller.sees(t.id) for s in t.sites]


def site_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["sites"])

    @r.get("/sites", response_model=list[SitePublic])
    def list_sites(
        ctx: Ctx, caller: Caller, tenant: str | None = None, mismatch: bool | None = None
    ) -> list[SitePublic]:
        """The caller's sites with the computed major-hazard identification and grade."""
        narrowed(ctx, caller, tenant)
        found = [
            _site_public(t, s)
            for t, s in _visible_sites(ctx, caller)
            if tenant is None or t == tenant
        ]
        return [p for p in found if mismatch is None or p.mismatch == mismatch]

    @r.get("/sites/{tenant}/{site}", response_model=SitePublic)
    def get_site(tenant: str, site: str, ctx: Ctx, caller: Caller) -> SitePublic:
        for t, s in _visible_sites(ctx, caller):
            if (t, s.id) == (tenant, site):
                return _site_public(t, s)
        raise not_found(f"site {tenant}/{site}")

    return r
