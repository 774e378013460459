"""The fleet analytics settings live in the configuration models (`telemetry.fleetconfig`), so
that the hub's YAML carries them under `fleet:`; re-exported here for the analytics."""

from telemetry.fleetconfig import (
    ClassLimits,
    CorridorFence,
    FleetSettings,
    ForbiddenArea,
    LatLon,
    SpeedZone,
    TimeWindow,
    VehicleClass,
)

__all__ = [
    "ClassLimits",
    "CorridorFence",
    "FleetSettings",
    "ForbiddenArea",
    "LatLon",
    "SpeedZone",
    "TimeWindow",
    "VehicleClass",
]
