"""The JT/T 809 main-link server (asyncio TCP): lower platforms connect, log in, and send their
vehicles' positions (and what they report of them: `gateway.jt809.reports`), which go to the
uplink (spool, then MQTT).

Each connection is read into frames (`telemetry.jt809.FrameSplitter`) and handed to its
`Session`; the session's actions are carried out here. A link that has not logged in within
`login_timeout_s`, or is silent for `idle_timeout_s` once logged in (the standard's keep-alive
0x1005 comes every minute or so), is closed. A platform that logs in again on a new link
replaces its old one (closed, counted `replaced`). Links not logged in are bounded, their
problems and failed logins too (`gateway.jt809.guard`); a logged-in link is closed after many
bad frames in a window. Problems are counted per platform (`{platform}.{kind}`,
`unauthenticated` for a link not logged in) and logged, the first of a kind per platform and
report period at warning level, a few more at debug, then none (no password is ever in a line,
the peer's text escaped); the counters that changed are logged at info level every
`report_every_s` (`gateway.counters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from gateway.jt809.config import Jt809Config, PlatformSpec
from gateway.jt809.guard import BadWindow, Guard, Limits, shown
from gateway.jt809.link import Link
from gateway.jt809.problems import Problems
from gateway.jt809.reports import Report
from gateway.jt809.session import Answered, Close, LoggedIn, Problem, Publish, Send, Session, Warn
from gateway.jt809.sublink import SubLink
from gateway.jt809.tickets import Tickets
from gateway.jt809.uplink import PlatformUplink
from gateway.jt809.vehicles import PlateBook
from telemetry.jt809 import BadFrameError, DownWarnMsg, FrameOverflowError, FrameSplitter
from telemetry.registry import Registry

__all__ = ["Jt809Server"]

log = logging.getLogger(__name__)

_WRITE_TIMEOUT_S = 10.0
_BAD = frozenset({"bad_frame", "bad_body", "wrong_access_code"})  # a logged-in link's bad frames
_REFUSED = {
    "refused_address": "in no platform's allow_from",
    "refused_backoff": "in a backoff after failed logins",
    "refused_pending": "too many links not logged in",
}
_CST = timezone(timedelta(hours=8))


class Jt809Server:
    def __init__(
        self,
        config: Jt809Config,
        registry: Registry,
        uplink: PlatformUplink,
        *,
        clock_ms: Callable[[], int],
        login_timeout_s: float = 10.0,
        idle_timeout_s: float = 180.0,
        report_every_s: float = 60.0,
        max_frame: int = 65536,
        max_links: int = 256,
        limits: Limits | None = None,
    ) -> None:
        """`max_links`: links open at most (a platform has one; more are refused at once,
        counted `unauthenticated.refused_full`); `limits`: those of links not logged in, of
        bad frames and of failed logins (`gateway.jt809.guard`)."""
        self.platforms = config.by_code()
        self.book = PlateBook(registry.vehicles.values())
        self.uplink = uplink
        self.clock_ms = clock_ms
        self.login_timeout_s = login_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.report_every_s = report_every_s
        self.max_frame = max_frame
        self.max_links = max_links
        self.limits = limits or Limits()
        self.guard = Guard(
            self.limits,
            bool(config.platforms) and all(p.allow_from for p in config.platforms),
            lambda host: any(p.allows(host) for p in config.platforms),
        )
        self.problems = Problems()
        self.counters = self.problems.counters
        self.links: set[Link] = set()
        self.online: dict[str, Link] = {}  # platform name -> its logged-in link
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None
        # the centre's supervisions (报警督办) to the platforms, and their answers (0x1401)
        self.tickets = Tickets(
            list(config.platforms),
            registry,
            send=self._send_ticket,
            count=lambda p, kind: self.counters.update([f"{p}.{kind}" if p else kind]),
            clock_ms=clock_ms,
        )
        self.on_answer: Callable[[Answered], None] = lambda answer: None

    def use(self, registry: Registry) -> None:
        """Find the platforms' vehicles in `registry` from now on."""
        self.book = PlateBook(registry.vehicles.values())
        self.tickets.registry = registry
        for link in self.links:
            link.session.book = self.book

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve_link, host, port, reuse_address=True)
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        log.info("jt809: listening on %s:%d for %d platforms", *self.address, len(self.platforms))
        return self.address

    async def serve(self, stop: asyncio.Event) -> None:
        """Report the counters until `stop` is set, then close every link."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.report_every_s)
                self.report_counters()
        finally:
            if self._server is not None:
                self._server.close()
            for link in list(self.links):
                link.close()
            for link in list(self.links):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.done.wait(), 5)
            if self._server is not None:
                await self._server.wait_closed()
            self.report_counters()

    def report_counters(self) -> str | None:
        return self.problems.report(len(self.online))

    def count(self, platform: str | None, kind: str, n: int = 1) -> None:
        """Count under the platform, or `unauthenticated` for a link not logged in."""
        self.problems.count(platform, kind, n)

    async def _serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        host = str(peername[0])
        if len(self.links) >= self.max_links:
            self.problems.line(None, "refused_full", f"{host}: {len(self.links)} links open")
            writer.close()
            return
        loop = asyncio.get_running_loop()
        held = functools.partial(self._held, host)
        session = Session(self.platforms, self.book, host, self.clock_ms, held)
        link = Link(writer, session, f"{host}:{peername[1]}")
        admit = self.guard.admit(link, host, loop.time())
        if admit.refuse is not None:
            n = len(self.guard.pending)
            self.problems.line(None, admit.refuse, f"{host}: {_REFUSED[admit.refuse]} ({n} open)")
            writer.close()
            return
        if isinstance(admit.evict, Link):
            self.problems.line(None, "evicted", f"{admit.evict.peer}: room for {link.peer}")
            admit.evict.close()
        self.links.add(link)
        try:
            await self._read(link, reader)
        except (ConnectionError, OSError) as exc:
            log.info(
                "jt809: %s (%s): link lost: %s",
                link.peer,
                link.session.name or "unauthenticated",
                exc,
            )
        finally:
            if link.kept_task is not None:
                link.kept_task.cancel()  # (the tickets stay kept for the next login)
            if link.sub is not None and link.sub_task is not None:
                link.sub.stop(logout=link.session.logged_out)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(link.sub_task, 15)
            self.links.discard(link)
            self.guard.gone(link)
            name = link.session.name
            if name is not None and self.online.get(name) is link:
                del self.online[name]
                log.info("jt809: %s (%s) logged out or gone", name, link.peer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            link.done.set()

    async def _read(self, link: Link, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        splitter = FrameSplitter(self.max_frame)
        skipped_before_login = 0
        while not link.closing:
            session = link.session
            if session.platform is None:
                timeout = opened + self.login_timeout_s - loop.time()
            else:
                timeout = self.idle_timeout_s
            try:
                data = await asyncio.wait_for(reader.read(65536), max(0.0, timeout))
            except TimeoutError:
                kind = "idle_closed" if session.platform else "login_timeout"
                self.count(session.name, kind)
                log.info(
                    "jt809: closing %s (%s): %s", link.peer, session.name or "unauthenticated", kind
                )
                return
            if not data:
                return
            overflow: FrameOverflowError | None = None
            try:
                items = splitter.feed(data)
            except FrameOverflowError as exc:  # the frames complete before it are taken
                overflow, items = exc, exc.frames
            if splitter.skipped:
                self.count(session.name, "skipped_bytes", splitter.skipped)
                skipped_before_login += splitter.skipped if session.platform is None else 0
                splitter.skipped = 0
                if skipped_before_login > self.limits.pending_skipped_bytes:
                    why = f"{skipped_before_login} bytes outside frames before a login"
                    self.problems.problem(link.peer, Problem("not_jt809", why))
                    return
            if not await self._take(link, items):
                return
            if overflow is not None:
                self.problems.problem(link.peer, Problem("overflow", str(overflow), session.name))
                return

    async def _take(self, link: Link, items: list[bytes | BadFrameError]) -> bool:
        """Carry out the frames of one read; False once the link is to close (the frames after
        it counted `frames_dropped`)."""
        session = link.session
        # the positions of every frame of this read, committed together (one transaction:
        # a platform forwarding a fleet sends hundreds of messages a second)
        taken: list[Publish] = []
        try:
            for i, item in enumerate(items):
                for action in session.receive(item):
                    if isinstance(action, Publish):
                        taken.append(action)
                    elif not await self._act(link, action) or link.closing:
                        if rest := len(items) - i - 1:
                            self.count(session.name, "frames_dropped", rest)
                        return False
        finally:
            for a in taken:
                self.tickets.serves(a.ref, session.name or "", a.color)
            if taken:
                self.uplink.submit_many([(a.ref, a.records) for a in taken], self.clock_ms())
                self.count(session.name, "positions", sum(len(a.records) for a in taken))
        return True

    def _held(self, host: str, code: int) -> str | None:
        p = self.platforms.get(code)
        trusted = p is not None and bool(p.allow_from) and p.allows(host)
        key = self.guard.held(host, code, asyncio.get_running_loop().time(), trusted)
        return None if key is None else f"failed logins from {key}: tries refused for a while"

    async def _act(
        self,
        link: Link,
        action: Send | Problem | Warn | Answered | LoggedIn | Close | Report,
    ) -> bool:
        """Carry out one action; False once the link is to close."""
        name = link.session.name
        if isinstance(action, Send):
            link.writer.write(action.data)
            try:
                await asyncio.wait_for(link.writer.drain(), _WRITE_TIMEOUT_S)
            except TimeoutError:
                self.problems.problem(link.peer, Problem("write_timeout", "it does not read", name))
                return False
            return True
        if isinstance(action, Problem):
            self.problems.problem(link.peer, action)
            return self._bearable(link, action)
        if isinstance(action, Warn):
            self.count(action.platform, "warnings")
            w = action.info
            when = (
                datetime.fromtimestamp(w.warn_time_s, _CST).isoformat()
                if w.warn_time_s < 2**35
                else w.warn_time_s
            )
            said = "".join(c if c.isprintable() else "?" for c in w.content[:200])
            log.warning(
                "jt809: %s: warning type %#06x of %s at %s (source %s): %s",
                action.platform, w.warn_type, shown(action.vehicle), when,
                w.source_platform or w.source, said,
            )  # fmt: skip
            return True
        if isinstance(action, Report):  # a vehicle's registration, driver, waybill: to the hub
            self.uplink.submit_report(action, self.clock_ms())
            self.count(action.platform, action.counter)
            return True
        if isinstance(action, Answered):
            self.count(action.platform, "supervise_answers")
            self.on_answer(action)
            return True
        if isinstance(action, LoggedIn):
            p: PlatformSpec = action.platform
            old = self.online.get(p.name)
            if old is not None and old is not link:
                self.count(p.name, "replaced")
                log.warning(
                    "jt809: %s logged in again from %s: closing %s", p.name, link.peer, old.peer
                )
                old.close()
            self.online[p.name] = link
            self.guard.logged_in(link)
            self.guard.good_login(link.session.peer_host, p.access_code)
            link.bad = BadWindow(self.limits.bad_frames, self.limits.bad_window_s)
            self.count(p.name, "logins")
            if p.sub_link is not None and link.sub is None:  # (not again at a second login)
                link.sub = SubLink(
                    p,
                    p.sub_link,
                    link.session,
                    action.verify_code,
                    action.down,
                    tell_main=link.tell,
                    count=functools.partial(self.count, p.name),
                )
                link.sub_task = asyncio.create_task(link.sub.run(), name=f"jt809-sub-{p.name}")
            log.info(
                "jt809: %s logged in from %s (JT/T 809-%d, tenant %s)",
                p.name,
                link.peer,
                p.version,
                p.tenant,
            )
            if link.sub is not None and not link.sub.up.is_set():
                link.kept_task = asyncio.create_task(
                    self._kept_after_sub(link, p.name), name=f"jt809-kept-{p.name}"
                )
            else:
                self.tickets.logged_in(p.name)
            return True
        log.info("jt809: closing %s (%s): %s", link.peer, name or "unauthenticated", action.why)
        return False

    async def _kept_after_sub(self, link: Link, name: str) -> None:
        """The tickets kept for the platform once its sub link is up (0x9400 is a sub-link
        message), or on the main link when it is not up within its `timeout_s`."""
        sub = link.sub
        assert sub is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sub.up.wait(), sub.spec.timeout_s)
        if self.online.get(name) is link and not link.closing:
            self.tickets.logged_in(name)

    def _send_ticket(self, name: str, msg: DownWarnMsg) -> str | None:
        """A supervision on the platform's sub link if up, else its main link ("sub",
        "main"), or None when it is not logged in."""
        link = self.online.get(name)
        if link is None or link.closing:
            return None
        data = link.session.frame(msg)
        if link.sub is not None and link.sub.send(data):
            return "sub"
        link.writer.write(data)
        return "main"

    def _bearable(self, link: Link, problem: Problem) -> bool:
        """Whether the link goes on after `problem`: a link not logged in is closed after a few
        problems, a logged-in one after many bad frames in a window; a failed login counts
        towards its address's and access code's backoff."""
        now = asyncio.get_running_loop().time()
        if problem.login_code is not None:
            for key in self.guard.failed_login(link.session.peer_host, problem.login_code, now):
                self.problems.line(
                    None,
                    "login_backoff",
                    f"{self.limits.failed_logins} failed logins from {key} within "
                    f"{self.limits.failed_window_s:g} s: its logins refused unchecked for "
                    f"{self.limits.backoff_s:g} s",
                )
        if link.session.platform is None:
            link.pending_bad += 1
            if link.pending_bad >= self.limits.pending_bad:
                why = f"{link.pending_bad} problems before a login"
                self.problems.problem(link.peer, Problem("too_many_bad_frames", why))
                return False
            return True
        if problem.kind in _BAD and link.bad is not None and link.bad.add(now):
            why = f"{self.limits.bad_frames} bad frames within {self.limits.bad_window_s:g} s"
            self.problems.problem(link.peer, Problem("too_many_bad_frames", why, problem.platform))
            return False
        return True
