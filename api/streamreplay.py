"""A live stream resumed (`Last-Event-ID`): the alarm journal's events after the id the client
last had, of its tenants and tiers, before the live ones (`api.stream.Broadcaster.events`).

The stream subscribes first, so that live events queue while the journal is read; the replay
reads the journal's events after the id and its newest id M at one moment, and the live events
up to M are then left out of the queue (`Subscription.after`): every event after the client's
id is sent once, in order, whatever was handed on meanwhile. At most `REPLAY_MAX` events are
replayed; more, or an id the journal never reached (a hub started with a fresh or restored
state database numbers its events anew), is said with a ``reset`` event (id M): the client
reads the alarm list afresh and takes the stream from there, rather than missing events unaware.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from alerts.alarmfeed import AlarmFeed, alarm_body
from alerts.alarms import AlarmEvent
from alerts.errors import AlarmStoreError
from telemetry.registry import Registry

if TYPE_CHECKING:
    from api.stream import Subscription

__all__ = ["REPLAY_MAX", "alarm_data", "replayed"]

REPLAY_MAX = 10_000  # alarm events one resume replays at most
_CHUNK = 200  # replayed events sent together

log = logging.getLogger(__name__)


def alarm_data(ev: AlarmEvent, peak_tier: str, registry: Registry) -> bytes:
    """An alarm event's `data:` on the stream: as the alarm topic carries it (its names), and
    the highest tier its alarm had reached (`peak_tier`)."""
    return orjson.dumps(alarm_body(ev, registry, peak_tier))


def _reset(last_id: int | None, reason: str) -> bytes:
    head = b"" if last_id is None else b"id: %d\n" % last_id
    body = {"reason": reason, "last_event_id": last_id}
    return head + b"event: reset\ndata: " + orjson.dumps(body) + b"\n\n"


async def replayed(
    feed: AlarmFeed | None, registry: Registry, sub: Subscription, limit: int
) -> AsyncIterator[bytes]:
    """What followed `sub.resume` in the journal, as SSE chunks (or a ``reset``); sets
    `sub.after`, so that the live events replayed are not sent again. Without a journal (`feed`
    None: an API without the hub's), a ``reset``."""
    after = sub.resume
    assert after is not None
    if feed is None:
        yield _reset(None, "this stream keeps no alarm journal to replay: read the alarm list")
        return
    try:
        found = await asyncio.to_thread(feed.replay, after, sub.principal.tenants, limit)
    except AlarmStoreError as exc:
        log.warning("live stream: no replay after event %d: %s", after, exc)
        yield _reset(None, "the alarm journal could not be read: read the alarm list again")
        return
    sub.after = found.last_id
    # a key of some tenants is told its tenants' newest id, never the hub's (helper-241: an
    # enterprise learnt the whole journal's length); resuming from it misses none of theirs. An
    # id it resumes from with nothing of theirs after it must be their newest (the one it was
    # last sent), else it is reset to theirs: whether it is turns on their own events alone, not
    # on the hub's newest id, which a search over ids found out (helper-247). The gaps between
    # their ids are still the others' events (docs/api.md says so)
    every = sub.principal.tenants is None
    resume_at = found.last_id if every else found.own_last
    stale = after > found.last_id if every else not found.events and after != found.own_last
    if stale:
        ends = f", which ends at {found.last_id}" if every else ""
        yield _reset(
            resume_at,
            f"event {after} is not in this hub's alarm journal{ends} (a hub started with a new"
            " or restored state database): read the alarm list again",
        )
        return
    if found.more:
        yield _reset(
            resume_at,
            f"more than {limit} alarm events followed event {after}, the most a stream"
            " replays: read the alarm list again",
        )
        return
    chunk: list[bytes] = []
    for f in found.events:
        ev = f.event
        if sub.tiers is not None and f.peak_tier not in sub.tiers:
            continue
        if "alarm" not in sub.kinds or not sub.principal.sees(ev.tenant):
            continue
        data = alarm_data(ev, f.peak_tier, registry)
        chunk.append(b"id: %d\nevent: alarm\ndata: " % ev.event_id + data + b"\n\n")
        if len(chunk) >= _CHUNK:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)
