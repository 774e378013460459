"""Which vehicle a JT/T 808 terminal is, and its auth code (pure).

A terminal is found by its phone number (the vehicle's `terminal` in the configuration) or, when
no vehicle names that number, by the plate it sends in its registration (compared without its
separators and case: 苏A·D5678 is 苏AD5678, `plate_key`). The auth code handed out
in 0x8100 names the vehicle and carries an HMAC of (phone, tenant, vehicle) under the gateway's
secret, so authentication needs no state: it survives a gateway restart with the same secret, and
fails once the vehicle leaves the configuration.

A phone number configured for one vehicle is only ever that vehicle: a registration from it that
carries the plate of another configured vehicle, or an auth code naming another vehicle, is
refused as a `Conflict` (the configuration and the terminal disagree on which vehicle this is,
and taking either side would put one vehicle's positions on another's track).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from telemetry.errors import ConfigError
from telemetry.jt808.messages import RegisterResponse
from telemetry.registry import VehicleInfo

__all__ = ["Conflict", "Directory", "VehicleRef", "plate_key"]

_PREFIX = "hh1"


@dataclass(frozen=True, slots=True)
class VehicleRef:
    tenant: str
    vehicle: str


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


def _norm(phone: str) -> str:
    return phone.lstrip("0") or "0"


# what a plate is written with besides its characters: the middle dot of 苏A·D5678 (and its
# look-alikes), spaces, hyphens; a terminal's 0x0083 is usually 苏AD5678, and firmware may end
# its STRING with NULs
_PLATE_NOISE = dict.fromkeys(map(ord, "·•・‧.-_ \t\x00"), None)


def plate_key(plate: str) -> str:
    """A plate as terminals and configurations both write it: compatibility forms (full-width
    letters and digits), upper case, without separators."""
    return unicodedata.normalize("NFKC", plate).translate(_PLATE_NOISE).upper()


class Directory:
    def __init__(self, vehicles: Iterable[VehicleInfo], secret: bytes) -> None:
        if len(secret) < 16:
            raise ConfigError("the JT/T 808 auth secret must be at least 16 bytes")
        self._secret = secret
        self._by_terminal: dict[str, VehicleRef] = {}
        self._by_plate: dict[str, list[VehicleRef]] = {}
        self._terminal_of: dict[VehicleRef, str | None] = {}
        for v in vehicles:
            ref = VehicleRef(v.tenant, v.spec.id)
            term = _norm(v.spec.terminal) if v.spec.terminal else None
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
        """The same secret (auth codes handed out stay valid) over another configuration."""
        return Directory(vehicles, self._secret)

    def __len__(self) -> int:
        return len(self._terminal_of)

    def __contains__(self, ref: object) -> bool:
        return ref in self._terminal_of

    def register(self, phone: str, plate: str) -> tuple[int, VehicleRef | Conflict | None]:
        """The 0x8100 result for a registration, and the vehicle on success (the conflict that
        refused it, if that was the reason)."""
        plate = plate.strip(" \x00")
        refs = self._by_plate.get(plate_key(plate), [])
        ref = self._by_terminal.get(_norm(phone))
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

    def auth_code(self, phone: str, ref: VehicleRef) -> str:
        return f"{_PREFIX}:{ref.tenant}:{ref.vehicle}:{self._mac(_norm(phone), ref)}"

    def authenticate(self, phone: str, code: str) -> VehicleRef | Conflict | None:
        """The vehicle a good auth code names; a `Conflict` when the code is good but the phone
        number is now configured for another vehicle; None for any other refusal."""
        parts = code.strip(" \x00").split(":")  # firmware that ends its STRING with a NUL
        if len(parts) != 4 or parts[0] != _PREFIX:
            return None
        ref = VehicleRef(parts[1], parts[2])
        if ref not in self._terminal_of:
            return None
        if not hmac.compare_digest(parts[3], self._mac(_norm(phone), ref)):
            return None
        bound = self._by_terminal.get(_norm(phone))
        if bound is not None and bound != ref:
            return Conflict(phone, bound, (ref,), "auth code")
        term = self._terminal_of[ref]
        if term is not None and term != _norm(phone):
            return None
        return ref

    def _mac(self, phone: str, ref: VehicleRef) -> str:
        msg = f"{phone}\x00{ref.tenant}\x00{ref.vehicle}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:20]
