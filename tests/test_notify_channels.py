"""Channel senders against real receivers: an HTTP endpoint, an SMTP server, a Mosquitto broker.

Each case pins how one kind of answer (or silence) is classified: delivered, worth retrying, or
permanent; and what the receiver gets: the exact body, the signature, the idempotency key.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from alerts.notify.channels import (
    Notification,
    Senders,
    SendResult,
    Status,
    classify_http,
    mail_text,
    message_id,
    parse_retry_after,
    sign,
    verify_signature,
)
from telemetry.notifyconfig import EmailChannel, MqttChannel, SmtpSpec, SseChannel, WebhookChannel

from receivers import SmtpReceiver, WebhookReceiver
from services import free_port, self_signed

T0 = int(datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC).timestamp() * 1000)  # 08:00:05 in China
EVENT: dict[str, object] = {
    "alarm_id": 7,
    "kind": "raised",
    "tenant": "t1",
    "site": "face1",
    "device": "ch4-1",
    "sensor": "face1.ch4",
    "rule": "ch4",
    "side": "above",
    "level": 2,
    "level_name": "报警",
    "tier": "red",
    "action": "断电",
    "value": 1.62,
    "ts": T0,
    "arrival": T0 + 40,
}
SUBJECT = "[RED] 甲烷 face1.ch4 above 1.50 %CH4 raised"


def note(key: str = "e123:s7", site: str = "face1", **body: object) -> Notification:
    return Notification(
        key=key,
        tenant="t1",
        site=site,
        subject=SUBJECT,
        body={"key": key, "subscription": "ops", "events": [EVENT], **body},
    )


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret="s3cret-hook") as receiver:
        yield receiver


@pytest.fixture
def smtp_server() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(users={"hub": "mail-pw-42"}) as receiver:
        yield receiver


@pytest.fixture
async def senders(smtp_server: SmtpReceiver) -> AsyncIterator[Senders]:
    spec = SmtpSpec(host=smtp_server.host, port=smtp_server.port, sender="hub@mine.example")
    s = Senders(smtp=spec)
    yield s
    await s.aclose()


def hook(receiver: WebhookReceiver, *, secret: str | None = None, timeout_s: float = 2.0):
    secret = receiver.secret if secret is None else secret
    return WebhookChannel(url=receiver.url, secret=secret, timeout_s=timeout_s)


# -- webhook ---------------------------------------------------------------------------------


async def test_webhook_delivers_the_exact_body_signed_with_the_key(webhook, senders):
    n = note()
    result = await senders.send(hook(webhook), n)
    assert result.status is Status.DELIVERED, result
    [req] = webhook.requests
    assert req.method == "POST"
    assert req.body == orjson.dumps(n.body)
    assert req.json()["events"][0]["level_name"] == "报警"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "hazardhub"
    assert req.headers["x-hazardhub-signature"] == sign("s3cret-hook", req.body)
    assert req.signature_ok is True  # checked by the receiver's own HMAC code
    assert webhook.keys() == ["e123:s7"]


async def test_webhook_without_a_secret_sends_no_signature(webhook, senders):
    assert (await senders.send(hook(webhook, secret=""), note())).status is Status.DELIVERED
    [req] = webhook.requests
    assert "x-hazardhub-signature" not in req.headers
    assert req.signature_ok is None
    assert req.key == "e123:s7"


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_webhook_busy_or_failing_receiver_is_retried(webhook, senders, status):
    webhook.respond_with(status)
    result = await senders.send(hook(webhook), note())
    assert result.status is Status.RETRY
    assert str(status) in result.reason
    assert result.retry_after_s is None


async def test_webhook_retry_after_is_honoured(webhook, senders):
    webhook.respond_with(503, headers={"Retry-After": "7"}, times=1)
    result = await senders.send(hook(webhook), note())
    assert (result.status, result.retry_after_s) == (Status.RETRY, 7.0)
    assert "503" in result.reason
    # the queued answer was used once; the standing one is 200 again
    assert (await senders.send(hook(webhook), note())).status is Status.DELIVERED
    assert webhook.keys() == ["e123:s7", "e123:s7"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_webhook_rejection_is_permanent(webhook, senders, status):
    webhook.respond_with(status)
    result = await senders.send(hook(webhook), note())
    assert result.status is Status.PERMANENT
    assert str(status) in result.reason


async def test_webhook_redirect_is_permanent_and_not_followed(webhook, senders):
    webhook.respond_with(302, headers={"Location": webhook.url + "/elsewhere"})
    result = await senders.send(hook(webhook), note())
    assert result.status is Status.PERMANENT
    assert "302" in result.reason
    assert [r.path for r in webhook.requests] == ["/hook"]


async def test_webhook_receiver_down_is_retried_and_back_up_delivered(webhook, senders):
    webhook.stop()
    result = await senders.send(hook(webhook), note())
    assert result.status is Status.RETRY
    assert "ConnectError" in result.reason
    assert "s3cret-hook" not in result.reason
    webhook.start()  # the same port again
    assert (await senders.send(hook(webhook), note())).status is Status.DELIVERED
    assert webhook.keys() == ["e123:s7"]


async def test_webhook_slow_receiver_times_out_and_is_retried(webhook, senders):
    webhook.respond_with(200, delay_s=5.0)
    started = time.monotonic()
    result = await senders.send(hook(webhook, timeout_s=0.3), note())
    assert time.monotonic() - started < 2.0
    assert result.status is Status.RETRY
    assert "0.3 s" in result.reason
    assert len(webhook.requests) == 1  # it did arrive; the answer came too late


def test_http_classification_table():
    assert classify_http(204).status is Status.DELIVERED
    assert classify_http(429, "Too Many Requests", 3.0) == SendResult(
        Status.RETRY, "HTTP 429 Too Many Requests", 3.0
    )
    assert classify_http(301).status is Status.PERMANENT
    assert classify_http(418).status is Status.PERMANENT
    assert classify_http(599).status is Status.RETRY


def test_retry_after_seconds_or_date():
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    date = datetime.fromtimestamp(now + 30, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(date, now) == pytest.approx(30.0)
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", now) == 0.0  # in the past
    for bad in (None, "", "soon", "-5", "1e9", "9" * 50):
        assert parse_retry_after(bad, now) is None


# -- signature -------------------------------------------------------------------------------

secrets_ = st.text(min_size=1, max_size=80)


@given(secret=secrets_, body=st.binary(max_size=512))
def test_signature_round_trip(secret: str, body: bytes):
    header = sign(secret, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(secret, body, header)


@given(secret=secrets_, body=st.binary(min_size=1, max_size=512), data=st.data())
def test_signature_fails_on_any_one_byte_change(secret: str, body: bytes, data: st.DataObject):
    header = sign(secret, body)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    assert not verify_signature(secret, changed, header)
    assert not verify_signature(secret, body[:i] + body[i + 1 :], header)  # one byte less
    assert not verify_signature(secret, body + b"\x00", header)  # one byte more


# HMAC pads short keys with zero bytes, so "k" and "k\x00" are the same key: leave NUL out
_no_nul = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=80)


@given(a=_no_nul, b=_no_nul, body=st.binary(max_size=256))
def test_signature_fails_with_another_secret(a: str, b: str, body: bytes):
    assume(a != b)
    assert not verify_signature(b, body, sign(a, body))


def test_signature_rejects_malformed_headers_and_an_empty_secret():
    body = b'{"key":"e1"}'
    good = sign("k", body)
    assert verify_signature("k", body, " " + good.upper().replace("SHA256=", "sha256=") + " ")
    for bad in ("", "sha256=", good[:-1], "sha1=" + good[7:], good + "0", "sha256=ü" + good[8:]):
        assert not verify_signature("k", body, bad)
    assert not verify_signature("", body, sign("", body))  # anyone can forge that
    assert verify_signature("\ud800", body, sign("\ud800", body))  # odd secrets still sign


# -- e-mail ----------------------------------------------------------------------------------


async def test_email_delivered_with_subject_message_id_and_chinese_text(smtp_server, senders):
    channel = EmailChannel(to=("ops@mine.example", "chief@mine.example"))
    n = note()
    result = await senders.send(channel, n)
    assert result.status is Status.DELIVERED, result
    [mail] = await smtp_server.wait_for(1)
    assert smtp_server.mails[0].rcpt_tos == ["ops@mine.example", "chief@mine.example"]
    assert mail["Subject"] == SUBJECT
    assert mail["Message-ID"] == message_id("e123:s7") == "<e123%3As7@hazardhub>"
    assert mail["From"] == "hub@mine.example"
    assert mail["To"] == "ops@mine.example, chief@mine.example"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_charset() == "utf-8"
    text = mail.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line ends
    assert text.startswith(SUBJECT + "\n")
    assert "1. raised 2026-03-02 08:00:05 CST (UTC+8)" in text
    assert "   enterprise: t1\n" in text  # (no name: the id)
    assert "   site:       face1\n" in text
    assert "   device:     ch4-1\n" in text
    assert "   sensor:     face1.ch4 (above)" in text
    assert "   level:      报警 (red)" in text
    assert "   value:      1.62" in text
    assert "   action:     断电" in text
    assert orjson.loads(text.split("-- JSON --\n", 1)[1]) == n.body


async def test_an_email_is_built_off_the_event_loop(smtp_server, senders, monkeypatch):
    """A flood of e-mail retries built on the event loop held it at 100 % CPU, and ingest
    behind it, for minutes (helper-107): the message is built in the SMTP pool's thread."""
    import threading

    import alerts.notify.channels as channels

    built_in = []
    real = channels.build_message

    def spy(*args, **kwargs):
        built_in.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(channels, "build_message", spy)
    result = await senders.send(EmailChannel(to=("ops@mine.example",)), note())
    assert result.status is Status.DELIVERED, result
    assert len(built_in) == 1 and built_in[0].startswith("hazardhub-smtp"), built_in


async def test_email_recipient_refused_with_550_is_permanent(smtp_server, senders):
    smtp_server.reject_recipients(550)
    result = await senders.send(EmailChannel(to=("nobody@mine.example",)), note())
    assert result.status is Status.PERMANENT
    assert "550" in result.reason and "nobody@mine.example" in result.reason
    assert smtp_server.mails == []


@pytest.mark.parametrize(("stage", "code", "status"), [
    ("rcpt", 451, Status.RETRY),
    ("data", 451, Status.RETRY),
    ("data", 554, Status.PERMANENT),
])  # fmt: skip
async def test_email_smtp_replies_are_classified(smtp_server, senders, stage, code, status):
    if stage == "rcpt":
        smtp_server.reject_recipients(code)
    else:
        smtp_server.fail_data(code)
    result = await senders.send(EmailChannel(to=("ops@mine.example",)), note())
    assert result.status is status
    assert str(code) in result.reason


async def test_email_some_recipients_refused_is_delivered_to_the_others(smtp_server, senders):
    smtp_server.reject_recipients(550, only=["gone@mine.example"])
    result = await senders.send(EmailChannel(to=("ops@mine.example", "gone@mine.example")), note())
    assert result.status is Status.DELIVERED
    assert "gone@mine.example" in result.reason
    assert smtp_server.mails[0].rcpt_tos == ["ops@mine.example"]


async def test_email_server_not_listening_is_retried():
    senders = Senders(smtp=SmtpSpec(host="127.0.0.1", port=free_port(), timeout_s=2))
    try:
        result = await senders.send(EmailChannel(to=("ops@mine.example",)), note())
    finally:
        await senders.aclose()
    assert result.status is Status.RETRY
    assert "ConnectionRefusedError" in result.reason


async def test_email_login_and_a_wrong_password(smtp_server):
    spec = SmtpSpec(host=smtp_server.host, port=smtp_server.port, username="hub")
    good = Senders(smtp=spec, smtp_password="mail-pw-42")
    bad = Senders(smtp=spec, smtp_password="wrong-pw-99")
    try:
        ok = await good.send(EmailChannel(to=("ops@mine.example",)), note())
        refused = await bad.send(EmailChannel(to=("ops@mine.example",)), note())
    finally:
        await good.aclose()
        await bad.aclose()
    assert ok.status is Status.DELIVERED, ok
    assert refused.status is Status.PERMANENT
    assert "535" in refused.reason
    assert "wrong-pw-99" not in refused.reason and "wrong-pw-99" not in repr(bad)
    assert len(smtp_server.mails) == 1


async def test_email_starttls_the_server_lacks_is_permanent(smtp_server):
    spec = SmtpSpec(host=smtp_server.host, port=smtp_server.port, starttls=True)
    senders = Senders(smtp=spec)
    try:
        result = await senders.send(EmailChannel(to=("ops@mine.example",)), note())
    finally:
        await senders.aclose()
    assert result.status is Status.PERMANENT
    assert "STARTTLS" in result.reason


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example:99999/h", "http://hooks.example:80x/h", "https:///h", "http://h:0/"],
)
def test_a_webhook_url_no_notification_can_reach_is_refused(url):
    """helper-149: a port of 99999 was saved (200), and every notification died of it."""
    with pytest.raises(ValueError, match="not a URL a notification can reach"):
        WebhookChannel(url=url)


def test_a_webhook_url_with_a_port_an_ipv6_host_or_credentials_is_taken():
    for url in ("http://[::1]:8080/h", "https://u:p@hooks.example/x?t=1", "http://10.0.0.1:65535"):
        assert WebhookChannel(url=url).url == url


def test_a_login_in_clear_to_another_machine_is_refused():
    """helper-149: with a username and no TLS the hub sent AUTH PLAIN over plain TCP. A relay on
    this machine may take it; another host needs STARTTLS or TLS."""
    SmtpSpec(host="127.0.0.1", username="hub")
    SmtpSpec(host="localhost", port=25, username="hub")
    SmtpSpec(host="smtp.qq.example", port=465, username="hub", tls=True)
    SmtpSpec(host="smtp.qq.example", port=587, username="hub", starttls=True)
    SmtpSpec(host="smtp.qq.example", port=25)  # no login: nothing secret
    with pytest.raises(ValueError, match="would send the password in clear"):
        SmtpSpec(host="smtp.qq.example", port=25, username="hub")
    with pytest.raises(ValueError, match="'starttls' or 'tls', not both"):
        SmtpSpec(host="smtp.qq.example", username="hub", tls=True, starttls=True)


@pytest.fixture(scope="module")
def smtps_certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("smtps"))


async def test_email_over_tls_from_the_start_checks_the_certificate(smtps_certificate, monkeypatch):
    """`tls: true` (SMTPS, port 465): the session is TLS from its first byte, the server's
    certificate checked against the CAs the system trusts (here: SSL_CERT_FILE), the login
    inside it."""
    cert, key = smtps_certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    with SmtpReceiver(users={"hub": "mail-pw-42"}, tls=server_tls) as server:
        spec = SmtpSpec(host=server.host, port=server.port, username="hub", tls=True, timeout_s=5)
        untrusted = Senders(smtp=spec, smtp_password="mail-pw-42")
        try:
            refused = await untrusted.send(EmailChannel(to=("ops@mine.example",)), note())
        finally:
            await untrusted.aclose()
        assert refused.status is not Status.DELIVERED
        assert "CERTIFICATE_VERIFY_FAILED" in refused.reason, refused.reason
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusting = Senders(smtp=spec, smtp_password="mail-pw-42")
        try:
            ok = await trusting.send(EmailChannel(to=("ops@mine.example",)), note())
        finally:
            await trusting.aclose()
        assert ok.status is Status.DELIVERED, ok
        assert len(server.mails) == 1


def test_mail_text_skips_missing_fields_and_ignores_odd_events():
    n = note(events=[{"kind": "acknowledged", "site": "face1"}, "not an event"])
    text = mail_text(n)
    assert "1. acknowledged\n   site:       face1\n\n-- JSON --" in text
    assert "2." not in text


def test_mail_text_names_the_enterprise_the_place_and_a_vehicles_plate():
    """helper-116: the e-mail's text said `petrol-02.speed`; the plate, the limit and the
    driver were in its JSON only."""
    ev = {**EVENT, "tenant_name": "顺达危运", "site": "vehicles", "device": "petrol-02"}
    ev |= {"device_name": "苏B·D9999", "sensor": "petrol-02.speed", "side": "overspeed"}
    ev |= {"location": "苏B·D9999", "unit": "km/h", "value": 75.0}
    ev |= {"comment": "限速 limit 60 km/h; 驾驶员 driver D001"}
    text = mail_text(note(events=[ev]))
    assert "   enterprise: 顺达危运 (t1)\n" in text
    assert "   device:     苏B·D9999 (petrol-02)\n" in text
    assert "   where:      苏B·D9999\n" in text
    assert "   value:      75 km/h\n" in text
    assert "   comment:    限速 limit 60 km/h; 驾驶员 driver D001\n" in text


def test_message_id_encodes_what_a_message_id_cannot_hold():
    assert message_id("e1.s2") == "<e1.s2@hazardhub>"
    assert message_id(".a..b.") == "<%2Ea.%2Eb%2E@hazardhub>"
    assert message_id("a%3Ab") != message_id("a:b")


# -- MQTT, SSE and the rest ------------------------------------------------------------------


async def test_mqtt_publishes_the_body_to_the_alarm_topic(mosquitto):
    n = note()
    host, port = mosquitto.host, mosquitto.port
    async with (
        aiomqtt.Client(host, port, identifier="notify-sub") as sub,
        aiomqtt.Client(host, port, identifier="notify-pub") as pub,
    ):
        await sub.subscribe("plant/v2/#", qos=1)

        async def publish(topic: str, payload: bytes) -> None:
            await pub.publish(topic, payload, qos=1)

        senders = Senders(smtp=SmtpSpec(), mqtt_publish=publish, topic_root="plant/v2")
        result = await senders.send(MqttChannel(), n)
        async with asyncio.timeout(5):
            message = await anext(aiter(sub.messages))
        await senders.aclose()
    assert result.status is Status.DELIVERED, result
    assert str(message.topic) == "plant/v2/t1/alarms/face1"
    assert message.payload == orjson.dumps(n.body)
    assert message.qos == 1


async def test_mqtt_failures():
    async def broken(topic: str, payload: bytes) -> None:
        raise ConnectionError("broker away")

    calls: list[str] = []

    async def record(topic: str, payload: bytes) -> None:
        calls.append(topic)

    failing = await Senders(smtp=SmtpSpec(), mqtt_publish=broken).send(MqttChannel(), note())
    assert failing == SendResult(Status.RETRY, "ConnectionError: broker away")
    missing = await Senders(smtp=SmtpSpec()).send(MqttChannel(), note())
    assert missing == SendResult(Status.PERMANENT, "no MQTT connection configured")
    bad_site = await Senders(smtp=SmtpSpec(), mqtt_publish=record).send(
        MqttChannel(), note(site="a/#")
    )
    assert bad_site.status is Status.PERMANENT and calls == []


async def test_sse():
    got: list[Notification] = []

    async def publish(n: Notification) -> None:
        got.append(n)

    async def broken(n: Notification) -> None:
        raise RuntimeError("stream closed")

    n = note()
    assert (await Senders(smtp=SmtpSpec(), sse_publish=publish).send(SseChannel(), n)).status is (
        Status.DELIVERED
    )
    assert got == [n]
    assert (await Senders(smtp=SmtpSpec()).send(SseChannel(), n)).status is Status.DELIVERED
    failed = await Senders(smtp=SmtpSpec(), sse_publish=broken).send(SseChannel(), n)
    assert failed.status is Status.RETRY and "stream closed" in failed.reason


async def test_a_body_that_is_not_json_is_permanent(webhook, senders):
    result = await senders.send(hook(webhook), note(extra={1, 2}))
    assert result.status is Status.PERMANENT
    assert webhook.requests == []


async def test_senders_work_again_after_aclose(webhook, senders):
    assert (await senders.send(hook(webhook), note("k1"))).status is Status.DELIVERED
    await senders.aclose()
    await senders.aclose()
    assert (await senders.send(hook(webhook), note("k2"))).status is Status.DELIVERED
    assert webhook.keys() == ["k1", "k2"]


def test_notification_validates_key_and_subject():
    with pytest.raises(ValueError, match="key"):
        note(key="has space")
    with pytest.raises(ValueError, match="key"):
        note(key="")
    with pytest.raises(ValueError, match="one line"):
        Notification("k", "t1", "face1", "two\nlines", {})


def test_an_event_of_an_alarm_that_reached_a_higher_tier_says_so():
    """helper-126: the overdue of an alarm that had reached red, now at blue, arrived as
    `blue ... overdue prewarn`: a centre routing or reading on the tier took it for a minor one."""
    from alerts.notify.enqueue import peak_tier
    from alerts.notify.stages import EventView

    def view(kind: str, tier: str, tiers_had: str = "") -> EventView:
        return EventView(1, 1, kind, "t1", "s", "d", "x", "load", "above", tier, "unack", True,
                         tiers_had=tiers_had)  # fmt: skip

    assert peak_tier(view("overdue", "blue", "red,blue")) == "red"
    assert peak_tier(view("raised", "yellow")) == "yellow"
    ev = {**EVENT, "kind": "overdue", "tier": "blue", "peak_tier": "red", "level_name": "prewarn"}
    text = mail_text(note(events=[ev]))
    assert "   level:      prewarn (blue; reached red)\n" in text
    assert "level:      报警 (red)\n" in mail_text(note(events=[{**EVENT, "peak_tier": "red"}]))
