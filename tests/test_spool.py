"""The disk spool (`ingest.store.spool`) and its record codec (`ingest.store.records`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.alarms import AlarmEvent
from ingest.store.base import PositionBatch, ReadingBatch, StoreError
from ingest.store.records import (
    RecordError,
    decode,
    encode_alarms,
    encode_positions,
    encode_readings,
)
from ingest.store.spool import Spool, SpoolFullError
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry


def records(n: int, size: int = 100) -> list[bytes]:
    return [bytes([i % 251]) * size + str(i).encode() for i in range(n)]


def drain(spool: Spool) -> list[bytes]:
    out = []
    while len(spool):
        (one,) = spool.peek()
        out.append(one)
        spool.pop()
    return out


def test_append_peek_pop_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1000)
    spool.open()
    data = records(30)
    for r in data:
        spool.append(r)
    stats = spool.stats()
    assert (stats.pending_records, stats.appended_records) == (30, 30)
    assert stats.segments > 3  # rolled over at 1000 bytes
    assert spool.peek(3) == data[:3]
    assert spool.peek(100, max_bytes=250) == data[:3]  # stops once 250 bytes are read
    assert drain(spool) == data
    stats = spool.stats()
    assert (stats.pending_records, stats.pending_bytes, stats.segments) == (0, 0, 0)
    assert stats.drained_records == 30
    assert not list(tmp_path.glob("*.seg"))  # drained segments are deleted
    spool.append(b"again")
    assert spool.peek() == [b"again"]
    spool.close()


def test_survives_reopen_and_resumes_at_the_cursor(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=500)
    spool.open()
    data = records(12)
    for r in data:
        spool.append(r)
    spool.pop(5)
    spool.close()

    again = Spool(tmp_path, segment_bytes=500)
    again.open()
    assert len(again) == 7
    assert again.pending_bytes == sum(12 + len(r) for r in data[5:])
    assert drain(again) == data[5:]
    again.close()


def test_lost_cursor_replays_from_the_oldest_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=10_000)
    spool.open()
    data = records(4)
    for r in data:
        spool.append(r)
    spool.pop(2)
    spool.close()
    (tmp_path / "cursor").unlink()
    again = Spool(tmp_path)
    again.open()
    assert drain(again) == data  # a replay: the stores' writes are idempotent
    again.close()


def test_torn_tail_is_cut(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(b"one")
    spool.append(b"two")
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"HHS1\x10\x00\x00\x00")  # a crash in the middle of a third append
    again = Spool(tmp_path)
    again.open()
    assert again.stats().corrupt_segments == 1
    assert drain(again) == [b"one", b"two"]
    again.append(b"three")
    assert again.peek() == [b"three"]
    again.close()


def test_bad_crc_is_detected(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(b"intact")
    spool.append(b"flipped")
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    raw = bytearray(segment.read_bytes())
    raw[-1] ^= 0xFF
    segment.write_bytes(bytes(raw))
    again = Spool(tmp_path)
    again.open()
    assert drain(again) == [b"intact"]
    again.close()


def test_byte_limit_is_enforced_and_reported(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    spool.open()
    appended = 0
    with pytest.raises(SpoolFullError, match="full") as info:
        for r in records(100):
            spool.append(r)
            appended += 1
    assert info.value.retryable
    assert isinstance(info.value, StoreError)
    stats = spool.stats()
    assert stats.pending_records == appended == 8  # 8 frames of 113 bytes fit in 1000
    assert stats.pending_bytes <= 1000 and stats.full_refusals == 1
    spool.pop(4)
    spool.append(b"x" * 100)  # room again once drained
    spool.close()


def test_pop_from_empty_and_closed_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(StoreError, match="not open"):
        spool.append(b"x")
    spool.open()
    with pytest.raises(ValueError, match="empty"):
        spool.pop()
    assert spool.peek() == []
    spool.close()


# -- records -------------------------------------------------------------------------------------


def registry(sensor_ids: list[str]) -> Registry:
    config = HubConfig.model_validate(
        {
            "rule_packs": [
                {
                    "name": "v",
                    "rules": {
                        "speed": {
                            "levels": [{"name": "o", "tier": "red", "above": 80, "recover": 75}]
                        }
                    },
                }
            ],
            "device_profiles": [
                {"name": "p", "points": [{"name": f"x{i}", "address": i} for i in range(8)]}
            ],
            "tenants": [
                {
                    "id": "t",
                    "sites": [
                        {
                            "id": "s",
                            "devices": [
                                {
                                    "id": "d",
                                    "profile": "p",
                                    "sensors": [
                                        {"id": sid, "point": f"x{i}", "kind": "other"}
                                        for i, sid in enumerate(sensor_ids)
                                    ],
                                }
                            ],
                        }
                    ],
                    "vehicles": [{"id": "bus", "plate": "B1", "class": "coach", "rule": "v.speed"}],
                }
            ],
        }
    )
    return build_registry(config)


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(-(2**62), 2**62),
            st.floats(width=64),
            st.integers(0, 255),
            st.integers(-(2**62), 2**62),
        ),
        max_size=30,
    )
)
def test_readings_round_trip(rows: list[tuple[int, int, float, int, int]]) -> None:
    reg = registry(["a", "b", "c"])
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    batch = ReadingBatch(
        np.array(cols[0], np.int32),
        np.array(cols[1], np.int64),
        np.array(cols[2], np.float64),
        np.array(cols[3], np.uint8),
        np.full(n, 7, np.int64),
        np.array(cols[4], np.int64),
    )
    got = decode(reg, encode_readings(reg, batch))
    assert got.readings is not None and got.unknown_rows == 0
    for name in ("sensor", "ts", "value", "quality", "epoch", "seq"):
        a, b = getattr(got.readings, name), getattr(batch, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_records_follow_sensor_ids_across_a_renumbering() -> None:
    first = registry(["a", "b", "c"])
    batch = ReadingBatch(
        np.array([0, 1, 2, 1], np.int32),
        np.arange(4, dtype=np.int64),
        np.array([0.5, 1.5, 2.5, math.nan]),
        np.zeros(4, np.uint8),
        np.ones(4, np.int64),
        np.arange(4, dtype=np.int64),
    )
    record = encode_readings(first, batch)
    second = registry(["c", "new", "a"])  # b is gone, the others moved
    got = decode(second, record)
    assert got.readings is not None
    assert got.readings.sensor.tolist() == [2, 0]  # a, c
    assert got.readings.value.tolist() == [0.5, 2.5]
    assert (got.unknown_rows, got.unknown_ids) == (2, ("b",))


def test_positions_and_alarms_round_trip() -> None:
    reg = registry(["a"])
    bus = reg.vehicles[("t", "bus")].speed_sensor
    pos = PositionBatch(
        np.array([bus, bus], np.int32),
        np.array([1, 2], np.int64),
        np.array([30.0, 30.1]),
        np.array([120.0, 120.1]),
        np.array([math.nan, 50.0]),
        np.array([0.0, 90.0]),
    )
    got = decode(reg, encode_positions(reg, pos))
    assert got.positions is not None
    np.testing.assert_array_equal(got.positions.speed_kmh, pos.speed_kmh)
    assert got.positions.vehicle.tolist() == [bus, bus]
    event = AlarmEvent(
        7,
        "raised",
        "t",
        "s",
        "d",
        "a",
        "pack.rule",
        "above",
        2,
        "high",
        "red",
        "call",
        math.nan,
        5,
        6,
    )
    (back,) = decode(reg, encode_alarms([event])).alarms
    assert math.isnan(back.value)
    assert back.to_json() == event.to_json()
    with pytest.raises(RecordError):
        decode(reg, b"X\x01junk")
    with pytest.raises(RecordError):
        decode(reg, b"R\x01\x00")


def test_segments_are_the_hubs_user_alone(tmp_path: Path) -> None:
    """The readings of every enterprise, spooled while InfluxDB is away, are 0600 (they were
    0644: readable by every local user); a segment made so before is narrowed at open."""
    spool = Spool(tmp_path, segment_bytes=1000)
    spool.open()
    for r in records(30):
        spool.append(r)
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) > 3 and {p.stat().st_mode & 0o777 for p in segments} == {0o600}
    spool.close()
    segments[0].chmod(0o644)
    again = Spool(tmp_path, segment_bytes=1000)
    again.open()
    assert segments[0].stat().st_mode & 0o777 == 0o600
    again.close()
