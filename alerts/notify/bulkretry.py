"""Dead notifications sent again in bulk (`POST /api/v1/notifications/retry`): after a wrong
webhook secret, a moved URL or a receiver down past the give-up time, every notification that
died meanwhile, not one call per row. Each row goes as the one-by-one retry sends it
(`OutboxStatements.retry_dead`): pending again, due now, with its key and events as they were,
through its subscription's channel as configured now. A row not dead (pending, or delivered)
is left as it is, so a call repeated, or two at once, sends nothing twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alerts.notify.outboxdb import OutboxDB
from alerts.notify.outboxrows import NOT_CENTRES, SEND_AGAIN, sent_again

__all__ = ["BULK_RETRY_MAX", "BulkRetried", "DeadRows", "retry_dead_rows"]

BULK_RETRY_MAX = 1000  # rows one call sends again at most


@dataclass(frozen=True, slots=True)
class DeadRows:
    """Which dead rows: of `tenants` (None: every tenant, the centre's rows included), of the
    outbox `subscription` (as the outbox lists it, `{tenant}/{id}`; None: any), made
    (`created_at`, ms) in [since, until), with an id above `after` (the page after the last
    call's), oldest first, at most `limit`."""

    tenants: Sequence[str] | None
    subscription: str | None = None
    since: int | None = None
    until: int | None = None
    after: int = 0
    limit: int = BULK_RETRY_MAX


@dataclass(frozen=True, slots=True)
class BulkRetried:
    """The rows sent again (their ids, oldest first: a row no longer dead when it came to be
    changed is not among them), whether more dead rows matched than the call's limit, and the
    last id looked at (ask again with it as `after`; None: none)."""

    ids: list[int]
    more: bool
    last: int | None = None


def retry_dead_rows(
    db: OutboxDB,
    which: DeadRows,
    now: int,
    channel_now: Callable[[str, str, str], str | None] | None = None,
) -> BulkRetried:
    """Make the dead rows `which` selects pending again, due at `now`, each with its channel as
    configured now (`channel_now(subscription, key, channel)`: the outbox text; None: as it was
    made); `last_error` says which, as a one-by-one retry's does."""
    # walked by id from `after` (the outbox keeps `outbox_keep_days` of rows), at most a page
    where = ["status = 'dead'", "id > ?"]
    params: list[object] = [which.after]
    if which.tenants is not None:
        if not which.tenants:
            return BulkRetried([], more=False)
        where.append(f"tenant IN ({','.join('?' * len(which.tenants))})")
        params.extend(which.tenants)
        where.append(NOT_CENTRES)  # a caller of some tenants: not the centre's
    if which.subscription is not None:
        where.append("subscription = ?")
        params.append(which.subscription)
    if which.since is not None:
        where.append("created_at >= ?")
        params.append(which.since)
    if which.until is not None:
        where.append("created_at < ?")
        params.append(which.until)
    sql = (
        "SELECT id, subscription, key, channel FROM outbox WHERE "  # noqa: S608 (fixed text)
        + " AND ".join(where)
        + " ORDER BY id LIMIT ?"
    )
    # read on the reading connection, outside the write lock: the walk over the outbox (a dead
    # row has no index of its own; 500,000 rows with 5 dead: 0.8 s) held routing and delivery
    # up (helper-247); a row settled meanwhile is left by the UPDATE's `status = 'dead'`
    rows = db.query(sql, (*params, which.limit + 1))
    more = len(rows) > which.limit
    rows = rows[: which.limit]
    updates = []
    for row_id, subscription, key, channel in rows:
        now_channel = channel_now(subscription, key, channel) if channel_now else None
        updates.append((now, sent_again(now_channel), now_channel, int(row_id)))
    changed: list[int] = []
    with db.transaction() as con:
        for update in updates:
            if con.execute(SEND_AGAIN, update).fetchone() is not None:
                changed.append(update[-1])
    return BulkRetried(changed, more, int(rows[-1][0]) if rows else None)
