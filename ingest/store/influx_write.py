"""`LineWriter`: the POSTs of line protocol to InfluxDB over plain HTTP/1.1 on asyncio streams.

A write is a request with a body and, when it goes well, an empty ``204`` answer: httpx's
generality (its request and response models, its pool's bookkeeping, anyio streams) costs more
CPU per write than encoding a few thousand lines. Here a request is one buffer written to a
kept-alive connection and the answer is read by its status line, headers and ``Content-Length``
(or chunked) body. Each connection carries one request at a time; idle ones are kept for the
next write, for at most `keepalive_s` (5 s, as httpx): one idle longer is closed instead, since a
firewall or NAT between may have dropped it silently, and a write on it would wait for the whole
timeout. A kept connection the server has closed meanwhile (an idle timeout, a restart) is
replaced once, transparently (writes are idempotent). ``https`` URLs are not handled here
(`InfluxStore` keeps httpx for them), nor are redirects.

Errors: a refused or broken connection raises `ConnectionError`/`OSError`, a slow server
`TimeoutError` (the caller maps them to retryable `StoreError`s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

__all__ = ["Answer", "LineWriter"]

_MAX_HEAD = 64 * 1024

Answer = tuple[int, dict[str, str], bytes]  # status, headers (lower-case names), body


class LineWriter:
    def __init__(self, host: str, port: int, timeout_s: float, keepalive_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        # kept connections, each with the monotonic time it went idle
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, target: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST `body` to `target` (path and query, already encoded)."""
        head = [f"POST {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(self.timeout_s):
            while self._idle:  # a kept connection: the server may have closed it meanwhile
                reader, writer, since = self._idle.pop()  # the one idle the shortest
                if time.monotonic() - since > self.keepalive_s:  # and so all of them
                    writer.close()
                    self._close_idle()
                    break
                try:
                    return await self._exchange((reader, writer), request)
                except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
                    continue
            conn = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(conn, request)
            except asyncio.IncompleteReadError as exc:
                raise ConnectionError("the server closed the connection mid-answer") from exc
            except ValueError as exc:
                raise ConnectionError(f"not an HTTP answer: {exc}") from exc

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> Answer:
        reader, writer = conn
        keep = False
        try:
            writer.write(request)
            await writer.drain()
            status, headers, body, keep = await _read_answer(reader)
            return status, headers, body
        finally:
            if keep:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()

    def _close_idle(self) -> list[asyncio.StreamWriter]:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()
        return [writer for _, writer, _ in idle]

    async def close(self) -> None:
        for writer in self._close_idle():
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, whether the connection may carry another request). Interim
    answers (1xx, e.g. 100 Continue) are read past: the final answer follows them."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ValueError("answer head too long") from exc
        if len(raw) > _MAX_HEAD:
            raise ValueError("answer head too long")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ValueError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        if not 100 <= status < 200:
            break
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif status in {204, 304} or 100 <= status < 200:
        body = b""
    else:  # the body runs to the end of the connection
        body = await reader.read()
        keep = False
    return status, headers, body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:  # not an answer influxd gives: a broken peer
            raise ValueError("chunk size line too long") from exc
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            try:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
            except asyncio.LimitOverrunError as exc:
                raise ValueError("trailer line too long") from exc
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
