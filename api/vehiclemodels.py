"""Public models of a vehicle's last known position and state (`GET /vehicles/{id}`,
`GET /vehicles?with=last_position`), beside `api.models.VehiclePublic` which they extend."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.models import VehiclePublic

__all__ = ["LastPositionPublic", "VehicleAlarmBrief", "VehicleStatePublic", "VehicleWithLastPublic"]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class LastPositionPublic(_Public):
    """The newest stored position by event time (a late backlog arriving after it does not
    replace it)."""

    ts: int = Field(description="event time of the fix (the terminal's clock), epoch ms")
    lat: float = Field(description="WGS-84 degrees")
    lon: float = Field(description="WGS-84 degrees")
    speed_kmh: float | None = Field(description="null when the terminal sent none")
    heading_deg: float | None = Field(description="null when the terminal sent none")
    age_s: float = Field(
        description="seconds from `ts` to the hub's clock when answering; negative when the "
        "terminal's clock is ahead of the hub's"
    )


class VehicleAlarmBrief(_Public):
    id: int
    kind: str = Field(description="the alarm's kind (its `side` in the alarm list)")
    tier: str
    level_name: str
    rule: str = Field(description="`fleet`, `terminal`, or the speed sensor's rule")
    started_ts: int = Field(description="event time it started, epoch ms")
    acked: bool


class VehicleWithLastPublic(VehiclePublic):
    last_position: LastPositionPublic | None = Field(
        description="null when the hub has stored no position of the vehicle"
    )


class VehicleStatePublic(VehicleWithLastPublic):
    active_alarms: list[VehicleAlarmBrief] = Field(
        description="its alarms active now (the fleet's, its terminal's, its speed rule's), "
        "newest first"
    )
