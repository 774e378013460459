"""The configuration format's common ground: identifiers, alarm tiers and the base of its models
(pydantic v2, frozen, extra fields forbidden, no infinities or NaN)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["Frozen", "Ident", "Tier"]

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Tier = Literal["blue", "yellow", "orange", "red"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
