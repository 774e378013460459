"""The demo's wait for the hub to be ready, ended by a stop before it was (pure asyncio)."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

from hazardhub.demo import _wait_ready


def _hub() -> SimpleNamespace:
    return SimpleNamespace(
        ingest=SimpleNamespace(ready=asyncio.Event()), api_started=asyncio.Event()
    )


def _run(body) -> list[dict]:
    """Run `body(hub, stop)` and collect what asyncio reported to the loop's exception handler
    (a future whose exception nobody retrieved is reported when it is collected)."""
    reported: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        await body(_hub(), asyncio.Event())
        gc.collect()
        await asyncio.sleep(0)
        gc.collect()

    asyncio.run(main())
    return reported


def test_a_stop_before_the_hub_is_subscribed_leaves_no_unretrieved_cancellation():
    """A Ctrl-C while the API served and ingest was not yet subscribed printed a CancelledError
    traceback ('exception was never retrieved') into the demo's log."""

    async def body(hub, stop):
        hub.api_started.set()
        asyncio.get_running_loop().call_later(0.01, stop.set)
        await asyncio.wait_for(_wait_ready(hub, stop), 2)

    assert _run(body) == []


def test_it_returns_once_both_are_ready_and_not_before():
    async def body(hub, stop):
        waiting = asyncio.ensure_future(_wait_ready(hub, stop))
        hub.ingest.ready.set()
        await asyncio.sleep(0.02)
        assert not waiting.done()
        hub.api_started.set()
        await asyncio.wait_for(waiting, 2)
        assert not stop.is_set()

    assert _run(body) == []
