"""Positions in a numbered envelope (docs/mqtt.md "Position"): a message the broker drops is
counted, one delivered twice is judged once, across a hub restart too; a malformed envelope is
a dead letter with its reason. The codec's round trip, and the pipeline alone."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.positions import decode_positions
from ingest.seen import SeenSeqs
from ingest.seqjournal import SEQ_FILE, SeqJournal, configured
from telemetry.posenvelope import (
    EnvelopeError,
    decode_envelope,
    encode_envelope,
    is_envelope,
)
from telemetry.topics import TopicLayout

from e2e_helpers import mine_registry

TOPIC = "hazardhub/v1/acme-chem/vehicles/tanker-01/position"
U64 = 2**64


def rec(ts: int, flags: int = 0, **more: object) -> dict[str, object]:
    return {
        "ts": ts,
        "lat": 31.62,
        "lon": 120.33,
        "speed_kmh": 40.0,
        "heading_deg": 90.0,
        "alarm_flags": flags,
        **more,
    }


def env(epoch: int, seq: int, records: list[object]) -> bytes:
    return encode_envelope(epoch, seq, orjson.dumps(records))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(
    st.integers(0, U64 - 1),
    st.integers(0, U64 - 1),
    st.lists(st.dictionaries(st.text(max_size=6), _json, max_size=4), max_size=5),
)
def test_an_envelope_opens_to_what_was_put_in(epoch: int, seq: int, records: list[object]):
    payload = encode_envelope(epoch, seq, orjson.dumps(records))
    got = decode_envelope(payload)
    assert (got.epoch, got.seq, got.records) == (epoch, seq, records)
    cols = decode_positions(payload)  # the hub's reading of it: numbered, records judged alone
    assert cols.numbered == (epoch, seq)
    assert len(cols) + len(cols.rejected) == len(records)


@given(_json)
def test_a_bare_payload_is_no_envelope_unless_it_names_epoch_or_records(doc: object):
    assert is_envelope(doc) == (isinstance(doc, dict) and bool({"epoch", "records"} & set(doc)))


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=U64), st.booleans()))
def test_numbers_out_of_range_are_not_encoded(bad: int):
    with pytest.raises(EnvelopeError):
        encode_envelope(bad, 0, b"[]")
    with pytest.raises(EnvelopeError):
        encode_envelope(0, bad, b"[]")


def _pipeline() -> Pipeline:
    return Pipeline(mine_registry(1502, 1.0), TopicLayout(), Metrics())


BAD: list[tuple[object, str]] = [
    ({"seq": 0, "records": []}, "an envelope needs epoch"),
    ({"epoch": 5, "records": []}, "an envelope needs seq"),
    ({"epoch": 5, "seq": 0}, "an envelope needs records"),
    ({"epoch": -1, "seq": 0, "records": []}, "epoch must be an integer 0 to 2^64 - 1, got -1"),
    # (2^64: JSON readers make it a float)
    (b'{"epoch": 5, "seq": 18446744073709551616, "records": []}', "seq must be an integer 0 to"),
    ({"epoch": 5, "seq": True, "records": []}, "seq must be an integer 0 to 2^64 - 1, got True"),
    ({"epoch": 5.5, "seq": 0, "records": []}, "epoch must be an integer"),
    ({"epoch": 5, "seq": 0, "records": {"ts": 1}}, "records must be an array, got dict"),
    ({"epoch": 5, "seq": 0, "records": [], "gw": "x"}, "unknown envelope key(s) gw"),
]


@pytest.mark.parametrize(("doc", "said"), BAD)
def test_a_malformed_envelope_is_refused_whole_with_its_reason(doc: object, said: str):
    p = _pipeline()
    payload = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    h = p.handle(TOPIC, payload, time.time_ns() // 1_000_000)
    assert h.rejected_whole and h.mark is None
    assert len(h.reasons) == 1 and h.reasons[0].startswith("bad_envelope: "), h.reasons
    assert said in h.reasons[0]
    assert p.metrics.get("hazardhub_messages_rejected_total", reason="bad_envelope") == 1


def test_a_bad_record_in_a_good_envelope_is_refused_alone():
    p = _pipeline()
    now = time.time_ns() // 1_000_000
    h = p.handle(TOPIC, env(7, 3, [rec(now - 2000), rec(now - 1000, lat=91.0)]), now)
    assert not h.rejected_whole and h.mark == (("acme-chem", "vehicles", "tanker-01"), 7, 3)
    assert h.positions is not None and len(h.positions.ts) == 1
    assert h.reasons == ["bad_record: record 1: lat 91.0 is outside [-90, 90]"]
    # every record refused: a dead letter, yet judged (its seq taken: no gap said for it)
    h = p.handle(TOPIC, env(7, 4, [rec(now, lat=91.0)]), now)
    assert h.reasons and not h.rejected_whole and h.mark is not None and h.positions is None


def test_a_bare_payload_is_taken_unnumbered_and_counted_so():
    p = _pipeline()
    now = time.time_ns() // 1_000_000
    for body in (rec(now), [rec(now), rec(now + 1)]):
        h = p.handle(TOPIC, orjson.dumps(body), now)
        assert h.mark is None and not h.reasons and h.positions is not None
    assert p.metrics.get("hazardhub_positions_unsequenced_total") == 2


def test_an_envelope_already_judged_is_a_duplicate():
    p = _pipeline()
    now = time.time_ns() // 1_000_000
    payload = env(7, 0, [rec(now)])
    first = p.handle(TOPIC, payload, now)
    assert first.mark is not None and not first.duplicate
    p.seen.add(first.mark)  # what a flush does once it judged it
    again = p.handle(TOPIC, payload, now)
    assert again.duplicate and again.positions is None
    assert p.metrics.get("hazardhub_positions_duplicate_total") == 1
    # the same seq of another vehicle, or of another epoch, is not
    assert not p.handle(TOPIC, env(8, 0, [rec(now)]), now).duplicate


def test_the_seq_journal_keeps_the_marks_of_configured_vehicles_and_devices(tmp_path):
    registry = mine_registry(1502, 1.0)
    path = tmp_path / SEQ_FILE
    seen = SeenSeqs()
    kept = [
        (("acme-chem", "vehicles", "tanker-01"), 7, 41),
        (("north-coal", "face-1301", "kj-sub-3"), 5, 9),
    ]
    gone = [(("acme-chem", "vehicles", "tanker-99"), 7, 3), (("acme-chem", "vehicles", "x"), 1, 1)]
    for mark in (*kept, *gone):
        seen.add(mark)
    SeqJournal(path, seen).close()
    again = SeenSeqs()
    SeqJournal(path, again, known=configured(registry)).close()
    assert sorted(again.highs()) == sorted(kept)  # a vehicle no longer configured is forgotten
