"""A gateway's drop report (docs/mqtt.md), read strictly: the batches its spool had to drop for one
device or vehicle, published once the link is back (`gateway.spool.DropReport`)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

__all__ = ["DropReportIn", "read_drop_report"]

_MAX_BYTES = 4096
_MS_MAX = 32_503_680_000_000  # the year 3000


class DropReportIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    site: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    device: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    batches: Annotated[StrictInt, Field(ge=1, le=10**9)]
    readings: Annotated[StrictInt, Field(ge=0, le=10**12)]
    first_created: Annotated[StrictInt, Field(ge=0, le=_MS_MAX)]
    last_created: Annotated[StrictInt, Field(ge=0, le=_MS_MAX)]
    reason: Annotated[StrictStr, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.last_created < self.first_created:
            raise ValueError("last_created is before first_created")
        return self


def read_drop_report(payload: bytes, gateway: str) -> DropReportIn:
    """The report of `gateway` (its topic's); raise ValueError saying what is wrong."""
    if len(payload) > _MAX_BYTES:
        raise ValueError(f"a drop report is at most {_MAX_BYTES} bytes, not {len(payload)}")
    try:
        report = DropReportIn.model_validate_json(payload)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'report'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise ValueError(f"bad drop report: {errors}") from None
    if report.gateway is not None and report.gateway != gateway:
        raise ValueError(
            f"a drop report of gateway {report.gateway!r} on the topic of gateway {gateway!r}"
        )
    return report
