"""What an e-mail notification says, and the SMTP session that sends it.

The message: a plain-text summary of each event in China time (CST, UTC+8), then the JSON; a
``Message-ID`` made from the notification's idempotency key, so that receivers can drop
repeats; ``Auto-Submitted``, so that no vacation reply comes back. The session: one blocking
SMTP conversation. Split from `alerts.notify.channels`, whose `Senders` run the session in their
own worker threads and judge its outcome, and which re-exports these names; the code moved as
it was.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

import orjson

from telemetry.notifyconfig import EmailChannel, SmtpSpec

if TYPE_CHECKING:
    from alerts.notify.channels import Notification

__all__ = ["build_message", "mail_text", "message_id"]

CST = timezone(timedelta(hours=8), "CST")
_MSGID_CHARS = frozenset(string.ascii_letters + string.digits + "!#$&'*+-/=?^_`{|}~")


def message_id(key: str) -> str:
    """``<{key}@hazardhub>``, with the characters a Message-ID may not hold (":" among them)
    percent-encoded, so that the header survives every mail parser unchanged."""
    out: list[str] = []
    for i, ch in enumerate(key):
        dot_ok = ch == "." and 0 < i < len(key) - 1 and key[i - 1] != "."
        out.append(
            ch if ch in _MSGID_CHARS or dot_ok else "".join(f"%{b:02X}" for b in ch.encode())
        )
    return f"<{''.join(out)}@hazardhub>"


def _when(ts: object) -> str | None:
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return None
    try:
        return datetime.fromtimestamp(ts / 1000, CST).strftime("%Y-%m-%d %H:%M:%S CST (UTC+8)")
    except (OverflowError, OSError, ValueError):
        return None


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _named(name: object, ident: object) -> str | None:
    """`name (id)`, or what there is of them."""
    n, i = _text(name), _text(ident)
    return f"{n} ({i})" if n and i else n or i


def _level(level: str | None, tier: str | None, peak: str | None) -> str | None:
    """`prewarn (blue; reached red)`: the level, its tier, and the highest reached if higher."""
    tiers = "; ".join(t for t in (tier, f"reached {peak}" if peak and peak != tier else None) if t)
    return f"{level} ({tiers})" if level and tiers else level or tiers or None


def _event_lines(number: int, ev: Mapping[str, object]) -> list[str]:
    sensor, side = _text(ev.get("sensor")), _text(ev.get("side"))
    level, tier = _text(ev.get("level_name")), _text(ev.get("tier"))
    value, unit = _text(ev.get("value")), _text(ev.get("unit"))
    fields = [
        ("enterprise", _named(ev.get("tenant_name"), ev.get("tenant"))),
        ("site", _named(ev.get("site_name"), ev.get("site"))),
        ("device", _named(ev.get("device_name"), ev.get("device"))),
        ("sensor", f"{sensor} ({side})" if sensor and side else sensor or side),
        ("where", _text(ev.get("location"))),  # a vehicle's plate
        ("level", _level(level, tier, _text(ev.get("peak_tier")))),
        ("value", f"{value} {unit}" if value and unit else value),
        ("action", _text(ev.get("action"))),
        ("comment", _text(ev.get("comment"))),  # an overspeed's limit, a driver, an area
    ]
    head = " ".join(s for s in (_text(ev.get("kind")), _when(ev.get("ts"))) if s)
    return [f"{number}. {head or 'event'}"] + [
        f"   {label + ':':<12}{value}" for label, value in fields if value is not None
    ]


def mail_text(n: Notification) -> str:
    """The plain-text body of an e-mail: a summary of each event, then the JSON."""
    lines = [n.subject, "", f"tenant {n.tenant}, site {n.site}"]
    events = n.body.get("events")
    if isinstance(events, list):
        for number, ev in enumerate(events, 1):
            if isinstance(ev, dict):
                lines += ["", *_event_lines(number, ev)]
    lines += ["", "-- JSON --", orjson.dumps(n.body, option=orjson.OPT_INDENT_2).decode()]
    return "\n".join(lines) + "\n"


def build_message(smtp: SmtpSpec, channel: EmailChannel, n: Notification) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = n.subject
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id(n.key)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(mail_text(n), charset="utf-8", cte="quoted-printable")
    return msg


def _deliver_mail(
    smtp: SmtpSpec, password: str | None, msg: EmailMessage, to: list[str]
) -> dict[str, tuple[int, bytes]]:
    """Blocking: one SMTP session; returns the refused recipients when some were accepted."""
    # gethostname, not smtplib's default getfqdn(), which may wait seconds for DNS
    client = (
        smtplib.SMTP_SSL(
            smtp.host,
            smtp.port,
            local_hostname=socket.gethostname(),
            timeout=smtp.timeout_s,
            context=ssl.create_default_context(),
        )
        if smtp.tls
        else smtplib.SMTP(
            smtp.host, smtp.port, local_hostname=socket.gethostname(), timeout=smtp.timeout_s
        )
    )
    try:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, password or "")
        return client.send_message(msg, to_addrs=to)
    finally:
        try:  # the message is accepted; a failing QUIT must not turn that into a retry
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
