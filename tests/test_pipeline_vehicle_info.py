"""A JT/T 809 gateway's report of what a platform said of a vehicle (docs/mqtt.md,
`{root}/{tenant}/vehicles/{vehicle}/info`), as the ingest pipeline reads it: the documented
example becomes the report to keep; a bad one, one of a vehicle not configured, of a gateway
that is none of `jt808_gateways`, or from the future, is refused whole (its reason for the dead
letter) and counted. And the state database keeps the latest of each kind by `at`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.statedb import StateDB
from alerts.vehiclereports import PlatformReport, latest_reports, record_reports
from hazardhub.settings import load_registry
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

ROOT = Path(__file__).resolve().parent.parent
L = TopicLayout()
NOW = 1_795_961_103_000
CONFIG = """
version: 1
jt808_gateways: [jt808, jt809]
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    cfg = tmp_path_factory.mktemp("cfg") / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    return load_registry(cfg, [ROOT / "profiles"])


def _documented(name: str) -> dict[str, Any]:
    doc = (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8")
    marker = f"<!-- test vector: {name} "
    assert doc.count(marker) == 1
    found = re.search(r"```[a-z]*\n(.*?)\n```", doc[doc.index(marker) :], re.S)
    assert found is not None
    parsed = orjson.loads(found.group(1))
    assert isinstance(parsed, dict)
    return parsed


def _handle(registry: Registry, doc: dict[str, Any], vehicle: str = "tanker-01") -> Any:
    metrics = Metrics()
    topic = L.vehicle_info("chem-logistics", vehicle)
    return Pipeline(registry, L, metrics).handle(topic, orjson.dumps(doc), NOW), metrics


def test_the_documented_waybill_is_read(registry: Registry) -> None:
    h, metrics = _handle(registry, _documented("vehicle-info-waybill"))
    assert not h.rejected_whole and h.kind == "vehicle_info"
    assert h.report == PlatformReport(
        "chem-logistics",
        "tanker-01",
        "waybill",
        1795961102310,
        "acme-gps",
        "jt809",
        "苏AD1234",
        {"text": "运单号 YD20261202001; UN1203 汽油, 3类, 18.5 t", "truncated": False, "chars": 40},
    )
    assert metrics.get("hazardhub_messages_total", kind="vehicle_info") == 1


def test_the_documented_driver_is_read(registry: Registry) -> None:
    h, _ = _handle(registry, _documented("vehicle-info-driver"))
    assert not h.rejected_whole and h.report is not None and h.report.kind == "driver"
    assert h.report.fields["name"] == "张三" and h.report.fields["valid_until"] is None


WAYBILL = {
    "v": 1,
    "kind": "waybill",
    "platform": "acme-gps",
    "gateway": "jt809",
    "at": NOW - 1000,
    "plate": "苏AD1234",
    "color": 2,
    "waybill": {"text": "UN1203", "truncated": False, "chars": 6},
}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"v": 2}, "this hub reads version 1"),
        ({"kind": "cargo"}, "kind is none of"),
        ({"extra": 1}, "unknown field(s): extra"),
        ({"driver": {}}, "unknown field(s): driver"),
        ({"at": -1}, "at is not a number"),
        ({"platform": ""}, "platform is not a name"),
        ({"gateway": "jt808x"}, "gateway 'jt808x' is none of jt808_gateways"),
        ({"plate": "x" * 22}, "plate is not a plate"),
        ({"waybill": {"text": "x" * 4097, "truncated": True, "chars": 5000}}, "at most 4096"),
        ({"waybill": {"text": "x", "truncated": "no", "chars": 1}}, "truncated is not true"),
        ({"waybill": {"text": "xy", "truncated": False, "chars": 1}}, "chars is less than"),
        ({"waybill": {"text": "x", "truncated": False, "chars": 1, "un": 1}}, "unknown field"),
        ({"at": NOW + 3_600_000}, "future_time: at is 3600 s ahead"),
    ],
)
def test_a_bad_report_is_refused_saying_why(
    registry: Registry, change: dict[str, Any], says: str
) -> None:
    h, metrics = _handle(registry, WAYBILL | change)
    assert h.rejected_whole and h.report is None
    assert says in h.reasons[0]
    reason = h.reasons[0].split(":")[0]
    assert metrics.get("hazardhub_messages_rejected_total", reason=reason) == 1


def test_a_report_of_no_configured_vehicle_is_refused(registry: Registry) -> None:
    h, metrics = _handle(registry, WAYBILL, vehicle="tanker-99")
    assert h.rejected_whole and "unknown_vehicle" in h.reasons[0]
    assert metrics.get("hazardhub_messages_rejected_total", reason="unknown_vehicle") == 1


def test_not_json_is_refused(registry: Registry) -> None:
    topic = L.vehicle_info("chem-logistics", "tanker-01")
    h = Pipeline(registry, L, Metrics()).handle(topic, b"\xff", NOW)
    assert h.rejected_whole and h.reasons[0].startswith("bad_vehicle_info: a vehicle info is")


def test_the_state_database_keeps_the_latest_of_each_kind(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    try:

        def report(at: int, name: str) -> PlatformReport:
            fields = {"name": name, "id_number": "", "licence": "", "org": "", "valid_until": None}
            return PlatformReport("t", "v", "driver", at, "p", "jt809", "苏A1", fields)

        assert record_reports(db, [report(200, "new")], 1000) == 1
        assert record_reports(db, [report(100, "older, late")], 1001) == 0  # not replaced
        assert record_reports(db, [report(200, "new")], 1002) == 1  # the same again: kept
        assert latest_reports(db, "t", "v")["driver"]["name"] == "new"
        assert latest_reports(db, "t", "other") == {}
    finally:
        db.close()
