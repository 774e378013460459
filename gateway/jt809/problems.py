"""The JT/T 809 server's counters and the log lines of its problems: counted per platform
(`{platform}.{kind}`, `unauthenticated` for a link not logged in); the first of a kind per
platform and report period logged at warning level, a few more at debug, then none (the peer's
text escaped: `gateway.jt809.guard.shown`); the counters that changed logged every report."""

from __future__ import annotations

import logging
from collections import Counter

from gateway.counters import changed_since
from gateway.jt809.guard import shown
from gateway.jt809.session import Problem

__all__ = ["Problems"]

log = logging.getLogger("gateway.jt809.server")

_LINES_PER_KIND = 10  # log lines of a problem kind per platform and report period


class Problems:
    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._said: Counter[str] = Counter()  # lines of a problem kind since the last report

    def count(self, platform: str | None, kind: str, n: int = 1) -> None:
        """Count under the platform, or `unauthenticated` for a link not logged in."""
        self.counters[f"{platform or 'unauthenticated'}.{kind}"] += n

    def report(self, online: int) -> str | None:
        """Log the counters that changed since the last report (None: none did); a new report
        period for the problems' lines."""
        self._said.clear()
        since = changed_since(self.counters, self._reported)
        if since is None:
            return None
        self._reported = self.counters.copy()
        line = f"jt809: {online} platforms logged in; since the last report: {since}"
        log.info("%s", line)
        return line

    def line(self, platform: str | None, kind: str, text: str) -> None:
        """Count a problem of the server's own (a link refused, evicted, a login backoff); log
        the first of its kind in a report period."""
        self.count(platform, kind)
        key = f"{platform}.{kind}"
        self._said[key] += 1
        if self._said[key] == 1:
            log.warning("jt809: %s: %s", kind, shown(text))

    def problem(self, peer: str, problem: Problem) -> None:
        """Count `problem`; log it: the first of its kind for the platform in a report period
        at warning level (when worth it), a few more at debug, the rest not (a flood of bad
        frames does not flood the log)."""
        self.count(problem.platform, problem.kind)
        key = f"{problem.platform}.{problem.kind}"
        self._said[key] += 1
        n = self._said[key]
        if n > _LINES_PER_KIND:
            return
        level = logging.WARNING if problem.warn and n == 1 else logging.DEBUG
        log.log(
            level,
            "jt809: %s (%s): %s: %s%s",
            peer,
            problem.platform or "unauthenticated",
            problem.kind,
            shown(problem.text),
            " (more of this kind not logged until the next report)" if n == _LINES_PER_KIND else "",
        )
