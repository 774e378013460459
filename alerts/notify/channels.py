"""Senders of alarm notifications: webhook, e-mail, MQTT and server-sent events.

A sender makes one delivery attempt and says how it went, like Alertmanager's notifiers: DELIVERED;
RETRY when the same attempt may succeed later (the peer is down, busy, slow or says "try later");
PERMANENT when it will fail the same way again (rejected, wrong address, redirected). Retrying,
backoff and giving up are the caller's business; `Senders.send` never raises (except to pass on
cancellation).

Every notification carries an idempotency key, the same on every retry, so that receivers can
drop repeats: the webhook's ``Idempotency-Key`` header, the e-mail's ``Message-ID`` (see
`message_id`) and ``body["key"]`` everywhere. The e-mail's message and its SMTP session are in
`alerts.notify.mail`.

Webhook signature
-----------------
When the channel has a secret, the request carries::

    X-Hazardhub-Signature: sha256=<hex>

where ``<hex>`` is the lowercase hexadecimal HMAC-SHA256 keyed with the secret's UTF-8 bytes, over
the exact bytes of the request body. A receiver computes it over the raw body before parsing the
JSON and compares in constant time (`verify_signature`). Without a secret there is no header.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import hmac
import logging
import re
import smtplib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import orjson

from alerts.notify.http import HttpError, HttpPool
from alerts.notify.mail import _deliver_mail, build_message, mail_text, message_id
from alerts.notify.netguard import AddressGuard
from telemetry.errors import TopicError
from telemetry.notifyconfig import (
    ChannelSpec,
    EmailChannel,
    MqttChannel,
    SmtpSpec,
    SseChannel,
    WebhookChannel,
)
from telemetry.topics import TopicLayout

__all__ = [
    "SIGNATURE_HEADER",
    "Notification",
    "SendResult",
    "Senders",
    "Status",
    "build_message",
    "classify_http",
    "classify_smtp_error",
    "mail_text",
    "message_id",
    "parse_retry_after",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hazardhub-Signature"
MqttPublish = Callable[[str, bytes], Awaitable[None]]
SsePublish = Callable[["Notification"], Awaitable[None]]

_KEY = re.compile(r"^[!-~]{1,200}$")  # printable ASCII without spaces: a valid header value
_RETRY_HTTP = frozenset({408, 425, 429})
_REASON_MAX = 300
_PER_HOST = 8  # webhook requests in flight to one host
_MAX_ANSWER = 64 * 1024  # bytes of a webhook's answer read (then the connection is dropped)
_MQTT_TIMEOUT_S = 10.0  # the hub's publish waits for PUBACK; a broker that never answers is "later"
_SMTP_WORKERS = 4  # our own threads, so that a slow mail server never starves asyncio.to_thread


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one channel. `key` is unique per notification and stable across retries."""

    key: str
    tenant: str
    site: str
    subject: str  # one human line
    body: dict[str, object]  # JSON-able: {"key", "subscription", "events": [...]}

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"notification key {self.key!r}: use 1-200 printable ASCII, no spaces")
        if "\r" in self.subject or "\n" in self.subject:
            raise ValueError("a notification subject is one line")


class Status(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    status: Status
    reason: str = ""  # short, human, never contains a secret
    retry_after_s: float | None = None  # from a Retry-After header when given


# -- pure parts ------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The `SIGNATURE_HEADER` value for `body`: ``sha256=`` and the hex HMAC-SHA256."""
    mac = _keyed(secret).copy()  # the key's state made once per secret, not once per body
    mac.update(body)
    return "sha256=" + mac.hexdigest()


@functools.lru_cache(maxsize=1024)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with `secret` and fed nothing: copied for each body (`sign`)."""
    key = secret.encode("utf-8", "surrogatepass")  # a lone surrogate must not crash the sender
    return hmac.new(key, digestmod=hashlib.sha256)


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """Whether `header` signs `body` with `secret`, compared in constant time. An empty secret
    verifies nothing: anyone can compute that signature."""
    if not secret:
        return False
    given = header.strip().lower().encode("utf-8", "backslashreplace")
    return hmac.compare_digest(sign(secret, body).encode(), given)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify_http(status: int, phrase: str = "", retry_after_s: float | None = None) -> SendResult:
    """2xx delivered; 408, 425, 429 and 5xx worth retrying; anything else (3xx, 4xx) permanent."""
    what = f"HTTP {status} {phrase}".rstrip()
    if 200 <= status < 300:
        return SendResult(Status.DELIVERED, what)
    if status in _RETRY_HTTP or 500 <= status < 600:
        return SendResult(Status.RETRY, what, retry_after_s)
    if 300 <= status < 400:
        return SendResult(Status.PERMANENT, what + " (redirects are not followed)")
    return SendResult(Status.PERMANENT, what)


def _clip(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"


def _smtp_reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"SMTP {code} {text}"


def classify_smtp_error(exc: Exception) -> SendResult:
    """5xx replies are permanent, 4xx replies and lost connections worth retrying; a server that
    lacks what the configuration needs (STARTTLS, AUTH) is permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.items())
        status = Status.PERMANENT if all(c >= 500 for _, (c, _m) in replies) else Status.RETRY
        text = "; ".join(f"{a}: {_smtp_reply(c, m)}" for a, (c, m) in replies)
        return SendResult(status, f"all recipients refused: {text}")
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        status = Status.PERMANENT if 500 <= code < 600 else Status.RETRY
        return SendResult(status, f"{type(exc).__name__}: {_smtp_reply(code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendResult(Status.RETRY, f"SMTP server disconnected: {exc}")
    if isinstance(exc, smtplib.SMTPException):  # not supported, no suitable auth method
        return SendResult(Status.PERMANENT, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, TimeoutError):
        return SendResult(Status.RETRY, "SMTP server did not answer in time")
    return SendResult(Status.RETRY, f"{type(exc).__name__}: {exc}")


# -- the I/O shell ---------------------------------------------------------------------------


class Senders:
    """Routes a notification to the sender for its channel type. Owns one HTTP client and a few
    SMTP worker threads, both made on first use and released by `aclose`."""

    def __init__(
        self,
        *,
        smtp: SmtpSpec,
        smtp_password: str | None = None,
        mqtt_publish: MqttPublish | None = None,
        topic_root: str = "hazardhub/v1",
        sse_publish: SsePublish | None = None,
    ) -> None:
        self._smtp = smtp
        self._smtp_password = smtp_password
        self._mqtt_publish = mqtt_publish
        self._topics = TopicLayout(topic_root)
        self._sse_publish = sse_publish
        self._http: HttpPool | None = None
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._mail_pool: ThreadPoolExecutor | None = None

    def set_smtp(self, smtp: SmtpSpec) -> None:
        """Send e-mail through `smtp` from the next message on (a configuration changed through
        the API: it took effect only at the next start)."""
        self._smtp = smtp

    def __repr__(self) -> str:
        return f"Senders(smtp={self._smtp.host}:{self._smtp.port}, root={self._topics.root!r})"

    async def send(
        self, channel: ChannelSpec, n: Notification, guard: AddressGuard | None = None
    ) -> SendResult:
        """Send one notification; `guard`: where a webhook may connect (an enterprise's,
        `alerts.notify.netguard`), None for anywhere."""
        secrets: tuple[str, ...] = (self._smtp_password or "",)
        if isinstance(channel, WebhookChannel):
            secrets += (channel.secret, channel.url)
        try:
            match channel:
                case WebhookChannel():
                    result = await self._webhook(channel, n, guard)
                case EmailChannel():
                    result = await self._email(channel, n)
                case MqttChannel():
                    result = await self._mqtt(n)
                case SseChannel():
                    result = await self._sse(n)
                case _:
                    result = SendResult(Status.PERMANENT, f"unknown channel {channel!r}")
        except orjson.JSONEncodeError as exc:
            result = SendResult(Status.PERMANENT, f"body is not JSON: {exc}")
        except Exception as exc:
            log.warning("notification %s: %s sender failed", n.key, channel.type, exc_info=True)
            result = SendResult(Status.RETRY, f"unexpected {type(exc).__name__}: {exc}")
        return SendResult(result.status, _clip(result.reason, secrets), result.retry_after_s)

    async def send_batch(
        self,
        channel: WebhookChannel,
        notes: Sequence[Notification],
        guard: AddressGuard | None = None,
    ) -> SendResult:
        """Several notifications in one webhook POST: `{"notifications": [body, ...]}`. The
        `Idempotency-Key` header names the batch (a digest of its keys); a retry may group
        differently, so receivers drop repeats by the `key` of each notification."""
        if len(notes) == 1:
            return await self.send(channel, notes[0], guard)
        digest = hashlib.sha256("\n".join(n.key for n in notes).encode()).hexdigest()[:32]
        first = notes[0]
        batch = Notification(
            key=f"batch-{digest}",
            tenant=first.tenant,
            site=first.site,
            subject=f"{len(notes)} notifications",
            body={"notifications": [n.body for n in notes]},
        )
        return await self.send(channel, batch, guard)

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        pool, self._mail_pool = self._mail_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    per_receiver = _PER_HOST  # requests in flight to one receiver at most

    @staticmethod
    def receiver_of(channel: ChannelSpec) -> str:
        """Who a channel's notifications go to, as `_host_slot` counts them: a webhook's host
        (and port); the SMTP server, the broker or the browsers for the others."""
        if isinstance(channel, WebhookChannel):
            return _host(channel.url)
        return channel.type

    # webhook

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        """At most `_PER_HOST` requests at once to one receiver: a receiver is better served by
        a few connections kept alive (`alerts.notify.http` keeps as many)."""
        host = _host(url)
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = asyncio.Semaphore(_PER_HOST)
        return slot

    def _client(self) -> HttpPool:
        if self._http is None:
            self._http = HttpPool()
        return self._http

    async def _webhook(
        self, channel: WebhookChannel, n: Notification, guard: AddressGuard | None
    ) -> SendResult:
        body = orjson.dumps(n.body)
        headers = {"Content-Type": "application/json", "Idempotency-Key": n.key}
        if channel.secret:
            headers[SIGNATURE_HEADER] = sign(channel.secret, body)
        timeout = channel.timeout_s
        try:
            async with self._host_slot(channel.url), asyncio.timeout(timeout):  # a total deadline
                resp = await self._client().post(channel.url, body, headers, _MAX_ANSWER, guard)
        except TimeoutError:
            return SendResult(Status.RETRY, f"no answer within {timeout:g} s")
        except HttpError as exc:
            if exc.kind == "Refused":  # an enterprise's webhook to an address it may not reach
                return SendResult(Status.PERMANENT, f"refused: {exc.args[0]}")
            if exc.kind in ("InvalidURL", "UnsupportedProtocol", "InvalidHeader"):
                return SendResult(Status.PERMANENT, f"bad webhook URL: {exc}")
            return SendResult(Status.RETRY, str(exc))
        after = parse_retry_after(resp.headers.get("retry-after"), time.time())
        return classify_http(resp.status, resp.reason, after)

    # e-mail

    async def _email(self, channel: EmailChannel, n: Notification) -> SendResult:
        if self._mail_pool is None:
            self._mail_pool = ThreadPoolExecutor(_SMTP_WORKERS, thread_name_prefix="hazardhub-smtp")
        loop = asyncio.get_running_loop()
        try:
            # built in the SMTP thread too: a flood of retries built on the event loop held it
            # at 100 % CPU (helper-107)
            refused = await loop.run_in_executor(
                self._mail_pool, _build_and_deliver, self._smtp, self._smtp_password, channel, n
            )
        except OSError as exc:  # smtplib's errors are OSErrors too
            return classify_smtp_error(exc)
        if refused:
            text = "; ".join(f"{a}: {_smtp_reply(c, m)}" for a, (c, m) in refused.items())
            return SendResult(Status.DELIVERED, f"some recipients refused: {text}")
        return SendResult(Status.DELIVERED, f"accepted for {len(channel.to)} recipient(s)")

    # MQTT and SSE

    async def _mqtt(self, n: Notification) -> SendResult:
        if self._mqtt_publish is None:
            return SendResult(Status.PERMANENT, "no MQTT connection configured")
        try:
            topic = self._topics.alarms(n.tenant, n.site)
        except TopicError as exc:
            return SendResult(Status.PERMANENT, str(exc))
        payload = orjson.dumps(n.body)
        try:
            async with asyncio.timeout(_MQTT_TIMEOUT_S):
                await self._mqtt_publish(topic, payload)
        except TimeoutError:
            return SendResult(
                Status.RETRY, f"MQTT publish not confirmed within {_MQTT_TIMEOUT_S:g} s"
            )
        except Exception as exc:
            return SendResult(Status.RETRY, f"{type(exc).__name__}: {exc}")
        return SendResult(Status.DELIVERED, f"published to {topic}")

    async def _sse(self, n: Notification) -> SendResult:
        if self._sse_publish is not None:
            await self._sse_publish(n)
        return SendResult(Status.DELIVERED, "sent to the event stream")


def _host(url: str) -> str:
    """A webhook URL's host and port, as written (one in-flight budget per receiver)."""
    return url.split("/", 3)[2] if url.count("/") >= 2 else url


def _build_and_deliver(
    smtp: SmtpSpec, password: str | None, channel: EmailChannel, n: Notification
) -> dict[str, tuple[int, bytes]]:
    """Blocking, in the SMTP pool: the message built, then sent."""
    return _deliver_mail(smtp, password, build_message(smtp, channel, n), [*channel.to])
