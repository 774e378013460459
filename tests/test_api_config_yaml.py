"""Bodies of the configuration routes: a YAML document whose aliases expand it to millions of
values (a 'billion laughs') is refused with 413 before anything is made of it (it held the hub's
event loop for 52 s); a configuration with no aliases, or with a few, is taken as before; a body
of many wrong items is told its first field errors and how many more, not each of them."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from test_api_alarms import KEYS, Hub, auth

from api.app import AppContext, create_app
from api.auth import KeyRing
from api.configadmin import MAX_ERRORS
from ingest.metrics import Metrics

from e2e_helpers import live_config

YAML = {"Content-Type": "application/yaml"}


def bomb(width: int = 9, depth: int = 8) -> str:
    """`width` ** `depth` values in about 50 * depth bytes."""
    names = [f"l{i}" for i in range(depth)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['x'] * width)}]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def live_client(tmp_path: Path, keys: list[Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with `keys` and a live configuration, as the hub makes it."""
    hub = Hub(tmp_path)
    await hub.store.open()
    rdb, admin = live_config(hub.reg, tmp_path, lambda: ctx)
    ctx = AppContext(hub.reg, hub.store, hub.db, Metrics(), KeyRing(keys, rdb), config=admin)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
    ) as c:
        yield c
    await hub.store.close()
    hub.db.close()
    rdb.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with live_client(tmp_path, KEYS) as c:
        yield c


@pytest.mark.parametrize(
    "text",
    [
        bomb(),
        "tenants: [{id: a, name: &n x}]\nl: &l [*l, *n]\n",  # an alias inside its own anchor
    ],
    ids=["billion-laughs", "loop"],
)
@pytest.mark.parametrize(
    "url", ["/api/v1/config?dry_run=true", "/api/v1/registry/tenants/north-coal/sites"]
)
async def test_yaml_whose_aliases_expand_it_too_far_is_refused(
    client: httpx.AsyncClient, text: str, url: str
) -> None:
    assert len(text) < 500
    method = "PUT" if "config" in url else "POST"
    r = await client.request(method, url, content=text, headers={**auth("admin"), **YAML})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "expands through its aliases" in r.json()["detail"]


async def test_yaml_without_aliases_or_with_a_few_is_taken(client: httpx.AsyncClient) -> None:
    exported = await client.get("/api/v1/config", headers=auth("admin"))
    assert exported.status_code == 200
    assert "*" not in exported.text.replace("********", "")
    r = await client.put(
        "/api/v1/config?dry_run=true", content=exported.text, headers={**auth("admin"), **YAML}
    )
    assert r.status_code == 200, r.text
    # the same levels for two sensors, written once (as examples/scenarios/mine/mine-hub.yaml)
    data = yaml.safe_load(exported.text)
    levels = [{"name": "alarm", "tier": "yellow", "above": 1.0, "recover": 0.9}]
    sensors = data["tenants"][0]["sites"][0]["devices"][0]["sensors"]
    for s in sensors[:2]:
        s.pop("rule", None)
        s["levels"] = levels
    text = yaml.safe_dump(data, sort_keys=False)
    assert "&id001" in text and "*id001" in text
    r = await client.put(
        "/api/v1/config?comment=shared+levels", content=text, headers={**auth("admin"), **YAML}
    )
    assert r.status_code == 200, r.text
    sensor = await client.get(f"/api/v1/sensors/{sensors[1]['id']}", headers=auth("admin"))
    assert sensor.json()["levels"][0]["above"] == 1.0


async def test_a_body_of_many_wrong_items_tells_the_first_errors_and_how_many_more(
    client: httpx.AsyncClient,
) -> None:
    # 1 MiB of wrong items was 400,000 field errors: 21 s and a 49 MB answer
    body = orjson.dumps({"tenants": [1] * 100_000})
    r = await client.put(
        "/api/v1/config?dry_run=true",
        content=body,
        headers={**auth("admin"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text[:300]
    errors = r.json()["errors"]
    assert len(errors) == MAX_ERRORS + 1
    assert errors[0]["loc"] == ["body", "tenants", 0]
    assert errors[-1] == {
        "loc": ["body"],
        "msg": f"and {100_000 - MAX_ERRORS} more errors",
        "type": "too_many_errors",
    }


async def test_a_key_given_twice_is_refused_naming_both_lines(client: httpx.AsyncClient) -> None:
    """YAML keeps the last of two equal keys: a body whose sensor gave `no_data_s` twice was
    taken with the second alone (helper-126)."""
    exported = await client.get("/api/v1/config", headers=auth("admin"))
    text = exported.text.replace("\ntenants:\n", "\ntenants: []\ntenants:\n", 1)
    assert text != exported.text
    r = await client.put(
        "/api/v1/config?dry_run=true", content=text, headers={**auth("admin"), **YAML}
    )
    assert r.status_code == 422, r.text
    assert "'tenants' is given twice" in r.json()["detail"]
