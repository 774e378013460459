"""What the lower platforms (JT/T 809) reported of each vehicle: its terminal's registration
(0x1201), its driver (0x120C) and its electronic waybill (0x120D, 电子运单), the latest of each
kind per vehicle, in the state database (so a restarted hub still has them).

A report arrives on ``{root}/{tenant}/vehicles/{vehicle}/info`` (`ingest.vehicleinfomsg` reads
it); the row of its (tenant, vehicle, kind) is replaced by it unless the row holds a newer one
(by `at`, the gateway's clock when the platform's message came): a copy delivered again, or an
older one delivered late, changes nothing. The table (`alerts.stateschema`'s
`SCHEMA_VEHICLE_REPORTS`) is made at every open, without a version (as the lock tests'
tables): a hub of before leaves it alone. Its statements are here, beside `alerts.statedb`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from alerts.statedb import StateDB

__all__ = ["KINDS", "PlatformReport", "latest_reports", "record_reports"]

KINDS = ("registration", "driver", "waybill")


@dataclass(frozen=True, slots=True)
class PlatformReport:
    """One report: `fields` are the kind's (docs/mqtt.md); `at` the gateway's clock when it
    came from `platform`, epoch ms."""

    tenant: str
    vehicle: str
    kind: str
    at: int
    platform: str
    gateway: str
    plate: str
    fields: dict[str, Any]


def record_reports(db: StateDB, reports: Sequence[PlatformReport], received_at: int) -> int:
    """Keep each report unless its vehicle's row of the kind is newer; in one transaction. How
    many rows changed."""
    changed = 0
    with db.transaction() as con:
        for r in reports:
            cur = con.execute(
                "INSERT INTO vehicle_reports (tenant, vehicle, kind, at, platform, gateway, "
                "plate, fields, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, vehicle, kind) DO UPDATE SET at = excluded.at, "
                "platform = excluded.platform, gateway = excluded.gateway, "
                "plate = excluded.plate, fields = excluded.fields, "
                "received_at = excluded.received_at WHERE excluded.at >= vehicle_reports.at",
                (
                    r.tenant,
                    r.vehicle,
                    r.kind,
                    r.at,
                    r.platform,
                    r.gateway,
                    r.plate,
                    orjson.dumps(r.fields).decode(),
                    received_at,
                ),
            )
            changed += cur.rowcount
    return changed


def latest_reports(db: StateDB, tenant: str, vehicle: str) -> dict[str, dict[str, Any]]:
    """The vehicle's latest report of each kind that came: the kind's fields with `platform`,
    `gateway`, `plate`, `at` and `received_at` (the hub's clock when it kept it)."""
    rows = db.query(
        "SELECT kind, at, platform, gateway, plate, fields, received_at FROM vehicle_reports "
        "WHERE tenant = ? AND vehicle = ?",
        (tenant, vehicle),
    )
    out: dict[str, dict[str, Any]] = {}
    for kind, at, platform, gateway, plate, fields, received_at in rows:
        doc = orjson.loads(fields)
        doc.update(platform=platform, gateway=gateway, plate=plate, at=at, received_at=received_at)
        out[str(kind)] = doc
    return out
