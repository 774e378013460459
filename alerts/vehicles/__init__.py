"""Platform-side driving-safety analytics over a fleet (two-passenger-one-hazmat vehicles).

Pure and vectorized: `compile_fleet(settings, vehicles)` once, then
`evaluate_fleet(table, state, batch, now) -> (state, events)` per batch of positions, and
`fleet_kpis(table, batch, start, end)` over a period; with the lateness window,
`evaluate_late(table, state, history, batch, now)`. See docs/vehicles.md.
"""

from alerts.vehicles.errors import FleetConfigError
from alerts.vehicles.evaluate import evaluate_fleet
from alerts.vehicles.kpi import FleetKpis, fleet_kpis
from alerts.vehicles.lateness import FleetHistory, evaluate_late
from alerts.vehicles.reference import ReferenceFleet
from alerts.vehicles.settings import (
    ClassLimits,
    CorridorFence,
    FleetSettings,
    ForbiddenArea,
    SpeedZone,
    TimeWindow,
)
from alerts.vehicles.state import EventKind, FleetEvents, FleetState, Positions
from alerts.vehicles.table import FleetTable, compile_fleet

__all__ = [
    "ClassLimits",
    "CorridorFence",
    "EventKind",
    "FleetConfigError",
    "FleetEvents",
    "FleetHistory",
    "FleetKpis",
    "FleetSettings",
    "FleetState",
    "FleetTable",
    "ForbiddenArea",
    "Positions",
    "ReferenceFleet",
    "SpeedZone",
    "TimeWindow",
    "compile_fleet",
    "evaluate_fleet",
    "evaluate_late",
    "fleet_kpis",
]
