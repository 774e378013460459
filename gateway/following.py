"""A gateway beside the hub following the configuration the hub runs (`--data-dir`): the JT/T
808 and 809 gateways look every few seconds and serve the vehicles added through the hub's API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from telemetry.errors import ConfigError
from telemetry.registry import Registry

__all__ = ["follow_configuration"]

log = logging.getLogger(__name__)


async def follow_configuration(
    name: str,
    follow: Callable[[], Registry | None],
    use: Callable[[Registry], None],
    every_s: float,
    stop: asyncio.Event,
) -> None:
    """Until `stop`: every `every_s`, `follow()` (in a thread) and, when it gives a changed
    configuration, `use` it. A configuration that does not load, or that `use` refuses
    (ConfigError: two vehicles with one terminal number), is said and the previous one served
    on: the gateway never dies with the fleet offline (helper-139: a vehicle added through the
    API took every terminal down). `name` begins the log lines (`jt808`, `jt809`)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        if stop.is_set():
            return
        try:
            registry = await asyncio.to_thread(follow)
        except Exception as exc:  # a configuration that does not load: keep the last
            log.error("%s: the configuration could not be read again: %s", name, exc)
            continue
        if registry is None:
            continue
        try:
            use(registry)
        except ConfigError as exc:
            log.error("%s: configuration change NOT taken, serving the previous one: %s", name, exc)
            continue
        log.info("%s: configuration changed; %d vehicles", name, len(registry.vehicles))
