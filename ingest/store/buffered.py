"""`BufferedStore`: a `TimeSeriesStore` that never loses a write while the store behind it is down.

A write returns once its data is durable: written to the inner store, or appended to the disk
spool (`ingest.store.spool.Spool`, fsynced). Ingest acknowledges MQTT messages after the write
returns, so both are safe points to acknowledge.

One writer task owns the inner store's writes and the spool:

- Writes queue up (with a future each); the writer takes everything queued, joins it per kind
  (readings, positions, alarm events) and writes it through: the inner store cuts it into
  requests of at most `batch_lines` lines. With ``max_delay_s > 0`` the writer waits up to that
  long for `batch_lines` lines to gather before it writes (ingest already batches by 5,000
  readings or 50 ms, so the default is 0: group commit without added delay).
- A retryable error (refused connection, timeout, 5xx) sends the batch to the spool and resolves
  the writes: the caller may acknowledge. From then on, new writes go to the spool too while it
  holds anything, so the inner store receives everything in order.
- The writer drains the spool oldest first, up to `batch_lines` rows a write, with exponential
  backoff (`retry_initial_s` doubling to `retry_max_s`) while the inner store keeps failing. A
  drained record is removed only after the inner store took it.
- A refusal of the inner store's surroundings (`StoreUnavailableError`: InfluxDB 401/403 after a
  password or token rotated, 404 for a database or bucket gone) is an outage like the others:
  spooled, logged once a cause, counted (`BufferStats.unavailable_failures`) and said by
  `unavailable` (ingest's `/readyz`) until the inner store takes a write again.
- A full spool (`max_spool_bytes`) refuses the write with `SpoolFullError`, a retryable
  `StoreError`: ingest then holds the MQTT acknowledgements and retries; nothing is dropped.
- A partial write (`PartialWriteError`: the server kept the valid lines) logs the refused lines
  with the server's reason and counts them (`BufferStats.refused_lines`); the rest is stored and
  the write succeeds. Any other permanent error (4xx) fails the writes it concerns
  (ingest dead-letters those messages); a spooled record that meets one is moved to
  ``rejected/`` in the spool folder, logged and counted, so that it cannot block the spool.
- `close` writes what is queued, drains for at most `close_drain_s`, and leaves the rest in the
  spool; `open` after a restart finds it and the writer drains it.

Reads (`latest`, `history`, `track`, `last_positions`, `count_by_seq`, `alarm_events`,
`last_calibrations`) go to the inner store: what waits in the spool shows up there once drained.

This module is the store's face (lifecycle, the queue writes join, reads, counters); the writer
task, the spool's drain included, is `ingest.store.buffered_writer.BufferWriter`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alerts.alarms import AlarmEvent
from ingest.store.base import (
    Aggregate,
    LatestValue,
    PositionBatch,
    ReadingBatch,
    StoreError,
    StoreUnavailableError,
    TimeSeriesStore,
)
from ingest.store.buffered_writer import BufferWriter, Counters, Job, Kind, row_count
from ingest.store.spool import Spool, SpoolStats
from telemetry.registry import Registry

__all__ = ["BufferStats", "BufferedStore"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Counters since `open`, and the spool's state."""

    written_rows: int  # rows the inner store took directly
    spooled_rows: int  # rows sent to the spool
    drained_rows: int  # spooled rows the inner store took later
    refused_lines: int  # rows the inner store refused in partial writes (logged)
    rejected_rows: int  # spooled rows refused for good, moved to rejected/ (logged)
    unknown_rows: int  # spooled rows of sensors no longer configured (logged, not written)
    failed_writes: int  # writes that failed with a permanent error (the caller was told)
    inner_failures: int  # retryable failures of the inner store
    unavailable_failures: int  # of them, refusals of its set-up (credentials, database gone)
    inner_up: bool  # the inner store took the last write tried
    spool: SpoolStats


class BufferedStore(BufferWriter):
    """`TimeSeriesStore` around `inner` with a durable disk spool; see the module docstring."""

    def __init__(
        self,
        inner: TimeSeriesStore,
        registry: Registry,
        spool_dir: Path | str,
        *,
        max_spool_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        batch_lines: int = 5000,
        max_delay_s: float = 0.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        close_drain_s: float = 5.0,
        fsync: bool = True,
    ) -> None:
        if batch_lines < 1:
            raise ValueError("batch_lines must be at least 1")
        self.inner = inner
        self.registry = registry
        self.spool = Spool(
            spool_dir, max_bytes=max_spool_bytes, segment_bytes=segment_bytes, fsync=fsync
        )
        self.batch_lines = batch_lines
        self.max_delay_s = max_delay_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.close_drain_s = close_drain_s
        self._queue: list[Job] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._inner_open = False
        self._inner_up = True
        self._backoff = retry_initial_s
        self._retry_at = 0.0
        self._close_deadline = 0.0
        self._n = Counters()
        self._unavailable = None

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the spool and the inner store (a retryable failure of the latter is logged:
        writes go to the spool until it answers), and start the writer."""
        if self._writer is not None:
            return
        await asyncio.to_thread(self.spool.open)
        self._closing = False
        try:
            await self.inner.open()
            self._inner_open = True
        except StoreError as exc:
            if not exc.retryable:
                await asyncio.to_thread(self.spool.close)
                raise
            self._mark_down(exc, "open")
        self._writer = asyncio.create_task(self._write_loop(), name="buffered-store-writer")

    async def close(self) -> None:
        """Write what is queued, drain the spool for at most `close_drain_s`, then close the
        inner store and the spool. What is still spooled is drained after the next `open`."""
        writer = self._writer
        if writer is None:
            return
        self._closing = True
        self._close_deadline = time.monotonic() + self.close_drain_s
        self._wake.set()
        try:
            await writer
        finally:
            self._writer = None
            await self.inner.close()
            self._inner_open = False
            await asyncio.to_thread(self.spool.close)
            left = len(self.spool)
            if left:
                log.warning("buffered store closed with %d record(s) left in the spool", left)

    async def prepare_reload(self, registry: Registry) -> Callable[[], None]:
        """The inner store's reload. Spooled records name their sensors by id, so what waits in
        the spool is written under the new numbering; queued batches must have been written
        (the caller drains ingest first)."""
        inner = await self.inner.prepare_reload(registry)

        def commit() -> None:
            inner()
            self.registry = registry

        return commit

    # -- writes ---------------------------------------------------------------------------

    async def write_readings(self, batch: ReadingBatch) -> None:
        self._check_index(batch.sensor, "reading")
        await self._submit("readings", batch)

    async def write_positions(self, batch: PositionBatch) -> None:
        self._check_index(batch.vehicle, "position")
        await self._submit("positions", batch)

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        await self._submit("alarms", tuple(events))

    def _check_index(self, index: np.ndarray[Any, Any], what: str) -> None:
        n = len(self.registry.sensors)
        if index.size and (int(index.min()) < 0 or int(index.max()) >= n):
            raise StoreError(f"{what} batch has sensor indices outside 0..{n - 1}", retryable=False)

    async def _submit(self, kind: Kind, payload: Any) -> None:
        rows = row_count(payload)
        if rows == 0:
            return
        if self._writer is None:
            raise StoreError("buffered store is not open", retryable=False)
        if self._closing:
            raise StoreError("buffered store is closing", retryable=True)
        loop = asyncio.get_running_loop()
        job = Job(kind, payload, rows, loop.create_future(), time.monotonic())
        self._queue.append(job)
        self._wake.set()
        # shield: a caller that is cancelled leaves its job to be written all the same
        await asyncio.shield(job.future)

    # -- reads ----------------------------------------------------------------------------

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        return await self.inner.latest(sensors)

    async def history(
        self,
        sensor: int,
        start_ms: int,
        end_ms: int,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[tuple[int, float]]:
        return await self.inner.history(sensor, start_ms, end_ms, every_ms, aggregate)

    async def readings(
        self, sensor: int, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[tuple[int, float, int]]:
        return await self.inner.readings(sensor, start_ms, end_ms, limit)

    async def last_calibrations(
        self, sensors: Sequence[int], start_ms: int, end_ms: int
    ) -> dict[int, int]:
        return await self.inner.last_calibrations(sensors, start_ms, end_ms)

    async def track(self, vehicle: int, start_ms: int, end_ms: int) -> PositionBatch:
        return await self.inner.track(vehicle, start_ms, end_ms)

    async def last_positions(self, vehicles: Sequence[int]) -> PositionBatch:
        return await self.inner.last_positions(vehicles)

    async def count_by_seq(self, tenant: str, device: str) -> dict[tuple[int, int], int]:
        return await self.inner.count_by_seq(tenant, device)

    async def alarm_events(
        self, tenants: Sequence[str] | None, start_ms: int, end_ms: int
    ) -> list[AlarmEvent]:
        return await self.inner.alarm_events(tenants, start_ms, end_ms)

    # -- state ----------------------------------------------------------------------------

    def stats(self) -> BufferStats:
        n = self._n
        return BufferStats(
            written_rows=n.written,
            spooled_rows=n.spooled,
            drained_rows=n.drained,
            refused_lines=n.refused,
            rejected_rows=n.rejected,
            unknown_rows=n.unknown,
            failed_writes=n.failed,
            inner_failures=n.inner_failures,
            unavailable_failures=n.unavailable,
            inner_up=self._inner_up,
            spool=self.spool.stats(),
        )

    def unavailable(self) -> StoreUnavailableError | None:
        """The inner store's refusal of its surroundings while it refuses (writes are spooled
        meanwhile), or None."""
        return self._unavailable

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or spooled (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue or len(self.spool):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True
