"""`?sensor=` and the other filters naming one object, on every route that takes them: an id the
key does not see (none of that name, or another enterprise's) is 404 naming it, the same answer
either way; never 200 with an empty list that reads as "no reading" or "no alarms". `/latest`
takes several sensors, repeated or as a comma list (as `isa_state=`, `tier=` and `kinds=` take
theirs); a filter of one value given twice is 422, never its last value alone.
"""

from __future__ import annotations

import numpy as np
from test_api_alarms import CHEM, COAL, Hub, hub

from ingest.store.base import ReadingBatch

__all__ = ["hub"]  # the fixture, imported for the tests here


async def readings(hub: Hub, ids: list[str]) -> None:
    """A reading of each sensor, now."""
    index = [hub.reg.sensor(s).index for s in ids]  # type: ignore[union-attr]
    n = len(ids)
    await hub.store.write_readings(
        ReadingBatch(
            np.asarray(index, np.int32),
            np.full(n, hub.ts, np.int64),
            np.arange(n, dtype=np.float64) / 10,
            np.zeros(n, np.uint8),
            np.zeros(n, np.int64),
            np.arange(n, dtype=np.int64),
        )
    )


async def test_latest_of_an_unknown_or_unseen_sensor_is_404_naming_it(hub: Hub) -> None:
    await readings(hub, ["ch4-t1", "co", "tanker-01.speed"])
    for who, params, named in (
        ("op", {"sensor": "bogus"}, "sensor 'bogus' not found"),
        # another enterprise's sensor: the same answer as none of that name
        ("chem", {"sensor": "ch4-t1"}, "sensor 'ch4-t1' not found"),
        ("coal", {"sensor": "tanker-01.speed"}, "sensor 'tanker-01.speed' not found"),
        # one of the key's tenants, but not the one asked for
        ("op", {"sensor": "ch4-t1", "tenant": CHEM}, "sensor 'ch4-t1' not found"),
        # of the key's, at another site
        ("op", {"sensor": "ch4-t1", "site": "vehicles"}, "sensor 'ch4-t1' at site 'vehicles'"),
        # one unknown among known ones: the whole question is 404, naming it alone
        ("coal", {"sensor": ["co", "nope"]}, "sensor 'nope' not found"),
        ("coal", {"sensor": "co,nope,ch4-t9"}, "sensors 'nope', 'ch4-t9' not found"),
    ):
        r = await hub.get("/latest", who, params=params)
        assert r.status_code == 404, (who, params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert named in r.json()["detail"], (who, params, r.text)
        assert "north-coal" not in r.text and "acme-chem" not in r.text, r.text
    # an id far longer than any id is named cut short
    r = await hub.get("/latest", "coal", params={"sensor": "x" * 10_000})
    assert r.status_code == 404 and len(r.text) < 500, r.text


async def test_latest_takes_several_sensors_repeated_or_as_a_comma_list(hub: Hub) -> None:
    await readings(hub, ["ch4-t1", "co", "tanker-01.speed"])
    for params in (
        {"sensor": "co,ch4-t1"},
        {"sensor": ["co", "ch4-t1"]},
        {"sensor": ["co", "ch4-t1,co"]},  # each once, in the order first asked
    ):
        r = await hub.get("/latest", "coal", params=params)
        assert r.status_code == 200, (params, r.text)
        assert [x["sensor"] for x in r.json()] == ["co", "ch4-t1"], params
    # a sensor the key sees without a reading yet is no error: it has none to give
    r = await hub.get("/latest", "coal", params={"sensor": "feed,co"})
    assert [x["sensor"] for x in r.json()] == ["co"]
    r = await hub.get("/latest", "op", params={"sensor": "tanker-01.speed,co", "tenant": COAL})
    assert r.status_code == 404 and "'tanker-01.speed'" in r.json()["detail"]
    r = await hub.get("/latest", "op", params={"sensor": "tanker-01.speed,co"})
    assert [x["sensor"] for x in r.json()] == ["tanker-01.speed", "co"]


async def test_a_filter_of_one_value_given_twice_is_422(hub: Hub) -> None:
    """`site=a&site=b` answered site b's rows alone, as if both were asked."""
    hub.raise_alarm("ch4-t1")
    hub.raise_alarm("tanker-01.speed", 90)
    for path, params in (
        ("/alarms", [("sensor", "ch4-t1"), ("sensor", "tanker-01.speed")]),
        ("/alarms", [("site", "face-1301"), ("site", "vehicles")]),
        ("/alarms", [("tenant", COAL), ("tenant", CHEM)]),
        ("/sensors", [("site", "face-1301"), ("site", "vehicles")]),
        ("/latest", [("tenant", COAL), ("tenant", CHEM)]),
        ("/handover", [("site", "face-1301"), ("site", "vehicles")]),
    ):
        r = await hub.get(path, "op", params=params)
        assert r.status_code == 422, (path, params, r.text)
        name = params[0][0]
        assert f"['{name}'] given more than once" in r.json()["detail"], r.text
    # one value each is answered as before
    r = await hub.get("/alarms", "op", params=[("sensor", "ch4-t1"), ("site", "face-1301")])
    assert r.status_code == 200 and [a["sensor"] for a in r.json()] == ["ch4-t1"]


async def test_the_alarm_list_takes_one_sensor_and_says_so_for_a_comma_list(hub: Hub) -> None:
    hub.raise_alarm("ch4-t1")
    r = await hub.get("/alarms", "op", params={"sensor": "ch4-t1,co"})
    assert r.status_code == 422, r.text
    assert "one sensor id here" in r.json()["detail"], r.text
    for who, sensor in (("op", "bogus"), ("chem", "ch4-t1")):
        r = await hub.get("/alarms", who, params={"sensor": sensor})
        assert r.status_code == 404 and f"sensor {sensor!r} not found" in r.json()["detail"]


async def test_the_sensor_list_refuses_a_kind_that_is_not_one(hub: Hub) -> None:
    """`/sensors?kind=bogus` answered 200 [] (no such sensors) where the kind does not exist:
    a misspelt filter read as an empty plant (helper-180)."""
    r = await hub.get("/sensors", "op", params={"kind": "bogus"})
    assert r.status_code == 422, r.text
    assert "kind" in r.text
    r = await hub.get("/sensors", "op", params={"kind": "methane"})
    assert r.status_code == 200 and r.json() and {s["kind"] for s in r.json()} == {"methane"}
