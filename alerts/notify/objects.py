"""The notification pipeline's objects: subscriptions, escalation policies and silences, per
tenant. Those of the configuration (origin 'config') are written again at start and at every
configuration change; those made through the API stay: origin 'api' when written last by the
monitoring centre (an admin or operator key), 'enterprise' when by an enterprise key. The
centre's objects (the file's and its API ones) are the centre's: an enterprise may read them and
point its own subscriptions at its policies, not change or delete them. Kept in the state
database (`notify_objects`), read into memory for routing.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import orjson
from pydantic import ValidationError

from alerts.notify.store import NotifyStore
from alerts.statedb import StateDB
from telemetry.notifyconfig import (
    CENTRE,
    EscalationPolicySpec,
    SilenceSpec,
    SubscriptionSpec,
    WebhookChannel,
)
from telemetry.registry import Registry

__all__ = [
    "KINDS",
    "OWNERS",
    "NotifyCatalog",
    "NotifyObjectError",
    "NotifyOwnerError",
    "webhook_urls",
]

log = logging.getLogger(__name__)

KINDS: dict[str, Any] = {
    "subscription": SubscriptionSpec,
    "escalation": EscalationPolicySpec,
    "silence": SilenceSpec,
}


# who an object is, by its origin: the file's and the API objects of admin and operator keys
# are the monitoring centre's; an enterprise key's are the enterprise's
OWNERS = {"config": "centre", "api": "centre", "enterprise": "enterprise"}


def webhook_urls(spec: Any) -> list[str]:
    """The webhook URLs of a subscription (its channel) or an escalation policy (its steps')."""
    channels = [getattr(spec, "channel", None)]
    channels += [step.channel for step in getattr(spec, "steps", ())]
    return [c.url for c in channels if isinstance(c, WebhookChannel)]


class NotifyObjectError(ValueError):
    """A subscription, policy or silence that cannot be stored (unknown reference, bad id)."""


class NotifyOwnerError(PermissionError):
    """An enterprise changing or deleting one of the monitoring centre's objects."""


F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """One change of the catalog at a time (API threads, reloads): a change reads the maps,
    writes the database and replaces the maps, and two at once lost one of them in memory."""

    @functools.wraps(method)
    def run(self: NotifyCatalog, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(F, run)


def _said(exc: ValidationError | KeyError) -> str:
    """A stored object's validation errors without their input (pydantic's message repeats the
    input: a channel with its webhook secret, helper-122)."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
    return f"unknown kind {exc}"


def _for_every_tenant(
    subs: dict[str, list[SubscriptionSpec]],
    policies: dict[tuple[str, str], EscalationPolicySpec],
    tenants: Sequence[str],
) -> None:
    """The centre's own subscriptions (kept under tenant `CENTRE`, from `notify.subscriptions`)
    as one of each tenant's, id `*<id>` (no tenant's own can be so named), their policies
    likewise: each tenant's alarms are matched, grouped, repeated and escalated by them as by
    its own, the tenants added later too (helper-115: a centre needed a subscription per
    enterprise, and one added while the hub ran reached nobody)."""
    mine = subs.pop(CENTRE, [])
    theirs = {pid: p for (t, pid), p in policies.items() if t == CENTRE}
    for pid in theirs:
        del policies[(CENTRE, pid)]
    for tenant in tenants:
        for pid, policy in theirs.items():
            policies[(tenant, f"*{pid}")] = policy.model_copy(update={"id": f"*{pid}"})
        for sub in mine:
            escalation = f"*{sub.escalation}" if sub.escalation else None
            subs[tenant].append(
                sub.model_copy(update={"id": f"*{sub.id}", "escalation": escalation})
            )


class NotifyCatalog:
    def __init__(self, db: StateDB, store: NotifyStore) -> None:
        self._db = db
        self._lock = threading.RLock()
        self.store = store
        self.subs: dict[str, list[SubscriptionSpec]] = {}
        self.policies: dict[tuple[str, str], EscalationPolicySpec] = {}
        self.silences: dict[str, list[SilenceSpec]] = {}
        self.timed: dict[str, list[SubscriptionSpec]] = {}  # subscriptions with timers
        # (kind, tenant, id) of the enterprises' objects: their webhooks are guarded
        self.guarded: set[tuple[str, str, str]] = set()
        self.tenants: tuple[str, ...] = ()  # the configured tenants (the centre's hear them all)

    @_locked
    def seed_from_config(self, registry: Registry, now: int) -> None:
        """Write the objects of the configuration file (origin 'config'); objects made through
        the API are left alone."""
        self.tenants = registry.tenants
        centre = registry.config.notify
        owners: list[tuple[str, Sequence[tuple[str, Sequence[Any]]]]] = [
            (
                CENTRE,
                (
                    ("subscription", centre.subscriptions),
                    ("escalation", centre.escalation_policies),
                ),
            )
        ]
        for tenant in registry.config.tenants:
            owners.append(
                (
                    tenant.id,
                    (
                        ("subscription", tenant.subscriptions),
                        ("escalation", tenant.escalation_policies),
                        ("silence", tenant.silences),
                    ),
                )
            )
        with self._db.transaction() as con:
            con.execute("DELETE FROM notify_objects WHERE origin = 'config'")
            for owner, kinds in owners:
                for kind, items in kinds:
                    for spec in items:
                        con.execute(
                            "INSERT OR REPLACE INTO notify_objects "
                            "(kind, tenant, id, spec, origin, actor, updated_at) "
                            "VALUES (?, ?, ?, ?, 'config', 'config', ?)",
                            (kind, owner, spec.id, spec.model_dump_json(), now),
                        )

    @_locked
    def reload(self) -> None:
        subs: dict[str, list[SubscriptionSpec]] = defaultdict(list)
        silences: dict[str, list[SilenceSpec]] = defaultdict(list)
        policies: dict[tuple[str, str], EscalationPolicySpec] = {}
        guarded: set[tuple[str, str, str]] = set()
        for kind, tenant, object_id, spec, origin in self.store.notify_objects(None):
            if OWNERS.get(origin) == "enterprise":
                guarded.add((kind, tenant, object_id))
            try:
                obj = KINDS[kind].model_validate_json(spec)
            except (KeyError, ValidationError) as exc:
                log.error("notify object of %s is not valid and is ignored: %s", tenant, _said(exc))
                continue
            if isinstance(obj, SubscriptionSpec):
                subs[tenant].append(obj)
            elif isinstance(obj, SilenceSpec):
                silences[tenant].append(obj)
            elif isinstance(obj, EscalationPolicySpec):
                policies[(tenant, obj.id)] = obj
        _for_every_tenant(subs, policies, self.tenants)
        self.guarded = guarded  # first: routing never sees an object before its guard
        self.subs = dict(subs)
        self.silences = dict(silences)
        self.policies = policies
        self.timed = {
            t: [s for s in lst if s.repeat_s or s.escalation] for t, lst in self.subs.items()
        }

    def objects(self, kind: str, tenants: Sequence[str] | None) -> list[tuple[str, Any]]:
        """(tenant, spec) of one kind, for the tenants given (None: all)."""
        return [(t, spec) for t, spec, *_ in self.owned_objects(kind, tenants)]

    def owner_of(self, kind: str, tenant: str, object_id: str) -> str:
        """'enterprise' for an enterprise's object (`guarded`), else 'centre' (one not stored
        included)."""
        return "enterprise" if (kind, tenant, object_id) in self.guarded else "centre"

    def owned_objects(
        self, kind: str, tenants: Sequence[str] | None
    ) -> list[tuple[str, Any, str, str, int]]:
        """(tenant, spec, owner, actor, updated_at) of one kind, for the tenants given (None:
        all); owner 'centre' or 'enterprise' (`OWNERS`). A stored object this hub can no longer
        read (saved by an older one, before a check it now makes) is left out and logged, as
        `reload` leaves it out of routing: it never fails the list or a change of another."""
        out = []
        for tenant, spec, origin, actor, at in self.store.notify_object_rows(kind, tenants):
            try:
                obj = KINDS[kind].model_validate_json(spec)
            except ValidationError as exc:
                log.error("notify object of %s is not valid and is ignored: %s", tenant, _said(exc))
                continue
            out.append((tenant, obj, OWNERS.get(origin, "centre"), actor, at))
        return out

    def unknown_names(self, registry: Registry) -> list[str]:
        """What the subscriptions and silences made through the API name that `registry` has
        no more (a site removed by a new configuration), one line each: such a silence holds
        nothing and such a subscription hears nothing of it. The configuration's own are
        checked at load (`telemetry.registry`)."""
        lines = []
        for kind in ("subscription", "silence"):
            for tenant, spec, *_ in self.owned_objects(kind, registry.tenants):
                found = registry.unknown_names(tenant, getattr(spec, "match", spec))
                if found is not None:
                    why = Registry.said_unknown(*found, tenant)
                    lines.append(
                        f"{kind} {spec.id!r} of {tenant} hears or holds nothing of them: {why}"
                    )
        return lines

    def unowned(self, known_keys: Sequence[str]) -> list[str]:
        """The API objects counted as the centre's whose last writer is no key this hub knows
        (one removed from the configuration since): whether they were an enterprise's cannot be
        told, so they are said, one line each, to be checked."""
        known = set(known_keys)
        rows = self._db.query(
            "SELECT kind, tenant, id, actor FROM notify_objects WHERE origin = 'api' ORDER BY id"
        )
        return [
            f"{kind} {oid!r} of {tenant} was last written by key {actor!r}, which this hub does "
            "not know: it counts as the centre's, its webhooks unguarded; check who made it"
            for kind, tenant, oid, actor in rows
            if actor not in known
        ]

    @_locked
    def claim_for_enterprises(self, enterprise_keys: Sequence[str]) -> int:
        """Objects written through the API before owners were kept (origin 'api') by a key that
        is an enterprise's become the enterprise's, so that it may still change what it made.
        Idempotent; the number of objects changed."""
        if not enterprise_keys:
            return 0
        changed = 0
        with self._db.transaction() as con:
            for name in enterprise_keys:
                cur = con.execute(
                    "UPDATE notify_objects SET origin = 'enterprise' WHERE origin = 'api'"
                    " AND actor = ?",
                    (name,),
                )
                changed += cur.rowcount
        if changed:
            self.reload()
        return changed

    @_locked
    def put(
        self,
        registry: Registry,
        kind: str,
        tenant: str,
        spec: Any,
        actor: str,
        now: int,
        *,
        owner: str = "centre",
    ) -> None:
        """Store one object. An object belongs to whoever made it: `owner` 'enterprise' (an
        enterprise key) may not replace one of the centre's (`NotifyOwnerError`), and the
        centre's edit of an enterprise's object leaves it the enterprise's."""
        if tenant not in {t.id for t in registry.config.tenants}:
            raise NotifyObjectError(f"unknown tenant {tenant!r}")
        _names_known(registry, kind, tenant, spec)
        with self._db.transaction() as con:
            origin = _origin_for(con, kind, tenant, spec.id, owner)
            # checked inside the write transaction: a policy deleted meanwhile is seen
            if isinstance(spec, SubscriptionSpec) and spec.escalation is not None:
                found = con.execute(
                    "SELECT 1 FROM notify_objects WHERE kind = 'escalation' AND tenant = ?"
                    " AND id = ?",
                    (tenant, spec.escalation),
                ).fetchone()
                if found is None:
                    raise NotifyObjectError(f"no escalation policy {spec.escalation!r}")
            con.execute(
                "INSERT OR REPLACE INTO notify_objects "
                "(kind, tenant, id, spec, origin, actor, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    tenant,
                    spec.id,
                    spec.model_dump_json(),
                    origin,
                    actor,
                    now,
                ),
            )
        # replaced whole, never changed in place: routing reads it from another thread
        if origin == "enterprise":
            self.guarded = self.guarded | {(kind, tenant, spec.id)}
        else:
            self.guarded = self.guarded - {(kind, tenant, spec.id)}
        self._remember(tenant, spec)

    def _remember(self, tenant: str, spec: Any) -> None:
        """Put one object, already validated, into the in-memory maps (no full reload)."""
        if isinstance(spec, EscalationPolicySpec):
            self.policies[(tenant, spec.id)] = spec
            return
        maps: dict[str, list[Any]] = (
            self.subs if isinstance(spec, SubscriptionSpec) else self.silences
        )
        items = [x for x in maps.get(tenant, []) if x.id != spec.id]
        items.append(spec)
        maps[tenant] = sorted(items, key=lambda x: x.id)
        self.timed[tenant] = [s for s in self.subs.get(tenant, []) if s.repeat_s or s.escalation]

    @_locked
    def delete(self, kind: str, tenant: str, object_id: str, *, owner: str = "centre") -> bool:
        """Delete one object; an enterprise (`owner`) only its own (`NotifyOwnerError`). A
        policy a subscription uses is not deleted (`NotifyObjectError`)."""
        with self._db.transaction() as con:
            if owner == "enterprise":
                _origin_for(con, kind, tenant, object_id, owner, "delete")
            if kind == "escalation":  # inside the transaction: a subscription put meanwhile
                for sub_id, spec in con.execute(
                    "SELECT id, spec FROM notify_objects WHERE kind = 'subscription'"
                    " AND tenant = ?",
                    (tenant,),
                ).fetchall():
                    if orjson.loads(spec).get("escalation") == object_id:
                        raise NotifyObjectError(
                            f"subscription {sub_id!r} of {tenant} still uses policy {object_id!r}"
                        )
            cur = con.execute(
                "DELETE FROM notify_objects WHERE kind = ? AND tenant = ? AND id = ?",
                (kind, tenant, object_id),
            )
            gone = cur.rowcount > 0
        self.reload()
        return gone


def _origin_for(
    con: sqlite3.Connection,
    kind: str,
    tenant: str,
    object_id: str,
    owner: str,
    verb: str = "change",
) -> str:
    """The origin an object written by `owner` keeps: its maker's ('api' for the centre,
    'enterprise'); an enterprise touching one of the centre's is `NotifyOwnerError`."""
    row = con.execute(
        "SELECT origin FROM notify_objects WHERE kind = ? AND tenant = ? AND id = ?",
        (kind, tenant, object_id),
    ).fetchone()
    made_by = None if row is None else OWNERS.get(row[0], "centre")
    if made_by == "enterprise" or (made_by is None and owner == "enterprise"):
        return "enterprise"
    if owner == "enterprise":
        raise NotifyOwnerError(
            f"{kind} {object_id!r} of {tenant} is the monitoring centre's: an enterprise key "
            f"may read it, not {verb} it" + (" (give yours another id)" if verb == "change" else "")
        )
    return "api"  # the centre's, a file's object included once changed through the API


def _names_known(registry: Registry, kind: str, tenant: str, spec: Any) -> None:
    """The sites, devices and sensors a subscription or silence names are the tenant's: a typo
    (`face-1310`) made a silence that silenced nothing, or a subscription that heard nothing,
    without a word."""
    found = registry.unknown_names(tenant, getattr(spec, "match", spec))
    if found is not None:
        field, unknown = found
        raise NotifyObjectError(
            f"{kind} {spec.id!r}: {Registry.said_unknown(field, unknown, tenant)}"
        )
