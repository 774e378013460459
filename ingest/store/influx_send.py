"""`InfluxStore`'s writes: batches encoded as line protocol in requests of at most
`batch_lines` lines, up to `max_in_flight` of them in flight, gzip-compressed when the server is
not on this host, over the v1 (``/write``) or v2 (``/api/v2/write``) API; partial writes
gathered, and a v1 database found gone created again once."""

from __future__ import annotations

import asyncio
import gzip
import logging
import urllib.parse
from collections.abc import Sequence

import httpx
import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from ingest.store.base import PartialWriteError, PositionBatch, ReadingBatch, StoreError
from ingest.store.influx_client import InfluxClient
from ingest.store.influx_http import check_status, transport_errors
from ingest.store.lineproto import FieldColumn, encode_columns
from ingest.store.schema import ALARM_EVENT, POSITION, READING, alarm_lines

__all__ = ["InfluxWrites"]

log = logging.getLogger("ingest.store.influx")  # the store's logger, as before the split


class InfluxWrites(InfluxClient):
    """The writes of an `InfluxStore`."""

    async def write_readings(self, batch: ReadingBatch) -> None:
        sensor = batch.sensor.astype(np.intp, copy=False)
        self._check_index(sensor, "reading")
        bodies = []
        for a in range(0, len(batch), self.batch_lines):
            s = slice(a, a + self.batch_lines)
            bodies.append(
                encode_columns(
                    self._reading_keys,
                    sensor[s],
                    batch.ts[s],
                    [
                        FieldColumn("quality", batch.quality[s]),
                        FieldColumn("epoch", batch.epoch[s]),
                        FieldColumn("seq", batch.seq[s]),
                        FieldColumn("value", batch.value[s], optional=True),
                    ],
                )
            )
        await self._send([(e.data, e.skipped) for e in bodies], READING)

    async def write_positions(self, batch: PositionBatch) -> None:
        vehicle = batch.vehicle.astype(np.intp, copy=False)
        self._check_index(vehicle, "position")
        if len(batch) and (np.strings.str_len(self._position_keys[vehicle]) == 0).any():
            bad = sorted({int(v) for v in vehicle if not self._position_keys[v]})
            raise StoreError(f"positions for sensors {bad} that are not vehicles", retryable=False)
        bodies = []
        for a in range(0, len(batch), self.batch_lines):
            s = slice(a, a + self.batch_lines)
            encoded = encode_columns(
                self._position_keys,
                vehicle[s],
                batch.ts[s],
                [
                    FieldColumn("lat", batch.lat[s]),
                    FieldColumn("lon", batch.lon[s]),
                    FieldColumn("speed_kmh", batch.speed_kmh[s], optional=True),
                    FieldColumn("heading_deg", batch.heading_deg[s], optional=True),
                ],
            )
            bodies.append((encoded.data, encoded.skipped))
        await self._send(bodies, POSITION)

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        lines, skipped = alarm_lines(events)
        bodies = [
            ("".join(lines[a : a + self.batch_lines]).encode(), 0)
            for a in range(0, len(lines), self.batch_lines)
        ]
        if skipped:
            bodies.append((b"", skipped))
        await self._send(bodies, ALARM_EVENT)

    def _check_index(self, index: npt.NDArray[np.intp], what: str) -> None:
        n = len(self.registry.sensors)
        if index.size and (int(index.min()) < 0 or int(index.max()) >= n):
            raise StoreError(f"{what} batch has sensor indices outside 0..{n - 1}", retryable=False)

    async def _send(self, bodies: Sequence[tuple[bytes, int]], what: str) -> None:
        """Post every body, up to `max_in_flight` at once; partial writes are gathered and
        raised once all were sent. Any other error is raised (the first in body order) once
        the bodies in flight are done; the caller retries the whole write (it is idempotent)."""
        partial: list[PartialWriteError] = []
        if len(bodies) == 1 or self.max_in_flight == 1:
            for data, skipped in bodies:
                try:
                    await self._post(data, skipped, what)
                except PartialWriteError as exc:
                    partial.append(exc)
        else:
            slots = asyncio.Semaphore(self.max_in_flight)

            async def post(data: bytes, skipped: int) -> None:
                async with slots:
                    await self._post(data, skipped, what)

            outcomes = await asyncio.gather(
                *(post(data, skipped) for data, skipped in bodies), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, PartialWriteError):
                    partial.append(outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
        if not partial:
            return
        dropped = sum(e.dropped for e in partial)
        self.refused_lines += dropped
        reasons = "; ".join(dict.fromkeys(e.reason for e in partial))
        sample = [line for e in partial for line in e.sample][:5]
        answers = "; ".join(dict.fromkeys(str(e) for e in partial))
        raise PartialWriteError(
            f"{dropped} {what} line(s) refused, the rest kept: {answers}",
            dropped=dropped,
            reason=reasons,
            sample=sample,
        )

    async def _post(self, data: bytes, skipped: int, what: str) -> None:
        if skipped:
            self.skipped_lines += skipped
            log.warning(
                "influxdb: %d %s line(s) not written: a value line protocol cannot carry "
                "(infinite, or NaN where required) or a time outside InfluxDB's range",
                skipped,
                what,
            )
        if not data:
            return
        body = gzip.compress(data, compresslevel=self.gzip_level) if self.gzip_level else data
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_level:
            headers["Content-Encoding"] = "gzip"
        if self.bucket is not None:
            path = "/api/v2/write"
            params = {"bucket": self.bucket, "precision": "ms"}
            if self.org:
                params["org"] = self.org
        else:
            path = "/write"
            params = {"db": self.database, "precision": "ms"}
            if self.retention is not None:  # alarm events: the 3 years' policy
                params["rp"] = self.retention.policy_of(what)
        for attempt in range(2):
            resp = await self._send_write(path, params, body, headers)
            if (
                attempt == 0
                and self.bucket is None
                and resp.status_code == 404
                and "database not found" in resp.text
            ):
                log.warning("influxdb: database %r is gone; creating it again", self.database)
                await self._create_database()
                continue
            check_status(resp, "write", data)
            return

    async def _send_write(
        self, path: str, params: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """One write request; the answer as an `httpx.Response` for `check_status`."""
        writer = self._writer
        if writer is None:
            with transport_errors("write", self.shown_url):
                return await self._http.post(path, params=params, content=body, headers=headers)
        headers = {**headers, **self._write_auth}
        target = f"{path}?{urllib.parse.urlencode(params)}"
        try:
            status, answer_headers, answer = await writer.post(target, body, headers)
        except TimeoutError as exc:
            raise StoreError(
                f"influxdb write: timed out ({self.shown_url})", retryable=True
            ) from exc
        except OSError as exc:  # refused, reset, closed (ConnectionError is one)
            raise StoreError(f"influxdb write: {self.shown_url}: {exc!r}", retryable=True) from exc
        return httpx.Response(status, headers=answer_headers, content=answer)
