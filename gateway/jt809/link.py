"""One lower platform's main link, as the JT/T 809 server (`gateway.jt809.server`) holds it: its
writer, its session, its sub link and the tasks and counts that go with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.jt809.guard import BadWindow
from gateway.jt809.session import Session
from gateway.jt809.sublink import SubLink

__all__ = ["Link"]


@dataclass(eq=False)
class Link:
    writer: asyncio.StreamWriter
    session: Session
    peer: str
    closing: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    sub: SubLink | None = None
    sub_task: asyncio.Task[None] | None = None
    kept_task: asyncio.Task[None] | None = None  # the kept tickets, once the sub link is up
    pending_bad: int = 0  # problems before a login
    bad: BadWindow | None = None  # bad frames once logged in

    def tell(self, data: bytes) -> None:
        """Write `data` on the main link (the sub link's 0x9007), unless it is closing."""
        if not self.closing:
            self.writer.write(data)

    def close(self) -> None:
        self.closing = True
        self.writer.close()
