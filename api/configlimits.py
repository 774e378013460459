"""The limits on a tenant's notification objects (`telemetry.notifyconfig.TENANT_LIMITS`: 50
subscriptions, 20 escalation policies, 100 silences) for a configuration changed through the API
(an import, a registry change, a restore): the configuration's objects and those made through
the API counted together, as `/subscriptions`, `/escalation-policies` and `/silences` count
them. The configuration's own check sees its file alone, and an admin split 60 subscriptions
as 30 in the file and 30 through the API.

A configuration's object replaces one made through the API of the same id (the hub stores one
per id), so the count is of their ids together. A tenant that holds more already (objects of
before the limits) may change anything that does not make it hold more.

The configuration file that wins at start is not refused for them (the hub must start, and
objects stored over a limit keep working): `over_limit_warnings` says, once per tenant and kind,
where it makes a tenant hold more than its limit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import orjson

from alerts.notify.notifier import Notifier
from api.configadmin import ConfigRefusedError
from telemetry.config import HubConfig, TenantSpec
from telemetry.notifyconfig import TENANT_LIMITS, over_limit

__all__ = ["over_limit_warnings", "refuse_over_limits"]

# (kind, the tenant's field, the API's route)
_KINDS = (
    ("subscription", "subscriptions", "subscriptions"),
    ("escalation", "escalation_policies", "escalation-policies"),
    ("silence", "silences", "silences"),
)


def _ids(tenant: TenantSpec | None, field: str) -> set[str]:
    if tenant is None:
        return set()
    return {x.id for x in getattr(tenant, field)}


def _made_through_api(notifier: Notifier, kind: str) -> dict[str, set[str]]:
    """The ids of the objects of `kind` made through the API (by any key), per tenant."""
    out: dict[str, set[str]] = defaultdict(set)
    for tenant, spec, origin, *_ in notifier.store.notify_object_rows(kind, None):
        if origin == "config":
            continue
        try:
            ident = orjson.loads(spec)["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # (one the hub cannot read is left out of routing too)
        if isinstance(ident, str):
            out[tenant].add(ident)
    return out


def _totals(
    notifier: Notifier, config: HubConfig
) -> Iterator[tuple[int, TenantSpec, str, set[str], set[str], set[str]]]:
    """Per kind and tenant of `config`: the tenant's place in the list, the tenant, the kind,
    the ids of its objects in `config`, those of the others made through the API, and those
    made through the API in all."""
    for kind, field, _ in _KINDS:
        api = _made_through_api(notifier, kind)
        for i, tenant in enumerate(config.tenants):
            mine = _ids(tenant, field)
            made = api.get(tenant.id, set())
            yield i, tenant, kind, mine, made - mine, made


def _place(kind: str) -> tuple[str, str]:
    """The tenant's field and the API's route of `kind`."""
    return next((field, route) for k, field, route in _KINDS if k == kind)


def refuse_over_limits(notifier: Notifier | None, running: HubConfig, config: HubConfig) -> None:
    """ConfigRefusedError when `config` makes a tenant hold more subscriptions, escalation
    policies or silences than its limit, those made through the API counted, and more than it
    holds under `running`; an error per tenant and kind, at the tenant's list."""
    if notifier is None:
        return
    before = {t.id: t for t in running.tenants}
    errors = []
    for i, tenant, kind, mine, theirs, made in _totals(notifier, config):
        field, route = _place(kind)
        total = len(mine) + len(theirs)
        held = len(_ids(before.get(tenant.id), field) | made)
        problem = over_limit(kind, total)
        if problem is None or total <= held:
            continue
        errors.append(
            {
                "loc": ["body", "tenants", i, field],
                "msg": (
                    f"tenant {tenant.id!r}: {len(mine)} in the configuration and "
                    f"{len(theirs)} more made through the API (GET /api/v1/{route}"
                    f"?tenant={tenant.id}) are {total}: {problem}"
                ),
                "type": "value_error",
            }
        )
    if errors:
        raise ConfigRefusedError(errors)


def over_limit_warnings(notifier: Notifier, config: HubConfig) -> list[str]:
    """What to log (a warning each) at start where `config`, the configuration the hub starts
    with, and the objects made through the API make a tenant hold more subscriptions, escalation
    policies or silences than its limit: the file that wins at start is not checked against the
    API's objects (`refuse_over_limits` checks changes made while the hub runs). One line per
    tenant and kind, naming the counts and the fix; every object keeps working."""
    lines = []
    for _, tenant, kind, mine, theirs, _made in _totals(notifier, config):
        total = len(mine) + len(theirs)
        if over_limit(kind, total) is None:
            continue
        field, route = _place(kind)
        limit = TENANT_LIMITS[kind]
        lines.append(
            f"tenant {tenant.id!r}: {len(mine)} {field.replace('_', ' ')} in the "
            f"configuration and {len(theirs)} more made through the API (GET /api/v1/{route}"
            f"?tenant={tenant.id}) are {total}, over the limit of {limit}: all keep working, "
            "but none can be added (through the API or a configuration changed through it) "
            f"until the tenant holds {limit} at most: delete {total - limit} through the API "
            f"(DELETE /api/v1/{route}/{tenant.id}/<id>) or leave them out of the configuration "
            "file"
        )
    return lines
