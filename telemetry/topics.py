"""The MQTT topic layout of the public contract.

``{root}/{tenant}/{site}/{device}/telemetry``      gateway -> hub, binary codec of `telemetry.codec`
``{root}/{tenant}/vehicles/{vehicle}/position``    GPS recorders -> hub, JSON
``{root}/{tenant}/vehicles/{vehicle}/info``        a vehicle's registration, driver, waybill, JSON
``{root}/{tenant}/gateways/{gateway}/status``      retained ``online`` / ``offline`` (last will)
``{root}/{tenant}/gateways/{gateway}/dropped``     JSON report of batches a gateway's spool dropped
``{root}/{tenant}/alarms/{site}``                  alarm transitions published by the hub
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telemetry.errors import TopicError

__all__ = [
    "DEFAULT_ROOT",
    "AlarmTopic",
    "GatewayStatusTopic",
    "PositionTopic",
    "TelemetryTopic",
    "Topic",
    "TopicLayout",
    "VehicleCommandTopic",
    "VehicleInfoTopic",
    "check_segment",
]

DEFAULT_ROOT = "hazardhub/v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RESERVED = frozenset({"vehicles", "gateways", "alarms"})


def check_segment(value: str, what: str) -> str:
    """Return `value` if it may stand as one topic level naming a `what`, else raise TopicError."""
    if not _SEGMENT.fullmatch(value):
        raise TopicError(
            f"{what} {value!r} is not a valid topic level: use 1-64 of A-Z a-z 0-9 _ . - "
            "starting with a letter or digit"
        )
    return value


# a gateway's reports: its status, its drop reports, a JT/T 809 platform's answers to 督办
_GATEWAY_TOPICS = ("status", "dropped", "supervision")


@dataclass(frozen=True, slots=True)
class TelemetryTopic:
    tenant: str
    site: str
    device: str


@dataclass(frozen=True, slots=True)
class PositionTopic:
    tenant: str
    vehicle: str


@dataclass(frozen=True, slots=True)
class VehicleInfoTopic:
    """What a JT/T 809 platform reported of a vehicle: its terminal's registration, its
    driver, its waybill (docs/mqtt.md)."""

    tenant: str
    vehicle: str


@dataclass(frozen=True, slots=True)
class VehicleCommandTopic:
    tenant: str
    vehicle: str


@dataclass(frozen=True, slots=True)
class GatewayStatusTopic:
    tenant: str
    gateway: str
    kind: str = "status"  # status | dropped


@dataclass(frozen=True, slots=True)
class AlarmTopic:
    tenant: str
    site: str


Topic = (
    TelemetryTopic
    | PositionTopic
    | GatewayStatusTopic
    | AlarmTopic
    | VehicleCommandTopic
    | VehicleInfoTopic
)


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Builds and parses topics under one root (default ``hazardhub/v1``)."""

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        parts = self.root.split("/")
        if not parts or any(not p or "+" in p or "#" in p for p in parts):
            raise TopicError(f"topic root {self.root!r} must be non-empty levels without + or #")

    def telemetry(self, tenant: str, site: str, device: str) -> str:
        check_segment(tenant, "tenant")
        check_segment(device, "device")
        if check_segment(site, "site") in _RESERVED:
            raise TopicError(f"site id {site!r} is reserved in the topic layout")
        return f"{self.root}/{tenant}/{site}/{device}/telemetry"

    def position(self, tenant: str, vehicle: str) -> str:
        check_segment(tenant, "tenant")
        check_segment(vehicle, "vehicle")
        return f"{self.root}/{tenant}/vehicles/{vehicle}/position"

    def vehicle_info(self, tenant: str, vehicle: str) -> str:
        """A JT/T 809 gateway's report of what a platform said of a vehicle (0x1201, 0x120C,
        0x120D), which the hub keeps, the latest of each kind."""
        check_segment(tenant, "tenant")
        check_segment(vehicle, "vehicle")
        return f"{self.root}/{tenant}/vehicles/{vehicle}/info"

    def vehicle_command(self, tenant: str, vehicle: str) -> str:
        """Commands of the hub for a vehicle's terminal (e.g. confirm its alarms, JT/T 808
        0x8203), which the gateway that serves the terminal subscribes to."""
        check_segment(tenant, "tenant")
        check_segment(vehicle, "vehicle")
        return f"{self.root}/{tenant}/vehicles/{vehicle}/command"

    def vehicle_commands(self) -> str:
        """The filter a vehicle gateway subscribes to."""
        return f"{self.root}/+/vehicles/+/command"

    def tenant_vehicle_commands(self, tenant: str) -> str:
        """The filter of one tenant's vehicle commands (the JT/T 809 gateway's: its platforms'
        tenants only)."""
        check_segment(tenant, "tenant")
        return f"{self.root}/{tenant}/vehicles/+/command"

    def gateway_supervision(self, tenant: str, gateway: str) -> str:
        """A JT/T 809 gateway's report of a platform's answer to the centre's supervision
        (0x1401), which the hub journals on the alarm."""
        check_segment(tenant, "tenant")
        check_segment(gateway, "gateway")
        return f"{self.root}/{tenant}/gateways/{gateway}/supervision"

    def gateway_status(self, tenant: str, gateway: str) -> str:
        check_segment(tenant, "tenant")
        check_segment(gateway, "gateway")
        return f"{self.root}/{tenant}/gateways/{gateway}/status"

    def gateway_dropped(self, tenant: str, gateway: str) -> str:
        check_segment(tenant, "tenant")
        check_segment(gateway, "gateway")
        return f"{self.root}/{tenant}/gateways/{gateway}/dropped"

    def alarms(self, tenant: str, site: str) -> str:
        check_segment(tenant, "tenant")
        check_segment(site, "site")
        return f"{self.root}/{tenant}/alarms/{site}"

    def subscriptions(self) -> tuple[str, ...]:
        """The filters a hub subscribes to."""
        return (
            f"{self.root}/+/+/+/telemetry",
            f"{self.root}/+/vehicles/+/position",
            f"{self.root}/+/vehicles/+/info",
            f"{self.root}/+/gateways/+/status",
            f"{self.root}/+/gateways/+/dropped",
            f"{self.root}/+/gateways/+/supervision",
        )

    def parse(self, topic: str) -> Topic:
        """Parse a topic of the layout; raise TopicError saying what is wrong otherwise."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            raise TopicError(f"topic {topic!r} is not under the root {self.root!r}")
        parts = topic[len(prefix) :].split("/")
        if len(parts) == 4 and parts[3] == "telemetry" and parts[1] not in _RESERVED:
            tenant, site, device, _ = parts
            return TelemetryTopic(
                check_segment(tenant, "tenant"),
                check_segment(site, "site"),
                check_segment(device, "device"),
            )
        if len(parts) == 4 and parts[1] == "vehicles" and parts[3] == "position":
            return PositionTopic(
                check_segment(parts[0], "tenant"), check_segment(parts[2], "vehicle")
            )
        if len(parts) == 4 and parts[1] == "vehicles" and parts[3] == "info":
            return VehicleInfoTopic(
                check_segment(parts[0], "tenant"), check_segment(parts[2], "vehicle")
            )
        if len(parts) == 4 and parts[1] == "vehicles" and parts[3] == "command":
            return VehicleCommandTopic(
                check_segment(parts[0], "tenant"), check_segment(parts[2], "vehicle")
            )
        if len(parts) == 4 and parts[1] == "gateways" and parts[3] in _GATEWAY_TOPICS:
            return GatewayStatusTopic(
                check_segment(parts[0], "tenant"), check_segment(parts[2], "gateway"), parts[3]
            )
        if len(parts) == 3 and parts[1] == "alarms":
            return AlarmTopic(check_segment(parts[0], "tenant"), check_segment(parts[2], "site"))
        raise TopicError(f"topic {topic!r} matches no topic of the layout")
