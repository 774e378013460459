"""The MQTT topic layout: build/parse round trips, segment rules, custom roots, foreign topics."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.errors import TelemetryError, TopicError
from telemetry.topics import (
    DEFAULT_ROOT,
    AlarmTopic,
    GatewayStatusTopic,
    PositionTopic,
    TelemetryTopic,
    TopicLayout,
    VehicleInfoTopic,
    check_segment,
)

# The documented rule, written independently of the module: 1-64 of A-Z a-z 0-9 _ . - starting
# with a letter or digit (fullmatch: no trailing newline, no other character).
_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESERVED = ("vehicles", "gateways", "alarms")

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
segments = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_ALNUM),
    st.text(alphabet=_ALNUM + "_.-", max_size=63),
)
sites = segments.filter(lambda s: s not in RESERVED)
roots = st.lists(
    st.text(
        st.characters(blacklist_characters="/+#", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=4,
).map("/".join)

L = TopicLayout()


def mqtt_match(filt: str, topic: str) -> bool:
    """MQTT 3.1.1 topic filter matching (+ one level, # the rest), for checking subscriptions."""
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


# --- building ------------------------------------------------------------------------------------


def test_golden_topics_of_the_default_root() -> None:
    assert DEFAULT_ROOT == "hazardhub/v1"
    assert L.telemetry("acme", "tank-farm", "rtu1") == "hazardhub/v1/acme/tank-farm/rtu1/telemetry"
    assert L.position("acme", "tanker-01") == "hazardhub/v1/acme/vehicles/tanker-01/position"
    assert L.gateway_status("acme", "gw1") == "hazardhub/v1/acme/gateways/gw1/status"
    assert L.alarms("acme", "tank-farm") == "hazardhub/v1/acme/alarms/tank-farm"


@given(segments, sites, segments)
def test_telemetry_round_trip(tenant: str, site: str, device: str) -> None:
    topic = L.telemetry(tenant, site, device)
    assert L.parse(topic) == TelemetryTopic(tenant, site, device)


@given(segments, segments)
def test_position_round_trip(tenant: str, vehicle: str) -> None:
    assert L.parse(L.position(tenant, vehicle)) == PositionTopic(tenant, vehicle)


@given(segments, segments)
def test_gateway_status_round_trip(tenant: str, gateway: str) -> None:
    assert L.parse(L.gateway_status(tenant, gateway)) == GatewayStatusTopic(tenant, gateway)


@given(segments, sites)
def test_alarm_round_trip(tenant: str, site: str) -> None:
    assert L.parse(L.alarms(tenant, site)) == AlarmTopic(tenant, site)


@settings(max_examples=50)
@given(roots, segments, sites, segments)
def test_round_trip_under_custom_roots(root: str, tenant: str, site: str, device: str) -> None:
    layout = TopicLayout(root)
    topic = layout.telemetry(tenant, site, device)
    assert topic.startswith(root + "/")
    assert layout.parse(topic) == TelemetryTopic(tenant, site, device)
    assert layout.parse(layout.position(tenant, device)) == PositionTopic(tenant, device)
    assert layout.parse(layout.vehicle_info(tenant, device)) == VehicleInfoTopic(tenant, device)
    assert layout.parse(layout.gateway_status(tenant, device)) == GatewayStatusTopic(tenant, device)
    assert layout.parse(layout.alarms(tenant, site)) == AlarmTopic(tenant, site)


@given(segments, sites, segments)
def test_subscriptions_cover_exactly_what_the_hub_consumes(
    tenant: str, site: str, device: str
) -> None:
    filters = L.subscriptions()
    consumed = (
        L.telemetry(tenant, site, device),
        L.position(tenant, device),
        L.vehicle_info(tenant, device),
        L.gateway_status(tenant, device),
        L.gateway_dropped(tenant, device),
        L.gateway_supervision(tenant, device),
    )
    # each topic the hub consumes is matched by its own filter and no other
    for i, topic in enumerate(consumed):
        assert [mqtt_match(f, topic) for f in filters] == [j == i for j in range(len(filters))]
    for other in (
        L.alarms(tenant, site),
        L.vehicle_command(tenant, device),
    ):
        assert not any(mqtt_match(f, other) for f in filters)


def test_subscriptions_follow_a_custom_root() -> None:
    assert TopicLayout("site-a/hh").subscriptions() == (
        "site-a/hh/+/+/+/telemetry",
        "site-a/hh/+/vehicles/+/position",
        "site-a/hh/+/vehicles/+/info",
        "site-a/hh/+/gateways/+/status",
        "site-a/hh/+/gateways/+/dropped",
        "site-a/hh/+/gateways/+/supervision",
    )


# --- segment rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "+",
        "#",
        "a+b",
        "a#",
        "a/b",
        "/a",
        "a/",
        "_lead",
        "-lead",
        ".lead",
        "with space",
        "ümlaut",
        "x" * 65,
        "tab\tx",
        "a\x00b",
    ],
)
def test_check_segment_rejects(bad: str) -> None:
    with pytest.raises(TopicError, match=r"tenant .* is not a valid topic level"):
        check_segment(bad, "tenant")


@pytest.mark.parametrize("good", ["a", "0", "A.b-c_d", "x" * 64, "9lives", "tank1-rtu"])
def test_check_segment_accepts_and_returns(good: str) -> None:
    assert check_segment(good, "device") == good


@given(st.text(max_size=70).filter(lambda s: not s.endswith("\n")))
def test_check_segment_agrees_with_the_documented_rule(value: str) -> None:
    # a trailing newline is pinned separately by the test below
    ok = _RULE.fullmatch(value) is not None
    try:
        check_segment(value, "site")
    except TopicError:
        assert not ok
    else:
        assert ok


def test_check_segment_rejects_trailing_newline() -> None:
    with pytest.raises(TopicError):
        check_segment("abc\n", "tenant")
    with pytest.raises(TopicError):
        L.parse("hazardhub/v1/acme\n/site/dev/telemetry")


@pytest.mark.parametrize("bad", ["a+b", "a#b", "a/b", "", "-x"])
@pytest.mark.parametrize(
    ("builder", "position"),
    [
        ("telemetry", 0),
        ("telemetry", 1),
        ("telemetry", 2),
        ("position", 0),
        ("position", 1),
        ("gateway_status", 0),
        ("gateway_status", 1),
        ("alarms", 0),
        ("alarms", 1),
    ],
)
def test_builders_reject_bad_segments(builder: str, position: int, bad: str) -> None:
    args = ["acme", "site1", "dev1"][: 3 if builder == "telemetry" else 2]
    args[position] = bad
    with pytest.raises(TopicError, match="not a valid topic level"):
        getattr(L, builder)(*args)


@pytest.mark.parametrize("reserved", RESERVED)
def test_reserved_site_names_are_rejected_for_telemetry(reserved: str) -> None:
    with pytest.raises(TopicError, match=f"site id '{reserved}' is reserved"):
        L.telemetry("acme", reserved, "dev1")


def test_reserved_words_are_fine_as_tenant_or_device() -> None:
    topic = L.telemetry("vehicles", "site", "alarms")
    assert L.parse(topic) == TelemetryTopic("vehicles", "site", "alarms")


# --- roots ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("root", ["", "a//b", "a/", "/a", "a/+/b", "#", "a/b#", "+"])
def test_bad_roots_are_rejected(root: str) -> None:
    with pytest.raises(TopicError, match="topic root"):
        TopicLayout(root)


def test_layout_is_frozen() -> None:
    with pytest.raises(AttributeError):
        L.root = "x"  # type: ignore[misc]


# --- parsing foreign topics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "pattern"),
    [
        ("other/v1/acme/site/dev/telemetry", "is not under the root"),
        ("hazardhub/v2/acme/site/dev/telemetry", "is not under the root"),
        ("hazardhub/v1", "is not under the root"),
        ("hazardhub/v1x/acme/site/dev/telemetry", "is not under the root"),
        ("hazardhub/v1/acme/site/dev/status", "matches no topic"),
        ("hazardhub/v1/acme/site/dev/telemetry/extra", "matches no topic"),
        ("hazardhub/v1/acme/site/telemetry", "matches no topic"),
        ("hazardhub/v1/acme/vehicles/v1/telemetry", "matches no topic"),
        ("hazardhub/v1/acme/gateways/gw1/telemetry", "matches no topic"),
        ("hazardhub/v1/acme/alarms/x/telemetry", "matches no topic"),
        ("hazardhub/v1/acme/vehicles/v1/status", "matches no topic"),
        ("hazardhub/v1/acme/gateways/gw1/position", "matches no topic"),
        ("hazardhub/v1/acme/alarms", "matches no topic"),
        ("hazardhub/v1/acme/alarms/site/extra", "matches no topic"),
        ("hazardhub/v1/", "matches no topic"),
        ("hazardhub/v1/acme/site//telemetry", "device '' is not a valid topic level"),
        ("hazardhub/v1/acme/site+/dev/telemetry", "site 'site\\+' is not a valid"),
        ("hazardhub/v1/#/vehicles/v/position", "tenant '#' is not a valid"),
        ("hazardhub/v1/acme/vehicles/v 1/position", "vehicle 'v 1' is not a valid"),
        ("hazardhub/v1/acme/gateways/-gw/status", "gateway '-gw' is not a valid"),
        ("hazardhub/v1/acme/alarms/_s", "site '_s' is not a valid"),
    ],
)
def test_parse_rejects_foreign_topics(topic: str, pattern: str) -> None:
    with pytest.raises(TopicError, match=pattern):
        L.parse(topic)


def test_parse_respects_custom_root() -> None:
    layout = TopicLayout("plant7/hh")
    assert layout.parse("plant7/hh/t/s/d/telemetry") == TelemetryTopic("t", "s", "d")
    with pytest.raises(TopicError, match="not under the root 'plant7/hh'"):
        layout.parse("hazardhub/v1/t/s/d/telemetry")


def test_topic_error_is_a_telemetry_error() -> None:
    with pytest.raises(TelemetryError):
        L.parse("nope")
