"""A platform's sub link (从链路, asyncio): after a login on the main link, the gateway connects
to the platform's down-link address (the login's, or the one configured), logs in with the
verify code of its 0x1002 (0x9001, answered 0x9002 result 0), and tests the link every
`keepalive_s` (0x9005, answered 0x9006). A link that cannot be opened, is refused or breaks is
tried again (1 s, doubling to 60 s). The platform is told on the main link (0x9007), once until
the sub link is up again, when it could not be reached twice (reason 0), or when it broke and
two reconnections failed (reason 1). When the main link logs out, the sub link logs out too
(0x9003, answered 0x9004); when the main link ends otherwise, the sub link is closed. Nothing the
platform sends on it is taken but the answers and its 0x1007 (its main link broke: counted
`disconnect_notice`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.jt809.config import PlatformSpec, SubLinkSpec
from gateway.jt809.session import Session
from gateway.logtext import shown
from telemetry.jt809 import (
    BadFrameError,
    DownConnect,
    DownConnectResponse,
    DownDisconnect,
    DownDisconnectNotice,
    DownLinkTest,
    Frame,
    FrameSplitter,
    Jt809Error,
    MsgId,
    decode_frame,
)

__all__ = ["SubLink"]

log = logging.getLogger(__name__)

_BACKOFF_MAX_S = 60.0


class SubLinkError(Exception):
    """The sub link did not open or broke (the reason)."""


class SubLink:
    def __init__(
        self,
        platform: PlatformSpec,
        spec: SubLinkSpec,
        session: Session,
        verify_code: int,
        down: tuple[str, int],
        *,
        tell_main: Callable[[bytes], None],
        count: Callable[[str], None],
    ) -> None:
        self.platform, self.spec, self.session = platform, spec, session
        self.verify_code = verify_code
        if spec.address is not None:
            host, _, port = spec.address.rpartition(":")
            self.address = (host.strip("[]"), int(port))
        else:
            self.address = down
        self._tell_main, self._count = tell_main, count
        self._stop = asyncio.Event()
        self._logout = False
        self.up = asyncio.Event()  # set while the sub link is logged in
        self._writer: asyncio.StreamWriter | None = None

    def send(self, data: bytes) -> bool:
        """Write a frame of ours (a 0x9400) on the sub link if it is up."""
        if not self.up.is_set() or self._writer is None or self._writer.is_closing():
            return False
        self._writer.write(data)
        return True

    def stop(self, logout: bool) -> None:
        """End the sub link: with a logout 0x9003 when the main link logged out."""
        self._logout = logout
        self._stop.set()

    async def run(self) -> None:
        failures, backoff, told, ever_up = 0, 1.0, False, False
        while not self._stop.is_set():
            was_up = False
            try:
                was_up = await self._once()
            except (OSError, TimeoutError, SubLinkError, Jt809Error) as exc:
                if self._stop.is_set():
                    return
                was_up = self.up.is_set()
                self._count("sublink_failed")
                log.warning(
                    "jt809: %s: sub link to %s:%d: %s",
                    self.platform.name,
                    shown(self.address[0]),  # the platform's login names it
                    self.address[1],
                    shown(exc or type(exc).__name__),
                )
            finally:
                self.up.clear()
            if self._stop.is_set():
                return
            if was_up:
                failures, backoff, told, ever_up = 1, 1.0, False, True
            else:
                failures += 1
            # the standard's two cases: the address could not be reached (twice here), or the
            # link broke and two reconnections failed
            if failures >= (3 if ever_up else 2) and not told:
                self._tell_main(self.session.frame(DownDisconnectNotice(1 if ever_up else 0)))
                self._count("sublink_down_notices")
                told = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _once(self) -> bool:
        """One sub link from connect to stop; raises when it fails. Whether it was up."""
        timeout = self.spec.timeout_s
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.address), timeout)
        frames: asyncio.Queue[Frame | None] = asyncio.Queue()
        reading = asyncio.create_task(self._read(reader, frames))
        try:
            writer.write(self.session.frame(DownConnect(self.verify_code)))
            answer = await self._answer(frames, DownConnectResponse.msg_id, timeout)
            result = DownConnectResponse.decode(answer.body).result
            if result != 0:
                self._count("sublink_refused")
                raise SubLinkError(f"0x9002 result {result}")
            self._writer = writer
            self.up.set()
            self._count("sublink_up")
            log.info(
                "jt809: %s: sub link to %s:%d up",
                self.platform.name,
                shown(self.address[0]),
                self.address[1],
            )
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.spec.keepalive_s)
                if self._stop.is_set():
                    if self._logout:
                        writer.write(self.session.frame(DownDisconnect(self.verify_code)))
                        with contextlib.suppress(TimeoutError, SubLinkError):
                            await self._answer(frames, 0x9004, timeout)
                    return True
                writer.write(self.session.frame(DownLinkTest()))
                await self._answer(frames, 0x9006, timeout)
        finally:
            self._writer = None
            reading.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(
        self, reader: asyncio.StreamReader, frames: asyncio.Queue[Frame | None]
    ) -> None:
        splitter = FrameSplitter()
        keys = self.platform.keys.keys() if self.platform.keys else None
        try:
            while data := await reader.read(65536):
                for item in splitter.feed(data):
                    try:
                        if isinstance(item, BadFrameError):
                            raise item
                        await frames.put(decode_frame(item, self.platform.v2019, keys))
                    except Jt809Error as exc:
                        self._count("sublink_bad_frame")
                        log.info("jt809: %s: sub link: %s", self.platform.name, shown(exc))
        except (OSError, Jt809Error):
            pass
        finally:
            frames.put_nowait(None)

    async def _answer(
        self, frames: asyncio.Queue[Frame | None], msg_id: int, within_s: float
    ) -> Frame:
        """The next frame of `msg_id`; the platform's 0x1007 on the way counted; SubLinkError
        when the link closed."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        while True:
            frame = await asyncio.wait_for(frames.get(), max(0.0, end - loop.time()))
            if frame is None:
                raise SubLinkError("closed by the platform")
            got = frame.header.msg_id
            if got == msg_id:
                return frame
            if got == MsgId.DISCONNECT_NOTICE:
                self._count("disconnect_notice")
                log.info(
                    "jt809: %s: its main link broke (0x1007 on the sub link)", self.platform.name
                )
            else:
                self._count("sublink_unexpected")
