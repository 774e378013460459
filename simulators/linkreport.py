"""What the fleet's JT/T 808 terminals say about their links: one summary line per interval
(`LinkReport`), never a line per terminal per retry (a fleet of 200 against a platform that was
down logged 1,600 warnings in 17 s)."""

from __future__ import annotations

import logging
from collections import Counter

__all__ = ["LinkReport"]


class LinkReport:
    """The terminals that cannot reach their platform, and why: `failed` and `reached` as it
    happens, `due` then says a summary line (the first `gather_s` after a failure, to take the
    whole fleet's; then at most once per `every_s` while some still fail; once when all reach
    it again), at warning level, or info for the recovery."""

    def __init__(
        self, log: logging.Logger, target: str, every_s: float = 60.0, gather_s: float = 1.0
    ) -> None:
        self.log, self.target = log, target
        self.every_s, self.gather_s = every_s, gather_s
        self._why: dict[str, str] = {}  # terminal -> its last failure
        self._first: float | None = None  # when the first of those not yet said failed
        self._next = float("-inf")  # the earliest time of the next summary
        self._said = False  # a summary went out and the fleet has not recovered since
        self.lines = 0  # summary lines logged

    def failed(self, now: float, terminal: str, why: str) -> None:
        self._why[terminal] = why
        if self._first is None:
            self._first = now

    def reached(self, terminal: str) -> None:
        self._why.pop(terminal, None)

    @property
    def failing(self) -> int:
        return len(self._why)

    def due(self, now: float, waiting: int) -> str | None:
        """Log the summary if one is due; return it."""
        if not self._why:
            self._first = None
            if not self._said:
                return None
            self._said = False
            return self._say(logging.INFO, f"every terminal reaches {self.target} again")
        if self._first is None or now < max(self._first + self.gather_s, self._next):
            return None
        self._next = now + self.every_s
        self._said = True
        why, n = Counter(self._why.values()).most_common(1)[0]
        count = len(self._why)
        others = len(set(self._why.values())) - 1
        line = f"{count} terminal{'s' if count > 1 else ''} cannot reach {self.target}: {why}"
        if others:
            line += f" ({n} of them; {others} other reason{'s' if others > 1 else ''})"
        return self._say(logging.WARNING, f"{line}; {waiting} fixes wait")

    def _say(self, level: int, line: str) -> str:
        self.lines += 1
        self.log.log(level, "fleet: %s", line)
        return f"fleet: {line}"
