"""One terminal's TCP connection to the JT/T 808 gateway: an `asyncio.Protocol` (no task per
terminal) around the connection's pure `Session`, whose events the server carries out.

An exception while handling one connection's bytes is our fault: it is counted
(``internal_error``), logged, and closes that connection only. A connection that has not
authenticated `auth_timeout_s` after it opened is closed (``auth_timeout``): an idle connection
costs an open file, and enough of them would keep real terminals out.

A terminal that does not read what the gateway writes (its answers, 0x8001 to every heartbeat)
while it goes on sending made the gateway's write buffer grow without bound (7.6 MB after 600,000
heartbeats, helper-150): past `WRITE_BUFFER_MAX` waiting to be sent, the connection is closed
(``write_buffer_full``, logged at warning level with the terminal's phone number, once a
minute at most).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gateway.jt808.directory import VehicleRef
from gateway.jt808.hold import Hold
from gateway.jt808.session import Session, State

if TYPE_CHECKING:
    from gateway.jt808.server import Jt808Server

__all__ = ["Connection"]

log = logging.getLogger("gateway.jt808.server")

# bytes written to a terminal and not sent yet (the socket's own buffer is not counted): past
# this, the terminal does not read, and its connection is closed
WRITE_BUFFER_MAX = 1024 * 1024


class Connection(asyncio.Protocol):
    def __init__(self, server: Jt808Server) -> None:
        self.server = server
        self.session = Session(
            server.directory,
            server.bindings,
            max_bad_frames=server.max_bad_frames,
            repeats=server.repeats,
            packets=server.packet_policy,
        )
        self.transport: asyncio.Transport | None = None
        self.last_rx = 0.0
        self.peer = "?"
        self.host: str | None = None  # the source address, once admitted
        self._auth_deadline: asyncio.TimerHandle | None = None
        # positions held until the terminal's backlog came, kept aside under `hold_key`
        self.hold = Hold(server.hold_policy)
        self.hold_key = server.holding.next_key()
        self.hold_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.last_rx = self.server.loop_time()
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        host = str(peer[0]) if peer else "?"
        if not self.server.admit(self, host):
            self.close(abort=True)
            return
        self.host = host
        self.server.connections.add(self)
        self.server.counters["connections"] += 1
        self._auth_deadline = self.server.loop().call_later(
            self.server.auth_timeout_s, self._not_authenticated
        )

    def _not_authenticated(self) -> None:
        """The deadline to register and authenticate passed."""
        self._auth_deadline = None
        if self.session.state in (State.CONNECTED, State.REGISTERED):
            self.server.counters["auth_timeout"] += 1
            log.debug(
                "jt808: closing %s: not authenticated within %.0fs",
                self.peer,
                self.server.auth_timeout_s,
            )
            self.close(abort=True)

    def data_received(self, data: bytes) -> None:
        if self.server.stopping:  # closing: the bindings may be closed already
            return
        self.last_rx = self.server.loop_time()
        try:
            self.server.handle(self, self.session.feed(data, self.server.clock_ms()))
        except Exception:
            self.server.counters["internal_error"] += 1
            log.exception("jt808: error handling %s (%s); closing it", self.peer, self.vehicle)
            self.close(abort=True)

    def tick(self, now_ms: int) -> None:
        """The session's time-driven events (sub-packages asked for again, or dropped)."""
        if self.server.stopping:
            return
        try:
            self.server.handle(self, self.session.tick(now_ms))
        except Exception:
            self.server.counters["internal_error"] += 1
            log.exception("jt808: error handling %s (%s); closing it", self.peer, self.vehicle)
            self.close(abort=True)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._auth_deadline is not None:
            self._auth_deadline.cancel()
        self.server.holding.hand_on(self)
        self.server.forget(self)

    @property
    def vehicle(self) -> VehicleRef | None:
        return self.session.vehicle

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        waiting = transport.get_write_buffer_size()
        if waiting > self.server.write_buffer_max:
            self.server.counters["write_buffer_full"] += 1
            header = self.session.header
            self.server.quiet(  # anyone may cause it: once a minute at most
                self.server.loop_time(),
                "write_buffer_full",
                logging.WARNING,
                "jt808: closing %s (%s, terminal %s): it does not read what the gateway writes "
                "(%d bytes waiting, more than %d)",
                self.peer,
                self.vehicle,
                self.session.phone or (header.phone if header else "?"),
                waiting,
                self.server.write_buffer_max,
            )
            self.close(abort=True)

    @property
    def authenticated(self) -> bool:
        """Authenticated, and not closing: what is written now reaches the terminal."""
        open_ = self.transport is not None and not self.transport.is_closing()
        return open_ and self.session.state is State.AUTHENTICATED

    def close(self, *, abort: bool = False) -> None:
        self.session.state = State.CLOSED
        self.server.holding.hand_on(self)  # at once: before a connection replacing it hands on
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
