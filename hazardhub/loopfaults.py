"""The event loop's handler of exceptions nobody awaited, for every command: a known race of the
MQTT client said in one line instead of a traceback; anything else as asyncio says it.

aiomqtt asks the loop, from paho's thread, to watch the socket for writing
(`call_soon_threadsafe(loop.add_writer, fileno, ...)`); when the broker refuses the connection
at once (a TLS broker requiring a client certificate ends it at the first read) the socket may
be closed before the loop gets to it, and asyncio logged "Exception in callback
BaseSelectorEventLoop.add_writer(...)" with a traceback of `OSError: [Errno 9] Bad file
descriptor`: nothing lost (the client has failed already, its reconnection is said), but a
traceback in the hub's log reads as a crash."""

from __future__ import annotations

import asyncio
import errno
import logging

__all__ = ["install"]

log = logging.getLogger("hazardhub")


def _closed_socket_watched(context: dict[str, object]) -> bool:
    exc = context.get("exception")
    handle = repr(context.get("handle", ""))
    return (
        isinstance(exc, OSError)
        and exc.errno == errno.EBADF
        and ("add_writer" in handle or "add_reader" in handle)
    )


def handle(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    if _closed_socket_watched(context):
        log.debug("a socket closed before the loop watched it (the MQTT client's race): ignored")
        return
    loop.default_exception_handler(context)


def install(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_exception_handler(handle)
