"""The InfluxDB store: `TimeSeriesStore` over InfluxDB's HTTP APIs.

Reads always use the v1 API (``GET /query`` with InfluxQL and ``epoch=ms``), which InfluxDB 1.x
serves, 2.x serves through its v1 compatibility endpoints (the database name maps to a bucket via
a DBRP mapping) and 3.x serves as well. Writes use:

- v1 (default): ``POST /write?db=<database>&precision=ms[&rp=<policy>]``; `open` creates the
  database and, when a `InfluxRetention` is given, creates or alters that retention policy and
  makes it the default (``CREATE RETENTION POLICY ... DEFAULT``; ``ALTER`` when it exists).
- v2 (when a `bucket` is given, for 2.x and 3.x): ``POST /api/v2/write?org=<org>&bucket=<bucket>
  &precision=ms`` with ``Authorization: Token <token>``. Buckets and their retention are made
  with the server's own tools (``influx bucket create --retention 184d``); `open` only checks the
  server answers (``GET /ping``). A token, when given, goes with every request (v1 included).

Bodies are gzip-compressed (`gzip_level`, 1 by default) when the server is not on this host: on
loopback there is no network to save, and compressing costs about as much CPU as encoding the
lines (``gzip_level=None``, the default, decides by the URL; 0 turns it off, 1-9 on).

Writes are cut into requests of at most `batch_lines` lines, up to `max_in_flight` of them sent
at once (each on its own kept-alive connection): a server takes a request's points and syncs its
log per request, so a write of several requests is stored in about the time of the slowest one
instead of the sum.

Schema (readable directly by Grafana and the ``influx`` CLI): see `ingest.store.schema`.

Errors (`ingest.store.influx_http`): a partial write keeps the valid lines and raises
`PartialWriteError` once every request of a batch has been sent; other 4xx answers are
`StoreError(retryable=False)` (a v1 write that finds its database gone re-creates it and tries
once more); 5xx, 408, 429, timeouts and refused connections are retryable.

The store is made of `ingest.store.influx_client` (settings, connection, database and retention
policy), `ingest.store.influx_read` (the reads) and `ingest.store.influx_send` (the writes).
"""

from __future__ import annotations

from ingest.store.influx_read import InfluxReads
from ingest.store.influx_send import InfluxWrites

__all__ = ["InfluxStore"]


class InfluxStore(InfluxWrites, InfluxReads):
    """`TimeSeriesStore` on an InfluxDB server; one `httpx.AsyncClient`."""
