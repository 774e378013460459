"""The alarm list as CSV, for a supervisor's monthly review in a spreadsheet: one row per alarm,
with who did each step of its handling and when, read from its journal. UTF-8 with a byte-order
mark (Excel opens Chinese names correctly only so); every time twice, as ISO 8601 in Beijing
time (+08:00) for people and as epoch ms for programs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from alerts.supervisionstate import SupervisionState
from api.csvfile import csv_bytes

__all__ = ["COLUMNS", "CSV_MAX_ROWS", "alarm_csv", "csv_name", "handling_of"]

CSV_MAX_ROWS = 100_000  # an export past this is refused (422), never cut short
_BEIJING = timezone(timedelta(hours=8), "CST")
_STEPS = ("acknowledged", "verified", "disposed", "closed")
_REVIEW = ("submitted", "returned")
_CENTRE_ACK = "centre_acknowledged"


def _timed(name: str) -> list[str]:
    return [name, f"{name}_ms"]


COLUMNS: tuple[str, ...] = (
    "id",
    "tenant",
    "tenant_name",
    "site",
    "site_name",
    "device",
    "sensor",
    "location",
    "kind",
    "rule",
    "level_name",
    "peak_tier",
    "tier",
    "state",
    "isa_state",
    *_timed("started"),
    *_timed("ended"),
    *_timed("raised_at"),
    *_timed("acknowledged_at"),
    "acknowledged_by",
    "disposal",
    *_timed("verified_at"),
    "verified_by",
    *_timed("disposed_at"),
    "disposed_by",
    *_timed("closed_at"),
    "closed_by",
    "overdue_now",
    "overdue_ever",
    "shelved",
    "shelved_by",
    "shelved_why",
    # appended (a spreadsheet's formulas that read the columns above by place keep working)
    "acknowledged_note",
    "verified_note",
    "disposed_note",
    "closed_note",
    "peak_level_name",
    "peak_value",
    "value_unit",
    *_timed("peak_at"),
    "duration_s",
    "device_name",
    "tag",
    "sensor_kind",
    # the monitoring centre's review of an enterprise's closing (审核销号): its latest
    # submission and return, how many returns, and whether the close was the centre's approval
    *_timed("submitted_at"),
    "submitted_by",
    "submitted_note",
    *_timed("returned_at"),
    "returned_by",
    "returned_note",
    "returns",
    "approved",
    # the supervising centre's acknowledgement, apart from the enterprise's (`acknowledged_*`
    # above): whether it has one now, and its first
    "centre_acked",
    *_timed("centre_acknowledged_at"),
    "centre_acknowledged_by",
    "centre_acknowledged_note",
    # the centre's supervisions (报警督办) of the alarm: how many, and the last one's number,
    # status (open, answered, overdue, undelivered: `GET /api/v1/supervisions`) and whether it
    # was answered after its deadline
    "supervisions",
    "last_supervision_id",
    "last_supervision_status",
    "last_supervision_late",
)


def csv_name(start: int | None, end: int | None) -> str:
    """`alarms.csv`, or `alarms_<start>_<end>.csv` of the range selected in Beijing time
    (`any` for an end not given): the file names the month a supervisor saved."""

    def day(ms: int | None) -> str:
        return (
            ""
            if ms is None
            else datetime.fromtimestamp(ms / 1000, _BEIJING).strftime("%Y%m%d-%H%M")
        )

    parts = [day(start), day(end)]
    return "alarms" + ("_" + "_".join(p or "any" for p in parts) if any(parts) else "") + ".csv"


def iso_beijing(ms: int | None) -> str:
    """`ms` since the epoch as ISO 8601 in Beijing time, to the millisecond; '' for None."""
    if ms is None:
        return ""
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return at.astimezone(_BEIJING).isoformat(timespec="milliseconds")


def handling_of(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the journal says of an alarm's handling: the first acknowledgement and each disposal
    step (`{step}_at`, `{step}_by`, `{step}_note`; the close the centre's approval when it was
    reviewed, `approved`), the latest submission for the centre's review and return
    (`submitted_*`, `returned_*`, how many `returns`), whether a deadline ever passed (an
    `overdue` event), and whether it was shelved (a `shelved` event, or raised shelved: a new
    activation of a point under another alarm's shelve) with the latest shelve's actor and
    reason."""
    found: dict[str, Any] = {}
    for step in _STEPS:
        found[f"{step}_at"] = found[f"{step}_by"] = found[f"{step}_note"] = None
    found.update(overdue_ever=False, shelved=False, shelved_by=None, shelved_why=None)
    for step in _REVIEW:
        found[f"{step}_at"] = found[f"{step}_by"] = found[f"{step}_note"] = None
    found.update(returns=0, approved=False)
    found[f"{_CENTRE_ACK}_at"] = found[f"{_CENTRE_ACK}_by"] = found[f"{_CENTRE_ACK}_note"] = None
    for e in events:
        kind = e["kind"]
        if kind == "approved":  # the centre's approval is the close
            kind = "closed"
            found["approved"] = True
        if kind in _REVIEW:  # the latest: the submission approved or waiting, the last return
            found[f"{kind}_at"], found[f"{kind}_by"] = e["ts"], e["actor"]
            found[f"{kind}_note"] = e["comment"]
            found["returns"] += kind == "returned"
        elif kind in _STEPS and (found[f"{kind}_at"] is None or kind == "disposed"):
            # (the first of each, but the latest disposal: after a return, the one approved)
            found[f"{kind}_at"], found[f"{kind}_by"] = e["ts"], e["actor"]
            found[f"{kind}_note"] = e["comment"]
        elif kind == _CENTRE_ACK and found[f"{kind}_at"] is None:
            found[f"{kind}_at"], found[f"{kind}_by"] = e["ts"], e["actor"]
            found[f"{kind}_note"] = e["comment"]
        elif kind == "overdue":
            found["overdue_ever"] = True
        elif kind == "shelved":
            found.update(shelved=True, shelved_by=e["actor"], shelved_why=e["comment"])
        elif kind == "raised" and e["isa_state"] == "shelved":
            found["shelved"] = True
    return found


def _supervised(given: Sequence[SupervisionState]) -> list[Any]:
    if not given:
        return [0, "", "", ""]
    last = given[-1]
    return [len(given), last.id, last.status, str(last.late).lower()]


def _row(a: Mapping[str, Any], supervisions: Sequence[SupervisionState]) -> list[Any]:
    h = handling_of(a["events"])

    def timed(ms: int | None) -> list[Any]:
        return [iso_beijing(ms), "" if ms is None else ms]

    return [
        a["id"],
        a["tenant"],
        a["tenant_name"],
        a["site"],
        a["site_name"],
        a["device"],
        a["sensor"],
        a["location"],
        a["side"],
        a["rule"],
        a["level_name"],
        a["peak_tier"],
        a["tier"],
        a["state"],
        a["isa_state"],
        *timed(a["started_ts"]),
        *timed(a["ended_ts"]),
        *timed(a["raised_at"]),
        *timed(h["acknowledged_at"]),
        h["acknowledged_by"] or "",
        a["disposal"],
        *timed(h["verified_at"]),
        h["verified_by"] or "",
        *timed(h["disposed_at"]),
        h["disposed_by"] or "",
        *timed(h["closed_at"]),
        h["closed_by"] or "",
        str(a["overdue"]).lower(),
        str(h["overdue_ever"]).lower(),
        str(h["shelved"]).lower(),
        h["shelved_by"] or "",
        h["shelved_why"] or "",
        *(h[f"{step}_note"] or "" for step in _STEPS),
        a["peak_level_name"] or "",
        "" if a["peak_value"] is None else a["peak_value"],
        a["value_unit"],
        *timed(a["peak_ts"]),
        _duration_s(a["started_ts"], a["ended_ts"]),
        a["device_name"],
        a["tag"],
        a["sensor_kind"],
        *timed(h["submitted_at"]),
        h["submitted_by"] or "",
        h["submitted_note"] or "",
        *timed(h["returned_at"]),
        h["returned_by"] or "",
        h["returned_note"] or "",
        h["returns"],
        str(h["approved"]).lower(),
        str(bool(a["centre_acked"])).lower(),
        *timed(h[f"{_CENTRE_ACK}_at"]),
        h[f"{_CENTRE_ACK}_by"] or "",
        h[f"{_CENTRE_ACK}_note"] or "",
        *_supervised(supervisions),
    ]


def _duration_s(start: int, end: int | None) -> Any:
    """From the start to the end (event time), in seconds to the ms; '' while active."""
    return "" if end is None else (end - start) / 1000


def alarm_csv(
    alarms: Iterable[Mapping[str, Any]],
    supervisions: Mapping[int, Sequence[SupervisionState]] | None = None,
) -> bytes:
    """The alarms (`api.alarms.alarm_json` dictionaries) as CSV bytes, a header row first (a
    text a spreadsheet would run as a formula quoted: `api.csvfile.safe_cell`); `supervisions`
    the centre's of each alarm, oldest first (`alerts.supervisionstate.of_alarms`)."""
    given = supervisions or {}
    return csv_bytes(COLUMNS, (_row(a, given.get(a["id"], ())) for a in alarms))
