"""No data: a sensor with a no-data timeout that stays silent past it raises NO_DATA, at its last
data reading's time plus the timeout (comm-loss readings and gaps between readings are judged
with the batch, in `alerts.evaluate`). A sensor that never had data is silent from the first time
the hub's clock is given on.

Silent means on both clocks: its last data reading is older than the timeout in event time, and
no reading with a value of it has arrived for the timeout on the hub's clock (`last_arrival`).
A gateway draining its spool after an outage sends old readings in order: they are not silence
(each judged in event time; a real gap between two of them still raises, with the batch). And a
gateway whose clock runs behind the hub's does not make its sensors flap between no data and
data on every tick."""

from __future__ import annotations

import numpy as np

from alerts.state import I64, NO_TS, CoreState, Part
from alerts.table import NO_DATA, RuleTable

__all__ = ["silence", "start_clocks"]


def start_clocks(table: RuleTable, last_data: I64, now: int) -> None:
    """A sensor with a no-data timeout that never had data is silent from `now` on."""
    span = table.no_data_rows
    unseen = np.flatnonzero(last_data[span] == NO_TS)
    if unseen.shape[0]:
        last_data[_sensors(span, unseen)] = now


def silence(table: RuleTable, new: CoreState, now: int, rows: I64 | None = None) -> Part | None:
    """NO_DATA raised at last-data + timeout for the (given) sensors silent past `now`. The
    sensors past their timeout are found first (a few), then those not yet at NO_DATA."""
    if rows is None:  # the others have no timeout: a range is read by views, without gathers
        span: I64 | slice = table.no_data_rows
        timeout = table.no_data_timeout
    else:
        keep = table.no_data[rows] > 0
        span, timeout = rows[keep], table.no_data[rows][keep]
    last = new.last_data[span]
    # last + timeout < now, as last < now - timeout: no overflow at NO_TS ("never"), excluded;
    # against the shortest timeout first (one comparison with a number: a scan of every sensor
    # reads no timeouts), then each of those (a few) against its own
    past = np.flatnonzero(last < now - table.no_data_least)
    past = past[last[past] < now - timeout[past]]
    if not past.shape[0]:
        return None
    s = _sensors(span, past)
    last, timeout = last[past], timeout[past]
    # and nothing with a value arrived for the timeout (NO_TS: never, silent)
    quiet = new.last_arrival[s] < now - timeout
    due = np.flatnonzero((new.level[s, NO_DATA] == 0) & (last != NO_TS) & quiet)
    if not due.shape[0]:
        return None
    k = due.shape[0]
    s, last, timeout = s[due], last[due], timeout[due]
    ones, zeros = np.ones(k, np.int64), np.zeros(k, np.int64)
    new.level[s, NO_DATA] = 1
    return (s, last + timeout, np.full(k, np.nan), NO_DATA, zeros, ones)


def _sensors(span: I64 | slice, at: I64) -> I64:
    """The sensor indices at positions `at` of `span` (a range of rows, or an index array)."""
    rows: I64 = at + span.start if isinstance(span, slice) else span[at]
    return rows
