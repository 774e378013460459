"""Configuration of the alarm lifecycle and notifications: channels, subscriptions, escalation
policies, silences and maintenance windows, disposal deadlines, SMTP and delivery settings.

Pure models, like `telemetry.config`. Subscriptions, policies and silences may be written in the
hub's YAML (under a tenant) or managed through the API; both use these models. The channels are
in `telemetry.notifychannels` and the names of alarm kinds and events in `telemetry.alarmkinds`;
both are importable from here too.
"""

from __future__ import annotations

from typing import Annotated, Self, get_args

from pydantic import Field, IPvAnyNetwork, StringConstraints, model_validator

from telemetry.alarmkinds import ALARM_KINDS, EVENT_KINDS, AlarmKind, EventKind
from telemetry.configbase import Frozen as _Frozen
from telemetry.configbase import Ident, Tier
from telemetry.notifychannels import (
    ChannelSpec,
    EmailChannel,
    MqttChannel,
    SseChannel,
    WebhookChannel,
)
from telemetry.ruleconfig import SensorKind

__all__ = [
    "ALARM_KINDS",
    "CENTRE",
    "EVENT_KINDS",
    "MATCH_SENSOR_KINDS",
    "MAX_RECIPIENTS",
    "TENANT_LIMITS",
    "AlarmKind",
    "ChannelSpec",
    "DisposalDeadline",
    "DisposalSpec",
    "EmailChannel",
    "EscalationPolicySpec",
    "EscalationStep",
    "EventKind",
    "MatchSpec",
    "MqttChannel",
    "NotifySettings",
    "RecurrenceSpec",
    "SilenceSpec",
    "SmtpSpec",
    "SseChannel",
    "SubscriptionSpec",
    "WebhookChannel",
    "over_limit",
    "recipients_problem",
]

TIERS: tuple[str, ...] = get_args(Tier)

# what `match.sensor_kinds` may name: the sensors' kinds and the alarms of devices and gateways
# (a typo, `methan`, matched nothing and was taken without a word)
MATCH_SENSOR_KINDS = frozenset((*get_args(SensorKind), "device", "gateway"))


class MatchSpec(_Frozen):
    """What a subscription receives; an empty list matches everything of that field."""

    sites: tuple[Ident, ...] = ()
    sensor_kinds: tuple[str, ...] = Field(
        default=(),
        description="a sensor's kind, 'device' (a device's comm loss) or 'gateway' (a gateway "
        "offline); a vehicle's alarms are of kind 'speed'. Checked against `MATCH_SENSOR_KINDS` "
        "when the object is saved or the configuration loads (`Registry.unknown_names`), not "
        "when a stored one is read back",
    )
    tiers: tuple[Tier, ...] = ()
    alarm_kinds: tuple[AlarmKind, ...] = ()
    events: tuple[EventKind, ...] = Field(
        default=("raised", "escalated", "cleared", "overdue", "repeat", "escalation"),
        description="which alarm events are notified",
    )


class EscalationStep(_Frozen):
    after_s: float = Field(gt=0, description="not acknowledged this long after raising")
    channel: ChannelSpec


class EscalationPolicySpec(_Frozen):
    id: Ident
    name: str = ""
    steps: tuple[EscalationStep, ...] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        after = [s.after_s for s in self.steps]
        if after != sorted(after) or len(set(after)) != len(after):
            raise ValueError("escalation steps must come in increasing after_s")
        return self


class SubscriptionSpec(_Frozen):
    id: Ident
    name: str = ""
    match: MatchSpec = MatchSpec()
    channel: ChannelSpec
    group_window_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="the first event of a site goes at once; later ones within the window "
        "go together at its end",
    )
    repeat_s: float | None = Field(
        default=None, ge=10, description="notify again while the alarm is unacknowledged"
    )
    escalation: Ident | None = Field(default=None, description="an escalation policy id")
    enabled: bool = True


class RecurrenceSpec(_Frozen):
    """A weekly maintenance window in China Standard Time."""

    weekdays: tuple[Annotated[int, Field(ge=0, le=6)], ...] = Field(
        min_length=1, description="0 = Monday"
    )
    start: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    duration_min: int = Field(gt=0, le=7 * 24 * 60)


_EPOCH_MS = (946_684_800_000, 4_102_444_800_000)  # 2000-01-01 .. 2100-01-01
_SILENCE_MAX_MS = 31 * 86_400_000


class SilenceSpec(_Frozen):
    """No notifications for matching alarms between starts and ends (ms since the epoch), or in
    a weekly window; the alarms are still raised, recorded and shown."""

    id: Ident
    comment: str = Field(min_length=1, max_length=500)
    sites: tuple[Ident, ...] = ()
    devices: tuple[Ident, ...] = ()
    sensors: tuple[Ident, ...] = ()
    alarm_kinds: tuple[AlarmKind, ...] = ()
    starts: int | None = None
    ends: int | None = None
    recurrence: RecurrenceSpec | None = None

    @model_validator(mode="after")
    def _when(self) -> Self:
        if self.recurrence is None and (self.starts is None or self.ends is None):
            raise ValueError("a silence needs starts and ends, or a weekly recurrence")
        if self.starts is not None and self.ends is not None and self.ends <= self.starts:
            raise ValueError("a silence must end after it starts")
        return self

    def new_silence_problem(self) -> str | None:
        """What is wrong with this as a new silence put through the API (those stored or in a
        configuration of before keep working): times that are not milliseconds, or a one-off
        window longer than 31 days."""
        for name, ms in (("starts", self.starts), ("ends", self.ends)):
            if ms is not None and not _EPOCH_MS[0] <= ms <= _EPOCH_MS[1]:
                return (
                    f"{name} {ms}: milliseconds since 1970 between the years 2000 and 2100 "
                    "(seconds would silence a window in 1970: nothing)"
                )
        if (
            self.recurrence is None
            and self.starts is not None
            and self.ends is not None
            and self.ends - self.starts > _SILENCE_MAX_MS
        ):
            return (
                "a silence lasts at most 31 days (a longer quiet is a sensor out of service, "
                "or a weekly recurrence): a forgotten silence hides red alarms"
            )
        return None


class DisposalDeadline(_Frozen):
    verify_s: float = Field(gt=0)
    dispose_s: float = Field(gt=0)
    close_s: float = Field(gt=0)
    review_s: float = Field(
        default=86400.0,
        gt=0,
        description="the monitoring centre's review of an enterprise's closing, counted from "
        "the enterprise's submission",
    )


class DisposalSpec(_Frozen):
    """Closed-loop disposal deadlines per tier, counted from the alarm's arrival (a return by
    the centre's review starts them again from the return), and the tiers whose closing by an
    enterprise the monitoring centre reviews."""

    blue: DisposalDeadline = DisposalDeadline(verify_s=3600, dispose_s=86400, close_s=3 * 86400)
    yellow: DisposalDeadline = DisposalDeadline(verify_s=1800, dispose_s=14400, close_s=86400)
    orange: DisposalDeadline = DisposalDeadline(verify_s=600, dispose_s=3600, close_s=86400)
    red: DisposalDeadline = DisposalDeadline(verify_s=300, dispose_s=1800, close_s=86400)
    review_tiers: tuple[Tier, ...] = Field(
        default=("red",),
        max_length=4,
        description="an alarm that reached one of these tiers (its peak), closed by an "
        "enterprise's key, waits for the monitoring centre's review (审核销号) before it is "
        "closed; [] : none",
    )

    @model_validator(mode="after")
    def _review_once(self) -> Self:
        if len(set(self.review_tiers)) != len(self.review_tiers):
            raise ValueError(
                f"notify.disposal.review_tiers: each tier once, not {list(self.review_tiers)}"
            )
        return self

    def for_tier(self, tier: str) -> DisposalDeadline:
        deadline: DisposalDeadline = getattr(self, tier if tier in TIERS else "red")
        return deadline

    def reviewed(self, tier: str) -> bool:
        """Whether an alarm that reached `tier` is closed by an enterprise only through the
        centre's review."""
        return tier in self.review_tiers


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class SmtpSpec(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(default="hazardhub@localhost", max_length=254)
    username: str | None = None
    starttls: bool = False
    tls: bool = Field(default=False, description="TLS from the start (SMTPS, port 465)")
    timeout_s: float = Field(default=10.0, gt=0)
    # the password comes only from $HAZARDHUB_SMTP_PASSWORD

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> Self:
        if self.starttls and self.tls:
            raise ValueError("notify.smtp: 'starttls' or 'tls', not both")
        # helper-149: the login went over plain TCP (AUTH PLAIN, the password readable on the
        # way); a relay on this machine may take it so
        if self.username and not (self.starttls or self.tls) and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(
                f"notify.smtp: a login to {self.host} would send the password in clear: set "
                "'starttls: true' (port 587) or 'tls: true' (port 465); only a relay on this "
                "machine (127.0.0.1, ::1, localhost) may take a login without TLS"
            )
        return self


CENTRE = "*"  # the tenant the centre's own subscriptions are kept under: every tenant's alarms


class NotifySettings(_Frozen):
    subscriptions: tuple[SubscriptionSpec, ...] = Field(
        default=(),
        max_length=100,
        description="the centre's own subscriptions: matched against every tenant's alarms, the "
        "tenants added later too (a tenant's `subscriptions` hear its own only)",
    )
    escalation_policies: tuple[EscalationPolicySpec, ...] = Field(
        default=(), max_length=100, description="the policies the centre's subscriptions name"
    )
    smtp: SmtpSpec = SmtpSpec()
    disposal: DisposalSpec = DisposalSpec()
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    give_up_after_s: float = Field(
        default=86400.0, gt=0, description="a retryable delivery failing this long is dead"
    )
    max_in_flight: int = Field(default=64, ge=1, le=1024)
    outbox_keep_days: float = Field(
        default=30.0,
        gt=0,
        description="delivered and dead notifications are deleted this long after they were made",
    )
    standing_s: float = Field(default=86400.0, gt=0, description="an alarm active this long")
    enterprise_webhook_networks: tuple[IPvAnyNetwork, ...] = Field(
        default=(),
        max_length=256,
        description="networks besides the public internet that a webhook made with an "
        "enterprise key may reach (CIDR, e.g. 10.20.0.0/16 for the enterprises' early-warning "
        "systems on an intranet); loopback, private, link-local and reserved addresses are "
        "refused otherwise. The centre's own webhooks go anywhere",
    )

    @model_validator(mode="after")
    def _centre_refs(self) -> Self:
        for name, items in (
            ("subscriptions", self.subscriptions),
            ("escalation_policies", self.escalation_policies),
        ):
            ids = [x.id for x in items]
            if len(set(ids)) != len(ids):
                raise ValueError(f"notify.{name}: ids must be unique")
        policies = {p.id for p in self.escalation_policies}
        for sub in self.subscriptions:
            if sub.escalation is not None and sub.escalation not in policies:
                raise ValueError(
                    f"notify.subscriptions: {sub.id!r} names no escalation policy of "
                    f"notify.escalation_policies: {sub.escalation!r}"
                )
            unknown = sorted(set(sub.match.sensor_kinds) - MATCH_SENSOR_KINDS)
            if unknown:
                raise ValueError(
                    f"notify.subscriptions: {sub.id!r}: sensor kinds {unknown}: no such kind "
                    f"(the kinds: {', '.join(sorted(MATCH_SENSOR_KINDS))})"
                )
        # the centre's channels go to the centre: an `sse` or `mqtt` one is the tenant's own
        # stream or topic (the enterprise would read the centre's subscriptions, helper-122)
        channels = [(f"subscriptions: {s.id!r}", s.channel) for s in self.subscriptions]
        channels += [
            (f"escalation_policies: {p.id!r} step {k}", step.channel)
            for p in self.escalation_policies
            for k, step in enumerate(p.steps)
        ]
        for where, channel in channels:
            if channel.type in ("sse", "mqtt"):
                raise ValueError(
                    f"notify.{where}: a channel of type {channel.type!r} is the tenant's own "
                    "stream or topic, which the enterprise reads: the centre's subscriptions "
                    "take webhook or email"
                )
        # the centre's e-mails go through the same SMTP server to as many outside addresses
        # (and hear every tenant's alarms): the tenant's limit, at load (they took 50)
        for name, specs in (
            ("subscriptions", self.subscriptions),
            ("escalation_policies", self.escalation_policies),
        ):
            for spec in specs:
                problem = recipients_problem(spec)
                if problem is not None:
                    raise ValueError(f"notify.{name}: {problem}")
        return self


# What a tenant may hold, whoever writes it (an enterprise's key, the centre's, the configuration
# file): every subscription is matched against each of its alarms and each e-mail goes through
# the centre's SMTP server (helper-163: an enterprise key made 300 e-mail subscriptions of 50
# outside addresses, and one comment sent 301 messages to 15,002 recipients). A real enterprise
# has a few subscriptions per duty (shift, safety office, management) and site; a longer list of
# people is a mailing list's address.
TENANT_LIMITS: dict[str, int] = {"subscription": 50, "escalation": 20, "silence": 100}
_PLURAL = {
    "subscription": "subscriptions",
    "escalation": "escalation policies",
    "silence": "silences",
}
# the addresses of one e-mail channel written now, a tenant's or the centre's (`notify:`); a
# stored one of a tenant's of before may have up to 50
MAX_RECIPIENTS = 20


def over_limit(kind: str, count: int) -> str | None:
    """Why a tenant may not hold `count` objects of `kind`, or None."""
    limit = TENANT_LIMITS[kind]
    if count <= limit:
        return None
    return (
        f"a tenant has at most {limit} {_PLURAL[kind]} (the configuration's and those made "
        f"through the API together), not {count}: change or delete one instead (a list of "
        "people is one mailing-list address)"
    )


def recipients_problem(spec: SubscriptionSpec | EscalationPolicySpec) -> str | None:
    """Why the e-mail channels of a subscription or an escalation policy name too many
    addresses, or None."""
    channels = [getattr(spec, "channel", None)]
    channels += [step.channel for step in getattr(spec, "steps", ())]
    for channel in channels:
        if isinstance(channel, EmailChannel) and len(channel.to) > MAX_RECIPIENTS:
            return (
                f"{spec.id!r}: an e-mail channel sends to at most {MAX_RECIPIENTS} addresses, "
                f"not {len(channel.to)}: give a mailing list's address for more people"
            )
    return None
