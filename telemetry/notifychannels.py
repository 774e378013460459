"""Where a notification goes: the channels of a subscription or an escalation step (a signed
webhook, e-mail through the centre's SMTP server, the hub's MQTT topic, its live stream). Pure
models, part of `telemetry.notifyconfig` (which re-exports them).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, StringConstraints, field_validator

from telemetry.configbase import Frozen as _Frozen

__all__ = [
    "ChannelSpec",
    "EmailChannel",
    "MqttChannel",
    "SseChannel",
    "WebhookChannel",
]


class WebhookChannel(_Frozen):
    """POST of a JSON body, signed with HMAC-SHA256 over the body (header
    `X-Hazardhub-Signature: sha256=<hex>`), with an `Idempotency-Key` header."""

    type: Literal["webhook"] = "webhook"
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]
    secret: str = Field(default="", max_length=200, repr=False, description="HMAC key")
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    batch_max: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="above 1, up to this many due notifications go in one POST as "
        '{"notifications": [...]}; the receiver drops repeats by each one\'s key',
    )

    @field_validator("url")
    @classmethod
    def _a_url_that_can_be_reached(cls, url: str) -> str:
        """helper-149: a port of 99999 was taken, and every notification then died of it."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port out of range or no number)
        except ValueError as exc:
            raise ValueError(f"not a URL a notification can reach: {exc}") from None
        if not parts.hostname or parts.port == 0:
            raise ValueError("not a URL a notification can reach: no host, or port 0")
        return url


class EmailChannel(_Frozen):
    type: Literal["email"] = "email"
    to: tuple[
        Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)], ...
    ] = Field(min_length=1, max_length=50)


class MqttChannel(_Frozen):
    """Publish to `{root}/{tenant}/alarms/{site}` (QoS 1) on the hub's broker."""

    type: Literal["mqtt"] = "mqtt"


class SseChannel(_Frozen):
    """Deliver to the hub's server-sent-events stream (`/api/v1/stream`); always on for browsers,
    listed for completeness so that a subscription can name it."""

    type: Literal["sse"] = "sse"


ChannelSpec = Annotated[
    WebhookChannel | EmailChannel | MqttChannel | SseChannel, Field(discriminator="type")
]
