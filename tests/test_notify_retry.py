"""A dead notification sent again by hand (`POST /notifications/{id}/retry`) goes through its
subscription's channel as configured now: an integrator who fixed a wrong secret or a moved URL
and retries gets it delivered and signed with the new secret, under the same idempotency key
(found in a role-play: it was re-sent with the old secret and died again)."""

from __future__ import annotations

from telemetry.notifyconfig import EscalationPolicySpec

from receivers import WebhookReceiver


async def test_a_dead_notification_goes_again_with_the_secret_set_since(rig):
    with WebhookReceiver(secret="right") as receiver:
        receiver.respond_with(401)  # the receiver refuses what the wrong secret signed
        hook = {"type": "webhook", "url": receiver.url, "secret": "wrong"}
        rig.subscribe(id="ews", channel=hook)
        rig.feed("ch4-t1", [0.3, 1.1])
        await rig.pump()
        (first,) = receiver.requests
        assert first.signature_ok is False
        ((row_id, key, *_),) = rig.notifier.store.outbox(None, "dead")

        receiver.respond_with(200)
        rig.subscribe(id="ews", channel={**hook, "secret": "right"})
        row = rig.notifier.store.retry_dead(row_id, None, rig.now, rig.notifier.channel_now)
        assert row is not None and not isinstance(row, str)
        assert (row[1], row[9]) == (key, "pending")
        assert row[10] == "sent again by hand, with its channel as configured now"
        await rig.pump()
        again = receiver.requests[1]
        assert again.signature_ok is True and again.key == first.key
        assert rig.notifier.store.outbox(None, "dead") == []


async def test_an_escalation_steps_row_takes_its_step_as_configured_now(rig):
    with WebhookReceiver(secret="right") as receiver:
        receiver.respond_with(401)
        step = {"after_s": 60, "channel": {"type": "webhook", "url": receiver.url, "secret": "x"}}
        policy = EscalationPolicySpec.model_validate({"id": "boss", "steps": [step]})
        rig.notifier.put("escalation", "north-coal", policy, "op")
        rig.subscribe(id="duty", escalation="boss", match={"events": ["escalation"]})
        rig.feed("ch4-t1", [0.3, 1.1])
        await rig.pump()
        await rig.pump(61)
        ((row_id, key, *_),) = rig.notifier.store.outbox(None, "dead")
        assert ":x" in key and receiver.requests[0].signature_ok is False

        receiver.respond_with(200)
        fixed = {**step, "channel": {**step["channel"], "secret": "right"}}
        rig.notifier.put(
            "escalation",
            "north-coal",
            EscalationPolicySpec.model_validate({"id": "boss", "steps": [fixed]}),
            "op",
        )
        rig.notifier.store.retry_dead(row_id, None, rig.now, rig.notifier.channel_now)
        await rig.pump()
        assert receiver.requests[-1].signature_ok is True
        assert receiver.requests[-1].key == receiver.requests[0].key


async def test_a_row_whose_subscription_is_gone_goes_with_the_channel_it_was_made_with(rig):
    with WebhookReceiver(secret="right") as receiver:
        receiver.respond_with(503)
        rig.subscribe(id="ews", channel={"type": "webhook", "url": receiver.url, "secret": "right"})
        rig.feed("ch4-t1", [0.3, 1.1])
        await rig.pump()
        rig.notifier.store.settle(
            [(r[0], "dead", 1, "HTTP 503", None) for r in rig.notifier.store.outbox(None)]
        )
        ((row_id, *_),) = rig.notifier.store.outbox(None, "dead")
        rig.notifier.delete("subscription", "north-coal", "ews")
        receiver.respond_with(200)
        row = rig.notifier.store.retry_dead(row_id, None, rig.now, rig.notifier.channel_now)
        assert row is not None and not isinstance(row, str)
        assert row[10] == "sent again by hand, with the channel it was made with"
        await rig.pump()
        assert receiver.requests[-1].signature_ok is True


async def test_a_step_that_names_another_receiver_now_or_a_disabled_subscription_goes_as_made(rig):
    """A policy edited since may hold another contact at the row's step (the director instead
    of the shift leader): the row goes to whom it was made for. A subscription disabled since is
    not in force: as made too."""
    with WebhookReceiver(secret="s") as leader, WebhookReceiver(secret="s") as director:
        leader.respond_with(503)
        step = {"after_s": 60, "channel": {"type": "webhook", "url": leader.url, "secret": "s"}}
        policy = EscalationPolicySpec.model_validate({"id": "boss", "steps": [step]})
        rig.notifier.put("escalation", "north-coal", policy, "op")
        rig.subscribe(id="duty", escalation="boss", match={"events": ["escalation"]})
        rig.feed("ch4-t1", [0.3, 1.1])
        await rig.pump()
        await rig.pump(61)
        rows = rig.notifier.store.outbox(None)
        rig.notifier.store.settle([(r[0], "dead", 1, "HTTP 503", None) for r in rows])
        ((row_id, key, *_),) = [r for r in rows if ":x" in r[1]]
        other = {**step, "channel": {**step["channel"], "url": director.url}}
        rig.notifier.put(
            "escalation",
            "north-coal",
            EscalationPolicySpec.model_validate({"id": "boss", "steps": [other]}),
            "op",
        )
        leader.respond_with(200)
        row = rig.notifier.store.retry_dead(row_id, None, rig.now, rig.notifier.channel_now)
        assert row is not None and not isinstance(row, str)
        assert row[10] == "sent again by hand, with the channel it was made with"
        await rig.pump()
        assert director.requests == [] and leader.requests[-1].key.startswith(key.split("@")[0])

        # the subscription disabled since: as made
        rig.subscribe(
            id="duty",
            escalation="boss",
            enabled=False,
            channel={"type": "webhook", "url": director.url, "secret": "s"},
        )
        rig.notifier.store.settle([(row_id, "dead", 2, "HTTP 503", None)])
        row = rig.notifier.store.retry_dead(row_id, None, rig.now, rig.notifier.channel_now)
        assert row is not None and not isinstance(row, str)
        assert row[10] == "sent again by hand, with the channel it was made with"
