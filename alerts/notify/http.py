"""A lean HTTP/1.1 client for the webhook channel, on asyncio streams.

Keep-alive connections per origin, TLS with the system's certificate store (the server's
certificate and name checked), the caller's total deadline (`asyncio.timeout`), no redirects,
no proxies, no cookies: what a webhook POST needs and nothing more. httpx took about 2.6 ms of
CPU per POST on the 2-core test VM and this about 0.07 (`bench/notify.py` prints both), and
with one POST per notification by default the channel's throughput was bounded by it.

The answer's status line and headers are read, and at most `max_answer` bytes of its body (to
keep the connection for the next request); a longer or unframed body closes the connection. A
kept connection that the receiver closed meanwhile (its keep-alive timeout) is found out when
no status line comes back: the request is sent once more on a new connection, which a webhook
allows (each notification carries its idempotency key).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["HttpError", "HttpPool", "Response"]

_MAX_HEAD = 64 * 1024  # bytes of status line and headers (and of a chunk-size line)
_IDLE_PER_ORIGIN = 8


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


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    host_header: str
    path: str
    auth: str | None  # an Authorization header from the URL's user info


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpPool:
    def __init__(self, user_agent: str = "hazardhub") -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._targets: dict[str, _Target] = {}
        self._ssl: ssl.SSLContext | None = None
        self._agent = user_agent

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], max_answer: int
    ) -> Response:
        """POST `body`; raise HttpError (and TimeoutError, from the caller's deadline)."""
        target = self._target(url)
        head = [
            f"POST {target.path} HTTP/1.1",
            f"Host: {target.host_header}",
            f"User-Agent: {self._agent}",
            f"Content-Length: {len(body)}",
        ]
        if target.auth is not None:
            head.append(f"Authorization: {target.auth}")
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise HttpError("InvalidHeader", f"header {name!r} holds a line break")
            head.append(f"{name}: {value}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body
        conn, reused = await self._connection(target)
        while True:
            try:
                response, keep = await _exchange(conn, request, max_answer, reused)
            except _StaleError:  # a kept connection the receiver had closed: once more on a new one
                _close(conn)
                conn, reused = await self._open(target), False
                continue
            except BaseException:
                _close(conn)
                raise
            if keep:
                self._idle.setdefault(target.origin, []).append(conn)
                if len(self._idle[target.origin]) > _IDLE_PER_ORIGIN:
                    _close(self._idle[target.origin].pop(0))
            else:
                _close(conn)
            return response

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                _close(conn)

    def _target(self, url: str) -> _Target:
        found = self._targets.get(url)
        if found is not None:
            return found
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise HttpError("InvalidURL", str(exc)) from exc
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https"):
            raise HttpError("UnsupportedProtocol", f"scheme {scheme!r}")
        if not host:
            raise HttpError("InvalidURL", "no host")
        default = 443 if scheme == "https" else 80
        port = port or default
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c in path for c in " \r\n"):
            raise HttpError("InvalidURL", "a space or line break in the path")
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        found = _Target((scheme, host, port), host_header, path, auth)
        if len(self._targets) > 1000:
            self._targets.clear()
        self._targets[url] = found
        return found

    async def _connection(self, target: _Target) -> tuple[_Conn, bool]:
        idle = self._idle.get(target.origin)
        while idle:
            conn = idle.pop()
            if not conn[1].is_closing() and not conn[0].at_eof():
                return conn, True
            _close(conn)
        return await self._open(target), False

    async def _open(self, target: _Target) -> _Conn:
        scheme, host, port = target.origin
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _tls_context()
            tls = self._ssl
        try:
            return await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls else None, limit=_MAX_HEAD
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise HttpError("ConnectError", str(exc) or type(exc).__name__) from exc


class _StaleError(Exception):
    """A kept connection answered nothing at all."""


def _close(conn: _Conn) -> None:
    conn[1].close()


async def _exchange(
    conn: _Conn, request: bytes, max_answer: int, reused: bool
) -> tuple[Response, bool]:
    """Send the request, read the answer; (the response, whether the connection may be kept)."""
    reader, writer = conn
    try:
        writer.write(request)
        await writer.drain()
    except (OSError, RuntimeError) as exc:
        if reused:
            raise _StaleError from exc
        raise HttpError("WriteError", str(exc) or type(exc).__name__) from exc
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise _StaleError from exc
            what = "within the headers" if exc.partial else "unanswered"
            raise HttpError(
                "RemoteProtocolError", f"the server closed the connection {what}"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise HttpError("RemoteProtocolError", "the answer's headers are too long") from exc
        except OSError as exc:
            if reused:
                raise _StaleError from exc
            raise HttpError("ReadError", str(exc) or type(exc).__name__) from exc
        reused = False  # something came back: the request was received
        version, status, reason, headers = _head(head)
        if 100 <= status < 200:  # an interim answer (100 Continue): the final one follows
            continue
        break
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if status in (204, 304):
        return Response(status, reason, headers), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        keep = await _chunked(reader, max_answer) and keep
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError as exc:
            raise HttpError("RemoteProtocolError", "bad Content-Length") from exc
        if length < 0:
            raise HttpError("RemoteProtocolError", "bad Content-Length")
        if length > max_answer:
            await _read(reader, max_answer)
            keep = False
        else:
            await _read(reader, length)
    else:  # the body runs to the connection's end: read a little, never keep it
        await _read(reader, max_answer, until_eof=True)
        keep = False
    return Response(status, reason, headers), keep


def _head(head: bytes) -> tuple[str, int, str, dict[str, str]]:
    """The status line and the headers (names in lower case; repeated ones joined by ", ")."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError("RemoteProtocolError", f"not an HTTP status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError("RemoteProtocolError", f"not a header line: {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read(reader: asyncio.StreamReader, n: int, until_eof: bool = False) -> int:
    """Read and drop n bytes (or up to n, until the end with `until_eof`); returns how many."""
    got = 0
    try:
        while got < n:
            chunk = await reader.read(min(65536, n - got))
            if not chunk:
                if until_eof:
                    return got
                raise HttpError("RemoteProtocolError", "the connection closed within the body")
            got += len(chunk)
    except (OSError, ValueError) as exc:
        raise HttpError("ReadError", str(exc) or type(exc).__name__) from exc
    return got


async def _chunked(reader: asyncio.StreamReader, max_answer: int) -> bool:
    """Read a chunked body, at most `max_answer` bytes of it; True if it was read to its end
    (the connection may be kept)."""
    total = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                raise HttpError("RemoteProtocolError", "the connection closed within the body")
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
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


def _tls_context() -> ssl.SSLContext:
    """The machine's certificate store; on a machine without one (no ca-certificates), the
    Mozilla bundle of `certifi` when it is installed (httpx brings it), as httpx used."""
    ctx = ssl.create_default_context()
    if ctx.cert_store_stats()["x509_ca"] == 0:
        try:
            import certifi
        except ImportError:
            return ctx
        ctx.load_verify_locations(certifi.where())
    return ctx
