"""Bearer API keys and roles. Keys are kept only as SHA-256 digests; the key itself is never logged.

Roles: admin and operator see every tenant (or the tenants listed on the key), enterprise and
viewer only the tenants on their key. A request for an object of a tenant the caller may not see
answers 404, as if it did not exist, so that ids do not leak.

Keys come from the configuration (`api_keys`, digests written by hand or by `hazardhub`) and from
the API (`api.keys`: made, shown once, expiring, revocable; kept in `api.registrydb`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.registrydb import KeyRow, RegistryDB
from telemetry.config import ApiKeySpec

__all__ = ["KeyRing", "KeyWatch", "Principal", "current_key_watch", "current_principal", "hash_key"]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    tenants: frozenset[str] | None  # None: every tenant
    expires_ms: int | None = None  # a key made through the API: when it stops authenticating

    def sees(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def scope(self, all_tenants: Iterable[str]) -> list[str]:
        return [t for t in all_tenants if self.sees(t)]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class KeyRing:
    """The keys that authenticate: the configuration's, and the API's (when given `db`), which
    count only until they expire or are revoked. A lookup is by digest: a dictionary, not a
    scan, and what it could leak by its timing is about a digest, not about a key."""

    def __init__(
        self,
        keys: Iterable[ApiKeySpec],
        db: RegistryDB | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._config = {k.sha256: k for k in keys}
        self.db = db
        self._clock = clock
        self._lock = threading.Lock()
        self._made: dict[str, KeyRow] = {}
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
            self._generation += 1

    def refresh(self) -> None:
        """Read the API's keys again (after one was made or revoked)."""
        if self.db is None:
            return
        made = {r.sha256: r for r in self.db.api_keys() if r.revoked_ms is None}
        with self._lock:
            self._made = made
            self._generation += 1

    @property
    def generation(self) -> int:
        """Counts the changes of the keys (made, revoked, a new configuration's)."""
        return self._generation

    def authenticate(self, key: str) -> Principal | None:
        return self.by_digest(hash_key(key))

    def by_digest(self, digest: str) -> Principal | None:
        """The caller of the key of SHA-256 `digest`, as the keys are now."""
        with self._lock:
            spec = self._config.get(digest)
            row = self._made.get(digest)
        if spec is not None:
            tenants = frozenset(spec.tenants) if spec.tenants else None
            return Principal(spec.name, spec.role, tenants)
        if row is not None and row.valid_at(self._clock()):
            tenants = frozenset(row.tenants) if row.tenants else None
            return Principal(row.name, row.role, tenants, row.expires_ms)
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


async def current_key_watch(
    request: Request,
    caller: Annotated[Principal, Depends(current_principal)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> KeyWatch:
    """The caller's key, to be checked again for as long as the request lasts."""
    assert credentials is not None  # current_principal answered 401 without one
    ring: KeyRing = request.app.state.ctx.keys
    return KeyWatch(ring, hash_key(credentials.credentials), caller)
