"""Sorted segments of a batch: rows ordered by (sensor, time), each sensor's rows a segment; the
order itself (`by_sensor_time`), a segment's first and last rows, the distinct sensors, a mark
spread over its segment, a run's start, and the trend rings' int32 times (`ring_offsets`).
Split from `alerts.state` (the code moved as it was)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "by_sensor_time",
    "distinct",
    "ring_offsets",
    "run_since",
    "segment_ends",
    "segment_starts",
    "segments_with",
]

I64 = npt.NDArray[np.int64]

_OFFSET_MIN, _OFFSET_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


def ring_offsets(ts: I64, base: I64) -> npt.NDArray[np.int32]:
    """Trend times `ts` as int32 offsets from `base`, an older one than int32 can tell kept as
    the smallest (never in a window: `CoreState.hist_ts`)."""
    off: npt.NDArray[np.int32] = np.clip(ts - base, _OFFSET_MIN, _OFFSET_MAX).astype(np.int32)
    return off


def segment_starts(s: I64) -> npt.NDArray[np.bool_]:
    start = np.empty(s.shape[0], dtype=np.bool_)
    if s.shape[0]:
        start[0] = True
        np.not_equal(s[1:], s[:-1], out=start[1:])
    return start


def distinct(x: I64, ordered: bool = False) -> I64:
    """The distinct values of `x`, sorted, as `np.unique` (whose hashing is several times slower
    on the few thousand indices of a batch); `ordered`: `x` is sorted already."""
    if not ordered:
        x = np.sort(x)
    out: I64 = x[segment_starts(x)]
    return out


def segments_with(s: I64, mark: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Per row of `s` (sorted): whether a row of its segment (its sensor's rows) is marked."""
    if not mark.any():
        return mark
    start = segment_starts(s)
    hit: npt.NDArray[np.bool_] = np.logical_or.reduceat(mark, np.flatnonzero(start))
    rows: npt.NDArray[np.bool_] = hit[np.cumsum(start) - 1]
    return rows


def segment_ends(start: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    end = np.empty_like(start)
    if start.shape[0]:
        end[-1] = True
        end[:-1] = start[1:]
    return end


def run_since(
    first: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.intp],
    marks: npt.NDArray[np.bool_],
    t: I64,
    since0: I64,
) -> I64:
    """Per row of sorted segments (`first`: a segment's first row, `starts` their rows): the
    time of the last marked row at or before it in its segment, else `since0` of its segment
    (the run the segment's sensor was in before): where a run of a frozen value or of a
    maintenance began."""
    k = np.arange(t.shape[0])
    src = np.where(marks, k, -1)
    src[starts] = starts
    np.maximum.accumulate(src, out=src)
    seg = np.cumsum(first) - 1
    since: I64 = np.where(marks[src], t[src], since0[seg])
    return since


def by_sensor_time(sensor: I64, ts: I64, side: I64 | None = None) -> npt.NDArray[np.intp]:
    """The stable order by (sensor, time), or (sensor, time, side), as `np.lexsort`. When sensor,
    the time since the earliest, the side and the row number fit one int64 together (a batch
    spanning less than days), one plain sort of that key does it, several times faster than
    lexsort; else lexsort."""
    n = ts.shape[0]
    if n < 2:
        return np.arange(n)
    t0 = int(ts.min())
    bits_i, bits_t = (n - 1).bit_length(), (int(ts.max()) - t0).bit_length()
    bits_s = 0 if side is None else int(side.max()).bit_length()
    low = bits_s + bits_i
    fits = int(sensor.min()) >= 0 and (side is None or int(side.min()) >= 0)
    if not fits or int(sensor.max()).bit_length() + bits_t + low > 63:
        return np.lexsort((ts, sensor) if side is None else (side, ts, sensor))
    key = (sensor.astype(np.int64) << (bits_t + low)) | ((ts - t0) << low)
    if side is not None:
        key |= side.astype(np.int64) << bits_i
    key |= np.arange(n, dtype=np.int64)
    key.sort()
    order: npt.NDArray[np.intp] = (key & ((1 << bits_i) - 1)).astype(np.intp)
    return order
