"""The writer task of a `BufferedStore` (see `ingest.store.buffered` for the whole story): it
takes the queued writes, joins them per kind and writes them through to the inner store, sends
them to the disk spool while the inner store is down, and drains the spool oldest first, with
backoff, once it answers; records refused for good are set aside in ``rejected/``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ingest.store.base import (
    PartialWriteError,
    PositionBatch,
    ReadingBatch,
    StoreError,
    StoreUnavailableError,
    TimeSeriesStore,
)
from ingest.store.records import (
    ALARMS,
    POSITIONS,
    READINGS,
    Decoded,
    RecordError,
    decode,
    encode_alarms,
    encode_positions,
    encode_readings,
)
from ingest.store.spool import Spool
from telemetry.registry import Registry

__all__ = ["BufferWriter", "Counters", "Job", "Kind", "row_count"]

log = logging.getLogger("ingest.store.buffered")  # the store's logger, as before the split

Kind = Literal["readings", "positions", "alarms"]
_KINDS: tuple[Kind, ...] = ("readings", "positions", "alarms")
_KIND_OF: dict[bytes, Kind] = {READINGS: "readings", POSITIONS: "positions", ALARMS: "alarms"}
_RECORD_BYTES_PER_ROW = 40  # a spooled reading takes 37 bytes: read about a batch at a time


@dataclass(slots=True)
class Job:
    kind: Kind
    payload: Any  # ReadingBatch | PositionBatch | tuple[AlarmEvent, ...]
    rows: int
    future: asyncio.Future[None]
    queued_at: float


@dataclass(slots=True)
class Counters:
    written: int = 0
    spooled: int = 0
    drained: int = 0
    refused: int = 0
    rejected: int = 0
    unknown: int = 0
    failed: int = 0
    inner_failures: int = 0
    unavailable: int = 0  # failures of them that were `StoreUnavailableError` (credentials ...)


def row_count(payload: Any) -> int:
    return len(payload)


class BufferWriter:
    """The writer half of `BufferedStore`, which sets these attributes and starts
    `_write_loop` as its one task."""

    inner: TimeSeriesStore
    registry: Registry
    spool: Spool
    batch_lines: int
    max_delay_s: float
    retry_initial_s: float
    retry_max_s: float
    _queue: list[Job]
    _wake: asyncio.Event
    _closing: bool
    _inner_open: bool
    _inner_up: bool
    _backoff: float
    _retry_at: float
    _close_deadline: float
    _n: Counters
    # the inner store's refusal of its surroundings while it is down (`StoreUnavailableError`:
    # a rotated password, a dropped database): an operator must act; None while it answers
    _unavailable: StoreUnavailableError | None

    async def _write_loop(self) -> None:
        while True:
            if self._queue and self._queue_due():
                jobs, self._queue = self._queue, []
                await self._write_jobs(jobs)
                continue
            if len(self.spool) and time.monotonic() >= self._retry_at:
                if self._closing and time.monotonic() >= self._close_deadline:
                    return
                drained = await self._drain_some()
                if self._closing and not drained:
                    return
                continue
            if self._closing and not self._queue:
                return
            await self._sleep()

    def _queue_due(self) -> bool:
        if self.max_delay_s <= 0 or self._closing:
            return True
        rows = sum(j.rows for j in self._queue)
        return rows >= self.batch_lines or (
            time.monotonic() - self._queue[0].queued_at >= self.max_delay_s
        )

    async def _sleep(self) -> None:
        now = time.monotonic()
        timeouts = []
        if self._queue:
            timeouts.append(self._queue[0].queued_at + self.max_delay_s - now)
        if len(self.spool):
            timeouts.append(self._retry_at - now)
        self._wake.clear()
        timeout = max(0.0, min(timeouts)) if timeouts else None
        # not `asyncio.wait_for`: on Python 3.11 it loses a cancellation that comes as the
        # event is set (ingest.service's `_until`)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _write_jobs(self, jobs: list[Job]) -> None:
        for kind in _KINDS:
            group = [j for j in jobs if j.kind == kind]
            if not group:
                continue
            try:
                await self._write_group(kind, group)
            except StoreError as exc:
                for j in group:
                    if not j.future.done():
                        j.future.set_exception(exc)
            except Exception as exc:  # a bug: tell the callers rather than kill the writer
                log.exception("buffered store: writing %s failed", kind)
                for j in group:
                    if not j.future.done():
                        j.future.set_exception(exc)
            else:
                for j in group:
                    if not j.future.done():
                        j.future.set_result(None)

    async def _write_group(self, kind: Kind, group: list[Job]) -> None:
        payload = _join(kind, [j.payload for j in group])
        rows = sum(j.rows for j in group)
        if not len(self.spool) and self._inner_up_now():
            try:
                await self._inner_write(kind, payload)
            except PartialWriteError as exc:
                self._refused(exc, kind)
                self._n.written += rows - exc.dropped
                return
            except StoreError as exc:
                if not exc.retryable:
                    self._n.failed += 1
                    raise
                self._mark_down(exc, f"write {kind}")
            else:
                self._n.written += rows
                return
        await self._spool(kind, payload)
        self._n.spooled += rows

    def _inner_up_now(self) -> bool:
        return self._inner_up or time.monotonic() >= self._retry_at

    async def _inner_write(self, kind: Kind, payload: Any) -> None:
        if not self._inner_open:
            await self.inner.open()
            self._inner_open = True
        if kind == "readings":
            await self.inner.write_readings(payload)
        elif kind == "positions":
            await self.inner.write_positions(payload)
        else:
            await self.inner.write_alarm_events(payload)
        if not self._inner_up:
            log.info("buffered store: the inner store answers again")
        self._inner_up = True
        self._unavailable = None
        self._backoff = self.retry_initial_s

    def _mark_down(self, exc: StoreError, what: str) -> None:
        self._n.inner_failures += 1
        if isinstance(exc, StoreUnavailableError):
            self._n.unavailable += 1
            said = self._unavailable
            if said is None or said.cause != exc.cause:  # once a cause, not every retry
                log.error(
                    "buffered store: %s refused (%s: %s): the store's set-up, not the data; "
                    "spooling (readings judged) until an operator fixes it",
                    what,
                    exc.cause,
                    exc,
                )
            self._unavailable = exc
        elif self._inner_up:
            log.warning("buffered store: %s failed (%s); spooling until it answers", what, exc)
        self._inner_up = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.retry_max_s)

    async def _spool(self, kind: Kind, payload: Any) -> None:
        """Append `payload` durably, in records of at most `batch_lines` rows."""
        step = self.batch_lines
        n = row_count(payload)
        records = [
            _encode(self.registry, kind, _slice(kind, payload, a, a + step))
            for a in range(0, n, step)
        ]

        def append() -> None:
            for record in records:
                self.spool.append(record)

        try:
            await asyncio.to_thread(append)
        except OSError as exc:
            # its disk full or failing (ENOSPC, EIO, read-only): not the data's fault, and not a
            # bug; the caller holds the data (ingest keeps the MQTT acknowledgement). It raised
            # the OSError, which ended ingest's session, again and again.
            raise StoreUnavailableError(
                f"spool {self.spool.directory}: {exc}", cause="spool_disk"
            ) from exc

    async def _drain_some(self) -> bool:
        """Write the oldest spooled records of one kind (up to `batch_lines` rows) to the inner
        store; True when they went (or were set aside), False when the inner store failed."""
        raw = await asyncio.to_thread(
            self.spool.peek, 256, self.batch_lines * _RECORD_BYTES_PER_ROW
        )
        decoded: list[Decoded] = []
        for data in raw:
            try:
                d = decode(self.registry, data)
            except RecordError as exc:
                if decoded:  # the records before it go first: it is the oldest on the next turn
                    break
                log.error("buffered store: unreadable spool record set aside: %s", exc)
                await self._reject(data, str(exc))  # pops the oldest record: this one
                return True
            if decoded and (
                d.kind != decoded[0].kind
                or sum(x.rows for x in decoded) + d.rows > self.batch_lines
            ):
                break
            decoded.append(d)
        if not decoded:
            return True
        kind = _KIND_OF[decoded[0].kind]
        payload = _join(kind, [_payload(d) for d in decoded])
        rows = row_count(payload)
        try:
            if rows:
                await self._inner_write(kind, payload)
        except PartialWriteError as exc:
            self._refused(exc, kind)
            rows -= exc.dropped
        except StoreError as exc:
            if exc.retryable:
                self._mark_down(exc, f"drain {kind}")
                return False
            log.error("buffered store: spooled %s refused for good (%s); set aside", kind, exc)
            for data in raw[: len(decoded)]:
                await self._reject(data, str(exc), pop=False)
            self._n.rejected += rows
            rows = 0
        await asyncio.to_thread(self.spool.pop, len(decoded))
        # counted once their records leave the spool: a write tried again counted them again
        # (227 said for 41 rows, helper-91)
        for d in decoded:
            if d.unknown_rows:
                self._n.unknown += d.unknown_rows
                log.warning(
                    "buffered store: %d spooled %s row(s) of sensors no longer configured (%s) "
                    "not written",
                    d.unknown_rows,
                    kind,
                    ", ".join(d.unknown_ids[:5]),
                )
        self._n.drained += rows
        if not len(self.spool):
            log.info("buffered store: spool drained")
        return True

    async def _reject(self, data: bytes, reason: str, *, pop: bool = True) -> None:
        folder = self.spool.directory / "rejected"

        def keep() -> None:
            folder.mkdir(exist_ok=True)
            name = f"{time.time_ns()}.rec"
            (folder / name).write_bytes(data)
            (folder / f"{name}.reason").write_text(reason + "\n")
            if pop:
                self.spool.pop(1)

        await asyncio.to_thread(keep)

    def _refused(self, exc: PartialWriteError, kind: Kind) -> None:
        self._n.refused += exc.dropped
        log.error(
            "buffered store: the store refused %d %s line(s), kept the rest: %s; refused: %s",
            exc.dropped,
            kind,
            exc.reason,
            " | ".join(exc.sample) or "(not identified)",
        )


def _join(kind: Kind, payloads: list[Any]) -> Any:
    if len(payloads) == 1:
        return payloads[0]
    if kind == "readings":
        return ReadingBatch.concat(payloads)
    if kind == "positions":
        vehicle, ts, lat, lon, speed, heading = (
            np.concatenate([getattr(p, name) for p in payloads])
            for name in ("vehicle", "ts", "lat", "lon", "speed_kmh", "heading_deg")
        )
        return PositionBatch(vehicle, ts, lat, lon, speed, heading)
    return tuple(e for p in payloads for e in p)


def _slice(kind: Kind, payload: Any, a: int, b: int) -> Any:
    if kind == "alarms":
        return payload[a:b]
    cls = type(payload)
    names = (
        ("sensor", "ts", "value", "quality", "epoch", "seq")
        if kind == "readings"
        else ("vehicle", "ts", "lat", "lon", "speed_kmh", "heading_deg")
    )
    return cls(*(getattr(payload, name)[a:b] for name in names))


def _encode(registry: Registry, kind: Kind, payload: Any) -> bytes:
    if kind == "readings":
        return encode_readings(registry, payload)
    if kind == "positions":
        return encode_positions(registry, payload)
    return encode_alarms(payload)


def _payload(d: Decoded) -> Any:
    if d.readings is not None:
        return d.readings
    if d.positions is not None:
        return d.positions
    return d.alarms
