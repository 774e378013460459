"""What the notification pipeline tells the hub's log of its failures: enough for an operator to
see that the city's early-warning webhook has stopped taking notifications, not so much that a
full disk writes hundreds of megabytes of the same traceback a day (helper-149)."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["FailingSubscriptions", "RepeatedFailure"]

log = logging.getLogger("alerts.notify")

_KEPT = 1000  # subscriptions remembered as failing (more: the oldest said again when it fails)


class RepeatedFailure:
    """A step that fails again and again (a full disk, a database away): the first failure logged
    with its traceback; while it goes on, one line at most every `every_ms` with how many times
    it failed since; one line when it works again."""

    def __init__(self, what: str, clock: Callable[[], int], every_ms: int = 60_000) -> None:
        self.what = what
        self._clock = clock
        self._every = every_ms
        self._since: int | None = None  # the first failure of the run, None: working
        self._said = 0  # when it was last logged
        self._count = 0  # failures not logged yet

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        if self._since is None:
            self._since, self._said, self._count = now, now, 0
            log.error("%s failed; retrying", self.what, exc_info=exc)
            return
        self._count += 1
        if now - self._said >= self._every:
            log.error(
                "%s still failing (%d more times in %d s): %s: %s",
                self.what,
                self._count,
                (now - self._said) // 1000,
                type(exc).__name__,
                exc,
            )
            self._said, self._count = now, 0

    def worked(self) -> None:
        if self._since is not None:
            log.warning(
                "%s works again after %d s of failures",
                self.what,
                (self._clock() - self._since) // 1000,
            )
            self._since = None


class FailingSubscriptions:
    """Deliveries that fail: a warning at a subscription's first failed try (a retried one is
    otherwise silent until it is given up, a day later by default), one at its first permanent
    refusal (a 4xx: each notification dead at its first try, not retried: helper-241's wrong
    secret was said as "retried with backoff"), and a line when one of its notifications is
    delivered again."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        # subscription: first failure, tries, whether a permanent refusal was said
        self._failing: dict[str, tuple[int, int, bool]] = {}

    def failed(
        self,
        subscription: str,
        channel: str,
        reason: str,
        give_up_s: float,
        *,
        permanent: bool = False,
    ) -> None:
        seen = self._failing.pop(subscription, None)
        if seen is None and len(self._failing) >= _KEPT:
            self._failing.pop(next(iter(self._failing)))
        if permanent and (seen is None or not seen[2]):
            log.warning(
                "notifications of subscription %s (%s) refused: %s; a permanent failure, not "
                "retried: each such notification is dead after one attempt. Correct the "
                "receiver or the subscription (its secret, its URL), then send the dead ones "
                "again: POST /api/v1/notifications/retry?subscription=%s",
                subscription,
                channel,
                reason,
                subscription,
            )
        elif seen is None:
            log.warning(
                "notifications of subscription %s (%s) failing: %s; retried with backoff, given "
                "up after %g s",
                subscription,
                channel,
                reason,
                give_up_s,
            )
        first, tries, said = seen if seen is not None else (self._clock(), 0, False)
        self._failing[subscription] = (first, tries + 1, said or permanent)

    def delivered(self, subscription: str) -> None:
        seen = self._failing.pop(subscription, None)
        if seen is not None:
            log.info(
                "notifications of subscription %s delivered again after %d failed tries in %d s",
                subscription,
                seen[1],
                (self._clock() - seen[0]) // 1000,
            )

    def __len__(self) -> int:
        return len(self._failing)
