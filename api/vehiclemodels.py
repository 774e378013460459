"""Public models of a vehicle's last known position and state (`GET /vehicles/{id}`,
`GET /vehicles?with=last_position`), beside `api.models.VehiclePublic` which they extend; and
what its enterprise's platform reported of it over JT/T 809 (its driver, waybill and terminal's
registration: `alerts.vehiclereports`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.models import VehiclePublic

__all__ = [
    "DriverPublic",
    "LastPositionPublic",
    "RegistrationPublic",
    "VehicleAlarmBrief",
    "VehicleStatePublic",
    "VehicleWithLastPublic",
    "WaybillPublic",
]


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


class _Reported(_Public):
    """Who reported it and when (the latest report of its kind)."""

    platform: str = Field(description="the lower platform (JT/T 809) that reported it")
    gateway: str = Field(description="the JT/T 809 gateway it came through")
    plate: str = Field(description="the plate as the platform wrote it")
    at: int = Field(description="when the gateway received it, epoch ms")
    received_at: int = Field(description="when the hub kept it, epoch ms")


class DriverPublic(_Reported):
    """0x120C: who drives the vehicle, as its platform said."""

    name: str
    id_number: str = Field(description="the driver's identity card number")
    licence: str = Field(description="the qualification certificate (从业资格证) number")
    org: str = Field(description="who issued the certificate")
    valid_until: int | None = Field(
        default=None,
        description="the certificate's validity (JT/T 809-2019 only), epoch ms; null: none given",
    )


class WaybillPublic(_Reported):
    """0x120D: the electronic waybill (电子运单), the platform's text as it wrote it."""

    text: str = Field(description="at most 4096 characters")
    truncated: bool = Field(description="the platform's text was longer: these are its first")
    chars: int = Field(description="how many characters the platform's text had")


class RegistrationPublic(_Reported):
    """0x1201: the vehicle's terminal, registered with its platform."""

    platform_id: str = Field(description="PLATFORM_ID, the platform's own code")
    producer_id: str = Field(description="the terminal's maker")
    terminal_model: str
    terminal_id: str
    sim: str = Field(description="the terminal's SIM number")
    imei: str = Field(description="its communication module's IMEI (2019 only; else empty)")


class VehicleStatePublic(VehicleWithLastPublic):
    active_alarms: list[VehicleAlarmBrief] = Field(
        description="its alarms active now (the fleet's, its terminal's, its speed rule's), "
        "newest first"
    )
    driver: DriverPublic | None = Field(
        description="its driver as its JT/T 809 platform last reported (0x120C); null: none came"
    )
    waybill: WaybillPublic | None = Field(
        description="what it carries, its platform's last e-waybill (0x120D); null: none came"
    )
    registration: RegistrationPublic | None = Field(
        description="its terminal's registration its platform last reported (0x1201); null: "
        "none came"
    )
