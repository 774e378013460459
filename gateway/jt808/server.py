"""The JT/T 808 gateway: an asyncio TCP server in front of `Session`, publishing positions through
`PositionUplink`.

Each connection is an `asyncio.Protocol` (`connection`, no task per terminal); bytes go into
the connection's pure `Session`, and its events are carried out in order: replies written to the
socket, position arrays committed to the spool, problems counted in `counters`. A terminal that
sends nothing for `idle_timeout_s` is closed (``idle_closed``). Connections beyond
`max_connections`, or `max_per_host` from one address, are refused at once (`limits`), and so is
the accept loop's complaint when the process runs out of files: each is counted and logged once a
minute at most. Once it stops, a connection the loop still accepts is refused at once
(``refused_stopping``): the bindings are closed.

After a terminal authenticates, and after a silence that may have left a blind-area backlog, its
positions are held (`hold`, carried out by `holding`) and handed on in time order once the
backlog came (or the hold's bound passed): the hub judges a vehicle's positions in time order and
would judge none of a backlog sent after a live fix. Held positions are kept aside in the spool,
durable, before the terminal is answered (answers are never delayed), and handed on when the
connection closes.

An alarm confirmation (0x8203) for a terminal that is not connected is kept (`confirmations`)
and sent when it authenticates again; what waits longer than `hold_confirmations_s` (a day) is
dropped (``confirmations_expired``). A reminder to the driver (0x8300) is kept a minute at most
(`reminders`). Both are delivered by the server's base, `delivery.Delivery`.

The counters that changed are logged at info level every `report_every_s` (a minute) and when the
server stops; the problems an operator must act on (`_WARN_KINDS`) and replaced connections are
logged at warning level at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gateway.counters import changed_since
from gateway.jt808.bindings import Bindings
from gateway.jt808.confirmations import HeldConfirmations
from gateway.jt808.connection import WRITE_BUFFER_MAX, Connection
from gateway.jt808.delivery import Delivery
from gateway.jt808.directory import Directory, VehicleRef
from gateway.jt808.events import (
    Authenticated,
    Close,
    Event,
    Problem,
    Publish,
    Remember,
    Send,
    TerminalAck,
)
from gateway.jt808.hold import HoldPolicy
from gateway.jt808.holding import Holding
from gateway.jt808.keep import read_held, read_served, write_served
from gateway.jt808.limits import ConnectionLimits, Quiet, default_max_connections
from gateway.jt808.packets import PacketPolicy
from gateway.jt808.reminders import Reminders
from gateway.jt808.repeats import Repeats
from gateway.jt808.uplink import PositionUplink
from telemetry.jt808.messages import MsgId
from telemetry.registry import Registry

__all__ = ["Jt808Server"]

log = logging.getLogger(__name__)

# problems an operator must see (the configuration and a terminal disagree); others are counted
_WARN_KINDS = frozenset({"terminal_conflict", "bad_frames_closed", "clock_skew", "binding_refused"})
# ... of which those anyone can cause at will, logged once a minute at most
_QUIET_KINDS = frozenset({"binding_refused"})
# what asyncio's accept loop says when the process has no file left (EMFILE, ENFILE, ...)
_ACCEPT_OUT_OF_FILES = "socket.accept() out of system resource"
_ACCEPT_RETRY_S = 1.1  # asyncio retries an accept loop out of files after 1 s


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Jt808Server(Delivery):
    """Accepts terminals, maps them to vehicles, hands their positions to the uplink."""

    def __init__(
        self,
        registry: Registry,
        uplink: PositionUplink,
        *,
        secret: bytes | None = None,
        idle_timeout_s: float = 300.0,
        auth_timeout_s: float = 15.0,
        max_connections: int | None = None,
        max_per_host: int = 256,
        max_bad_frames: int = 20,
        report_every_s: float = 60.0,
        hold_confirmations_s: float = 86400.0,
        clock_ms: Callable[[], int] = _wall_ms,
        served_file: Path | None = None,
        held_file: Path | None = None,
        bindings_file: Path | None = None,
        repeats_file: Path | None = None,
        hold: HoldPolicy | None = None,
        remind_within_s: float = 60.0,
        packets: PacketPolicy | None = None,
    ) -> None:
        """`served_file`: where the vehicles served here are kept across a restart (see
        `served`); `held_file`: the same for the confirmations kept (`held`); `bindings_file`:
        which terminal each vehicle is bound to, and its auth code (`Bindings`; in memory
        without it); `repeats_file`: each vehicle's location messages taken lately (`Repeats`:
        a retransmission across a restart is not published twice; in memory without it).
        `max_connections`: by default the open-file limit less a reserve.
        `hold`: how long positions are held for a backlog older than them (`HoldPolicy`).
        `remind_within_s`: a driver reminder goes to the terminal within this long after the
        hub asked, or is dropped (`Reminders`). `packets`: how long a sub-packaged message
        may take, its missing sub-packages asked for again (0x8003), and how many are open per
        connection (`PacketPolicy`).
        `secret` is no longer used (auth codes are random, kept in the bindings): taken so
        that callers of before keep working."""
        del secret
        self.directory = Directory(registry.vehicles.values())
        self.bindings = Bindings(bindings_file)
        # each vehicle's location messages taken lately: one sent again is not published again
        self.repeats = Repeats(path=repeats_file, now_ms=clock_ms())
        self.auth_timeout_s = auth_timeout_s
        self.limits = ConnectionLimits(
            max_connections if max_connections is not None else default_max_connections(),
            max_per_host,
        )
        self.quiet = Quiet(log)
        self.report_every_s = report_every_s
        self._reported: Counter[str] = Counter()  # the counters as last logged
        self.uplink = uplink
        self.idle_timeout_s = idle_timeout_s
        self.max_bad_frames = max_bad_frames
        self.write_buffer_max = WRITE_BUFFER_MAX  # a terminal that does not read is closed
        self.clock_ms = clock_ms
        self.hold_policy = hold if hold is not None else HoldPolicy()
        self.packet_policy = packets if packets is not None else PacketPolicy()
        self.counters: Counter[str] = Counter()
        self.holding = Holding(
            uplink, self.hold_policy, self.counters, self.quiet, clock_ms, self.loop
        )
        self.connections: set[Connection] = set()
        self.by_vehicle: dict[VehicleRef, Connection] = {}
        # confirmations for terminals away, sent at their next authentication
        self.held = HeldConfirmations(int(hold_confirmations_s * 1000))
        self._held_file = held_file
        read_held(self.held, held_file)
        # the vehicles whose terminal authenticated here (kept in `served_file` across a
        # restart: a command made while this gateway was down comes before its terminal): only
        # for them is a confirmation kept (every gateway on the broker gets every command; one
        # that never served the terminal would send it, stale, when the terminal came later)
        self._served_file = served_file
        self.served: set[VehicleRef] = read_served(served_file)
        # reminders to drivers (0x8300), kept a minute at most for a terminal away
        self.reminders = Reminders(self.counters, self.quiet, int(remind_within_s * 1000))
        self._server: asyncio.Server | None = None
        self._closed = False
        self.stopping = False  # set when `serve` ends: connections are refused from then
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler_before: (
            Callable[[asyncio.AbstractEventLoop, dict[str, object]], object] | None
        ) = None
        self.address: tuple[str, int] | None = None

    def use(self, registry: Registry) -> None:
        """Register and authenticate terminals against `registry` from now on (a terminal
        already authenticated stays, even of a vehicle no longer configured, until it
        reconnects)."""
        self.directory = self.directory.with_vehicles(registry.vehicles.values())
        for conn in self.connections:
            conn.session.directory = self.directory

    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def loop_time(self) -> float:
        return self.loop().time()

    def admit(self, conn: Connection, host: str) -> bool:
        """Take a new connection, or refuse it (counted, logged once a minute at most)."""
        if self.stopping:  # its registration would find the bindings closed
            self.counters["refused_stopping"] += 1
            log.debug("jt808: %s refused: the gateway is stopping", conn.peer)
            return False
        refused = self.limits.admit(host)
        if refused is None:
            return True
        self.counters[refused] += 1
        cap = (
            f"{self.limits.max_total} connections open (--max-connections)"
            if refused == "refused_full"
            else f"{self.limits.max_per_host} connections open from {host} "
            "(--max-connections-per-host)"
        )
        self.quiet(
            self.loop_time(), refused, logging.WARNING, "jt808: %s refused: %s", conn.peer, cap
        )
        return False

    def _accept_failed(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """The loop's exception handler while serving: the accept loop out of files is counted
        and said once a minute, without its traceback (it comes every second for as long);
        anything else goes to the handler of before."""
        sock = context.get("socket")
        ours = self._server is not None and any(
            s.fileno() == getattr(sock, "fileno", lambda: -2)() for s in self._server.sockets
        )
        exc = context.get("exception")
        if self._closed and isinstance(exc, ValueError) and "Invalid file descriptor" in str(exc):
            # asyncio (3.11) goes on accepting after "out of files", each refusal setting a retry
            # of the accept loop a second later: up to `backlog` (4096) of them, which, once
            # the server is closed, each failed on its closed socket with a traceback
            self.counters["accept_retries_after_close"] += 1
            return
        if ours and str(context.get("message", "")).startswith(_ACCEPT_OUT_OF_FILES):
            self.counters["accept_failed"] += 1
            self.quiet(
                loop.time(),
                "accept_failed",
                logging.ERROR,
                "jt808: cannot accept connections: %s (%d open; raise LimitNOFILE, or lower "
                "--max-connections)",
                context.get("exception"),
                len(self.connections),
            )
        elif self._handler_before is not None:
            self._handler_before(loop, context)
        else:
            loop.default_exception_handler(context)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen (port 0: any free port); return the address bound."""
        self._loop = asyncio.get_running_loop()
        self._handler_before = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._accept_failed)
        self._server = await self._loop.create_server(
            lambda: Connection(self), host, port, backlog=4096, reuse_address=True
        )
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        log.info("jt808: listening on %s:%d for %d vehicles", *self.address, len(self.directory))
        return self.address

    async def serve(self, stop: asyncio.Event) -> None:
        """Close idle terminals until `stop` is set, then close every connection."""
        period = max(0.05, min(1.0, self.idle_timeout_s / 4, self.report_every_s))
        next_report = self.loop_time() + self.report_every_s
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=period)
                except TimeoutError:
                    self.close_idle()
                    self.repeats.flush()
                    self.tick_packets()
                    self.expire_confirmations()
                    self.reminders.expire(self.clock_ms())
                    if self.loop_time() >= next_report:
                        next_report = self.loop_time() + self.report_every_s
                        self.report_counters()
        finally:
            # from now on a connection the loop still accepts (one in the listening backlog)
            # is refused at once: none registers against the bindings closed below
            self.stopping = True
            if self._server is not None:
                self._server.close()
            for conn in list(self.connections):
                conn.close()
            self._closed = True
            if self._server is not None:
                await self._server.wait_closed()
            if self.counters["accept_failed"]:  # the accept loop's retries still due (above)
                await asyncio.sleep(_ACCEPT_RETRY_S)
            if self._loop is not None:
                self._loop.set_exception_handler(self._handler_before)
            self.bindings.close()
            self.repeats.close()
            self.report_counters()

    def report_counters(self) -> str | None:
        """Log (info) the counters that changed since the last report, with their totals, and
        the connections open; nothing when none changed. Returns the line logged."""
        since = changed_since(self.counters, self._reported)
        if since is None:
            return None
        line = (
            f"jt808: {len(self.connections)} connections, {len(self.by_vehicle)} authenticated; "
            f"since the last report: {since}"
        )
        self._reported = self.counters.copy()
        log.info("%s", line)
        return line

    def tick_packets(self) -> None:
        """Ask terminals for the sub-packages missing from a message silent a while (0x8003),
        and drop those silent too long (``incomplete_packets``)."""
        now = self.clock_ms()
        for conn in list(self.connections):
            if conn.session.packets_pending:
                conn.tick(now)

    def close_idle(self) -> int:
        deadline = self.loop_time() - self.idle_timeout_s
        idle = [c for c in self.connections if c.last_rx < deadline]
        for conn in idle:
            self.counters["idle_closed"] += 1
            log.info(
                "jt808: closing %s (%s): silent for %.0fs",
                conn.peer,
                conn.vehicle,
                self.idle_timeout_s,
            )
            conn.close()
        return len(idle)

    def handle(self, conn: Connection, events: list[Event]) -> None:
        counters = self.counters
        for ev in events:
            if isinstance(ev, Send):
                conn.write(ev.data)
            elif isinstance(ev, Publish):
                self.holding.take(conn, ev)  # durable (held or queued), then the ack that follows
            elif isinstance(ev, Remember):  # (after its Publish, if any: taken)
                self.repeats.remember(ev.vehicle, ev.key, self.clock_ms())
            elif isinstance(ev, Problem):
                counters[ev.kind] += 1
                level = logging.WARNING if ev.kind in _WARN_KINDS else logging.DEBUG
                line = ("jt808: %s (%s): %s: %s", conn.peer, conn.vehicle, ev.kind, ev.detail)
                if ev.kind in _QUIET_KINDS:
                    self.quiet(self.loop_time(), ev.kind, level, *line)
                else:
                    log.log(level, *line)
            elif isinstance(ev, Authenticated):
                old = self.by_vehicle.get(ev.vehicle)
                if old is not None and old is not conn:
                    # its terminal (it holds the code) reconnected before the old connection
                    # timed out; two connections doing this over and over are one code in two
                    # terminals
                    counters["replaced"] += 1
                    log.warning(
                        "jt808: %s/%s: terminal %s from %s replaces its connection from %s",
                        ev.vehicle.tenant,
                        ev.vehicle.vehicle,
                        ev.phone,
                        conn.peer,
                        old.peer,
                    )
                    old.close()
                self.by_vehicle[ev.vehicle] = conn
                # its first positions may come before its backlog: held a while
                conn.hold.arm(self.holding.newest.get(ev.vehicle))
                if ev.vehicle not in self.served:
                    self.served.add(ev.vehicle)
                    write_served(self._served_file, self.served)
                counters["authenticated"] += 1
                self._send_held(conn, ev.vehicle)
                self.reminders.authenticated(ev.vehicle, conn, self.clock_ms())
            elif isinstance(ev, TerminalAck):
                counters["terminal_acks"] += 1
                if ev.response.ack_msg_id == MsgId.TEXT_MESSAGE:
                    self.reminders.answered(ev.response)
            elif isinstance(ev, Close):
                conn.close()

    def forget(self, conn: Connection) -> None:
        if conn.host is not None:
            self.limits.release(conn.host)
            conn.host = None
        self.connections.discard(conn)
        ref = conn.vehicle
        if ref is not None and self.by_vehicle.get(ref) is conn:
            del self.by_vehicle[ref]
