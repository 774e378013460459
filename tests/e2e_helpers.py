"""Building blocks of the end-to-end tests: a mine-face config wired to a simulator port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from hazardhub.hub import Hub
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry, parse_document

ROOT = Path(__file__).resolve().parent.parent


def mine_registry(port: int, poll_s: float, extra_yaml: str = "") -> Registry:
    text = f"""
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: {port}, unit: 1, poll_s: {poll_s}, timeout_s: 0.3}}
            sensors:
              - {{id: ch4-t0, point: ch4_t0, kind: methane, tag: T0,
                  rule: coal-methane.upper-corner-t0}}
              - {{id: ch4-t1, point: ch4_t1, kind: methane, tag: T1, rule: coal-methane.face-t1}}
              - {{id: ch4-t2, point: ch4_t2, kind: methane, tag: T2, rule: coal-methane.return-t2}}
              - {{id: co, point: co, kind: co, rule: coal-gas.co}}
              - {{id: feed, point: feed, kind: power_feed}}
  - id: acme-chem
    vehicles:
      - {{id: tanker-01, plate: 苏A·D1234, class: hazmat}}
{extra_yaml}
"""
    config = parse_document(text, HubConfig, "e2e.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "e2e.yaml")


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout_s: float, what: str, interval_s: float = 0.1
) -> Any:
    """Poll `probe` until it returns something truthy; fail saying `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params)
    r.raise_for_status()
    return r.json()


async def hub_ready(hub: Hub) -> bool:
    """The hub has subscribed to the broker and its API answers."""
    return hub.ingest.ready.is_set() and hub.api_started.is_set()


@contextlib.asynccontextmanager
async def running_hub(hub: Hub) -> AsyncIterator[Hub]:
    """Run a hub for the body of the block: started and ready on entry, stopped cleanly on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: hub_ready(hub), 10, "the hub to subscribe and serve")
        yield hub
    finally:
        stop.set()
        await task


def start_hub_process(
    cfg: Path, broker: int, data: Path, api_port: int, log: Path
) -> subprocess.Popen[bytes]:
    """`hazardhub hub` as a process of its own (to be killed), its output appended to `log`."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "hub", "-c", str(cfg)),
            *("--broker", f"127.0.0.1:{broker}", "--data-dir", str(data)),
            *("--api", f"127.0.0.1:{api_port}"),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
