"""Where each vehicle of a simulated fleet was when its run stopped, so that the next run
(`hazardhub simulate fleet --resume FILE`) drives it on from there rather than from its route's
start: a jump of up to its route's length, which the hub rightly takes for a GPS drift (a fleet
run again raised a drift alarm per vehicle, told at its raise and at its clear).

The file is JSON, by "tenant/vehicle": the distance along its route and a digest of the route.
A vehicle whose route has changed since (a scenario's routes, a corridor moved, a fleet grown: a
generated route depends on the fleet's size) starts at its route's start, as one the file does
not know. Saving merges into what the file holds, so two fleets (one per tenant) may share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from simulators.route import Route
from simulators.vehicle import SimulatedVehicle
from telemetry.errors import ConfigError
from telemetry.registry import Registry

__all__ = ["fleet_tenants", "keep_positions", "load_starts", "route_digest", "save_positions"]


def fleet_tenants(registry: Registry, wanted: Sequence[str]) -> set[str] | None:
    """The tenants `--tenant` names (None: all), each checked to have vehicles."""
    if not wanted:
        return None
    have = {v.tenant for v in registry.vehicles.values()}
    unknown = sorted(set(wanted) - have)
    if unknown:
        raise ConfigError(
            f"--tenant {', '.join(unknown)}: no vehicles of that tenant in the configuration "
            f"(tenants with vehicles: {', '.join(sorted(have)) or 'none'})"
        )
    return set(wanted)


def route_digest(route: Route | Sequence[tuple[float, float]]) -> str:
    points = route.points if isinstance(route, Route) else tuple(route)
    text = ";".join(f"{lat:.6f},{lon:.6f}" for lat, lon in points)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a fleet state file ({exc}); remove it to start every vehicle at its "
            "route's start"
        ) from exc
    vehicles = doc.get("vehicles") if isinstance(doc, dict) else None
    if not isinstance(vehicles, dict):
        raise ConfigError(
            f"{path}: not a fleet state file (no 'vehicles'); remove it to start every vehicle "
            "at its route's start"
        )
    return {k: v for k, v in vehicles.items() if isinstance(v, dict)}


def load_starts(
    path: Path, routes: Mapping[str, Route | Sequence[tuple[float, float]]]
) -> dict[str, float]:
    """The distance to start at of each vehicle ("tenant/vehicle" -> its route) that the file
    left on the same route; the others are not in the result (they start at 0)."""
    saved = _read(path)
    starts: dict[str, float] = {}
    for ref, route in routes.items():
        entry = saved.get(ref)
        if entry is None or entry.get("route") != route_digest(route):
            continue
        distance = entry.get("distance_m")
        if isinstance(distance, int | float) and 0 <= distance < float("inf"):
            starts[ref] = float(distance)
    return starts


def save_positions(path: Path, vehicles: Sequence[SimulatedVehicle]) -> None:
    """Write where each vehicle is (its last fix's distance), keeping the file's other vehicles;
    atomically (a run killed while saving leaves the last file whole)."""
    saved = _read(path)
    for v in vehicles:
        saved[f"{v.tenant}/{v.id}"] = {"route": route_digest(v.route), "distance_m": v.distance_m}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"vehicles": saved}, indent=1, sort_keys=True))
    tmp.replace(path)


async def keep_positions(
    path: Path, vehicles: Sequence[SimulatedVehicle], stop: asyncio.Event, every_s: float = 5.0
) -> None:
    """Save where the vehicles are every `every_s`, and once more at the stop (`--resume`)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        save_positions(path, [v for v in vehicles if v.last_t is not None])
