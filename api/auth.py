"""Bearer API keys and roles. Keys are kept only as SHA-256 digests; the key itself is never logged.

Roles: admin and operator see every tenant (or the tenants listed on the key), enterprise and
viewer only the tenants on their key. A request for an object of a tenant the caller may not see
answers 404, as if it did not exist, so that ids do not leak.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from telemetry.config import ApiKeySpec

__all__ = ["KeyRing", "Principal", "current_principal", "hash_key"]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    tenants: frozenset[str] | None  # None: every tenant

    def sees(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def scope(self, all_tenants: Iterable[str]) -> list[str]:
        return [t for t in all_tenants if self.sees(t)]


class KeyRing:
    def __init__(self, keys: Iterable[ApiKeySpec]) -> None:
        self._keys = {k.sha256: k for k in keys}

    def authenticate(self, key: str) -> Principal | None:
        digest = hash_key(key)
        for known, spec in self._keys.items():
            if hmac.compare_digest(known, digest):
                tenants = frozenset(spec.tenants) if spec.tenants else None
                return Principal(spec.name, spec.role, tenants)
        return None


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
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
