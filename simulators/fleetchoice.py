"""Which vehicles a simulator drives, and on which route (`hazardhub simulate`).

`simulate fleet` drives every vehicle of the configuration; `simulate scenario` those its
scenario names (`scenario_vehicles`): a plant rehearsal against the demo drove the whole fleet
too, and the hub raised 20 `drift` alarms from vehicles nobody rehearsed. Each drives its
scenario route, else its corridor, else a generated one (`route_of`).
"""

from __future__ import annotations

from simulators.route import Route, default_route
from simulators.timeline import CompiledScenario
from telemetry.fleetconfig import CorridorFence, FleetSettings
from telemetry.registry import Registry, VehicleInfo

__all__ = ["choice_line", "corridors", "route_of", "scenario_vehicles"]


def corridors(fleet: FleetSettings) -> dict[str, Route]:
    """The route along its corridor geofence of each vehicle that has one, by "tenant/vehicle"
    or (a corridor naming the vehicle in any tenant) "vehicle"."""
    return {
        ref: Route(fence.polyline)
        for fence in fleet.geofences
        if isinstance(fence, CorridorFence) and fence.polyline is not None
        for ref in fence.vehicles
    }


def route_of(
    compiled: CompiledScenario, vehicle: VehicleInfo, k: int, n: int, along: dict[str, Route]
) -> Route:
    """The scenario's route of the k-th of n vehicles, with its speed limits; else its corridor
    (a generated route off it would raise `corridor`); else a generated one."""
    route = compiled.spec.route(vehicle.spec.id)
    if route is not None:
        return route
    route = along.get(f"{vehicle.tenant}/{vehicle.spec.id}") or along.get(vehicle.spec.id)
    return route if route is not None else default_route(k, n)


def scenario_vehicles(
    compiled: CompiledScenario, registry: Registry, *, every: bool = False, none: bool = False
) -> set[str] | None:
    """The ids of the vehicles a scenario drives: those it names (`ScenarioSpec.named_vehicles`;
    none for a scenario that names none); None with `every` (every vehicle), none with
    `none`."""
    if every:
        return None
    if none:
        return set()
    ids = {v.spec.id for v in registry.vehicles.values()}
    return compiled.spec.named_vehicles() & ids


def choice_line(wanted: set[str] | None, of: int, *, none: bool = False) -> str | None:
    """What `simulate scenario` prints of the vehicles it drives (`scenario_vehicles`) among
    the `of` of the configuration; None when it drives every one."""
    if none:
        return "fleet: --no-fleet: no vehicle driven"
    if wanted is None or len(wanted) >= of:
        return None
    named = f"the {len(wanted)} it names" if wanted else "none: it names none"
    return f"fleet: the scenario drives {named} of the {of} vehicles (--all-vehicles: every one)"
