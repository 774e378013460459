"""`/readyz`: whether the hub judges readings now, for health probes that carry no key.

The reason the hub gives (`IngestService.not_ready`) may name a spool folder's path, InfluxDB's
host and its own words ("authorization failed"), or the time an outage began: it is the centre's
admin's, not everyone's who reaches the port. Without a key (or with any other key) the answer
is `ready`, or `not ready: <cause>` with a short cause code (`broker`, `influxdb_auth`,
`sqlite_full`, `spool_disk`, `store_held`, `ingest_stalled` ...); an admin key of every tenant
reads the reason in full. The status code is the same for both: 200 ready, 503 not.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import KeyRing
from api.context import Ctx

__all__ = ["UNKNOWN", "cause_code", "readyz"]

_bearer = HTTPBearer(auto_error=False, description="an admin key of every tenant: the details")

# the reasons of `IngestService.not_ready`, by how they begin; a store's refusal names its cause
# (`StoreUnavailableError.cause`: `influxdb_auth`, `sqlite_full` ...) in brackets
_REFUSES = re.compile(r"the store refuses writes (?:since \S+ )?\(([a-z][a-z0-9_]{0,39}): ")
_BY_START = (
    ("not subscribed to the broker", "broker"),
    ("the store has refused readings", "store_held"),
    ("a batch taken ", "ingest_stalled"),
)
UNKNOWN = "other"  # a reason of a kind this module does not know yet: no words of it go out


def cause_code(why: str) -> str:
    """The short code of a reason the hub is not ready: letters, digits and `_`, never a path,
    a host or a server's message."""
    found = _REFUSES.match(why)
    if found is not None:
        return found.group(1)
    return next((code for start, code in _BY_START if why.startswith(start)), UNKNOWN)


def _admin_of_every_tenant(ring: KeyRing, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Whether the request carries a working admin key of every tenant. Any other key, or one
    that does not work, is taken as none: a probe's answer never turns 401 or 403."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        return False
    caller = ring.authenticate(credentials.credentials)
    return caller is not None and caller.role == "admin" and caller.tenants is None


async def readyz(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> PlainTextResponse:
    """200 `ready` while the hub is subscribed to the broker and judging; 503 `not ready:
    <cause>` otherwise, the cause a short code (`broker`, `influxdb_auth`, `sqlite_full`,
    `spool_disk`, `store_held`, `ingest_stalled` ...). With an admin key of every tenant, the
    reason in full (it may name the store's address, a spool folder, the store's own words)."""
    why = ctx.not_ready()
    if why is None:
        return PlainTextResponse("ready\n")
    if _admin_of_every_tenant(ctx.keys, credentials):
        return PlainTextResponse(f"not ready: {why}\n", status_code=503)
    return PlainTextResponse(f"not ready: {cause_code(why)}\n", status_code=503)
