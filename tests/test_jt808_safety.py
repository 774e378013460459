"""The active-safety blocks of 苏标 terminals (T/JSATL 12-2017): ADAS 0x64 and DSM 0x65 in a
0x0200, decoded (hypothesis round trip, byte vectors derived by hand from the layout), carried by
the gateway in the record's `active_safety`, read by the hub (`ingest.positions`) and judged
into alarms (`alerts.vehicles.safety`): start raises, end returns, an event without duration
raises and returns at once, the same event sent again changes nothing."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jt808_helpers import authed, fix, frame
from test_docs_vectors import _block, _byte_table, _check_table, _doc, _hex

from alerts.vehicles.safety import SafetyAlarms
from gateway.jt808.records import position_record, safety_events
from gateway.jt808.session import Problem, Publish
from ingest.positions import decode_positions
from simulators.jt808 import location_of
from telemetry.activesafety import SafetyEvent, read_events
from telemetry.fleetconfig import ActiveSafety
from telemetry.jt808 import Location
from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.safety import ADAS, DSM, SafetyBlock

# a DSM fatigue alarm starting, second level, derived by hand from the layout (47 bytes)
DSM_FATIGUE = bytes.fromhex(
    "00000007"  # alarm id 7
    "01"  # flag: start
    "01"  # type 1: fatigue
    "02"  # level 2
    "05"
    "00000000"  # fatigue level 5, 4 reserved
    "3e"  # speed 62 km/h
    "000c"  # altitude 12 m
    "01e27c04"  # latitude 31.620100
    "072c1774"  # longitude 120.330100
    "261129220500"  # 2026-11-29 22:05:00 GMT+8
    "0001"  # vehicle status: ACC on
    "485a3030303031"  # terminal id HZ00001
    "261129220500"  # identification time
    "00"  # sequence 0
    "03"  # 3 attachments
    "00"  # reserved
)
T_EVENT = 1795961100000  # 2026-11-29 22:05:00 GMT+8 (docs/jt808.md's test vector time)
# an ADAS forward collision without duration (flag 0), first level, 粤标: a 30-byte terminal id
# and 2 reserved bytes (71 bytes)
ADAS_YUE = bytes.fromhex(
    "0000002a"
    "00"
    "01"
    "01"  # id 42, flag 0, forward collision, level 1
    "28"
    "0f"
    "00"
    "00"
    "00"  # front vehicle 40 km/h, 1.5 s ahead, no deviation, no sign
    "50"
    "0000"
    "01e27c04"
    "072c1774"
    "261129220503"
    "0003"  # 80 km/h ... 22:05:03
    + "31323334353637383930"
    + "00" * 20  # terminal id "1234567890", padded to 30
    + "261129220503"
    "01"
    "00"
    "0000"  # identification: time, sequence 1, none, reserved
)


def test_the_hand_derived_blocks_decode_field_by_field():
    b = SafetyBlock.decode(DSM, DSM_FATIGUE)
    assert len(DSM_FATIGUE) == 47 and not b.yue
    assert (b.source, b.alarm_id, b.flag, b.type, b.level, b.fatigue) == ("dsm", 7, 1, 1, 2, 5)
    assert (b.speed_kmh, b.altitude_m, b.lat_e6, b.lon_e6) == (62, 12, 31620100, 120330100)
    assert (b.ts_ms, b.vehicle_status, b.attachments) == (T_EVENT, 1, 3)
    assert b.reference == "HZ00001/261129220500/0"
    assert b.encode() == DSM_FATIGUE
    a = SafetyBlock.decode(ADAS, ADAS_YUE)
    assert len(ADAS_YUE) == 71 and a.yue
    assert (a.source, a.alarm_id, a.flag, a.type, a.level) == ("adas", 42, 0, 1, 1)
    assert a.specific == bytes((40, 15, 0, 0, 0)) and a.fatigue is None
    assert (a.ts_ms, a.reference, a.attachments) == (T_EVENT + 3000, "1234567890/261129220503/1", 0)
    assert a.encode() == ADAS_YUE


def test_the_documented_block_is_the_hand_derived_one():
    doc = _doc("jt808.md")
    raw = _hex(doc, "jt808-0065")
    _check_table(raw, _byte_table(doc, "jt808-0065"))
    assert raw == bytes((DSM, 47)) + DSM_FATIGUE
    loc = Location(0, 3, 1, 1, 0, 0, 0, "261129220501", ((DSM, DSM_FATIGUE),))
    events, bad = safety_events(loc)
    assert bad == [] and events == [
        {
            "source": "dsm",
            "alarm_id": 7,
            "flag": 1,
            "type": 1,
            "level": 2,
            "ts": T_EVENT,
            "attachments": 3,
            "ref": "HZ00001/261129220500/0",
            "lat": 31.6201,
            "lon": 120.3301,
            "speed_kmh": 62,
            "fatigue": 5,
        }
    ]


def test_the_documented_record_is_what_the_gateway_publishes_and_the_hub_reads():
    doc = _doc("mqtt.md")
    text = _block(doc, "position-active-safety")
    cols = decode_positions(text.encode())
    assert cols.rejected == () and len(cols) == 1
    ((i, ev),) = cols.safety
    assert (i, ev.kind, ev.ts, ev.level, ev.attachments) == (0, "dsm_fatigue", T_EVENT, 2, 3)
    loc = Location(0, 3, 31620100, 120330100, 0, 620, 90, "261129220501", ((DSM, DSM_FATIGUE),))
    events, _ = safety_events(loc)
    assert orjson.loads(text)["active_safety"] == events


blocks = st.builds(
    SafetyBlock,
    st.sampled_from((ADAS, DSM)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(min_size=5, max_size=5),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=6, max_size=6).map(bytes.hex),
    st.integers(0, 65535),
    st.one_of(st.binary(min_size=7, max_size=7), st.binary(min_size=30, max_size=30)),
    st.binary(min_size=6, max_size=6).map(bytes.hex),
    st.integers(0, 255),
    st.integers(0, 255),
).map(
    lambda b: SafetyBlock(**{**_fields(b), "reserved": bytes(2 if b.yue else 1)})  # type: ignore[arg-type]
)


def _fields(b: SafetyBlock) -> dict[str, object]:
    return {k: getattr(b, k) for k in SafetyBlock.__slots__}  # type: ignore[attr-defined]


@given(blocks)
def test_a_block_round_trips(block):
    raw = block.encode()
    assert len(raw) == (71 if block.yue else 47)
    assert SafetyBlock.decode(block.ident, raw) == block
    # in a location report, among other items
    loc = Location(0, 3, 1, 1, 0, 0, 0, "261129220500", ((0x01, b"\0\0\0\1"), block.item()))
    again = Location.decode(loc.encode())
    assert again.safety_blocks() == ((block,), ())


@given(
    st.sampled_from((ADAS, DSM)), st.binary(max_size=80).filter(lambda r: len(r) not in (47, 71))
)
def test_a_block_of_another_length_is_refused_not_crashed(ident, raw):
    with pytest.raises(Jt808Error, match="active-safety block"):
        SafetyBlock.decode(ident, raw)
    loc = Location(0, 3, 1, 1, 0, 0, 0, "261129220500", ((ident, raw),))
    found, bad = loc.safety_blocks()
    assert found == () and len(bad) == 1


def test_the_gateway_publishes_the_events_and_counts_a_malformed_block_keeping_the_position():
    s = authed()
    block = SafetyBlock.decode(DSM, DSM_FATIGUE)
    good = replace(fix(0, safety=(block,), items=((ADAS, b"\1" * 40),)), ts_ms=T_EVENT + 1000)
    ev = s.feed(frame(0x0200, 10, location_of(good).encode(False)), 0)
    (pub,) = [e for e in ev if isinstance(e, Publish)]
    (rec,) = pub.records
    assert (rec["lat"], rec["ts"]) == (pytest.approx(31.2), T_EVENT + 1000)  # the position
    assert rec["active_safety"] == [
        {
            "source": "dsm",
            "alarm_id": 7,
            "flag": 1,
            "type": 1,
            "level": 2,
            "ts": T_EVENT,
            "attachments": 3,
            "ref": "HZ00001/261129220500/0",
            "lat": 31.6201,
            "lon": 120.3301,
            "speed_kmh": 62,
            "fatigue": 5,
        }
    ]
    kinds = [e.kind for e in ev if isinstance(e, Problem)]
    assert kinds.count("bad_safety") == 1 and kinds.count("active_safety") == 1
    # a block whose time is no time is left out too
    broken = bytearray(DSM_FATIGUE)
    broken[23:29] = bytes.fromhex("261399220500")  # month 13
    events, why = safety_events(
        Location.decode(location_of(fix(1)).encode() + b"\x65\x2f" + bytes(broken))
    )
    assert events == [] and "no such date" in why[0]
    # and one after its report (the hub would refuse the whole record)
    events, why = safety_events(location_of(fix(1, safety=(block,))))
    assert events == [] and "after its report" in why[0]


def test_a_report_without_a_fix_goes_for_its_events():
    block = SafetyBlock.decode(DSM, DSM_FATIGUE)
    loc = location_of(replace(fix(0, positioned=False, safety=(block,)), ts_ms=T_EVENT))
    assert position_record(loc) == "no_fix"
    events, _ = safety_events(loc)
    rec = position_record(loc, safety=events)
    assert isinstance(rec, dict) and (rec["lat"], rec["lon"]) == (0.0, 0.0)
    assert rec["active_safety"] == events
    # and the hub takes it: the events, no place
    cols = decode_positions(_json(rec))
    assert len(cols) == 1 and [e.kind for _, e in cols.safety] == ["dsm_fatigue"]


def _json(rec: object) -> bytes:
    return orjson.dumps(rec)


def test_the_hub_reads_the_events_strictly_and_never_drops_the_position_for_them():
    ev = {"source": "adas", "alarm_id": 1, "flag": 0, "type": 1, "level": 1, "ts": 1000}
    assert read_events([ev], 1000) == ((SafetyEvent("adas", 1, 0, 1, 1, 1000),), [])
    for bad, why in (
        ({**ev, "source": "bsd"}, "source"),
        ({**ev, "flag": 3}, "flag"),
        ({**ev, "extra": 1}, "unknown"),
        ({**ev, "ts": 40_000}, "after the report"),
        ({k: v for k, v in ev.items() if k != "level"}, "without level"),
        ({**ev, "lat": 91.0}, "lat"),
        ({**ev, "headway_s": -1}, "headway_s"),
    ):
        events, problems = read_events([bad, ev], 1000)
        assert len(events) == 1 and why in problems[0] and "event 0" in problems[0]
    rec = {"ts": 1000, "lat": 31.0, "lon": 121.0, "speed_kmh": 0, "heading_deg": 0}
    cols = decode_positions(_json([rec, {**rec, "ts": 2000, "active_safety": [ev]}]))
    assert [(i, e.alarm_id) for i, e in cols.safety] == [(1, 1)]
    # a bad event (flag 3) and 21 events: the position and its alarm bits are kept
    one = {**rec, "alarm_flags": 1, "active_safety": [{**ev, "flag": 3}]}
    many = {**rec, "ts": 2000, "alarm_flags": 1, "active_safety": [ev] * 21}
    cols = decode_positions(_json([one, many]))
    assert len(cols) == 2 and cols.rejected == () and cols.alarm_flags.tolist() == [1, 1]
    assert len(cols.safety) == 20
    assert [i for i, _ in cols.safety_rejected] == [0, 1]
    assert "flag" in cols.safety_rejected[0][1] and "21 events" in cols.safety_rejected[1][1]
    # the place, speed, fatigue degree and headway, and the record's driver
    full = {**ev, "lat": 31.5, "lon": 120.25, "speed_kmh": 62, "headway_s": 1.5}
    cols = decode_positions(_json({**rec, "driver_id": "张三", "active_safety": [full]}))
    ((_, got),) = cols.safety
    assert (got.lat, got.lon, got.speed_kmh, got.headway_s, got.driver) == (
        31.5,
        120.25,
        62,
        1.5,
        "张三",
    )
    assert got.record() == {**full, "attachments": 0}


def _ev(flag: int, ts: int, level: int = 1, type_: int = 1, source: str = "dsm", aid: int = 1):
    return SafetyEvent(source, aid, flag, type_, level, ts, 2, "HZ00001/261129220500/0")


def test_start_raises_end_returns_in_event_time_and_a_copy_does_nothing():
    alarms = SafetyAlarms(ActiveSafety())
    got = alarms.judge(
        [(3, _ev(2, 30, 2, aid=7)), (3, _ev(1, 10, 2, aid=7)), (5, _ev(0, 20, 1, 1, "adas"))]
    )
    assert [(c.vehicle, c.kind, c.level, c.tier, c.ts) for c in got] == [
        (3, "dsm_fatigue", 2, "orange", 10),
        (3, "dsm_fatigue", 0, "none", 30),
        (5, "adas_forward_collision", 1, "yellow", 20),  # no duration: raised ...
        (5, "adas_forward_collision", 0, "none", 20),  # ... and returned at once
    ]
    assert "苏标报警ID alarm id 7" in got[0].said and "附件 2 个" in got[0].said
    assert alarms.outcomes == {"alarmed": 3}
    # the same blocks again (a resent report, a blind area uploaded twice): nothing
    assert alarms.judge([(3, _ev(1, 10, 2, aid=7)), (5, _ev(0, 20, 1, 1, "adas"))]) == []
    assert alarms.outcomes == {"repeated": 2}
    # a first-level start escalates to second level; a vendor's type and the events 16/17
    alarms.judge([(3, _ev(1, 40, 1, aid=8))])
    up = alarms.judge([(3, _ev(1, 50, 2, aid=9)), (3, _ev(0, 60, 1, 9)), (3, _ev(0, 61, 1, 17))])
    assert [(c.kind, c.level) for c in up] == [("dsm_fatigue", 2)]
    assert alarms.outcomes == {"alarmed": 1, "unknown_type": 1, "recorded": 1}


def test_the_fleet_sets_tiers_and_alarms_events():
    settings = ActiveSafety.model_validate(
        {"tiers": {"dsm_fatigue": ["orange", "red"]}, "alarm_events": ["dsm_driver_change"]}
    )
    alarms = SafetyAlarms(settings)
    got = alarms.judge([(1, _ev(1, 10, 2)), (1, _ev(0, 11, 1, 17))])
    assert [(c.kind, c.tier) for c in got] == [
        ("dsm_fatigue", "red"),
        ("dsm_driver_change", "yellow"),
        ("dsm_driver_change", "none"),
    ]
    with pytest.raises(ValueError, match="no active-safety kind"):
        ActiveSafety.model_validate({"tiers": {"dsm_sleeping": ["red", "red"]}})


@given(
    st.lists(
        st.tuples(st.sampled_from((ADAS, DSM)), st.sampled_from((47, 71, 40)), st.randoms()),
        max_size=24,
    ),
    st.integers(0, 0xFFFF),
    st.integers(0, 3),
)
def test_any_block_through_the_session_and_the_hub_is_an_event_or_counted_never_the_position(
    items, serial, flag
):
    """Through the gateway's session and the hub's reader: every block is an event the hub
    reads or one counted bad_safety, at most 20 a record, and the hub keeps the position."""
    raw = []
    for ident, n, r in items:
        b = bytearray(r.randbytes(n))
        if n != 40:
            b[4] = flag if r.random() < 0.5 else b[4]  # often a flag 0-3, else any
            b[23:29] = bytes.fromhex("261129220500")  # often a time that reads
        raw.append((ident, bytes(b)))
    body = location_of(replace(fix(0, items=tuple(raw)), ts_ms=T_EVENT + 1000)).encode(False)
    assume(len(body) <= 1023)  # what one 0x0200 holds
    s = authed()
    ev = s.feed(frame(0x0200, serial, body), 0)
    (pub,) = [e for e in ev if isinstance(e, Publish)]
    kinds = [e.kind for e in ev if isinstance(e, Problem)]
    (rec,) = pub.records
    published = rec.get("active_safety", [])
    assert len(published) == kinds.count("active_safety") <= 20
    assert kinds.count("active_safety") + kinds.count("bad_safety") == len(raw)
    cols = decode_positions(_json(rec))  # the hub takes the record whole
    assert len(cols) == 1 and cols.rejected == () and cols.safety_rejected == ()
    assert [e.record() for _, e in cols.safety] == published


def test_the_simulators_block_says_acc_and_positioned_where_the_standard_has_them():
    """T/JSATL 12-2017's vehicle status: bit 0 ACC, bits 1-5 turn signals, wiper, brake, card,
    bit 10 positioned; the simulator put positioned at bit 1 (a left turn) and the hemisphere at
    bits 2 and 3 (a right turn and the wiper)."""
    from simulators.jt808fix import Fix, safety_block

    event = SafetyEvent("dsm", 7, 1, 1, 2, 1_764_000_000_000)
    south_west = Fix(1_764_000_000_000, -33.9, -70.6, 50.0, acc_on=True, positioned=True)
    assert safety_block(south_west, event, "T1").vehicle_status == 1 | 1 << 10
    parked = Fix(1_764_000_000_000, 31.2, 121.5, 0.0, acc_on=False, positioned=False)
    assert safety_block(parked, event, "T1").vehicle_status == 0
