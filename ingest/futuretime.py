"""Readings refused as from the future, said: whose clock is off, the senders' or the hub's.

A reading stamped more than `MAX_FUTURE_MS` ahead of the hub's clock is refused (`future_time`
for telemetry, `bad_time` for positions). With the hub's own clock behind (NTP stopped on its
host, a clock set by hand), every reading is, and the hub went blind with no sign: the counter
rose, nothing was logged, `/readyz` said ready (helper-195's sysadmin). `FutureWatch` is told
of every message's in-time and refused readings (by the pipeline, which has the arrival time)
and:

- logs a warning at the first refusal, then one line at most once a minute while refusals go
  on (with the counts, the offsets seen, and how many of the senders heard lately are ahead:
  most of them, ahead by a similar amount, is the hub's clock behind), and once when the
  readings are in time again;
- says why the hub is not ready (`not_ready`, cause `future_time`) while most of the readings
  of the last `WINDOW_MS` were refused as from the future.

No I/O but the log; the time is passed in (the arrival's, the hub's wall clock).
"""

from __future__ import annotations

import logging

__all__ = ["SAY_EVERY_MS", "WINDOW_MS", "FutureWatch"]

log = logging.getLogger("ingest.pipeline")

WINDOW_MS = 30_000  # what arrived lately: the share refused, the senders heard
SAY_EVERY_MS = 60_000  # while refusals go on, a line at most this often
_BUCKET_MS = 5_000
# offsets this close (or within a quarter of the smallest) are "a similar amount"
_SIMILAR_MS = 10_000


class FutureWatch:
    def __init__(
        self, max_future_ms: int, window_ms: int | None = None, say_every_ms: int | None = None
    ) -> None:
        self.max_future_ms = max_future_ms
        self.window_ms = WINDOW_MS if window_ms is None else window_ms
        self.say_every_ms = SAY_EVERY_MS if say_every_ms is None else say_every_ms
        # bucket start -> [readings in time, readings refused as from the future]
        self._buckets: dict[int, list[int]] = {}
        # sender -> (when last heard, how far ahead its last refused readings were, 0: in time)
        self._senders: dict[str, tuple[int, int]] = {}
        self._since: int | None = None  # the first refusal of the refusals going on
        self._last_refused = 0
        self._said_at = 0
        self._unsaid = 0  # refused since the last line
        self._refused = 0  # refused since `_since`

    def arrived(self, sender: str, in_time: int, refused: int, ahead_ms: int, now: int) -> None:
        """A message of `sender` (`tenant/gateway`, `tenant/vehicle`) arrived at `now` with
        `in_time` readings in the hub's window and `refused` ones stamped ahead of it, the
        furthest `ahead_ms` ahead of `now`."""
        bucket = self._buckets.get(now - now % _BUCKET_MS)
        if bucket is None:
            self._prune(now)
            bucket = self._buckets[now - now % _BUCKET_MS] = [0, 0]
        bucket[0] += in_time
        bucket[1] += refused
        if not refused:
            if sender in self._senders or len(self._senders) < 65_536:
                self._senders[sender] = (now, 0)
            if self._since is not None and now - self._last_refused >= self.window_ms:
                self._in_time_again(now)
            return
        self._senders[sender] = (now, ahead_ms)
        self._last_refused = now
        self._refused += refused
        self._unsaid += refused
        if self._since is None:
            self._since = now
        elif now - self._said_at < self.say_every_ms:
            return
        when = ""
        if now != self._since:
            when = f" in the last {(now - self._said_at) // 1000} s"
            when += f" ({(now - self._since) // 1000} s since the first)"
        log.warning(
            "%d reading(s) refused as from the future%s, more than %d s ahead of the hub's "
            "clock (future_time; positions: bad_time; kept as dead letters); the latest of %s, "
            "%d s ahead. %s",
            self._unsaid,
            when,
            self.max_future_ms // 1000,
            sender,
            _s(ahead_ms),
            self.whose(now),
        )
        self._said_at = now
        self._unsaid = 0

    def whose(self, now: int) -> str:
        """Which clock is off, as far as the senders heard in the last `window_ms` tell."""
        heard = {s: a for s, (at, a) in self._senders.items() if now - at < self.window_ms}
        ahead = sorted(a for a in heard.values() if a > 0)
        if not ahead:
            return "No sender heard lately is ahead."
        lo, hi = ahead[0], ahead[-1]
        offsets = f"{_s(lo)} s" if _s(lo) == _s(hi) else f"{_s(lo)}-{_s(hi)} s"
        counted = (
            f"{len(ahead)} of the {len(heard)} sender(s) heard in the last "
            f"{self.window_ms // 1000} s are ahead by {offsets}"
        )
        similar = hi - lo <= max(_SIMILAR_MS, lo // 4)
        if len(ahead) >= 2 and 2 * len(ahead) > len(heard) and similar:
            return (
                f"{counted}: the HUB's clock is probably behind by about {_s(lo)} s (set it "
                "by NTP on the hub's host: `timedatectl`, `chronyc tracking`); until then its "
                "readings are not judged"
            )
        if len(ahead) == len(heard):
            return (
                f"{counted}: the sender's clock or the hub's is off (check NTP on both); "
                "until then its readings are not judged"
            )
        return (
            f"{counted}: their clocks are probably ahead (set them by NTP); until then their "
            "readings are not judged"
        )

    def not_ready(self, now: int) -> str | None:
        """Why the hub judges (almost) nothing: most of the readings of the last `window_ms`
        were refused as from the future (for `/readyz`), or None."""
        in_time = refused = 0
        for start, (good, bad) in self._buckets.items():
            if now - start < self.window_ms + _BUCKET_MS:
                in_time += good
                refused += bad
        if refused == 0 or refused <= in_time:
            return None
        return (
            f"readings from the future: {refused} of the {refused + in_time} reading(s) of the "
            f"last {self.window_ms // 1000} s were stamped more than "
            f"{self.max_future_ms // 1000} s ahead of the hub's clock and refused (not judged). "
            f"{self.whose(now)}"
        )

    def _in_time_again(self, now: int) -> None:
        assert self._since is not None
        log.warning(
            "readings are in time again: none refused as from the future in the last %d s "
            "(%d refused over %d s)",
            self.window_ms // 1000,
            self._refused,
            (self._last_refused - self._since) // 1000,
        )
        self._since = None
        self._refused = self._unsaid = 0

    def _prune(self, now: int) -> None:
        keep = self.window_ms + 2 * _BUCKET_MS
        for start in [s for s in self._buckets if now - s > keep]:
            del self._buckets[start]
        if len(self._senders) >= 4096:
            for sender in [s for s, (at, _) in self._senders.items() if now - at > keep]:
                del self._senders[sender]


def _s(ms: int) -> int:
    """`ms` in whole seconds, rounded."""
    return (ms + 500) // 1000
