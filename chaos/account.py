"""The accounting after a run, pure: published batches against stored rows, the alarm journal of
the faulted hub against the fault-free one, and the catch-up time after each fault."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from chaos.collect import AlarmEvent, Published

__all__ = [
    "AlarmAccount",
    "ReadingAccount",
    "account_alarms",
    "account_readings",
    "catch_up_ms",
    "expected_until",
]


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


def expected_until(expected: Iterable[tuple[str, int]], until_ms: int) -> int:
    return sum(1 for _, t in expected if t <= until_ms)


def catch_up_ms(samples: Sequence[tuple[int, int]], expected: int, end_ms: int) -> int | None:
    """From (wall ms, stored count) samples taken after a fault: ms from the fault's end until
    the store had all `expected` readings up to that end; None if it never had them."""
    for wall, count in samples:
        if count >= expected:
            return max(0, wall - end_ms)
    return None


@dataclass(slots=True)
class AlarmAccount:
    expected: int = 0  # transitions in the fault-free run
    seen: int = 0  # transitions in the faulted run
    matched: int = 0
    tolerance_ms: int = 0
    worst_skew_ms: int = 0  # the largest event-time difference of a matched pair
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
    return acc
