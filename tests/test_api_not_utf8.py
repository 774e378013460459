"""A text that does not encode as UTF-8 (a lone surrogate, which JSON lets a client write as
`"\\ud800"`) in a body of free-form JSON is refused with 422 naming its field: a subscription's or
an escalation policy's `spec` (`dict[str, Any]`) took it, and the hub answered 500 when it
wrote it down (helper-220), counted nowhere. Over the app, as an enterprise's key sends it."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st
from test_api_alarms import COAL, auth
from test_api_tenancy import Rig, rig

from api.utf8text import not_utf8

__all__ = ["rig"]

LONE = "\ud800"

# plain JSON data: every text of it encodes as UTF-8 (no surrogates)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of the texts of `value` (its values: a key is `_spoil`ed in no way)."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, (*path, i))]
    return []


def _spoil(value: Any, path: tuple[Any, ...]) -> Any:
    """`value` with the text at `path` given a lone surrogate."""
    if not path:
        return value + LONE
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: _spoil(v, rest) if k == head else v for k, v in value.items()}
    return [_spoil(v, rest) if i == head else v for i, v in enumerate(value)]


@given(JSON, st.data())
def test_the_first_text_that_is_not_utf8_is_found_where_it_is(value: Any, data: Any) -> None:
    assert not_utf8(value) is None
    paths = _paths(value)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    assert not_utf8(_spoil(value, path)) == path


def test_a_key_that_is_not_utf8_is_found_and_a_deep_body_does_not_recurse() -> None:
    assert not_utf8({"a": {"b" + LONE: 1}}) == ("a", "b" + LONE)
    deep: Any = LONE
    for _ in range(100_000):
        deep = [deep]
    assert not_utf8(deep) == (0,) * 100_000


def _raw(spec: str) -> bytes:
    return f'{{"tenant": "{COAL}", "spec": {spec}}}'.encode()


async def test_a_lone_surrogate_in_a_spec_is_422_naming_its_field(rig: Rig) -> None:
    c: httpx.AsyncClient = rig.client
    h = {**auth("coal"), "content-type": "application/json"}
    cases = [
        ("/api/v1/subscriptions", h,
         '{"id": "s1", "name": "a\\ud800", "channel": {"type": "mqtt"}}', "spec.name"),
        ("/api/v1/subscriptions", h,
         '{"id": "s1", "match": {"sites": ["face-1301", "x\\udfff"]}, "channel": {"type": "mqtt"}}',
         "spec.match.sites.1"),
        ("/api/v1/subscriptions", h, '{"id": "s1", "channel": {"type": "mqtt"}, "\\ud800": 1}',
         "spec.\\ud800"),
        ("/api/v1/escalation-policies", h,
         '{"id": "p1", "name": "a\\ud800", "steps": [{"after_s": 300, "channel": '
         '{"type": "email", "to": ["duty@example.cn"]}}]}', "spec.name"),
        ("/api/v1/silences", {**auth("admin"), "content-type": "application/json"},
         '{"id": "m1", "comment": "a\\ud800", "recurrence": {"weekdays": [2], "start": "02:00",'
         ' "duration_min": 60}}', "spec.comment"),
    ]  # fmt: skip
    for url, headers, spec, field in cases:
        r = await c.put(url, content=_raw(spec), headers=headers)
        assert r.status_code == 422, (url, spec, r.text)
        (error,) = r.json()["errors"]
        assert error["type"] == "string_unicode", r.text
        assert error["msg"].startswith(f"{field}: text that does not encode as UTF-8"), r.text
        json.loads(r.text)  # (the answer itself is JSON: the bad text is not echoed)
    # nothing was stored; the same spec written well is taken
    subs = (await c.get("/api/v1/subscriptions", headers=auth("coal"))).json()
    assert [s["spec"]["id"] for s in subs] == ["control-room"]
    good = '{"id": "s1", "name": "调度室", "channel": {"type": "mqtt"}}'
    r = await c.put("/api/v1/subscriptions", content=_raw(good), headers=h)
    assert r.status_code == 200, r.text
    metrics = (await c.get("/metrics", headers=auth("admin"))).text
    assert "hazardhub_api_errors_total{" not in metrics


# the request bodies of free-form JSON, each looked through (`api.utf8text`)
FREE_FORM = {
    ("PUT", "/api/v1/subscriptions", ("spec",)),
    ("PUT", "/api/v1/escalation-policies", ("spec",)),
    ("PUT", "/api/v1/silences", ("spec",)),
}
Where = tuple[str, str, tuple[str, ...]]  # (method, path, field)
_CONSTRAINED = ("maxLength", "minLength", "pattern", "enum", "const", "format")


async def test_every_text_of_a_request_body_is_checked_for_utf8(rig: Rig) -> None:
    """pydantic refuses a text that is not UTF-8 in a field with a length or a pattern only;
    a plain `str`, or a value under `Any`, keeps it: no request body has one, but the
    free-form specs above (which `ObjectIn` looks through)."""
    spec = (await rig.client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    found: set[Where] = set()
    plain: list[Where] = []

    def walk(s: dict[str, Any], where: Where, seen: frozenset[str]) -> None:
        method, path, loc = where
        if "$ref" in s:
            name = s["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas[name], where, seen | {name})
            return
        for k in ("anyOf", "oneOf", "allOf"):
            for x in s.get(k, []):
                walk(x, where, seen)
        if s.get("type") == "string" and not any(c in s for c in _CONSTRAINED):
            plain.append(where)
        for name, sub in s.get("properties", {}).items():
            walk(sub, (method, path, (*loc, name)), seen)
        extra = s.get("additionalProperties")
        if extra is True or extra == {}:
            found.add(where)
        elif isinstance(extra, dict):
            walk(extra, (method, path, (*loc, "*")), seen)
        if isinstance(s.get("items"), dict):
            walk(s["items"], (method, path, (*loc, "[]")), seen)

    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for content in op.get("requestBody", {}).get("content", {}).values():
                walk(content.get("schema", {}), (method.upper(), path, ()), frozenset())
    assert plain == [] and found == FREE_FORM, (plain, found)
