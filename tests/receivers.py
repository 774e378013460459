"""Real receivers of notifications for component tests: a webhook endpoint and an SMTP server.

- `WebhookReceiver`: an HTTP server on 127.0.0.1 in a thread; records every request, checks its
  signature with its own HMAC code (not the sender's), answers what it is told (`respond_with`),
  and can be stopped and started again on the same port (while stopped, connections are refused).
- `SmtpReceiver`: an aiosmtpd server on 127.0.0.1 collecting messages; can refuse recipients
  (550) or answer the data with a temporary failure (451), and can require a login.

Both are context managers; `wait_for(n)` waits (asynchronously) until n requests or messages
have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from services import LOOPBACK, free_port

__all__ = ["ReceivedMail", "ReceivedRequest", "Reply", "SmtpReceiver", "WebhookReceiver"]


# -- webhook ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() on arrival
    signature_ok: bool | None  # None: no signature header

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0  # wait this long before answering (released at once by stop())


def _signature_ok(secret: str, body: bytes, header: str | None) -> bool | None:
    if header is None:
        return None
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__((LOOPBACK, receiver.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (timeout) is part of the tests


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        reply = receiver._arrived(self.command, self.path, dict(self.headers.items()), body)
        if reply.delay_s and receiver._released.wait(reply.delay_s):
            return  # stopped while waiting: drop the connection unanswered
        with contextlib.suppress(OSError):
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()


class WebhookReceiver:
    """An HTTP endpoint at `url` that records requests and answers as told (200 by default)."""

    def __init__(self, secret: str = "receiver-secret", port: int | None = None) -> None:
        self.secret = secret
        self._fixed_port = port is not None
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._default = Reply()
        self._queued: deque[Reply] = deque()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._started_once = False

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/hook"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        """Listen on `port` (the same one on every start)."""
        if self._server is not None:
            return self
        for attempt in range(3):
            try:
                server = _Server(self)
                break
            except OSError:
                if self._started_once or self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()  # someone took the free port before the first bind
        self._started_once = True
        self._released.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name=f"webhook-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket (new connections are refused) and release waiting replies."""
        server, self._server = self._server, None
        if server is None:
            return
        self._released.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond_with(
        self,
        status: int = 200,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        delay_s: float = 0.0,
        times: int | None = None,
    ) -> None:
        """Answer `status` from now on; with `times`, only the next `times` requests (before
        the standing answer, in the order given)."""
        reply = Reply(status, dict(headers or {}), body, delay_s)
        with self._lock:
            if times is None:
                self._queued.clear()
                self._default = reply
            else:
                self._queued.extend([reply] * times)

    def _arrived(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        lower = {k.lower(): v for k, v in headers.items()}
        signed = _signature_ok(self.secret, body, lower.get("x-hazardhub-signature"))
        request = ReceivedRequest(method, path, lower, body, time.monotonic(), signed)
        with self._lock:
            self._requests.append(request)
            return self._queued.popleft() if self._queued else self._default

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def keys(self) -> list[str | None]:
        """The Idempotency-Key headers received, in order of arrival."""
        return [r.key for r in self.requests]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests have arrived; return them all."""
        async with asyncio.timeout(timeout_s):
            while len(got := self.requests) < count:
                await asyncio.sleep(0.01)
        return got


# -- SMTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class _SmtpHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        code, only = self.receiver._rcpt_reply
        if code is not None and (only is None or address in only):
            return f"{code} {'5.1.1 no such user' if code >= 500 else '4.2.1 try again later'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        code = self.receiver._data_reply
        if code is not None:
            return f"{code} {'5.6.0 rejected' if code >= 500 else '4.3.0 try again later'}"
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        mail = ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message, raw)
        with self.receiver._lock:
            self.receiver._mails.append(mail)
        return "250 OK message accepted"


class SmtpReceiver:
    """An SMTP server on 127.0.0.1:`port`; with `users`, clients must log in (PLAIN/LOGIN, no
    TLS) and a wrong password gets 535."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: TLS from the first byte (SMTPS, port 465's way)."""
        self.host = LOOPBACK
        self.port = port or free_port()
        self.users = dict(users or {})
        self.tls = tls
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._rcpt_reply: tuple[int | None, frozenset[str] | None] = (None, None)
        self._data_reply: int | None = None
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.users.get(
            data.login.decode()
        ) == data.password.decode("utf-8", "replace")
        return AuthResult(success=ok, handled=False)

    def start(self) -> Self:
        if self._controller is not None:
            return self
        controller = Controller(
            _SmtpHandler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="receiver.test",  # not getfqdn(), which may wait for DNS
            authenticator=self._authenticate if self.users else None,
            auth_require_tls=False,  # loopback; a client with a username logs in anyway
            ssl_context=self.tls,
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reject_recipients(self, code: int = 550, only: list[str] | None = None) -> None:
        """Answer RCPT TO with `code` (for the `only` addresses, else for all)."""
        self._rcpt_reply = (code, frozenset(only) if only is not None else None)

    def fail_data(self, code: int = 451) -> None:
        """Answer the end of DATA with `code`."""
        self._data_reply = code

    def accept(self) -> None:
        """Accept everything again."""
        self._rcpt_reply = (None, None)
        self._data_reply = None

    @property
    def mails(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._mails)

    @property
    def messages(self) -> list[EmailMessage]:
        return [m.message for m in self.mails]

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[EmailMessage]:
        async with asyncio.timeout(timeout_s):
            while len(self.mails) < count:
                await asyncio.sleep(0.01)
        return self.messages
