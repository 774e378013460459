"""The notification pipeline's test rig: the mine registry, a real state database and alarm
book, a `Notifier` with an injected clock that sends through the real SSE channel into a list."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from alerts.alarms import AlarmBook
from alerts.desk import AlarmDesk
from alerts.evaluate import CoreState, evaluate
from alerts.notify.channels import Notification, Senders
from alerts.notify.notifier import Notifier
from alerts.state import Transitions
from alerts.statedb import StateDB
from alerts.table import compile_table
from telemetry.notifyconfig import SmtpSpec, SubscriptionSpec

from e2e_helpers import mine_registry

T0 = 1_700_000_000_000


class Rig:
    def __init__(self, tmp_path: Any, extra_yaml: str = "") -> None:
        self.reg = mine_registry(1502, 1.0, extra_yaml)
        self.table = compile_table(self.reg.sensors)
        self.db = StateDB(tmp_path / "state.db")
        self.book = AlarmBook(self.db, self.reg, self.table)
        self.desk = AlarmDesk(self.db, self.reg, self.book)
        self.state = CoreState.empty(len(self.reg.sensors))
        self.now = T0
        self.sent: list[Notification] = []

        self.notifier = self.new_notifier()

    def new_notifier(self) -> Notifier:
        """A pipeline on the rig's databases (a new one: the hub restarted) that sends into
        `sent` through the SSE channel."""

        async def sse(n: Notification) -> None:
            self.sent.append(n)

        return Notifier(
            self.db,
            self.reg,
            Senders(smtp=SmtpSpec(), sse_publish=sse),
            self.reg.config.notify,
            clock=lambda: self.now,
        )

    def subscribe(self, tenant: str = "north-coal", **spec: Any) -> None:
        spec.setdefault("channel", {"type": "sse"})
        self.notifier.put("subscription", tenant, SubscriptionSpec.model_validate(spec), "test")

    def feed(self, sensor: str, values: list[float], quality: int = 0) -> list[Any]:
        """Readings one a second, judged and recorded 16 at a time: a batch's changes of one
        point beyond 16 are recorded as first, peak and last (`alerts.chatter`)."""
        out: list[Any] = []
        for k in range(0, len(values), 16):
            out += self._feed(sensor, values[k : k + 16], quality)
        return out

    def _feed(self, sensor: str, values: list[float], quality: int = 0) -> list[Any]:
        i = self.reg.sensor(sensor).index
        n = len(values)
        ts = self.now + np.arange(1, n + 1, dtype=np.int64) * 1000
        self.now = int(ts[-1])
        self.state, tr, _ = evaluate(
            self.table,
            self.state,
            np.full(n, i, np.int32),
            ts,
            np.array(values, float),
            np.full(n, quality, np.uint8),
        )
        return self.book.apply(tr, self.now, self.state)

    def transition(self, sensor: str, side: int, before: int, after: int) -> list[Any]:
        i = self.reg.sensor(sensor).index
        tr = Transitions(
            np.array([i], np.int32),
            np.array([self.now], np.int64),
            np.array([1.0]),
            np.array([side], np.uint8),
            np.array([before], np.int8),
            np.array([after], np.int8),
        )
        return self.book.apply(tr, self.now, self.state)

    async def pump(self, advance_s: float = 0.0) -> list[Notification]:
        """Advance the clock, then route, run the timers and deliver what is due."""
        self.now += int(advance_s * 1000)
        self.notifier.route()
        self.notifier.timers()
        before = len(self.sent)
        while await self.notifier.deliver_due():
            pass
        return self.sent[before:]


def kinds(notes: list[Notification]) -> list[list[tuple[str, str]]]:
    return [[(e["sensor"], e["kind"]) for e in n.body["events"]] for n in notes]  # type: ignore[union-attr,index]


def told(notes: list[Notification], sub: str) -> list[tuple[str, str]]:
    """(sensor, kind) of the events the subscription `sub` was told of."""
    return [
        (e["sensor"], e["kind"])
        for n in notes
        if n.body["subscription"] == f"north-coal/{sub}"
        for e in n.body["events"]  # type: ignore[attr-defined]
    ]


_SENT_KEY = re.compile(r"^(.+)@[0-9a-f]{10}$")


def bare(key: str | None) -> str:
    """A key as sent (`{outbox key}@{installation}`: `NotifyStore.sent_key`) without the
    installation's id, which every key sent must carry."""
    found = _SENT_KEY.match(key or "")
    assert found is not None, f"{key!r} carries no installation id"
    return found.group(1)


def keys(notes: Iterable[Notification]) -> list[str]:
    """The outbox keys of the notifications sent, in order."""
    return [bare(n.key) for n in notes]
