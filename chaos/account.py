"""The accounting after a run, pure: published batches and positions against stored rows, the
alarm journal of the faulted hub against the fault-free one, and the catch-up time after each
fault."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from chaos.collect import AlarmEvent, Position, Published

__all__ = [
    "AlarmAccount",
    "PositionAccount",
    "ReadingAccount",
    "account_alarms",
    "account_positions",
    "account_readings",
    "catch_up_ms",
    "expected_until",
]

FLEET_RULE = "fleet"  # the rule of the fleet's alarms (overspeed, corridor ...)


@dataclass(slots=True)
class ReadingAccount:
    batches_published: int = 0  # distinct (device, epoch, seq) on the broker
    batch_redeliveries: int = 0  # the same batch published again (a retry after a fault)
    epochs: int = 0  # gateway lives seen (one per start)
    seq_gaps: int = 0  # batches missing from a gateway life's 0..max numbering
    sent: int = 0  # readings of stored sensors in the published batches
    stored: int = 0  # rows in the store
    duplicated: int = 0  # rows beyond one per (sensor, epoch, seq)
    unexpected: int = 0  # rows that no published batch carried (a wrong time or sensor)
    lost: int = 0  # published readings missing from the store, plus gaps
    lost_sample: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def expected_readings(
    batches: Mapping[tuple[str, int, int], Published], sensors: Mapping[tuple[str, str], str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """(sensor, event time) -> (epoch, seq) of every published reading the hub should store."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for (device, epoch, seq), pub in batches.items():
        for point, ts in pub.readings:
            sensor = sensors.get((device, point))
            if sensor is not None:
                out.setdefault((sensor, ts), (epoch, seq))
    return out


def account_readings(
    batches: Mapping[tuple[str, int, int], Published],
    sensors: Mapping[tuple[str, str], str],
    rows: Iterable[tuple[str, int, int, int]],
) -> ReadingAccount:
    """`rows`: (sensor, event time ms, epoch, seq) as stored."""
    acc = ReadingAccount(batches_published=len(batches))
    acc.batch_redeliveries = sum(p.deliveries - 1 for p in batches.values())
    lives: dict[tuple[str, int], set[int]] = defaultdict(set)
    for device, epoch, seq in batches:
        lives[(device, epoch)].add(seq)
    acc.epochs = len({e for _, e in lives})
    for (device, epoch), seqs in sorted(lives.items()):
        missing = sorted(set(range(max(seqs) + 1)) - seqs)
        acc.seq_gaps += len(missing)
        if missing:
            acc.lost_sample.append(f"{device} epoch {epoch}: seq {missing[:5]} never published")
    expected = expected_readings(batches, sensors)
    acc.sent = len(expected)
    row_list = list(rows)
    acc.stored = len(row_list)
    per_batch = Counter((s, e, q) for s, _, e, q in row_list)
    acc.duplicated = sum(n - 1 for n in per_batch.values())
    stored_keys = {(s, t) for s, t, _, _ in row_list}
    acc.unexpected = len(stored_keys - expected.keys())
    missing_rows = sorted(expected.keys() - stored_keys, key=lambda k: (k[1], k[0]))
    acc.lost = len(missing_rows) + acc.seq_gaps
    acc.lost_sample += [f"{s} at {t} ms (epoch/seq {expected[(s, t)]})" for s, t in missing_rows]
    acc.lost_sample = acc.lost_sample[:20]
    return acc


@dataclass(slots=True)
class PositionAccount:
    recorded: int = 0  # positions the recorders made
    not_sent: int = 0  # recorded but never on the broker (dropped from a full buffer, unsent)
    sent: int = 0  # distinct (vehicle, event time) on the broker
    redeliveries: int = 0  # the same position published again (a retry after a broken link)
    stored: int = 0  # rows of `position` in the store
    speed_readings: int = 0  # rows of the vehicles' speed sensors in `reading`
    duplicated: int = 0  # speed readings beyond one per (vehicle, seq)
    unexpected: int = 0  # rows at a (vehicle, time) no recorder published
    altered: int = 0  # rows whose latitude, longitude or speed differ from the published
    lost: int = 0  # published positions without their position row or speed reading
    lost_sample: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def account_positions(
    recorded: Iterable[tuple[str, int, int]],
    published: Mapping[tuple[str, int], Position],
    rows: Iterable[tuple[str, int, float, float, float]],
    speed_rows: Iterable[tuple[str, int, int]],
) -> PositionAccount:
    """`recorded`: (vehicle, event time ms, seq) as the recorders made them; `published`: what the
    observer saw on the broker; `rows`: (vehicle, time, lat, lon, speed) of `position`;
    `speed_rows`: (vehicle, time, seq) of the vehicles' speed readings."""
    acc = PositionAccount(sent=len(published))
    made = {(v, t) for v, t, _ in recorded}
    acc.recorded = len(made)
    unsent = sorted(made - published.keys(), key=lambda k: (k[1], k[0]))
    acc.not_sent = len(unsent)
    acc.redeliveries = sum(p.deliveries - 1 for p in published.values())
    row_list = list(rows)
    acc.stored = len(row_list)
    stored: dict[tuple[str, int], tuple[float, float, float]] = {}
    for v, t, lat, lon, speed in row_list:
        stored[(v, t)] = (lat, lon, speed)
        pub = published.get((v, t))
        if pub is None:
            acc.unexpected += 1
        elif (pub.lat, pub.lon, pub.speed_kmh) != (lat, lon, speed):
            acc.altered += 1
    speeds = list(speed_rows)
    acc.speed_readings = len(speeds)
    acc.duplicated = sum(n - 1 for n in Counter((v, q) for v, _, q in speeds).values())
    speed_keys = {(v, t) for v, t, _ in speeds}
    acc.unexpected += len(speed_keys - published.keys())
    for key in sorted(published, key=lambda k: (k[1], k[0])):
        missing = [
            what for what, keys in (("position", stored), ("speed", speed_keys)) if key not in keys
        ]
        if missing:
            acc.lost += 1
            acc.lost_sample.append(f"{key[0]} at {key[1]} ms: no {' or '.join(missing)} row")
    acc.lost_sample += [f"{v} at {t} ms: recorded, never on the broker" for v, t in unsent]
    acc.lost_sample = acc.lost_sample[:20]
    return acc


def expected_until(expected: Iterable[tuple[str, int]], until_ms: int) -> int:
    return sum(1 for _, t in expected if t <= until_ms)


def catch_up_ms(
    samples: Sequence[tuple[int, int, int]], readings: int, positions: int, end_ms: int
) -> int | None:
    """From (wall ms, stored readings, stored positions) samples taken after a fault: ms from the
    fault's end until the store had all `readings` and `positions` up to that end; None if it
    never had them."""
    for wall, n_readings, n_positions in samples:
        if n_readings >= readings and n_positions >= positions:
            return max(0, wall - end_ms)
    return None


@dataclass(slots=True)
class AlarmAccount:
    expected: int = 0  # transitions in the fault-free run
    seen: int = 0  # transitions in the faulted run
    matched: int = 0
    tolerance_ms: int = 0
    worst_skew_ms: int = 0  # the largest event-time difference of a matched pair
    fleet_expected: int = 0  # of `expected`, the fleet's (rule `fleet`)
    fleet_matched: int = 0
    fleet_worst_skew_ms: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and self.matched == self.expected == self.seen

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def account_alarms(
    expected: Sequence[AlarmEvent], seen: Sequence[AlarmEvent], tolerance_ms: int
) -> AlarmAccount:
    """Per (sensor, rule, side), the same transitions in the same order (kind and level), each
    at an event time within `tolerance_ms` of the fault-free run's."""
    acc = AlarmAccount(expected=len(expected), seen=len(seen), tolerance_ms=tolerance_ms)
    acc.fleet_expected = sum(1 for e in expected if e.rule == FLEET_RULE)

    def by_series(events: Sequence[AlarmEvent]) -> dict[tuple[str, str, str], list[AlarmEvent]]:
        out: dict[tuple[str, str, str], list[AlarmEvent]] = defaultdict(list)
        for e in sorted(events, key=lambda e: e.ts):
            out[(e.sensor, e.rule, e.side)].append(e)
        return out

    want, got = by_series(expected), by_series(seen)
    for series in sorted(want.keys() | got.keys()):
        w, g = want.get(series, []), got.get(series, [])
        for i in range(max(len(w), len(g))):
            a = w[i] if i < len(w) else None
            b = g[i] if i < len(g) else None
            name = "/".join(series)
            if a is None and b is not None:
                acc.differences.append(f"{name}: extra {b.kind} {b.level} at {b.ts}")
            elif b is None and a is not None:
                acc.differences.append(f"{name}: missing {a.kind} {a.level} at {a.ts}")
            elif a is not None and b is not None:
                if (a.kind, a.level) != (b.kind, b.level):
                    acc.differences.append(
                        f"{name}: #{i} expected {a.kind} {a.level}, saw {b.kind} {b.level}"
                    )
                    continue
                skew = abs(a.ts - b.ts)
                if skew > tolerance_ms:
                    acc.differences.append(
                        f"{name}: {a.kind} {a.level} at {b.ts}, expected {a.ts} "
                        f"(±{tolerance_ms} ms)"
                    )
                    continue
                acc.matched += 1
                acc.worst_skew_ms = max(acc.worst_skew_ms, skew)
                if a.rule == FLEET_RULE:
                    acc.fleet_matched += 1
                    acc.fleet_worst_skew_ms = max(acc.fleet_worst_skew_ms, skew)
    return acc
