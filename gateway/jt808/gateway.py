"""The `hazardhub jt808` process: the terminals' server, the uplink and its spool, the hub's
commands, the status per tenant, and (with the hub's data folder) the configuration followed as
it changes through the hub's API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.following import follow_configuration
from gateway.jt808.bindings import BINDINGS_FILE
from gateway.jt808.commands import CommandListener
from gateway.jt808.hold import HoldPolicy
from gateway.jt808.packets import PacketPolicy
from gateway.jt808.presence import Presence
from gateway.jt808.server import Jt808Server
from gateway.jt808.uplink import PositionUplink
from gateway.poller import wall_ms
from gateway.spool import Spool
from telemetry.brokertls import BrokerTls
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = ["Jt808Gateway"]

log = logging.getLogger(__name__)


class Jt808Gateway:
    """The `hazardhub jt808` process: server, uplink and spool, run until `stop`."""

    def __init__(
        self,
        registry: Registry,
        *,
        listen: tuple[str, int],
        broker: tuple[str, int],
        spool_dir: Path,
        layout: TopicLayout | None = None,
        secret: bytes | None = None,
        idle_timeout_s: float = 300.0,
        auth_timeout_s: float = 15.0,
        max_connections: int | None = None,
        max_per_host: int = 256,
        spool_max_bytes: int = 256 * 1024 * 1024,
        spool_max_age_s: float = 7 * 86400,
        report_every_s: float = 60.0,
        hold_confirmations_s: float = 86400.0,
        name: str = "jt808",
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        follow: Callable[[], Registry | None] | None = None,
        follow_every_s: float = 10.0,
        hold: HoldPolicy | None = None,
        remind_within_s: float = 60.0,
        packets: PacketPolicy | None = None,
    ) -> None:
        """`follow`: called every `follow_every_s` (in a thread), gives the configuration when
        it changed (vehicles added through the hub's API: `hazardhub jt808 --data-dir`).
        Which terminal each vehicle is bound to, and its auth code, are kept in
        `jt808-bindings.db` in `spool_dir` (shared by the gateways that share the folder).
        `secret` is no longer used: auth codes are random and kept there. `hold`: how long a
        terminal's positions are held for a blind-area backlog older than them (`HoldPolicy`:
        15 s at most after an authentication by default). `remind_within_s`: a reminder to a
        driver (0x8300) reaches the terminal within this long after the hub asked, or is
        dropped. `packets`: how sub-packaged messages are joined, their missing sub-packages
        asked for again (0x8003) and dropped (`PacketPolicy`)."""
        del secret
        self.listen = listen
        self.spool = Spool(
            spool_dir / f"spool-jt808-{name}.db",
            max_bytes=spool_max_bytes,
            max_age_s=spool_max_age_s,
            clock_ms=wall_ms,
        )
        self.uplink = PositionUplink(
            *broker,
            layout=layout or TopicLayout(),
            spool=self.spool,
            gateway=name,
            clock_ms=wall_ms,
            username=username,
            password=password,
            tls=tls,
        )
        self.server = Jt808Server(
            registry,
            self.uplink,
            idle_timeout_s=idle_timeout_s,
            auth_timeout_s=auth_timeout_s,
            max_connections=max_connections,
            max_per_host=max_per_host,
            report_every_s=report_every_s,
            hold_confirmations_s=hold_confirmations_s,
            served_file=spool_dir / f"served-jt808-{name}.json",
            held_file=spool_dir / f"held-jt808-{name}.json",
            bindings_file=spool_dir / BINDINGS_FILE,
            repeats_file=spool_dir / f"repeats-jt808-{name}.db",
            hold=hold,
            remind_within_s=remind_within_s,
            packets=packets,
        )
        # the uplink's counters (``publish_refused``) in the server's reports
        self.uplink.counters = self.server.counters
        # the hub's commands for the terminals (0x8203 when an operator acknowledges, 0x8300
        # reminders to drivers)
        self.commands = CommandListener(
            self.server,
            *broker,
            layout=layout,
            client_id=f"hazardhub-jt808-{name}-commands",
            username=username,
            password=password,
            tls=tls,
        )
        # its status in each tenant whose vehicles it serves, each with a last will
        self.presence = Presence(
            *broker,
            layout=layout or TopicLayout(),
            tenants=(v.tenant for v in registry.vehicles.values()),
            gateway=name,
            uplink_connected=self.uplink.connected,
            uplink_lost=self.uplink.disconnected,
            username=username,
            password=password,
            tls=tls,
        )
        self._follow, self._follow_every_s = follow, follow_every_s
        self.ready = asyncio.Event()

    def metrics(self) -> tuple[dict[str, int], dict[str, float]]:
        """What the gateway counted (its log reports' counters; the hub's commands' as
        `command.{outcome}`) and holds now, for `gateway.metricsserver`."""
        counters = dict(self.server.counters)
        counters.update((f"command.{k}", n) for k, n in self.commands.counters.items())
        state = {
            "connections": float(len(self.server.connections)),
            "authenticated": float(len(self.server.by_vehicle)),
            "spool_batches": float(self.uplink.pending),
            "broker_connected": float(self.uplink.connected.is_set()),
        }
        return counters, state

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.server.start(*self.listen)
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.uplink.run(stop), name="jt808-uplink")
                tg.create_task(self.commands.run(stop), name="jt808-commands")
                tg.create_task(self.presence.run(stop), name="jt808-presence")
                tg.create_task(self.server.serve(stop), name="jt808-server")
                if self._follow is not None:
                    tg.create_task(
                        follow_configuration(
                            "jt808", self._follow, self.use, self._follow_every_s, stop
                        ),
                        name="jt808-follow",
                    )
        finally:
            self.spool.close()

    def use(self, registry: Registry) -> None:
        """Serve the vehicles of `registry` from now on: terminals register and authenticate
        against it, and the status is held in each tenant that has vehicles."""
        self.server.use(registry)
        self.presence.follow(v.tenant for v in registry.vehicles.values())
