"""What the notification pipeline says of its failures: a step failing over and over (a full
disk) is logged once with its traceback, then once a minute in one line (helper-149: a 30-line
traceback every 0.5 s, 300 MB of log a day); a subscription failing is said at its first try."""

from __future__ import annotations

import logging

from alerts.notify.faultlog import FailingSubscriptions, RepeatedFailure


def test_a_step_failing_for_ever_is_said_once_then_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger="alerts.notify")
    now = [0]
    step = RepeatedFailure("notification pipeline step", lambda: now[0])
    error = OSError(28, "No space left on device")
    for _ in range(120):  # a minute of a try every 0.5 s
        step.failed(error)
        now[0] += 500
    step.failed(error)
    lines = [r for r in caplog.records if r.name == "alerts.notify"]
    assert [r.exc_info is not None for r in lines] == [True, False]
    assert "still failing (120 more times in 60 s)" in lines[1].getMessage()
    assert "No space left on device" in lines[1].getMessage()
    step.worked()
    step.worked()  # said once
    assert [r.getMessage() for r in caplog.records][2:] == [
        "notification pipeline step works again after 60 s of failures"
    ]
    step.failed(error)  # a new run of failures: its traceback again
    assert caplog.records[-1].exc_info is not None


def test_a_failing_subscription_is_said_at_its_first_try_and_when_it_delivers_again(caplog):
    caplog.set_level(logging.INFO, logger="alerts.notify")
    now = [0]
    failing = FailingSubscriptions(lambda: now[0])
    for _ in range(5):
        failing.failed("acme/city", "webhook", "ConnectError: refused", 86400)
        failing.failed("acme/mail", "email", "SMTPServerDisconnected", 86400)
        now[0] += 2000
    assert len(failing) == 2
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "notifications of subscription acme/city (webhook) failing: ConnectError: refused; "
        "retried with backoff, given up after 86400 s",
        "notifications of subscription acme/mail (email) failing: SMTPServerDisconnected; "
        "retried with backoff, given up after 86400 s",
    ]
    failing.delivered("acme/city")
    failing.delivered("acme/city")  # said once
    assert caplog.records[-1].getMessage() == (
        "notifications of subscription acme/city delivered again after 5 failed tries in 10 s"
    )
    assert len(caplog.records) == 3 and len(failing) == 1
