"""The limits on a tenant's notification objects (`telemetry.notifyconfig.TENANT_LIMITS`: 50
subscriptions, 20 escalation policies, 100 silences) for a configuration changed through the API
(an import, a registry change, a restore): the configuration's objects and those made through
the API counted together, as `/subscriptions`, `/escalation-policies` and `/silences` count
them. The configuration's own check sees its file alone, and an admin split 60 subscriptions
as 30 in the file and 30 through the API.

A configuration's object replaces one made through the API of the same id (the hub stores one
per id), so the count is of their ids together. A tenant that holds more already (objects of
before the limits) may change anything that does not make it hold more.
"""

from __future__ import annotations

from collections import defaultdict

import orjson

from alerts.notify.notifier import Notifier
from api.configadmin import ConfigRefusedError
from telemetry.config import HubConfig, TenantSpec
from telemetry.notifyconfig import over_limit

__all__ = ["refuse_over_limits"]

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


def refuse_over_limits(notifier: Notifier | None, running: HubConfig, config: HubConfig) -> None:
    """ConfigRefusedError when `config` makes a tenant hold more subscriptions, escalation
    policies or silences than its limit, those made through the API counted, and more than it
    holds under `running`; an error per tenant and kind, at the tenant's list."""
    if notifier is None:
        return
    before = {t.id: t for t in running.tenants}
    errors = []
    for kind, field, route in _KINDS:
        api = _made_through_api(notifier, kind)
        for i, tenant in enumerate(config.tenants):
            mine = _ids(tenant, field)
            theirs = api.get(tenant.id, set()) - mine
            total = len(mine) + len(theirs)
            held = len(_ids(before.get(tenant.id), field) | api.get(tenant.id, set()))
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
