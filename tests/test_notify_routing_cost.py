"""The routing's and the webhook's cheaper paths give what the plain ones gave: the subject line
made with one split (`_subject`), the registry's answers for an event's sensor remembered
(`SensorFacts`, forgotten with a new registry), the signature made from a keyed HMAC copied
per body (`sign`), and the matches remembered per kind of event (`Routing._matching`), which
spare scanning a tenant's subscriptions for every event, the scan's."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from alerts.notify.channels import sign, verify_signature
from alerts.notify.enqueue import (
    SensorFacts,
    _event_json,
    _registry_fields,
    _subject,
    sensor_kind_and_gateway,
)
from alerts.notify.routing import Routing
from alerts.notify.stages import EventView, matches
from telemetry.config import HubConfig
from telemetry.notifyconfig import SubscriptionSpec
from telemetry.registry import Registry, build_registry

# words, and the blanks a name may hold: line breaks (a name folded in YAML), tabs, the
# ideographic space, nothing at all
_TEXT = st.lists(
    st.sampled_from(
        ["", " ", "\n", "\t", "\u3000", "\r\n", "a", "华信", "化工", "tank-farm", "(+2)"]
    ),
    max_size=6,
).map("".join)


def _subject_per_part(e: dict[str, Any]) -> str:
    """The subject as it was made before: each part's words joined, the empty parts left out."""
    more = ""
    who = e.get("tenant_name") or e.get("tenant", "")
    what = e.get("location") if e.get("site") == "vehicles" and e.get("location") else e["sensor"]
    tier, peak = str(e["tier"]).upper(), str(e.get("peak_tier") or e["tier"]).upper()
    head = f"[{tier}]" if peak == tier else f"[{tier}, reached {peak}]"
    parts = [head, who, e["site"], what, e["alarm_kind"], e["level_name"], f"{e['kind']}{more}"]
    return " ".join(" ".join(str(x).split()) for x in parts if str(x).strip())


@given(
    tenant_name=_TEXT,
    tenant=_TEXT,
    site=st.one_of(_TEXT, st.just("vehicles")),
    sensor=_TEXT,
    location=_TEXT,
    alarm_kind=_TEXT,
    level_name=_TEXT,
    kind=_TEXT,
    tiers=st.tuples(*[st.sampled_from(["red", "yellow", "", "blue"])] * 2),
)
def test_the_subject_made_at_once_is_the_one_made_per_part(
    tenant_name: str,
    tenant: str,
    site: str,
    sensor: str,
    location: str,
    alarm_kind: str,
    level_name: str,
    kind: str,
    tiers: tuple[str, str],
) -> None:
    event = {
        "tenant_name": tenant_name,
        "tenant": tenant,
        "site": site,
        "sensor": sensor,
        "location": location,
        "alarm_kind": alarm_kind,
        "level_name": level_name,
        "kind": kind,
        "tier": tiers[0],
        "peak_tier": tiers[1],
    }
    assert _subject([event]) == _subject_per_part(event)
    grouped = _subject([event, event, event])
    assert "\n" not in grouped and "  " not in grouped and grouped.endswith("(+2)")


def _registry(site_name: str, location: str) -> Registry:
    sensors = [
        {
            "id": "ch4",
            "point": "p0",
            "kind": "methane",
            "location": location,
            "tag": "T0",
            "unit": "%CH4",
        },
        {"id": "co", "point": "p1", "kind": "co", "unit": "ppm"},
    ]
    config = HubConfig.model_validate(
        {
            "device_profiles": [
                {
                    "name": "p",
                    "points": [{"name": "p0", "address": 0}, {"name": "p1", "address": 1}],
                }
            ],
            "tenants": [
                {
                    "id": "t",
                    "name": "北方煤业",
                    "sites": [
                        {
                            "id": "s",
                            "name": site_name,
                            "kind": "mine",
                            "devices": [
                                {
                                    "id": "d",
                                    "name": "KJ 3",
                                    "profile": "p",
                                    "gateway": "gw7",
                                    "sensors": sensors,
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )
    return build_registry(config)


def _view(sensor: str, alarm_kind: str, device: str = "d") -> EventView:
    return EventView(1, 1, "raised", "t", "s", device, sensor, "", alarm_kind, "red", "unack", True)


_RAW = {
    "event_id": 1,
    "alarm_id": 1,
    "level": 2,
    "level_name": "high",
    "action": "",
    "value": 1.5,
    "ts": 5,
    "arrival": 6,
    "disposal": "received",
    "actor": None,
    "comment": "",
}
_CASES = [
    ("ch4", "above", "d"),
    ("ch4", "no_data", "d"),
    ("co", "above", "d"),
    ("co", "action_failed", "d"),
    ("device:d", "no_data", "d"),
    ("gateway:gw7", "no_data", "gw7"),
    ("ch4", "above", "elsewhere"),  # a sensor id whose device is now another: none of its facts
    ("gone", "above", "d"),
]


def test_the_facts_remembered_are_the_registrys_and_a_new_registry_forgets_them() -> None:
    facts = SensorFacts()
    old = _registry("1301 综采工作面", "upper corner")
    for reg in (old, old):  # asked twice: the second time remembered
        for sensor, kind, device in _CASES:
            view = _view(sensor, kind, device)
            plain = sensor_kind_and_gateway(reg, "t", "s", device, sensor)
            assert facts.kind_and_gateway(reg, "t", "s", device, sensor) == plain
            assert facts.fields(reg, view) == _registry_fields(reg, view)
            assert _event_json(_RAW, view, reg, facts) == _event_json(_RAW, view, reg)
    assert facts.kind_and_gateway(old, "t", "s", "d", "ch4") == ("methane", "gw7")
    assert facts.kind_and_gateway(old, "t", "s", "gw7", "gateway:gw7") == ("gateway", "gw7")
    assert facts.fields(old, _view("ch4", "above")) == (
        "北方煤业",
        "1301 综采工作面",
        "KJ 3",
        "upper corner",
        "T0",
        "%CH4",
    )
    # a hot reload renamed the site and moved the sensor: the new registry's answers, at once
    new = _registry("1302 掘进工作面", "return airway")
    assert facts.fields(new, _view("ch4", "above"))[1:4] == (
        "1302 掘进工作面",
        "KJ 3",
        "return airway",
    )
    body = _event_json(_RAW, _view("ch4", "above"), new, facts)
    assert (body["site_name"], body["location"]) == ("1302 掘进工作面", "return airway")


@given(secret=st.one_of(st.text(max_size=80), st.just("s\ud800")), body=st.binary(max_size=300))
def test_the_signature_is_the_hmac_of_the_body_with_the_secret(secret: str, body: bytes) -> None:
    key = secret.encode("utf-8", "surrogatepass")
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert sign(secret, body) == expected
    assert sign(secret, body + b"x") != expected  # the keyed state is copied, never fed
    assert sign(secret, body) == expected
    if secret:
        assert verify_signature(secret, body, expected)


# the routing's remembered matches (`Routing._matching`) against the plain scan of a tenant's
# subscriptions (`matches`): whatever order the events come in, each gets the scan's answer
# (few values each: events alike in all but one field come often, as in a busy journal)
_SITES = st.sampled_from(["s1", "s2"])
_KINDS = st.sampled_from(["methane", "device"])
_TIERS = st.sampled_from(["yellow", "orange", "red"])
_ALARM_KINDS = st.sampled_from(["above", "no_data"])
_EVENTS = st.sampled_from(["raised", "cleared", "deescalated", "unshelved", "overdue"])
_SUBS = st.lists(
    st.fixed_dictionaries(
        {
            "sites": st.lists(_SITES, max_size=2),
            "sensor_kinds": st.lists(_KINDS, max_size=2),
            "tiers": st.lists(_TIERS, max_size=2),
            "alarm_kinds": st.lists(_ALARM_KINDS, max_size=2),
            "events": st.lists(_EVENTS, min_size=1, max_size=3),
            "enabled": st.booleans(),
        }
    ),
    max_size=12,
)
_VIEWS = st.lists(
    st.builds(
        lambda site, kind, tier, alarm_kind, event, state, active, had: EventView(
            1, 1, event, "t", site, "d", "x", kind, alarm_kind, tier, state, active, "", had
        ),
        _SITES,
        _KINDS,
        _TIERS,
        _ALARM_KINDS,
        _EVENTS,
        st.sampled_from(["unack", "normal"]),
        st.booleans(),
        st.lists(_TIERS, max_size=3).map(",".join),
    ),
    min_size=1,
    max_size=60,
)


_YELLOW_CLEAR = EventView(
    1, 1, "cleared", "t", "s1", "d", "x", "methane", "above", "yellow", "normal", False
)


@given(subs=_SUBS, views=_VIEWS)
@example(  # a yellow alarm's clear remembered as no match for a red one's (helper-146)
    subs=[
        {
            "sites": [],
            "sensor_kinds": [],
            "tiers": ["red"],
            "alarm_kinds": [],
            "events": ["cleared"],
            "enabled": True,
        }
    ],
    views=[_YELLOW_CLEAR, _YELLOW_CLEAR._replace(tiers_had="red,yellow")],
)
def test_the_remembered_matches_are_the_scans(subs: list[dict[str, Any]], views: list[Any]) -> None:
    specs = tuple(
        SubscriptionSpec.model_validate(
            {
                "id": f"sub{i}",
                "enabled": s.pop("enabled"),
                "match": s,
                "channel": {"type": "sse"},
            }
        )
        for i, s in enumerate(subs)
    )

    class Catalog:
        def __init__(self) -> None:
            self.subs = {"t": specs}

    routing = Routing()
    routing.catalog = Catalog()  # type: ignore[assignment]
    routing._matched = {}
    for view in views + views:  # the second time: every answer remembered
        scan = tuple(s for s in specs if matches(s, "t", view))
        assert routing._matching(view) == scan
