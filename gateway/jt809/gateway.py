"""The `hazardhub jt809` process: the main-link server, the uplink and its spool (the JT/T 808
gateway's: the same records, numbered, at least once), the gateway's status in each
tenant of its platforms, and the centre's supervisions (报警督办) to the platforms with their
answers (`gateway.jt809.commands`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.following import follow_configuration
from gateway.jt808.presence import Presence
from gateway.jt809.commands import TicketListener
from gateway.jt809.config import Jt809Config
from gateway.jt809.guard import Limits
from gateway.jt809.server import Jt809Server
from gateway.jt809.uplink import PlatformUplink
from gateway.jt809.waiting import Waiting
from gateway.poller import wall_ms
from gateway.spool import Spool
from telemetry.brokertls import BrokerTls
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = ["Jt809Gateway"]

log = logging.getLogger(__name__)


class Jt809Gateway:
    """Server, uplink and spool, run until `stop`."""

    def __init__(
        self,
        config: Jt809Config,
        registry: Registry,
        *,
        listen: tuple[str, int],
        broker: tuple[str, int],
        spool_dir: Path,
        layout: TopicLayout | None = None,
        name: str = "jt809",
        login_timeout_s: float = 10.0,
        idle_timeout_s: float = 180.0,
        report_every_s: float = 60.0,
        max_links: int = 256,
        limits: Limits | None = None,
        max_frame: int = 65536,
        spool_max_bytes: int = 256 * 1024 * 1024,
        spool_max_age_s: float = 7 * 86400,
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        follow: Callable[[], Registry | None] | None = None,
        follow_every_s: float = 10.0,
    ) -> None:
        """`follow`: called every `follow_every_s` (in a thread), gives the configuration when
        it changed (vehicles added through the hub's API: `hazardhub jt809 --data-dir`)."""
        self.listen = listen
        layout = layout or TopicLayout()
        self._tenants = {p.tenant for p in config.platforms}
        self.spool = Spool(
            spool_dir / f"spool-jt809-{name}.db",
            max_bytes=spool_max_bytes,
            max_age_s=spool_max_age_s,
            clock_ms=wall_ms,
        )
        self.uplink = PlatformUplink(
            *broker,
            layout=layout,
            spool=self.spool,
            gateway=name,
            clock_ms=wall_ms,
            username=username,
            password=password,
            tls=tls,
        )
        self.server = Jt809Server(
            config,
            registry,
            self.uplink,
            clock_ms=wall_ms,
            login_timeout_s=login_timeout_s,
            idle_timeout_s=idle_timeout_s,
            report_every_s=report_every_s,
            max_links=max_links,
            limits=limits,
            max_frame=max_frame,
        )
        self.uplink.counters = self.server.counters
        tenants = {p.name: p.tenant for p in config.platforms}
        # the centre's supervisions (报警督办) from the hub, the platforms' answers to it
        self.commands = TicketListener(
            self.server.tickets,
            tenants.get,
            *broker,
            counters=self.server.counters,
            clock_ms=wall_ms,
            layout=layout,
            gateway=name,
            username=username,
            password=password,
            tls=tls,
        )
        self.server.on_answer = self.commands.answer
        # the tickets kept for logins and the answers waiting for the broker, across restarts
        self.waiting = Waiting(
            spool_dir / f"waiting-jt809-{name}.json", self.server.tickets, self.commands
        )
        self.waiting.load({p.name for p in config.platforms})
        self.presence = Presence(
            *broker,
            layout=layout,
            # every tenant with vehicles, as the JT/T 808 gateway: the hub watches each name of
            # its jt808_gateways in each of them
            tenants={v.tenant for v in registry.vehicles.values()} | self._tenants,
            gateway=name,
            uplink_connected=self.uplink.connected,
            uplink_lost=self.uplink.disconnected,
            username=username,
            password=password,
            tls=tls,
        )
        self.ready = asyncio.Event()
        self._follow, self._follow_every_s = follow, follow_every_s

    def metrics(self) -> tuple[dict[str, int], dict[str, float]]:
        """What the gateway counted (its log reports' counters) and holds now, for
        `gateway.metricsserver`."""
        state = {
            "links": float(len(self.server.links)),
            "platforms_logged_in": float(len(self.server.online)),
            "spool_batches": float(self.uplink.pending),
            "broker_connected": float(self.uplink.connected.is_set()),
        }
        return dict(self.server.counters), state

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.server.start(*self.listen)
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.uplink.run(stop), name="jt809-uplink")
                tg.create_task(self.presence.run(stop), name="jt809-presence")
                tg.create_task(self.commands.run(stop), name="jt809-commands")
                tg.create_task(self.server.serve(stop), name="jt809-server")
                tg.create_task(self.waiting.run(stop), name="jt809-waiting")
                if self._follow is not None:
                    tg.create_task(
                        follow_configuration(
                            "jt809", self._follow, self.use, self._follow_every_s, stop
                        ),
                        name="jt809-follow",
                    )
        finally:
            self.waiting.save()  # (what changed as the tasks stopped)
            self.spool.close()

    def use(self, registry: Registry) -> None:
        """Find the platforms' vehicles in `registry` from now on, and say the status in each
        tenant that has vehicles."""
        self.server.use(registry)
        self.presence.follow({v.tenant for v in registry.vehicles.values()} | self._tenants)
