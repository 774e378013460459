"""GPS recorders: vehicles driving routes, publishing positions over MQTT (the public contract).

The clock is passed in (seconds since the scenario start) and so is the wall time of that start,
so event times stay consistent when a test accelerates time. A vehicle with an `epoch_ms` (a
scenario with a `start`) stamps its positions on the scenario clock instead: start + t, however
fast the scenario plays, so that a 4-hour drive or a drive at 03:00 can be replayed in seconds.

The vehicles themselves are in `simulators.vehicle`, the clock and blind-area buffers both fleets
share in `simulators.blindarea`, the JT/T 808 fleet in `simulators.jt808fleet`; their names are
importable from here as before.

Positions go in envelopes (`telemetry.posenvelope`) numbered like a gateway's: the simulator's
start as the epoch, a seq per vehicle from 0. An envelope is made once and sent unchanged until
the broker has it, so that the hub dedupes one sent again after a lost link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence

import aiomqtt
import orjson

from simulators.blindarea import _Fleet
from simulators.jt808fleet import Jt808Fleet, terminal_ids, terminal_phones
from simulators.vehicle import GPS_DRIFT_M, SimulatedVehicle, attach_scenario, position_at
from telemetry.brokertls import BrokerTls, tls_context
from telemetry.numbering import Numbering
from telemetry.posenvelope import encode_envelope
from telemetry.topics import TopicLayout

__all__ = [
    "GPS_DRIFT_M",
    "FleetPublisher",
    "Jt808Fleet",
    "SimulatedVehicle",
    "attach_scenario",
    "position_at",
    "terminal_ids",
    "terminal_phones",
]

log = logging.getLogger(__name__)


class FleetPublisher(_Fleet):
    """Publishes one position per vehicle every `period_s` of the clock, QoS 1, as a recorder
    with a blind-area buffer does (`_Fleet`): a backlog goes up as arrays of up to
    `backfill_max` fixes (the contract's backfill), oldest first."""

    def __init__(
        self,
        vehicles: Sequence[SimulatedVehicle],
        *,
        host: str,
        port: int,
        layout: TopicLayout,
        clock: Callable[[], float],
        start_wall_ms: int,
        period_s: float = 1.0,
        accel: float = 1.0,
        end_s: float = math.inf,
        buffer_max: int = 10_000,
        backfill_max: int = 100,
        timeout_s: float = 3.0,
        drain_s: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        epoch: int | None = None,
    ) -> None:
        """`epoch`: the session its envelopes are numbered in (default: the wall clock now)."""
        super().__init__(
            vehicles,
            host=host,
            port=port,
            clock=clock,
            start_wall_ms=start_wall_ms,
            period_s=period_s,
            accel=accel,
            end_s=end_s,
            buffer_max=buffer_max,
            drain_s=drain_s,
        )
        self.vehicles = list(vehicles)
        self._layout = layout
        self._backfill_max = backfill_max
        self._timeout_s = timeout_s
        self._username, self._password = username, password
        self._tls = tls
        self.numbering = Numbering(time.time_ns() // 1_000_000 if epoch is None else epoch)
        # per vehicle: the envelope being sent (payload, its fixes), until the broker has it
        self._sending: list[tuple[bytes, list[object]] | None] = [None] * len(self.vehicles)
        # one of its own per simulator (helper-149: two per-tenant fleets, as docs/simulators.md
        # runs them on a broker with logins, shared one and knocked each other off for ever);
        # the same across its reconnects, which then replace its own old connection
        self.client_id = f"hazardhub-sim-fleet-{username or 'anonymous'}-{secrets.token_hex(4)}"
        self.copies = 0  # envelopes published twice on purpose (a vehicle's `duplicates`)

    async def run(self, stop: asyncio.Event) -> None:
        self._over = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._take(stop), name="fleet-fixes")
            tg.create_task(self._send(self._over), name="fleet-uplink")

    async def _send(self, stop: asyncio.Event) -> None:
        """Keep a connection and send what waits; after `stop` (`_over`: stopped, the last fix
        taken), try for `drain_s` more to send the rest. An operation unanswered for
        `timeout_s` counts as a lost link (a broken TCP connection is not always noticed
        sooner)."""
        backoff = 0.2
        deadline: float | None = None
        while True:
            if stop.is_set():
                deadline = self._drain_deadline(deadline, self.waiting, "fleet")
                if deadline is None:
                    return
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier=self.client_id,
                    timeout=self._timeout_s,
                    username=self._username,
                    password=self._password,
                    tls_context=tls_context(self._tls),
                ) as client:
                    backoff = 0.2
                    while True:
                        await self._flush(client)
                        if stop.is_set():
                            if self.waiting:  # taken while flushing, for a vehicle passed
                                continue
                            return
                        self._ready.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._ready.wait(), timeout=self._period)
            except aiomqtt.MqttError as exc:
                log.warning(  # (the address: a --broker mistyped was said nowhere)
                    "fleet: broker unreachable at %s:%d (%s); %d fixes wait",
                    self._host,
                    self._port,
                    exc,
                    self.waiting,
                )
                await self._retry_pause(stop, deadline, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _flush(self, client: aiomqtt.Client) -> None:
        """Publish what waits, per vehicle in order; a fix leaves its buffer once acknowledged.
        An envelope not acknowledged (the link lost) is sent again as it was, same seq; a share
        of them (the vehicle's `duplicates`) is published twice on purpose, same seq."""
        for i, (v, q) in enumerate(zip(self.vehicles, self._waiting, strict=True)):
            if not self._over.is_set() and v.link_down_at(self._clock()):
                continue  # its own link down (`link_loss`): its fixes wait
            while q or self._sending[i] is not None:
                sending = self._sending[i]
                if sending is None:
                    part: list[object] = [q[k] for k in range(min(len(q), self._backfill_max))]
                    seq = self.numbering.take(f"{v.tenant}/{v.id}")
                    payload = encode_envelope(self.numbering.epoch, seq, orjson.dumps(part))
                    sending = self._sending[i] = (payload, part)
                payload, part = sending
                topic = self._layout.position(v.tenant, v.id)
                await client.publish(topic, payload, qos=1)
                if v.send_twice():
                    await client.publish(topic, payload, qos=1)
                    self.copies += 1
                self._sending[i] = None
                for item in part:  # (the full buffer may have dropped some meanwhile)
                    if q and q[0] is item:
                        q.popleft()
                self.sent += len(part)
                self.backfills += len(part) > 1
