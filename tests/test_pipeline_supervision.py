"""A JT/T 809 gateway's report of a platform's answer to the centre's 督办 (docs/mqtt.md), as the
ingest pipeline reads it: a good one becomes the answer to journal; a bad one, or one of a
gateway that is none of `jt808_gateways`, is refused whole (its reason for the dead letter) and
counted."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from alerts.supervisionanswers import SupervisionAnswer
from hazardhub.settings import load_registry
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

ROOT = Path(__file__).resolve().parent.parent
L = TopicLayout()
NOW = 1_717_200_000_000


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(ROOT / "examples" / "demo.yaml", [ROOT / "profiles"])


def _gateway(registry: Registry) -> str:
    return registry.config.jt808_gateways[0]


def test_an_answer_is_read(registry: Registry) -> None:
    metrics = Metrics()
    gw = _gateway(registry)
    doc = {"supervision_id": 4711, "result": 1, "platform": "acme-gps", "plate": "苏AD1234"}
    h = Pipeline(registry, L, metrics).handle(
        L.gateway_supervision("acme-chem", gw), orjson.dumps(doc | {"at": NOW}), NOW
    )
    assert not h.rejected_whole
    assert h.answer == SupervisionAnswer("acme-chem", gw, 4711, 1, "acme-gps", "苏AD1234")
    assert metrics.get("hazardhub_messages_total", kind="supervision") == 1


def test_a_receipt_is_read(registry: Registry) -> None:
    gw = _gateway(registry)
    doc = {"supervision_id": 4711, "receipt": "sent", "platform": "acme-gps", "link": "sub"}
    h = Pipeline(registry, L, Metrics()).handle(
        L.gateway_supervision("acme-chem", gw), orjson.dumps(doc | {"at": NOW}), NOW
    )
    assert h.answer == SupervisionAnswer(
        "acme-chem", gw, 4711, 0, "acme-gps", "", receipt="sent", link="sub"
    )


@pytest.mark.parametrize(
    "doc",
    [
        {"supervision_id": 1, "receipt": "lost", "platform": "p"},
        {"supervision_id": 1, "receipt": "sent", "platform": "p"},  # no link
        {"supervision_id": 1, "receipt": "kept", "platform": "p", "link": "main"},
        {"supervision_id": -1, "receipt": "kept", "platform": "p"},
        {"supervision_id": 1, "receipt": "kept", "platform": 7},
    ],
)
def test_a_bad_receipt_is_refused(registry: Registry, doc: dict[str, object]) -> None:
    h = Pipeline(registry, L, Metrics()).handle(
        L.gateway_supervision("acme-chem", _gateway(registry)), orjson.dumps(doc), NOW
    )
    assert h.rejected_whole and h.reasons[0].startswith("bad_supervision_answer: ")


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1]",
        orjson.dumps({"supervision_id": -1, "result": 1, "platform": "p"}),
        orjson.dumps({"supervision_id": 2**32, "result": 1, "platform": "p"}),
        orjson.dumps({"supervision_id": 1, "result": 256, "platform": "p"}),
        orjson.dumps({"supervision_id": 1, "result": True, "platform": "p"}),
        orjson.dumps({"supervision_id": 1, "result": 1, "platform": ""}),
        orjson.dumps({"supervision_id": 1, "result": 1, "platform": "p\nq"}),
        orjson.dumps({"supervision_id": 1, "result": 1, "platform": "p", "plate": 7}),
    ],
)
def test_a_bad_answer_is_refused(registry: Registry, payload: bytes) -> None:
    metrics = Metrics()
    h = Pipeline(registry, L, metrics).handle(
        L.gateway_supervision("acme-chem", _gateway(registry)), payload, NOW
    )
    assert h.rejected_whole and h.answer is None
    assert h.reasons[0].startswith("bad_supervision_answer: ")
    assert metrics.get("hazardhub_messages_rejected_total", reason="bad_supervision_answer") == 1


def test_an_answer_of_no_position_gateway_is_refused(registry: Registry) -> None:
    doc = {"supervision_id": 1, "result": 1, "platform": "p"}
    h = Pipeline(registry, L, Metrics()).handle(
        L.gateway_supervision("acme-chem", "modbus-gw"), orjson.dumps(doc), NOW
    )
    assert h.rejected_whole
    assert "none of jt808_gateways" in h.reasons[0]
