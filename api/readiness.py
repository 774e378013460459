"""`/readyz`: whether the hub judges readings now, for health probes that carry no key; and
`GET /api/v1/readiness`, the same for the dashboard's banner, with since when.

The reason the hub gives (`IngestService.not_ready`) may name a spool folder's path, InfluxDB's
host and its own words ("authorization failed"), or the time an outage began: it is the centre's,
not everyone's who reaches the port. Without a key (or with any other key) `/readyz` answers
`ready`, or `not ready: <cause>` with a short cause code (`broker`, `influxdb_auth`,
`sqlite_full`, `spool_disk`, `store_held`, `ingest_stalled`, `state_db`, `future_time` ...:
`api.readywatch`); an admin key of every tenant reads the reason in full. The status code is
the same for both: 200 ready, 503 not. `/api/v1/readiness` needs a key, as every `/api/v1`
route: the monitoring centre's (an admin or operator key of every tenant) reads the reason in
full, any other key the code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from api.auth import KeyRing
from api.context import Caller, Ctx, is_centre
from api.readywatch import UNKNOWN, cause_code
from telemetry.clock import wall_ms

__all__ = ["UNKNOWN", "ReadinessPublic", "cause_code", "readiness_router", "readyz"]

_bearer = HTTPBearer(auto_error=False, description="an admin key of every tenant: the details")


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
    now = ctx.readiness.look(wall_ms())
    why = now.reason
    if why is None:
        return PlainTextResponse("ready\n")
    if _admin_of_every_tenant(ctx.keys, credentials):
        return PlainTextResponse(f"not ready: {why}\n", status_code=503)
    return PlainTextResponse(f"not ready: {now.cause}\n", status_code=503)


class ReadinessPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="`ready`; `degraded`: alarms are judged, but the readings only reach the "
        "disk spool (the store refuses them for its set-up: a rotated password); `not_ready`: "
        "the hub judges no alarm (no broker, the store holding ingest, a batch stalled ...)"
    )
    cause: str | None = Field(
        description="the cause's code, as `/readyz` says it (`broker`, `store_held`, "
        "`influxdb_auth`, `sqlite_full`, `ingest_stalled`, `other` ...); null when ready"
    )
    reason: str | None = Field(
        description="the hub's reason in full (it may name the store's address or a spool "
        "folder): for the monitoring centre's keys (admin or operator of every tenant) only; "
        "null for any other key, and when ready"
    )
    since_ms: int | None = Field(
        description="since when this cause has lasted, ms (as far as the hub has looked: every "
        "second while it runs); null when ready"
    )


def readiness_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["ops"])

    @r.get("/readiness", response_model=ReadinessPublic)
    async def readiness(ctx: Ctx, caller: Caller) -> ReadinessPublic:
        """Whether the hub judges readings now, the cause's code when not and since when: what
        the dashboard shows in its banner. Any key; the reason in full for the monitoring
        centre's keys only (it names nothing of a tenant, but the store's address or a folder)."""
        now = ctx.readiness.look(wall_ms())
        return ReadinessPublic(
            status=now.status,
            cause=now.cause,
            reason=now.reason if is_centre(caller) else None,
            since_ms=now.since_ms,
        )

    return r
