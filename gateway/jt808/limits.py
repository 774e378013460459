"""How many connections the JT/T 808 gateway takes, and how often it says it refused one.

Every connection costs an open file; past the process's limit (`RLIMIT_NOFILE`) `accept` fails
for everyone, a terminal with a good auth code too. So the gateway caps its connections in total
(by default the open-file limit less a reserve for its spool, its MQTT connections and its logs)
and per source address (one host opening hundreds of idle connections), and refuses beyond:
counted, and logged at most once a minute per kind (`Quiet`), never once per connection.
"""

from __future__ import annotations

import logging
import resource
from collections import Counter

__all__ = ["ConnectionLimits", "Quiet", "default_max_connections"]

# files the gateway needs besides its terminals: spool and bindings (SQLite and their WAL), its
# MQTT connections (one per tenant for its status), logs, and the listening socket
RESERVED_FILES = 128


def default_max_connections() -> int:
    """The open-file limit (soft) less `RESERVED_FILES`, at least 16."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(16, soft - RESERVED_FILES)


class ConnectionLimits:
    """The connections open, in total and per source address, against their caps."""

    def __init__(self, max_total: int, max_per_host: int) -> None:
        if max_total < 1 or max_per_host < 1:
            raise ValueError("connection limits must be at least 1")
        self.max_total, self.max_per_host = max_total, max_per_host
        self.total = 0
        self.per_host: Counter[str] = Counter()

    def admit(self, host: str) -> str | None:
        """Take a connection from `host`, or say why not (a counter label)."""
        if self.total >= self.max_total:
            return "refused_full"
        if self.per_host[host] >= self.max_per_host:
            return "refused_per_host"
        self.total += 1
        self.per_host[host] += 1
        return None

    def release(self, host: str) -> None:
        self.total -= 1
        self.per_host[host] -= 1
        if self.per_host[host] <= 0:
            del self.per_host[host]


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
