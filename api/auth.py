"""Bearer API keys and roles. Keys are kept only as SHA-256 digests; the key itself is never logged.

Roles: admin and operator see every tenant (or the tenants listed on the key), enterprise and
viewer only the tenants on their key. A request for an object of a tenant the caller may not see
answers 404, as if it did not exist, so that ids do not leak.

Keys come from the configuration (`api_keys`, digests written by hand or by `hazardhub`) and from
the API (`api.keys`: made, shown once, expiring, revocable; kept in `api.registrydb`). A key made
through the API works only while its maker does: a maker revoked, expired or gone from the
configuration takes every key made with it (and those they made) along.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.registrydb import KeyRow, RegistryDB
from telemetry.clock import wall_ms
from telemetry.config import ApiKeySpec

__all__ = [
    "WRITERS",
    "KeyRing",
    "KeyWatch",
    "Principal",
    "current_key_watch",
    "current_principal",
    "hash_key",
    "request_principal",
]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    tenants: frozenset[str] | None  # None: every tenant
    expires_ms: int | None = None  # a key made through the API: when it stops authenticating
    source: Literal["config", "api"] = "config"  # where the key is kept

    def sees(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def scope(self, all_tenants: Iterable[str]) -> list[str]:
        return [t for t in all_tenants if self.sees(t)]


WRITERS = frozenset({"admin", "operator", "enterprise"})  # the roles that may write


def _maker_of(row: KeyRow, rows: dict[str, KeyRow]) -> str | None:
    """The name of the API key that made `row`; None when a key of the configuration did. A key
    made before the maker was kept (`maker` NULL) is found by name: an API key of that name made
    before it (names of API keys are never reused: a revoked key keeps its row)."""
    if row.maker is not None:
        return row.created_by if row.maker == "api" else None
    maker = rows.get(row.created_by)
    return None if maker is None or maker.created_ms > row.created_ms else maker.name


def live_until(rows: Iterable[KeyRow], config_names: Iterable[str]) -> dict[str, int | None]:
    """By name, until when each key made through the API authenticates: the earliest expiry of
    the key and its makers, up to a key of the configuration (which does not expire); None for a
    key revoked, or made by a key revoked, gone (a configuration key no longer configured) or
    never known. Expiry aside, computed once per change of the keys, never per request."""
    by_name = {r.name: r for r in rows}
    configured = set(config_names)
    until: dict[str, int | None] = {}
    for name in by_name:
        chain: list[KeyRow] = []
        at: str | None = name
        while at is not None and at not in until:  # up to a known one (iterative: chains are long)
            row = by_name[at]
            until[at] = None  # while unresolved: a cycle, which no maker makes, counts as revoked
            chain.append(row)
            at = _maker_of(row, by_name) if row.revoked_ms is None else None
            if at is not None and at not in by_name:
                break  # its maker's row is gone: revoked
        for row in reversed(chain):
            maker = _maker_of(row, by_name)
            if row.revoked_ms is not None:
                own = None
            elif maker is None:
                own = row.expires_ms if row.created_by in configured else None
            else:
                above = until.get(maker)
                own = None if above is None else min(row.expires_ms, above)
            until[row.name] = own
    return until


class KeyRing:
    """The keys that authenticate: the configuration's, and the API's (when given `db`), which
    count only until they, or their makers, expire or are revoked. A lookup is by digest: a
    dictionary, not a scan, and what it could leak by its timing is about a digest, not about a
    key. Whether a key's makers still work is worked out when the keys change, not per request."""

    def __init__(
        self,
        keys: Iterable[ApiKeySpec],
        db: RegistryDB | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self._config = {k.sha256: k for k in keys}
        self.db = db
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: list[KeyRow] = []
        self._until: dict[str, int | None] = {}
        self._made: dict[str, tuple[KeyRow, int]] = {}  # by digest: the row, until when it works
        self._generation = 0
        self.refresh()

    def now(self) -> int:
        return self._clock()

    @property
    def config_keys(self) -> tuple[ApiKeySpec, ...]:
        return tuple(self._config.values())

    def set_config_keys(self, keys: Iterable[ApiKeySpec]) -> None:
        """A new configuration's keys replace the old configuration's (a reload)."""
        config = {k.sha256: k for k in keys}
        with self._lock:
            self._config = config
            self._settle()

    def refresh(self) -> None:
        """Read the API's keys again (after one was made or revoked)."""
        if self.db is None:
            return
        rows = self.db.api_keys()
        with self._lock:
            self._rows = rows
            self._settle()

    def _settle(self) -> None:
        """(Under the lock) which API keys work, and until when, with these rows and these
        configuration keys."""
        self._until = live_until(self._rows, (k.name for k in self._config.values()))
        self._made = {
            r.sha256: (r, until)
            for r in self._rows
            if (until := self._until.get(r.name)) is not None
        }
        self._generation += 1

    def until(self, name: str) -> int | None:
        """Until when the API key `name` works (its makers' expiry counted); None when it, or
        a maker of it, is revoked or gone."""
        with self._lock:
            return self._until.get(name)

    @property
    def generation(self) -> int:
        """Counts the changes of the keys (made, revoked, a new configuration's)."""
        return self._generation

    def consoles(self) -> frozenset[str]:
        """The tenants with a console of their own: a working key that may write (admin,
        operator, enterprise) limited to tenants that include them. The supervising centre's
        acknowledgement is the site's too for the others (`alerts.desk`)."""
        now = self._clock()
        with self._lock:
            specs: list[tuple[str, Sequence[str] | None]] = [
                (k.role, k.tenants) for k in self._config.values()
            ]
            specs += [(r.role, r.tenants) for r, until in self._made.values() if now < until]
        return frozenset(
            t for role, tenants in specs if role in WRITERS and tenants for t in tenants
        )

    def authenticate(self, key: str) -> Principal | None:
        return self.by_digest(hash_key(key))

    def by_digest(self, digest: str) -> Principal | None:
        """The caller of the key of SHA-256 `digest`, as the keys are now."""
        with self._lock:
            spec = self._config.get(digest)
            made = self._made.get(digest)
        if spec is not None:
            tenants = frozenset(spec.tenants) if spec.tenants else None
            return Principal(spec.name, spec.role, tenants)
        if made is not None and self._clock() < made[1]:
            row, until = made
            tenants = frozenset(row.tenants) if row.tenants else None
            return Principal(row.name, row.role, tenants, until, "api")
        return None


class KeyWatch:
    """A caller's key checked again while a request lasts (a live stream): revoked, expired, or
    changed by a new configuration (its tenants, its role, gone). Cheap when nothing changed:
    a counter compared, and the clock for a key that expires."""

    def __init__(self, ring: KeyRing, digest: str, principal: Principal) -> None:
        self._ring = ring
        self._digest = digest
        self._generation = ring.generation
        self._principal: Principal | None = principal

    @property
    def digest(self) -> str:
        """The SHA-256 digest of the key (what its live streams are counted by)."""
        return self._digest

    def current(self) -> Principal | None:
        """The caller as its key is now; None once the key no longer authenticates (for good:
        a key revoked stays revoked, one expired stays expired)."""
        p = self._principal
        if p is None:
            return None
        ring = self._ring
        generation = ring.generation  # before the lookup: a change during it is seen next time
        if generation != self._generation or (
            p.expires_ms is not None and ring.now() >= p.expires_ms
        ):
            self._generation = generation
            self._principal = ring.by_digest(self._digest)
        return self._principal


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of every request. Async (it does no I/O: a digest and a dictionary lookup), so
    that FastAPI does not send it to its thread pool, a thread hop per request."""
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="a valid API key is required (Authorization: Bearer <key>)",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    ring: KeyRing = request.app.state.ctx.keys
    principal = ring.authenticate(credentials.credentials)
    if principal is None:
        raise unauthorized
    return principal


async def request_principal(request: Request) -> Principal:
    """The caller of `request`, outside FastAPI's dependencies (`api.context.WriteGuard`)."""
    return await current_principal(request, await _bearer(request))


async def current_key_watch(
    request: Request,
    caller: Annotated[Principal, Depends(current_principal)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> KeyWatch:
    """The caller's key, to be checked again for as long as the request lasts."""
    assert credentials is not None  # current_principal answered 401 without one
    ring: KeyRing = request.app.state.ctx.keys
    return KeyWatch(ring, hash_key(credentials.credentials), caller)
