"""A held action (`verify: {hold: true}`) broken while the demanding sensor measures nothing: its
readings in fault, calibration (标校) or manual fail the break as a reading with a value does (the
level lasts: nothing says it ended), its comm-loss and stale ones do not (`alerts.verify`). A
mine's engineer found the failure of a face re-energised while its methane head was in
calibration raised only when the head measured again: a head left in calibration hid the
illegal restore (helper-148)."""

from __future__ import annotations

import math

import pytest
from test_alerts_core import METHANE, _both, cols, sensor

from alerts.evaluate import CoreState, evaluate
from alerts.table import ACTION, compile_table
from telemetry.config import VerifySpec
from telemetry.quality import Quality

Q = Quality


def _table(hold=True, on_fault=False, lateness_ms=0):
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2, hold=hold, on_fault=on_fault)
    infos = [sensor(0, METHANE, verify=verify), sensor(1, ())]
    return compile_table(infos, lateness_ms=lateness_ms, late_depth=8)


def _polls(quality, out_of_measure, back, end=45, last=1.6):
    """1 s polls, one batch each (judged 100 ms after): methane 1.6 % (the power-cut level) from
    1 s, the feed cut at 2 s; the head reads `quality` over `out_of_measure` (s), then `last`;
    the feed is on again from `back` (s)."""
    lo, hi = out_of_measure
    batches = []
    for k in range(1, end + 1):
        if lo <= k < hi:
            head = (math.nan if quality in (Q.COMM_LOSS, Q.STALE, Q.SENSOR_FAULT) else 1.6, quality)
        else:
            head = (1.6 if k < hi else last, Q.GOOD)
        feed = 1.0 if k == 1 or k >= back else 0.0
        batch = cols([0, 1], [k * 1000] * 2, [head[0], feed], [head[1], Q.GOOD])
        batches.append((batch, k * 1000 + 100))
    return batches


def _raised_at(table, batches):
    """The hub's clock at the batch that raised the failure, and its stamp."""
    state = CoreState.empty(table.size)
    for batch, now in batches:
        state, tr, _ = evaluate(table, batch, state, now)
        rows = [(t, a) for t, d, a in zip(tr.ts, tr.side, tr.after, strict=True) if d == ACTION]
        if rows:
            return now, rows
    return None


@pytest.mark.parametrize("quality", [Q.CALIBRATION, Q.MANUAL])
def test_a_restore_while_the_head_is_in_calibration_fails_at_its_next_calibration_reading(quality):
    """The head in calibration from 20 s to 40 s, the face's power back at 25 s: the failure is
    raised with the head's calibration reading of that poll (it was raised at 40 s, when the
    head measured again), stamped 25 s; the methane still 1.6 % when the head measures again
    keeps it. A head's reading older than the break does not count: the break alone, the head's
    next calibration reading (26 s) raises it."""
    table = _table()
    batches = _polls(quality, (20, 40), back=25)
    assert _raised_at(table, batches) == (25_100, [(25_000, 1)])
    assert _both(table, batches) == [(25_000, 1)]
    # the feed's 25 s reading in a batch of its own, after the head's
    head, feed = cols([0], [25_000], [1.6], [quality]), cols([1], [25_000], [1.0])
    split = [*batches[:24], (head, 25_100), (feed, 25_200), *batches[25:]]
    assert _raised_at(table, split) == (26_100, [(25_000, 1)])
    assert _both(table, split) == [(25_000, 1)]
    assert _both(table, batches) == [(25_000, 1)]
    # the methane fell while the head was in calibration: the restore was still illegal when
    # made (nothing said the level ended); the failure clears when the level ends (40 s)
    fell = _polls(quality, (20, 40), back=25, last=0.8)
    assert _both(table, fell) == [(25_000, 1), (40_000, 0)]


def test_a_restore_while_the_head_is_in_fault_fails_at_its_next_fault_reading():
    """The engineer's case: the head in fault from 90 s to 110 s, power back at 95 s: raised
    with the poll (it was at 110 s), stamped 95 s, with or without the fault lock-out
    (`on_fault`)."""
    for on_fault in (False, True):
        table = _table(on_fault=on_fault)
        batches = _polls(Q.SENSOR_FAULT, (90, 110), back=95, end=115)
        assert _raised_at(table, batches) == (95_100, [(95_000, 1)])
        assert _both(table, batches) == [(95_000, 1)]


@pytest.mark.parametrize("quality", [Q.COMM_LOSS, Q.STALE])
def test_a_restore_while_the_head_is_not_heard_waits_for_its_next_measurement(quality):
    """Comm loss (or stale) says nothing of the head: the substation may have restored after
    the methane fell while the link was down. Nothing until the head measures again (40 s):
    still 1.6 %, the failure stamped 25 s; 0.8 %, the restore ended the cut, nothing."""
    table = _table()
    batches = _polls(quality, (20, 40), back=25)
    assert _raised_at(table, batches) == (40_100, [(25_000, 1)])
    assert _both(table, batches) == [(25_000, 1)]
    assert _both(table, _polls(quality, (20, 40), back=25, last=0.8)) == []


def test_without_hold_a_restore_in_calibration_is_not_judged():
    """A plan that does not hold watches no more once confirmed (as before)."""
    assert _both(_table(hold=False), _polls(Q.CALIBRATION, (20, 40), back=25)) == []


def test_a_calibration_reading_rewound_in_the_lateness_window_fails_the_break():
    """With a lateness window: the head's 27 s reading (comm loss) first, then the feed's power
    at 25 s, then the head's 26 s calibration reading, late and rewound: it is at or after the
    break and arrives after it, so it fails it, core and reference alike."""
    table = _table(lateness_ms=10_000)
    batches = [
        (cols([0, 1], [1000, 1000], [1.6, 1]), 1100),
        (cols([0, 1], [2000, 2000], [1.6, 0]), 2100),
        (cols([0], [27_000], [math.nan], [Q.COMM_LOSS]), 27_100),
        (cols([1], [25_000], [1]), 27_200),
        (cols([0], [26_000], [1.6], [Q.CALIBRATION]), 27_300),
    ]
    assert _raised_at(table, batches) == (27_300, [(25_000, 1)])
    assert _both(table, batches) == [(25_000, 1)]
