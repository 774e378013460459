"""The vehicles' command topics as the JT/T 808 and JT/T 809 gateways hear them: one MQTT session
of their own, persistent (clean session off, a fixed client id: what the hub published while the
gateway was away comes when it is back), subscribed at QoS 1, kept up until the gateway stops.
Each gateway says what its commands do (`handle`); the JT/T 809 gateway also publishes its
platforms' answers on that connection (`beside`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiomqtt

from telemetry.brokertls import BrokerTls, tls_context
from telemetry.mqttclient import BrokerClient

__all__ = ["follow_commands"]

_BACKOFF_S = 0.5  # the first pause after a connection lost or refused, doubled each time
_BACKOFF_MAX_S = 10.0


async def follow_commands(
    stop: asyncio.Event,
    *,
    host: str,
    port: int,
    client_id: str,
    username: str | None,
    password: str | None,
    tls: BrokerTls | None,
    filters: Sequence[str],
    handle: Callable[[str, bytes], object],
    subscribed: asyncio.Event,
    label: str,
    log: logging.Logger,
    beside: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Until `stop`: subscribed to `filters` (QoS 1), each message handed to `handle(topic,
    payload)`, with `beside(client)` running on the same connection. `subscribed` is set while
    the subscription stands. A connection lost or not made is said (a warning to the gateway's
    `log`, as `label`) and made again after a pause (0.5 s doubling up to 10 s); what else
    fails raises."""
    backoff = _BACKOFF_S
    while not stop.is_set():
        try:
            async with BrokerClient(
                host,
                port,
                identifier=client_id,
                clean_session=False,
                username=username,
                password=password,
                tls_context=tls_context(tls),
            ).stopped_by(stop) as client:
                for flt in filters:
                    await client.subscribe(flt, qos=1)
                subscribed.set()
                backoff = _BACKOFF_S
                await _session(client, stop, handle, beside)
        except aiomqtt.MqttError as exc:
            subscribed.clear()
            if stop.is_set():  # (a connection given up at the stop, `stopped_by`)
                return
            log.warning("%s: broker unreachable (%s); retry in %.1fs", label, exc, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)


async def _session(
    client: aiomqtt.Client,
    stop: asyncio.Event,
    handle: Callable[[str, bytes], object],
    beside: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]] | None,
) -> None:
    """Read (and run `beside`) until `stop` or the connection is lost (its `MqttError`)."""
    tasks: set[asyncio.Task[Any]] = {
        asyncio.create_task(_read(client, handle), name="commands-read"),
        asyncio.create_task(stop.wait(), name="commands-stop"),
    }
    if beside is not None:
        tasks.add(asyncio.create_task(beside(client), name="commands-beside"))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await t
    for t in done:
        failed = None if t.cancelled() else t.exception()
        if isinstance(failed, aiomqtt.MqttError):
            raise failed


async def _read(client: aiomqtt.Client, handle: Callable[[str, bytes], object]) -> None:
    async for message in client.messages:
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        handle(str(message.topic), data)
