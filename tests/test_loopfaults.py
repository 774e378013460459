"""The commands' loop handler (hazardhub.loopfaults): the MQTT client's race, a socket closed
before the loop watches it, is no traceback in the log; any other unawaited error still is."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from hazardhub import loopfaults


async def _closed_socket_watched() -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()  # closed before the loop gets to watch it, as when the broker refused at once
    b.close()
    loop.call_soon(loop.add_writer, fd, lambda: None)
    await asyncio.sleep(0.05)


def _boom() -> None:
    raise ValueError("ours")


async def _other_error() -> None:
    asyncio.get_running_loop().call_soon(_boom)
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("installed", [False, True])
def test_a_socket_closed_before_it_is_watched_is_no_traceback(
    caplog: pytest.LogCaptureFixture, installed: bool
) -> None:
    async def main() -> None:
        if installed:
            loopfaults.install(asyncio.get_running_loop())
        await _closed_socket_watched()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    if installed:
        assert errors == []
        assert any("closed before the loop watched it" in r.getMessage() for r in caplog.records)
    else:  # (what the hub logged: the race is real)
        assert errors and "add_writer" in errors[0].getMessage()


def test_any_other_unawaited_error_is_still_said_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        loopfaults.install(asyncio.get_running_loop())
        await _other_error()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.exc_info is not None and "ours" in str(error.exc_info[1])
