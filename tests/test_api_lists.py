"""The list routes that write their JSON without a model per row (`api.encode`): the alarm list
and the latest values must answer exactly what their documented models say, the same as the
routes that go through the models (one alarm, one sensor's latest value), whether the alarm list
is read on the event loop or, when that read would be long, in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_api_alarms
from pydantic import TypeAdapter
from test_api_alarms import CHEM, COAL, Hub, hub

from api.models import AlarmPublic, LatestPublic
from ingest.store.base import ReadingBatch
from telemetry.quality import Quality

from e2e_helpers import mine_registry

__all__ = ["hub"]  # the fixture, imported for the tests here


def strictly(model: type[Any], items: list[dict[str, Any]]) -> None:
    """Every item has exactly the model's fields, and validates as the model (strict types: an
    int where a bool belongs, or a str where a number belongs, fails)."""
    for item in items:
        assert set(item) == set(model.model_fields), set(item) ^ set(model.model_fields)
    TypeAdapter(list[model]).validate_python(items, strict=True)


async def make_alarms(hub: Hub) -> None:
    hub.feed("ch4-t1", [1.1, 1.6])  # raised, escalated: two events
    y = hub.raise_alarm("co", 30)
    await hub.post(f"/alarms/{y}/acknowledge", {"note": "seen"})  # an operator's event
    hub.feed("ch4-t2", [1.2, 0.5])  # raised and returned: cleared
    hub.feed("ch4-t0", [float("nan")], quality=1)  # a sensor fault: no value
    hub.raise_alarm("tanker-01.speed", 90)  # another tenant's


async def test_the_alarm_list_is_the_model_of_each_alarm(hub: Hub) -> None:
    await make_alarms(hub)
    listed = (await hub.get("/alarms")).json()
    assert len(listed) == 5
    strictly(AlarmPublic, listed)
    for alarm in listed:  # the route that builds the model says the same
        assert alarm == await hub.alarm(alarm["id"])
    assert any(a["value"] is None for a in listed)
    assert any(len(a["events"]) >= 2 for a in listed)
    assert {a["tenant"] for a in (await hub.get("/alarms", "coal")).json()} == {COAL}
    assert {a["tenant"] for a in (await hub.get("/alarms", "chem")).json()} == {CHEM}


async def test_a_long_alarm_list_read_goes_to_the_worker_thread(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_alarms(hub)
    quick = (await hub.get("/alarms")).json()
    asked: list[object] = []
    slow = hub.db.list_alarm_records

    def in_thread(*args: Any, **kw: Any) -> Any:
        asked.append(args)
        return slow(*args, **kw)

    monkeypatch.setattr(hub.db, "list_alarm_records", in_thread)
    # another limit each time: not an answer kept from before
    assert (await hub.get("/alarms", params={"limit": 4})).json() == quick[:4]
    assert asked == []  # quick enough: read on the loop
    hub.db.quick_steps = 0  # every read is "long" now
    assert (await hub.get("/alarms", params={"limit": 3})).json() == quick[:3]
    assert len(asked) == 1


async def test_the_latest_values_are_the_model_of_each_sensor(hub: Hub) -> None:
    ids = ["ch4-t0", "ch4-t1", "co", "feed"]
    index = [hub.reg.sensor(s).index for s in ids]  # type: ignore[union-attr]
    await hub.store.write_readings(
        ReadingBatch(
            np.asarray(index, np.int32),
            np.full(4, 1_700_000_000_000, np.int64),
            np.asarray([0.4, math.nan, math.inf, 1.0]),
            np.asarray([0, int(Quality.COMM_LOSS), int(Quality.OUT_OF_RANGE), 0], np.uint8),
            np.zeros(4, np.int64),
            np.arange(4, dtype=np.int64),
        )
    )
    listed = (await hub.get("/latest")).json()
    assert [x["sensor"] for x in listed] == ids  # registry order, only sensors with a reading
    strictly(LatestPublic, listed)
    for item in listed:
        one = await hub.get(f"/sensors/{item['sensor']}/latest")
        assert item == one.json()
    assert [x["value"] for x in listed] == [0.4, None, None, 1.0]
    assert [x["quality_name"] for x in listed] == ["good", "comm_loss", "out_of_range", "good"]
    assert (await hub.get("/latest", "chem")).json() == []  # another tenant's sensors
    got = (await hub.get("/latest", params={"sensor": ["co", "ch4-t1"]})).json()
    assert [x["sensor"] for x in got] == ["co", "ch4-t1"]


async def test_a_kept_answer_is_never_older_than_the_database(hub: Hub) -> None:
    """The alarm list keeps its answers while the state database is unchanged: a change made
    through the API or by the alarm book (another connection) shows at the next request, and a
    key of another tenant never gets a kept answer of the first."""
    first = hub.raise_alarm("ch4-t1")
    before = (await hub.get("/alarms")).json()
    assert (await hub.get("/alarms")).json() == before  # kept
    await hub.post(f"/alarms/{first}/acknowledge", None, "coal")  # the enterprise's
    (listed,) = (await hub.get("/alarms")).json()
    assert listed["isa_state"] == "ack" and listed != before[0]
    second = hub.raise_alarm("co", 30)  # the alarm book writes, the API reads
    assert [a["id"] for a in (await hub.get("/alarms")).json()] == [second, first]
    assert [a["id"] for a in (await hub.get("/alarms", "chem")).json()] == []
    hub.raise_alarm("tanker-01.speed", 90)
    (chem,) = (await hub.get("/alarms", "chem")).json()
    assert chem["tenant"] == CHEM
    assert [a["id"] for a in (await hub.get("/alarms", "coal")).json()] == [second, first]
    # the same request by the same caller, nothing changed in between: read once
    changes = hub.db.data_version()
    for _ in range(3):
        assert (await hub.get("/alarms", "coal")).json()[0]["id"] == second
    assert hub.db.data_version() == changes


# a second mine whose face has the coal company's site id
TWIN = """
  - id: ly-coal
    name: 临沂煤业
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-1
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1502, unit: 2, poll_s: 1.0, timeout_s: 0.3}
            sensors:
              - {id: ly-ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}
"""


@pytest.fixture
async def twins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    monkeypatch.setattr(
        test_api_alarms, "mine_registry", lambda port, poll_s: mine_registry(port, poll_s, TWIN)
    )
    h = Hub(tmp_path)
    await h.store.open()
    try:
        yield h
    finally:
        await h.client.aclose()
        await h.store.close()
        h.notifier.close()
        h.db.close()


@pytest.mark.parametrize(
    "path",
    ["/alarms", "/alarms?format=csv", "/latest", "/sensors", "/alarm-quality/rate", "/handover"],
)
async def test_a_site_id_two_enterprises_share_is_asked_with_its_tenant(
    twins: Hub, path: str
) -> None:
    """Two enterprises may give a site the same id (north-coal/face-1301, ly-coal/face-1301):
    `site=` alone answered both enterprises' as one site's (the dashboard's handover of one mine
    held the other's alarms). For a key that sees both it is 422, naming them; with `tenant=` it
    is that enterprise's site."""
    hub = twins
    hub.raise_alarm("ch4-t1", 1.1)
    hub.raise_alarm("ly-ch4-t1", 1.1)
    sep = "&" if "?" in path else "?"
    r = await hub.get(f"{path}{sep}site=face-1301")
    assert r.status_code == 422, r.text
    assert "north-coal, ly-coal" in r.json()["detail"] and "tenant=" in r.json()["detail"]
    r = await hub.get(f"{path}{sep}site=face-1301&tenant=ly-coal")
    assert r.status_code == 200, r.text
    assert "ch4-t1" not in r.text.replace("ly-ch4-t1", "")
    # a key of one of them has no doubt; `vehicles` is every tenant's vehicles
    assert (await hub.get(f"{path}{sep}site=face-1301", "coal")).status_code == 200
    assert (await hub.get(f"{path}{sep}site=vehicles")).status_code == 200
    ids = {a["tenant"] for a in (await hub.get("/alarms", params={"tenant": "ly-coal"})).json()}
    assert ids == {"ly-coal"}


async def test_a_sensor_names_its_enterprise_and_site(twins: Hub) -> None:
    """The dashboard told two enterprises' `face-1301` apart by nothing: a sensor carries the
    configured names of its enterprise and site beside their ids, as an alarm does."""
    found = {s["id"]: s for s in (await twins.get("/sensors")).json()}
    assert (found["ch4-t1"]["tenant_name"], found["ch4-t1"]["site_name"]) == (
        "北方煤业",
        "1301 综采工作面",
    )
    assert (found["ly-ch4-t1"]["tenant_name"], found["ly-ch4-t1"]["site_name"]) == ("临沂煤业", "")
    assert found["tanker-01.speed"]["site_name"] == ""  # `vehicles` has no name
    assert found["ly-ch4-t1"] == (await twins.get("/sensors/ly-ch4-t1")).json()
