"""One HTTP/1.1 exchange on an open connection, for the webhook channel's client
(`alerts.notify.http`): the request sent, the answer's status line and headers read, and at most
`max_answer` bytes of its body (to keep the connection for the next request); a longer or
unframed body says the connection is not to be kept. A kept connection that answers nothing at
all is `StaleError`, for the pool to send once more on a new one. A concern of its own, split
from `alerts.notify.http`, which keeps the connections; the code moved as it was.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_HEAD", "Conn", "HttpError", "Response", "StaleError", "exchange", "unread"]

MAX_HEAD = 64 * 1024  # bytes of status line and headers (and of a chunk-size line)
_DIGITS = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(r"[0-9A-Fa-f]{1,15}")

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpError(Exception):
    """A request that got no usable answer; `kind` names what failed, as httpx's exception
    names did (ConnectError, WriteError, ReadError, RemoteProtocolError, InvalidURL)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # names in lower case


class StaleError(Exception):
    """A kept connection answered nothing at all."""


def unread(reader: asyncio.StreamReader) -> bool:
    """Whether bytes wait in the reader's buffer (asyncio has no public way to ask)."""
    return bool(getattr(reader, "_buffer", b""))


async def exchange(
    conn: Conn, request: bytes, max_answer: int, reused: bool
) -> tuple[Response, bool]:
    """Send the request, read the answer; (the response, whether the connection may be kept)."""
    reader, writer = conn
    try:
        writer.write(request)
        await writer.drain()
    except (OSError, RuntimeError) as exc:
        if reused:
            raise StaleError from exc
        raise HttpError("WriteError", str(exc) or type(exc).__name__) from exc
    while True:
        head = await _read_head(reader, reused)
        reused = False  # something came back: the request was received
        version, status, reason, headers = _head(head)
        if 100 <= status < 200:  # an interim answer (100 Continue): the final one follows
            continue
        break
    # kept after a 2xx only: a receiver that refuses may answer before reading the body (the
    # rest of it would be read as the next request)
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    keep = keep and 200 <= status < 300
    if status in (204, 304):
        return Response(status, reason, headers), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        keep = await _chunked(reader, max_answer) and keep
    elif "content-length" in headers:
        # a length given twice the same is one (RFC 9110 8.6); anything but digits is broken
        lengths = {v.strip() for v in headers["content-length"].split(",")}
        if len(lengths) != 1 or not _DIGITS.fullmatch(next(iter(lengths))):
            raise HttpError("RemoteProtocolError", "bad Content-Length")
        length = int(lengths.pop())
        if length > max_answer:
            await _read(reader, max_answer)
            keep = False
        else:
            await _read(reader, length)
    else:  # the body runs to the connection's end: read a little, never keep it
        await _read(reader, max_answer, until_eof=True)
        keep = False
    return Response(status, reason, headers), keep


async def _read_head(reader: asyncio.StreamReader, reused: bool) -> list[bytes]:
    """The status line and header lines of an answer, up to the empty line (lines may end in
    CRLF or a bare LF, RFC 9112 2.2). A kept connection that answers nothing: StaleError."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError as exc:  # a line over the reader's limit
            raise HttpError("RemoteProtocolError", "the answer's headers are too long") from exc
        except OSError as exc:
            if reused and not lines:
                raise StaleError from exc
            raise HttpError("ReadError", str(exc) or type(exc).__name__) from exc
        if not line:
            if reused and not lines:
                raise StaleError
            what = "within the headers" if lines else "unanswered"
            raise HttpError("RemoteProtocolError", f"the server closed the connection {what}")
        size += len(line)
        if size > MAX_HEAD:
            raise HttpError("RemoteProtocolError", "the answer's headers are too long")
        line = line.rstrip(b"\r\n")
        if not line:
            if lines:
                return lines
            continue  # an empty line before the status line (RFC 9112 2.2 allows skipping it)
        lines.append(line)


def _head(lines: list[bytes]) -> tuple[str, int, str, dict[str, str]]:
    """The status line and the headers (names in lower case; repeated ones joined by ", ";
    a folded line, RFC 9112 5.2, joined to the one before by a space)."""
    text = [line.decode("latin-1") for line in lines]
    parts = text[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not _DIGITS.fullmatch(parts[1]):
        raise HttpError("RemoteProtocolError", f"not an HTTP status line: {text[0][:80]!r}")
    headers: dict[str, str] = {}
    key = ""
    for line in text[1:]:
        if line[0] in " \t":  # obs-fold
            if not key:
                raise HttpError("RemoteProtocolError", "a folded line before any header")
            headers[key] = f"{headers[key]} {line.strip()}".strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError("RemoteProtocolError", f"not a header line: {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read(reader: asyncio.StreamReader, n: int, until_eof: bool = False) -> None:
    """Read and drop n bytes (or up to n, until the end with `until_eof`)."""
    got = 0
    try:
        while got < n:
            chunk = await reader.read(min(65536, n - got))
            if not chunk:
                if until_eof:
                    return
                raise HttpError("RemoteProtocolError", "the connection closed within the body")
            got += len(chunk)
    except (OSError, ValueError) as exc:
        raise HttpError("ReadError", str(exc) or type(exc).__name__) from exc


async def _chunked(reader: asyncio.StreamReader, max_answer: int) -> bool:
    """Read a chunked body, at most `max_answer` bytes of it; True if it was read to its end
    (the connection may be kept)."""
    total = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                raise HttpError("RemoteProtocolError", "the connection closed within the body")
            digits = line.split(b";", 1)[0].strip().decode("latin-1")
            if not _HEX.fullmatch(digits):
                raise HttpError("RemoteProtocolError", "bad chunk size")
            size = int(digits, 16)
            if size == 0:
                while (trailer := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    total += len(trailer)
                    if total > max_answer:
                        return False
                return True
            total += size
            if total > max_answer:
                return False
            await _read(reader, size + 2)  # the chunk and its CRLF
    except ValueError as exc:
        raise HttpError("RemoteProtocolError", f"bad chunk: {exc}") from exc
    except OSError as exc:
        raise HttpError("ReadError", str(exc) or type(exc).__name__) from exc
