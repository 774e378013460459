"""Lines the JT/T 808 gateway logs at most once a minute: those anyone on the network can cause
at will (a registration refused), never once per event."""

from __future__ import annotations

import logging
from collections import Counter

__all__ = ["Quiet"]


class Quiet:
    """Log a kind of line at most once per `every_s`, saying how many were left out since."""

    def __init__(self, log: logging.Logger, every_s: float = 60.0) -> None:
        self.log, self.every_s = log, every_s
        self._next: dict[str, float] = {}
        self._left_out: Counter[str] = Counter()

    def __call__(self, now: float, kind: str, level: int, msg: str, *args: object) -> bool:
        """Log `msg % args` unless a line of `kind` was logged less than `every_s` ago; whether
        it was logged."""
        if now < self._next.get(kind, float("-inf")):
            self._left_out[kind] += 1
            return False
        self._next[kind] = now + self.every_s
        left_out = self._left_out.pop(kind, 0)
        if left_out:
            msg += f" ({left_out} more like it since the last such line, not logged)"
        self.log.log(level, msg, *args)
        return True
