"""Which vehicle a JT/T 808 terminal claims to be, by the configuration (pure).

A terminal is found by its phone number (the vehicle's `terminal` in the configuration) or, when
no vehicle names that number, by the plate it sends in its registration (compared without its
separators and case: 苏A·D5678 is 苏AD5678, `plate_key`). This is only the claim: which
terminal may be the vehicle, and the auth code it holds, are the bindings' (`bindings`).

A phone number configured for one vehicle is only ever that vehicle: a registration from it that
carries the plate of another configured vehicle, or an auth code naming another vehicle, is
refused as a `Conflict` (the configuration and the terminal disagree on which vehicle this is,
and taking either side would put one vehicle's positions on another's track).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from telemetry.errors import ConfigError
from telemetry.jt808.messages import RegisterResponse
from telemetry.plates import plate_key
from telemetry.registry import VehicleInfo

__all__ = ["Conflict", "Directory", "VehicleRef", "phone_key", "plate_key"]


@dataclass(frozen=True, slots=True)
class VehicleRef:
    tenant: str
    vehicle: str

    def __str__(self) -> str:  # in the log: tenant/vehicle, not the dataclass's repr
        return f"{self.tenant}/{self.vehicle}"


@dataclass(frozen=True, slots=True)
class Conflict:
    """A terminal whose phone number is configured for `bound` claims other vehicles (by the plate
    of its registration, or the vehicle its auth code names)."""

    phone: str
    bound: VehicleRef
    claimed: tuple[VehicleRef, ...]
    by: str  # "plate 苏A·D5678" or "auth code"

    def __str__(self) -> str:
        claimed = ", ".join(f"{r.tenant}/{r.vehicle}" for r in self.claimed)
        return (
            f"terminal {self.phone} is configured for {self.bound.tenant}/{self.bound.vehicle} "
            f"but its {self.by} names {claimed}"
        )


def phone_key(phone: str) -> str:
    """A phone number without its leading zeros (a 2013 and a 2019 header say it alike)."""
    return phone.lstrip("0") or "0"


class Directory:
    def __init__(self, vehicles: Iterable[VehicleInfo]) -> None:
        self._by_terminal: dict[str, VehicleRef] = {}
        self._by_plate: dict[str, list[VehicleRef]] = {}
        self._terminal_of: dict[VehicleRef, str | None] = {}
        for v in vehicles:
            ref = VehicleRef(v.tenant, v.spec.id)
            term = phone_key(v.spec.terminal) if v.spec.terminal else None
            self._terminal_of[ref] = term
            if term is not None:
                other = self._by_terminal.get(term)
                if other is not None:
                    raise ConfigError(
                        f"JT/T 808 terminal {v.spec.terminal} is configured for vehicle "
                        f"{other.tenant}/{other.vehicle} and for {ref.tenant}/{ref.vehicle}"
                    )
                self._by_terminal[term] = ref
            self._by_plate.setdefault(plate_key(v.spec.plate), []).append(ref)

    def with_vehicles(self, vehicles: Iterable[VehicleInfo]) -> Directory:
        """The directory of another configuration."""
        return Directory(vehicles)

    def __len__(self) -> int:
        return len(self._terminal_of)

    def __contains__(self, ref: object) -> bool:
        return ref in self._terminal_of

    def register(self, phone: str, plate: str) -> tuple[int, VehicleRef | Conflict | None]:
        """The 0x8100 result for a registration, and the vehicle on success (the conflict that
        refused it, if that was the reason)."""
        plate = plate.strip(" \x00")
        refs = self._by_plate.get(plate_key(plate), [])
        ref = self._by_terminal.get(phone_key(phone))
        if ref is not None:
            if refs and ref not in refs:
                # the number is this vehicle's, the plate another's: "terminal registered"
                conflict = Conflict(phone, ref, tuple(refs), f"plate {plate}")
                return RegisterResponse.TERMINAL_REGISTERED, conflict
            return RegisterResponse.OK, ref
        if len(refs) != 1:
            # unknown plate, or the same plate in several tenants: the terminal must be named
            return (RegisterResponse.NO_VEHICLE if plate else RegisterResponse.NO_TERMINAL), None
        ref = refs[0]
        if self._terminal_of[ref] is not None:
            return RegisterResponse.VEHICLE_REGISTERED, None  # bound to another terminal
        return RegisterResponse.OK, ref

    def check(self, phone: str, ref: VehicleRef) -> VehicleRef | Conflict | None:
        """`ref` if a terminal of this phone number may still be that vehicle (its binding's
        code was accepted); a `Conflict` when the number is now configured for another vehicle;
        None when the vehicle left the configuration or is configured for another number."""
        if ref not in self._terminal_of:
            return None
        bound = self._by_terminal.get(phone_key(phone))
        if bound is not None and bound != ref:
            return Conflict(phone, bound, (ref,), "auth code")
        term = self._terminal_of[ref]
        if term is not None and term != phone_key(phone):
            return None
        return ref
