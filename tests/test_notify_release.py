"""Alarms held back by a gateway's offline or a device's comm-loss alarm, told as `released` when
that one clears: exactly the holds recorded, once, in the group window, without the repeat due
on top, after a restart of the pipeline, and not when acknowledged, cleared or silenced (real
SQLite, injected clock)."""

from __future__ import annotations

from alerts.gatewayalarms import DataLoss
from alerts.gateways import GatewayChange
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.notifyconfig import SilenceSpec
from telemetry.quality import Quality
from telemetry.registry import build_registry

from e2e_helpers import ROOT
from notify_rig import Rig, told

GATEWAY = "gateway:north-coal/face-1301/gw1"
DEVICE = "device:north-coal/face-1301/kj-sub-3"
POINTS = ("ch4-t0", "ch4-t1", "ch4-t2", "co", "feed")
WATCHED = [f"ch4-t{i}" for i in range(3)] + ["co"]  # feed has no rules: it raises nothing


def gateway(rig: Rig, offline: bool) -> None:
    rig.book.apply_gateways(
        [GatewayChange("north-coal", "face-1301", "gw1", offline, rig.now)], rig.now
    )


def silent(rig: Rig, *points: str) -> None:
    for sid in points or POINTS:
        rig.feed(sid, [float("nan")], quality=int(Quality.COMM_LOSS))


async def test_a_gateway_and_its_device_clearing_together_release_each_point_once(rig):
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    gateway(rig, True)
    silent(rig)
    assert told(await rig.pump(), "comm") == [(GATEWAY, "raised")]
    # the gateway is back and its device reports at once: one sensor answers (the device's
    # alarm clears), the other points stay silent. The clears of alarms never told (that
    # sensor's, the device's) are not told either
    gateway(rig, False)
    rig.feed("co", [5.0])
    got = told(await rig.pump(1), "comm")
    assert sorted(got) == sorted(
        [(GATEWAY, "cleared"), *[(p, "released") for p in WATCHED if p != "co"]]
    )
    assert await rig.pump(600) == []


async def test_the_release_joins_the_group_window_and_replaces_the_repeat_due(rig):
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]}, group_window_s=30, repeat_s=100)
    gateway(rig, True)
    silent(rig)
    assert told(await rig.pump(), "comm") == [(GATEWAY, "raised")]
    # 250 s down: the gateway's alarm repeats; its device's, held, does not
    notes = [n for _ in range(5) for n in await rig.pump(50)]
    assert told(notes, "comm") == [(GATEWAY, "repeat")] * 2
    # back, the device still silent: the clear goes at once and opens the window, the released
    # device alarm goes with the window's group; the repeat due now (its second) does not go
    # on top of it
    gateway(rig, False)
    notes = await rig.pump(1) + await rig.pump(30)
    assert told(notes, "comm") == [(GATEWAY, "cleared"), (DEVICE, "released")]
    assert len(notes) == 2
    # the repeats go on from there
    assert told(await rig.pump(30), "comm") == [(DEVICE, "repeat")]


async def test_a_lagging_routing_releases_only_what_it_held(rig, monkeypatch):
    """Routed a few events at a time, after the gateway came back: the device's alarm was told
    when raised (the gateway was back by the time it was routed), so it is not released."""
    monkeypatch.setattr("alerts.notify.notifier._ROUTE_BATCH", 2)
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    gateway(rig, True)
    silent(rig)
    gateway(rig, False)
    rig.feed("co", [5.0])
    got = [e for _ in range(40) for e in told(await rig.pump(), "comm")]
    for alarm in (DEVICE, *WATCHED):
        assert len([k for s, k in got if s == alarm and k in ("raised", "released")]) <= 1, got
    assert (GATEWAY, "cleared") in got
    assert await rig.pump(600) == []


async def test_holds_outlive_a_restart_and_a_reload_that_moves_the_device(rig):
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    gateway(rig, True)
    silent(rig)
    await rig.pump()
    rig.notifier.close()
    rig.notifier = rig.new_notifier()  # the hub restarted: holds are in the outbox database
    # and a reload moved the device to another gateway while gw1 was away
    data = rig.reg.config.model_dump(mode="json", by_alias=True)
    data["tenants"][0]["sites"][0]["devices"][0]["gateway"] = "gw2"
    profiles, packs = load_profiles(ROOT / "profiles")
    rig.notifier.set_registry(
        build_registry(HubConfig.model_validate(data), profiles, packs, "moved.yaml")
    )
    gateway(rig, False)
    notes = await rig.pump(1)
    assert told(notes, "comm") == [(GATEWAY, "cleared"), (DEVICE, "released")]


async def test_acknowledged_cleared_or_silenced_alarms_are_not_released(rig):
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    gateway(rig, True)
    silent(rig)
    await rig.pump()
    device = next(a for a in rig.db.list_alarms(None, state="active") if a.sensor == DEVICE)
    rig.desk.act(device.id, "acknowledge", actor="op", now=rig.now)
    gateway(rig, False)
    assert told(await rig.pump(1), "comm") == [(GATEWAY, "cleared")]
    # again: this time the point reports before the gateway is back (cleared), and a silence
    # holds what is left
    gateway(rig, True)
    rig.feed("co", [5.0])
    silent(rig, "co")
    await rig.pump(1)
    rig.feed("co", [5.0])
    rig.notifier.put(
        "silence",
        "north-coal",
        SilenceSpec(
            id="s",
            comment="work",
            sites=("face-1301",),
            starts=rig.now - 1,
            ends=rig.now + 9_000_000,
        ),
        "op",
    )
    gateway(rig, False)
    got = told(await rig.pump(1), "comm")
    assert [k for _, k in got if k == "released"] == []


async def test_a_devices_data_lost_does_not_end_the_holds_of_its_comm_loss(rig):
    """A drop report of a device in comm loss records its data_lost alarm (raised and cleared
    at once, on the same `device:` point): that clear is not the comm loss clearing, so the
    holds stay, and the points still silent are told when the device's comm loss clears
    (helper-63)."""
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    silent(rig)
    assert told(await rig.pump(), "comm") == [(DEVICE, "raised")]
    # a silence on the site meanwhile (maintenance), and the report
    work = SilenceSpec(
        id="w", comment="work", sites=("face-1301",), starts=rig.now - 1, ends=rig.now + 10**7
    )
    rig.notifier.put("silence", "north-coal", work, "op")
    loss = DataLoss("north-coal", "face-1301", "kj-sub-3", DEVICE, "gw1", 3, 9, 1, 2, "full")
    rig.book.record_losses([loss], rig.now)
    assert told(await rig.pump(1), "comm") == []  # data_lost is no no_data: not this subscription's
    assert len(rig.notifier.outbox.query("SELECT * FROM held")) == len(WATCHED)
    rig.notifier.delete("silence", "north-coal", "w")
    rig.feed("co", [5.0])  # the device answers again: its comm loss clears
    got = told(await rig.pump(1), "comm")
    assert got == [(DEVICE, "cleared"), *[(p, "released") for p in WATCHED if p != "co"]]


async def test_no_repeat_of_an_alarm_held_while_its_release_waits_to_be_routed(rig):
    """The device's comm loss has cleared in the state database but the routing has not caught
    up yet: the repeats due meanwhile skip the alarms still held from the subscription (it was
    never told of them); the release then tells each once (helper-63)."""
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]}, repeat_s=60)
    silent(rig)
    assert told(await rig.pump(), "comm") == [(DEVICE, "raised")]
    rig.feed("co", [5.0])  # the device's comm loss clears: not routed yet
    rig.now += 61_000
    rig.notifier.timers()
    while await rig.notifier.deliver_due():
        pass
    assert told(rig.sent[1:], "comm") == []
    got = told(await rig.pump(), "comm")
    assert got == [(DEVICE, "cleared"), *[(p, "released") for p in WATCHED if p != "co"]]


async def test_a_device_told_before_its_gateway_went_offline_is_told_when_it_clears(rig):
    """helper-178's drill: a gateway stopped; each device's comm loss was raised (and told) a
    second before the gateway's offline alarm, and cleared beside it when the gateway came
    back, while the gateway's alarm was still active: the clear was held back as explained by
    the gateway, and the duty desk kept three device outages that had ended. An end is told to
    whoever was told of the raise."""
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    silent(rig)
    assert told(await rig.pump(), "comm") == [(DEVICE, "raised")]
    gateway(rig, True)
    assert told(await rig.pump(1), "comm") == [(GATEWAY, "raised")]
    rig.feed("co", [5.0])  # the device answers before the gateway's alarm is cleared
    assert (DEVICE, "cleared") in told(await rig.pump(1), "comm")
    gateway(rig, False)
    assert (GATEWAY, "cleared") in told(await rig.pump(1), "comm")
