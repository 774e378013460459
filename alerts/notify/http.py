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

This module keeps the connections (the pool, the URL's target, TLS, the guard's check of each
address); one request's exchange on a connection is `alerts.notify.httpexchange`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import quote, unquote, urlsplit

from alerts.notify.httpexchange import (
    MAX_HEAD,
    Conn,
    HttpError,
    Response,
    StaleError,
    exchange,
    unread,
)
from alerts.notify.netguard import AddressGuard

__all__ = ["HttpError", "HttpPool", "Response", "literal_refusal", "refused_destination"]

log = logging.getLogger(__name__)

_IDLE_PER_ORIGIN = 8
_IDLE_ALL = 64  # kept connections over every receiver
_IDLE_S = 15.0  # a kept connection unused this long is closed
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"  # kept as they are; anything else percent-encoded


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    host_header: str
    path: str
    auth: str | None  # an Authorization header from the URL's user info


_Idle = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]  # and when it was put back
# scheme, host, port, and the guard it was opened under (None: none): a connection checked
# under wider networks is not kept for a request under narrower ones (a setting changed)
_Key = tuple[str, str, int, AddressGuard | None]
_REFUSED = (
    "{host} resolves to an address an enterprise's webhook may not reach (loopback, private, "
    "link-local or reserved; the centre may allow networks in notify.enterprise_webhook_networks)"
)


class HttpPool:
    def __init__(self, user_agent: str = "hazardhub") -> None:
        self._idle: dict[_Key, list[_Idle]] = {}
        self._swept = time.monotonic()
        self._targets: dict[str, _Target] = {}
        self._ssl: ssl.SSLContext | None = None
        self._agent = user_agent

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        max_answer: int,
        guard: AddressGuard | None = None,
    ) -> Response:
        """POST `body`; raise HttpError (and TimeoutError, from the caller's deadline). With a
        `guard`, every address the host resolves to must be one it permits (else HttpError
        'Refused'), checked at each new connection; its connections are kept apart."""
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
            line = f"{name}: {value}"
            if not line.isascii() or "\r" in line or "\n" in line or "\0" in line:
                raise HttpError("InvalidHeader", f"header {name!r}: a line break or not ASCII")
            head.append(line)
        request = ("\r\n".join(head) + "\r\n\r\n").encode("ascii", "strict") + body
        key: _Key = (*target.origin, guard)
        conn, reused = await self._connection(key, target, guard)
        while True:
            try:
                response, keep = await exchange(conn, request, max_answer, reused)
            except StaleError:  # a kept connection the receiver had closed: once more on a new one
                _close(conn)
                conn, reused = await self._open(target, guard), False
                continue
            except BaseException:
                _close(conn)
                raise
            if keep and not unread(conn[0]):
                self._keep(key, conn)
            else:
                _close(conn)
            return response

    def _keep(self, origin: _Key, conn: Conn) -> None:
        """Put a connection back for the next request; close those kept too long, and the
        oldest over the caps (per receiver and over all)."""
        now = time.monotonic()
        idle = self._idle.setdefault(origin, [])
        idle.append((conn[0], conn[1], now))
        if len(idle) > _IDLE_PER_ORIGIN:
            _close(idle.pop(0))
        if now - self._swept >= _IDLE_S / 3 or sum(map(len, self._idle.values())) > _IDLE_ALL:
            self._swept = now
            kept = sorted(
                ((c[2], o, c) for o, cs in self._idle.items() for c in cs), key=lambda x: x[0]
            )
            over = len(kept) - _IDLE_ALL
            for k, (at, o, c) in enumerate(kept):
                if k < over or now - at > _IDLE_S:
                    self._idle[o].remove(c)
                    _close(c)
            self._idle = {o: cs for o, cs in self._idle.items() if cs}

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
        except ValueError as exc:  # its message may quote the user info: not passed on
            raise HttpError("InvalidURL", "the URL's host or port cannot be read") from exc
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https"):
            raise HttpError("UnsupportedProtocol", f"scheme {scheme!r}")
        if not host:
            raise HttpError("InvalidURL", "no host")
        if port == 0:
            raise HttpError("InvalidURL", "port 0")
        if ":" not in host:  # a name (an internationalized one in its punycode form) or IPv4
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise HttpError("InvalidURL", "the host name is not a valid one") from exc
        default = 443 if scheme == "https" else 80
        port = port or default
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        if any(c in parts.path + parts.query for c in " \r\n\t\0"):
            raise HttpError("InvalidURL", "a space or control character in the path")
        # non-ASCII text (告警, café) percent-encoded as UTF-8; escapes already there kept
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE)
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        found = _Target((scheme, host, port), host_header, path, auth)
        if len(self._targets) > 1000:
            self._targets.clear()
        self._targets[url] = found
        return found

    async def _connection(
        self, key: _Key, target: _Target, guard: AddressGuard | None
    ) -> tuple[Conn, bool]:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            reader, writer, at = idle.pop()
            # closed by the receiver, kept too long, or with bytes nobody asked for (an answer
            # sent while idle): never the next request's answer
            if writer.is_closing() or reader.at_eof() or unread(reader) or now - at > _IDLE_S:
                _close((reader, writer))
                continue
            return (reader, writer), True
        return await self._open(target, guard), False

    async def _open(self, target: _Target, guard: AddressGuard | None) -> Conn:
        scheme, host, port = target.origin
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _tls_context()
            tls = self._ssl
        try:
            if guard is None:
                return await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD
                )
            # resolved here and each address checked: the one connected to is one judged
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            bad = [a for a in addresses if not guard.permits(a)]
            if bad or not addresses:
                log.warning(
                    "webhook to %s refused: it resolves to %s",
                    host,
                    ", ".join(bad) or "no address",
                )
                raise HttpError("Refused", _REFUSED.format(host=host))
            failure: Exception | None = None
            for address in addresses:
                try:
                    return await asyncio.open_connection(
                        address,
                        port,
                        ssl=tls,
                        server_hostname=host if tls else None,
                        limit=MAX_HEAD,
                    )
                except OSError as exc:
                    failure = exc
            raise failure or OSError(f"no address for {host}")
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise HttpError("ConnectError", str(exc) or type(exc).__name__) from exc


def literal_refusal(url: str, guard: AddressGuard) -> str | None:
    """For a URL whose host is an IP address: why it is refused ("" when it is not); None when
    the host is a name (to resolve: `refused_destination`) or the URL cannot be read."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        address = str(ip_address(host))
    except ValueError:
        try:  # the forms resolvers take for IPv4 too: 127.1, 2130706433, 0x7f.0.0.1
            address = socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None  # a name
    return "" if guard.permits(address) else _REFUSED.format(host=host)


def refused_destination(url: str, guard: AddressGuard) -> str | None:
    """Why a webhook URL of an enterprise is refused, or None: its host is, or resolves now to,
    an address `guard` does not permit. Blocking (a name is resolved): run it in a thread. A
    name that does not resolve yet is let be; every connection is checked again."""
    try:
        host = urlsplit(url).hostname
        port = urlsplit(url).port
    except ValueError:
        return None  # the sender says what is wrong with it
    if not host:
        return None
    try:
        infos = socket.getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    if any(not guard.permits(str(info[4][0])) for info in infos):
        return _REFUSED.format(host=host)
    return None


def _close(conn: Conn | _Idle) -> None:
    conn[1].close()


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
