"""The dead letters over HTTP: MQTT messages the hub refused (a payload that does not decode, a
topic of no known device ...), kept in the state database with the reason
(`alerts.statedb.StateDB.dead_letters`). Read only, for admins of every tenant: a refused
message's topic is whatever its publisher sent, so it cannot be trusted to name the tenant it
belongs to, and a key limited to some tenants is not shown any.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from api.context import Caller, Ctx

__all__ = ["DeadLetterPublic", "dead_letter_router"]


class DeadLetterPublic(BaseModel):
    id: int
    at: int = Field(description="when the hub refused it, ms since the epoch")
    source: str = Field(description="what refused it (telemetry, position ...)")
    topic: str
    reason: str
    size: int = Field(description="the payload's size in bytes, as received")
    payload_base64: str = Field(description="its first bytes (at most `payload_bytes`), base64")
    truncated: bool = Field(description="whether `payload_base64` holds less than `size` bytes")
    repeats: int = Field(
        description="messages of the same topic, source and reason refused after it within "
        "the hour, counted on this one (their payloads are not kept)"
    )
    last_at: int | None = Field(description="when the last of those came, ms (null: none)")


def dead_letter_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["ops"])

    @r.get("/dead-letters", response_model=list[DeadLetterPublic])
    async def dead_letters(
        ctx: Ctx,
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        since: Annotated[
            int | None,
            Query(ge=0, le=2**53, description="only those refused (or repeated) at or after, ms"),
        ] = None,
        payload_bytes: Annotated[
            int, Query(ge=0, le=65_536, description="how much of each payload to show")
        ] = 256,
    ) -> list[DeadLetterPublic]:
        """The messages the hub refused, newest first by their last repeat (at most `limit`, of
        those the database keeps), with the reason and the start of the payload."""
        if caller.role != "admin" or caller.tenants is not None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "dead letters are for admins of every tenant (their topics are not trusted to"
                " name a tenant)",
            )
        rows = await asyncio.to_thread(ctx.statedb.dead_letters, limit, since)
        return [
            DeadLetterPublic(
                id=d.id,
                at=d.at,
                source=d.source,
                topic=d.topic,
                reason=d.reason,
                size=d.size,
                payload_base64=base64.b64encode(d.payload[:payload_bytes]).decode("ascii"),
                truncated=min(len(d.payload), payload_bytes) < d.size,
                repeats=d.repeats,
                last_at=d.last_at,
            )
            for d in rows
        ]

    return r
