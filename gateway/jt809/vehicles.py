"""Which configured vehicle a JT/T 809 platform's plate and colour are (pure).

The hub names a vehicle by its id within a tenant (docs/vehicles.md); a platform names it by
plate and plate colour. A platform sends the vehicles of its tenant only: a plate is looked up
among that tenant's vehicles, compared as the JT/T 808 gateway compares plates (`plate_key`:
苏A·D1234 is 苏AD1234). The configuration has no plate colour, so the colour decides nothing:
two of the tenant's vehicles with one plate (a tractor and its trailer, 黄 and 黄挂, are written
differently and are two plates) are refused as ambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.jt808.directory import VehicleRef, plate_key
from telemetry.registry import VehicleInfo

__all__ = ["PlateBook"]


class PlateBook:
    def __init__(self, vehicles: Iterable[VehicleInfo]) -> None:
        self._refs: dict[tuple[str, str], list[VehicleRef]] = {}
        for v in vehicles:
            key = (v.tenant, plate_key(v.spec.plate))
            self._refs.setdefault(key, []).append(VehicleRef(v.tenant, v.spec.id))

    def find(self, tenant: str, plate: str) -> VehicleRef | str:
        """The vehicle, or why there is none: `unknown_vehicle`, `ambiguous_vehicle`."""
        refs = self._refs.get((tenant, plate_key(plate)), [])
        if len(refs) == 1:
            return refs[0]
        return "ambiguous_vehicle" if refs else "unknown_vehicle"
