"""What the JT/T 809 gateway holds for later across its restarts: the centre's supervision
tickets kept for a platform's next login (`gateway.jt809.tickets`) and the answers and receipts
waiting for the broker (`gateway.jt809.commands`), in a JSON file beside the spool
(`waiting-jt809-{name}.json`). Saved within a second of a change (written to a new file, then
renamed over the old: a crash leaves one or the other whole) and at the stop; read at the start.
A gateway killed within that second loses the last change; a file that does not read is set
aside (`.bad`, logged) and the gateway starts without it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from gateway.jt809.commands import TicketListener
from gateway.jt809.tickets import Ticket, Tickets
from telemetry.jt809 import SuperviseRequest

__all__ = ["Waiting"]

log = logging.getLogger(__name__)

_VERSION = 1


def _ticket_doc(name: str, t: Ticket) -> dict[str, Any]:
    return {
        "platform": name, "tenant": t.tenant, "vehicle": t.vehicle, "alarm_id": t.alarm_id,
        "kind": t.kind, "request": asdict(t.request),
    }  # fmt: skip


def _ticket(doc: dict[str, Any]) -> tuple[str, Ticket]:
    request = SuperviseRequest(**doc["request"])
    request.encode()  # a field out of range: ValueError
    ticket = Ticket(
        str(doc["tenant"]), str(doc["vehicle"]), int(doc["alarm_id"]), str(doc["kind"]), request
    )
    return str(doc["platform"]), ticket


class Waiting:
    def __init__(self, path: Path, tickets: Tickets, listener: TicketListener) -> None:
        self.path, self.tickets, self.listener = path, tickets, listener
        self._saved = (-1, -1)

    def load(self, platforms: set[str]) -> None:
        """Restore what the file holds (a ticket of a platform no longer configured dropped,
        said)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != _VERSION:
                raise ValueError(f"not a version {_VERSION} file")
            kept: dict[str, list[Ticket]] = {}
            for item in doc["tickets"]:
                name, ticket = _ticket(item)
                kept.setdefault(name, []).append(ticket)
            reports = [(str(t), str(p).encode()) for t, p in doc["reports"]]
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            bad = self.path.with_suffix(".bad")
            os.replace(self.path, bad)
            log.warning("jt809: %s does not read (%s): set aside as %s", self.path, exc, bad)
            return
        for name, tickets in kept.items():
            if name not in platforms:
                log.warning(
                    "jt809: %d supervision tickets kept for %s dropped: no such platform now",
                    len(tickets), name,
                )  # fmt: skip
                continue
            self.tickets.restore(name, tickets)
        self.listener.restore(reports)
        n = sum(len(v) for v in self.tickets.kept.values())
        if n or reports:
            log.info(
                "jt809: %d supervision tickets kept for logins and %d answers or receipts for "
                "the broker, from before the restart (%s)", n, len(reports), self.path,
            )  # fmt: skip
        self._saved = (self.tickets.changes, self.listener.changes)

    def save(self) -> None:
        """Write it when it changed since the last write."""
        now = (self.tickets.changes, self.listener.changes)
        if now == self._saved:
            return
        tickets = [_ticket_doc(n, t) for n, kept in self.tickets.kept.items() for t in kept]
        reports = [(t, p.decode()) for t, p in self.listener.waiting]
        data = orjson.dumps({"version": _VERSION, "tickets": tickets, "reports": reports})
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("jt809: %s not written (%s): a restart would lose it", self.path, exc)
            return
        self._saved = now

    async def run(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        """Save every `every_s` when it changed, and at the stop."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
                self.save()
        finally:
            self.save()
