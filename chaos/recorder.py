"""`python -m chaos.recorder`: the fleet's GPS recorders for the chaos run, one process.

Each vehicle of the configuration drives its scenario route (`simulators.fleet.SimulatedVehicle`)
and is recorded every `--period` seconds of scenario time, with the scenario clock of the Modbus
simulator (`--t0-ms`, its start), so that both stacks and the ground truth agree on when things
happened. Every position goes to every broker (`--broker NAME=HOST:PORT`), like the Modbus farm
that both gateways poll: both hubs see the same fixes.

`hazardhub simulate fleet` records nothing while its broker is away and drops a QoS 1 message in
flight when the connection breaks. A recorder here keeps what it records, as a real recorder with
blind-area storage does: per broker a bounded buffer (`--buffer` positions; when full the oldest
is dropped and counted), drained in order with QoS 1, a position leaving it only once the broker
has acknowledged it. On SIGINT it stops recording, drains for at most `--drain` seconds and
writes its account (`--status`): every position recorded, and per broker how many were
acknowledged, dropped and still pending.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from hazardhub.settings import load
from hazardhub.simulate import load_scenario
from simulators.fleet import SimulatedVehicle, attach_scenario
from simulators.timeline import compile_scenario
from telemetry.topics import TopicLayout

__all__ = ["Uplink", "main"]

log = logging.getLogger("chaos.recorder")
PUBACK_TIMEOUT_S = 2.0


@dataclass(slots=True)
class Uplink:
    """One broker's bounded buffer of positions, drained in order with QoS 1."""

    name: str
    host: str
    port: int
    limit: int
    buffer: deque[tuple[str, bytes]] = field(default_factory=deque)
    acked: int = 0  # acknowledged by the broker
    dropped: int = 0  # pushed out of a full buffer: never sent
    attempts: int = 0  # publishes tried (more than acked: retried after a broken link)
    connects: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, topic: str, payload: bytes) -> None:
        if len(self.buffer) >= self.limit:
            self.buffer.popleft()
            self.dropped += 1
        self.buffer.append((topic, payload))
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Drain the buffer until `stop` is set and the buffer is empty."""
        backoff = 0.1
        while not (stop.is_set() and not self.buffer):
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=f"chaos-recorder-{self.name}",
                    clean_session=False,
                    timeout=PUBACK_TIMEOUT_S,
                ) as client:
                    self.connects += 1
                    backoff = 0.1
                    await self._drain(client, stop)
                    return
            except aiomqtt.MqttError as exc:
                log.info("%s: broker unreachable (%s); %d buffered", self.name, exc, len(self))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 1.0)

    async def _drain(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        lost = asyncio.create_task(_until_lost(client), name=f"uplink-{self.name}-watch")
        try:
            while True:
                if not self.buffer:
                    if stop.is_set():
                        return
                    self.wake.clear()
                    await _unless_lost(self.wake.wait(), lost)
                    continue
                item = self.buffer[0]
                self.attempts += 1
                await _unless_lost(
                    client.publish(item[0], item[1], qos=1, timeout=PUBACK_TIMEOUT_S), lost
                )
                if self.buffer and self.buffer[0] is item:  # not pushed out meanwhile
                    self.buffer.popleft()
                self.acked += 1
        finally:
            lost.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await lost

    def __len__(self) -> int:
        return len(self.buffer)

    def as_dict(self) -> dict[str, int]:
        return {
            "acked": self.acked,
            "dropped": self.dropped,
            "pending": len(self.buffer),
            "attempts": self.attempts,
            "connects": self.connects,
            "limit": self.limit,
        }


async def _until_lost(client: aiomqtt.Client) -> None:
    """Return (raise MqttError) when the connection breaks: the client's message iterator ends
    with the disconnection (nothing is subscribed, so nothing else comes)."""
    async for _ in client.messages:
        pass


async def _unless_lost(aw: Coroutine[Any, Any, object], lost: asyncio.Task[None]) -> None:
    """Await `aw`, or raise MqttError as soon as the connection is lost: a publish waiting for
    its PUBACK on a dead connection would otherwise wait out its timeout."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task
    raise aiomqtt.MqttError("connection lost")


def _vehicles(config: Path, scenario: Path, now_ms: int) -> list[SimulatedVehicle]:
    registry = load(config).registry()
    compiled = compile_scenario(load_scenario(scenario, None), registry)
    vehicles = []
    for v in registry.vehicles.values():
        route = compiled.spec.routes.get(v.spec.id)
        if not route:
            raise SystemExit(f"the scenario has no route for vehicle {v.spec.id!r}")
        vehicles.append(
            SimulatedVehicle(v.tenant, v.spec.id, route, compiled.vehicle_speeds[v.spec.id])
        )
    attach_scenario(compiled, vehicles, now_ms)
    return vehicles


async def record(
    vehicles: list[SimulatedVehicle],
    uplinks: list[Uplink],
    *,
    t0_ms: int,
    period_s: float,
    stop: asyncio.Event,
    out: list[tuple[str, int, int]],
) -> None:
    """Every `period_s` of scenario time (0 at `t0_ms`), one position per vehicle into every
    uplink; `out` gets (vehicle, event time ms, seq) of each."""
    layout = TopicLayout()
    k = max(0, math.ceil((time.time() * 1000 - t0_ms) / 1000 / period_s))
    while not stop.is_set():
        t_s = k * period_s
        delay = t0_ms / 1000 + t_s - time.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
        for v in vehicles:
            rec = v.record(t_s, t0_ms)
            payload = orjson.dumps(rec)
            topic = layout.position(v.tenant, v.id)
            for up in uplinks:
                up.put(topic, payload)
            out.append((v.id, int(str(rec["ts"])), int(str(rec["seq"]))))
        k += 1


def _status(path: Path, out: list[tuple[str, int, int]], uplinks: list[Uplink]) -> None:
    doc = {"recorded": out, "uplinks": {u.name: u.as_dict() for u in uplinks}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


async def _main(args: argparse.Namespace) -> int:
    vehicles = _vehicles(args.config, args.scenario, args.t0_ms)
    uplinks = []
    for item in args.broker:
        name, _, hostport = item.partition("=")
        host, _, port = hostport.rpartition(":")
        uplinks.append(Uplink(name, host or "127.0.0.1", int(port), args.buffer))
    stop = asyncio.Event()
    drained = asyncio.Event()  # recording stopped: the uplinks empty their buffers and end
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out: list[tuple[str, int, int]] = []
    print(f"recorder: {len(vehicles)} vehicles -> {', '.join(args.broker)}", flush=True)
    async with asyncio.TaskGroup() as tg:
        senders = [tg.create_task(u.run(drained), name=f"uplink-{u.name}") for u in uplinks]
        await record(vehicles, uplinks, t0_ms=args.t0_ms, period_s=args.period, stop=stop, out=out)
        drained.set()
        for u in uplinks:
            u.wake.set()
        _, late = await asyncio.wait(senders, timeout=args.drain)
        for task in late:
            task.cancel()
    _status(args.status, out, uplinks)
    pending = sum(len(u) for u in uplinks)
    dropped = sum(u.dropped for u in uplinks)
    print(f"recorder: {len(out)} positions recorded, {dropped} dropped, {pending} unsent")
    return 0 if pending == 0 and dropped == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chaos.recorder", description=__doc__)
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("--scenario", type=Path, required=True)
    p.add_argument("--t0-ms", type=int, required=True, help="wall time of scenario time 0")
    p.add_argument("--broker", action="append", required=True, metavar="NAME=HOST:PORT")
    p.add_argument("--period", type=float, default=1.0, help="seconds between positions")
    p.add_argument("--buffer", type=int, default=10_000, help="positions kept per broker")
    p.add_argument("--drain", type=float, default=15.0, help="seconds to drain at the end")
    p.add_argument("--status", type=Path, required=True, help="write the account here (JSON)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s recorder: %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
