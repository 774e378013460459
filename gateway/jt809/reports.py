"""What a lower platform reports of its vehicles on its own initiative, made ready for the hub
(sans-IO): the terminal's registration (0x1201), the driver's identity (0x120C) and the
electronic waybill (0x120D, 电子运单), each of a vehicle of the platform's tenant found by its
plate (`PlateBook`), become a `Report` that the server commits to the spool and the uplink
publishes on ``{root}/{tenant}/vehicles/{vehicle}/info`` (docs/mqtt.md). The hub keeps each
vehicle's latest of each kind and shows it with the vehicle (`GET /api/v1/vehicles/{id}`).

A waybill's text is kept as the platform wrote it (the standard gives it no layout), cut to its
first `WAYBILL_MAX_CHARS` characters when longer (`truncated`, with the length it had, and
counted `waybill_truncated`); the hub refuses a longer one.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.jt808.directory import VehicleRef
from gateway.jt809.vehicles import PlateBook
from telemetry.jt809 import (
    BadBodyError,
    DriverInfo,
    Ewaybill,
    ExgMsg,
    Register,
    UnsupportedError,
    decode_vehicle_report,
)

__all__ = ["WAYBILL_MAX_CHARS", "Refused", "Report", "read_report"]

WAYBILL_MAX_CHARS = 4096  # a waybill's text kept (8 KiB of GBK at most, 12 of UTF-8)
_LAST_S = 253_402_300_799  # 9999-12-31T23:59:59Z: a validity beyond is none
_COUNTERS = {"registration": "registrations", "driver": "drivers", "waybill": "waybills"}


@dataclass(frozen=True, slots=True)
class Report:
    """A vehicle's registration, driver or waybill, for the hub; `fields` are the kind's
    (docs/mqtt.md)."""

    platform: str
    ref: VehicleRef
    kind: str  # registration | driver | waybill
    fields: dict[str, object]
    plate: str
    color: int

    @property
    def counter(self) -> str:
        """The platform's counter of the kind: registrations, drivers, waybills."""
        return _COUNTERS[self.kind]


@dataclass(frozen=True, slots=True)
class Refused:
    """A problem of the message (counted under `kind`; the report itself may still go)."""

    kind: str
    text: str
    warn: bool = True


def read_report(
    platform: str, tenant: str, exg: ExgMsg, v2019: bool, book: PlateBook
) -> list[Report | Refused]:
    """The report of a 0x1200's 0x1201, 0x120C or 0x120D, and its problems; a body that cannot
    be read, or a vehicle that is none (or two) of the tenant's, is refused whole."""
    try:
        got = decode_vehicle_report(exg, v2019)
    except UnsupportedError as exc:
        return [Refused("unsupported", str(exc), warn=False)]
    except BadBodyError as exc:
        return [Refused("bad_body", f"{exg.plate}: {exc}")]
    ref = book.find(tenant, exg.plate)
    if isinstance(ref, str):
        return [Refused(ref, f"plate {exg.plate} (colour {exg.color}) in tenant {tenant}")]
    out: list[Report | Refused] = []
    if isinstance(got, Register):
        kind = "registration"
        fields: dict[str, object] = {
            "platform_id": got.platform_id,
            "producer_id": got.producer_id,
            "terminal_model": got.model,
            "terminal_id": got.terminal_id,
            "sim": got.sim,
            "imei": got.imei,
        }
    elif isinstance(got, DriverInfo):
        kind = "driver"
        valid = got.valid_until_s
        fields = {
            "name": got.name,
            "id_number": got.id_number,
            "licence": got.licence,
            "org": got.org,
            "valid_until": valid * 1000 if 0 < valid <= _LAST_S else None,
        }
    else:
        kind = "waybill"
        fields = _waybill(got)
        if fields["truncated"]:
            out.append(
                Refused(
                    "waybill_truncated",
                    f"{ref}: a waybill of {len(got.text)} characters cut to the first "
                    f"{WAYBILL_MAX_CHARS}",
                )
            )
    out.append(Report(platform, ref, kind, fields, exg.plate, exg.color))
    return out


def _waybill(got: Ewaybill) -> dict[str, object]:
    text = got.text
    return {
        "text": text[:WAYBILL_MAX_CHARS],
        "truncated": len(text) > WAYBILL_MAX_CHARS,
        "chars": len(text),
    }
