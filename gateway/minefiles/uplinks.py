"""The mine-files gateway's uplinks: one QoS 1 publisher per tenant of its mines, each with a
spool that says which batches the broker acknowledged. The spool is emptied at each start: the
files still in the folders are the durable copy (taken again, their readings re-sent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.minefiles.config import MineFilesConfig
from gateway.publisher import MqttPublisher
from gateway.spool import Spool, Spooled
from telemetry.brokertls import BrokerTls
from telemetry.clock import wall_ms
from telemetry.topics import TopicLayout

__all__ = ["FilePublisher", "uplinks"]


class FilePublisher(MqttPublisher):
    """A tenant's uplink that says which batches the broker acknowledged."""

    on_sent: Callable[[Sequence[Spooled]], None] | None = None

    def _sent(self, items: Sequence[Spooled]) -> None:
        if self.on_sent is not None:
            self.on_sent(items)


def uplinks(
    config: MineFilesConfig,
    state_dir: Path,
    *,
    broker_host: str,
    broker_port: int,
    layout: TopicLayout,
    username: str | None,
    password: str | None,
    tls: BrokerTls | None,
    on_sent: Callable[[Sequence[Spooled]], None],
) -> dict[str, FilePublisher]:
    """Tenant -> its publisher, its spool (``{state_dir}/minefiles-{tenant}.db``) emptied."""
    publishers: dict[str, FilePublisher] = {}
    for tenant in sorted({m.tenant for m in config.mines.values()}):
        path = state_dir / f"minefiles-{tenant}.db"
        for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            old.unlink(missing_ok=True)  # the files are the durable copy (module doc)
        pub = publishers[tenant] = FilePublisher(
            broker_host,
            broker_port,
            tenant=tenant,
            gateway=config.gateway,
            layout=layout,
            spool=Spool(path, clock_ms=wall_ms),
            username=username,
            password=password,
            tls=tls,
        )
        pub.on_sent = on_sent
    return publishers
