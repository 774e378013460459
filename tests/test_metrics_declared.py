"""Every counter the docs name is on a fresh hub's /metrics at 0, with a HELP text of its own
(helper-149: the failure counters the docs say to alert on appeared only at their first count,
so `increase(x[5m]) > 0` never saw the first failure, and their HELP was their name)."""

from __future__ import annotations

import re

from test_metrics_documented import zeros

from gateway.metricsserver import FAMILIES as GATEWAY_FAMILIES
from ingest.metrics import _KNOWN, _OPEN, store_metrics
from ingest.store.buffered import BufferStats

from e2e_helpers import ROOT, HubAccess, mine_registry, running_hub

# the alarm events' InfluxDB retention policy (docs/storage.md); the gateways' own (--metrics)
_NOT_METRICS = {"hazardhub_3y", *GATEWAY_FAMILIES}


def documented() -> set[str]:
    names: set[str] = set()
    for doc in (ROOT / "docs").glob("*.md"):
        names |= set(re.findall(r"hazardhub_[a-z0-9_]*[a-z0-9]", doc.read_text(encoding="utf-8")))
    # only with InfluxDB and its spool (tests/test_store_metrics.py), old names too
    store_only = set(re.findall(r"^# TYPE (\S+)", store_metrics(zeros(BufferStats)), re.M))
    return names - store_only - _NOT_METRICS


def parse(text: str) -> tuple[dict[str, str], dict[str, str], dict[str, float]]:
    helps, types, samples = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, said = line[7:].partition(" ")
            helps[name] = said
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return helps, types, samples


async def test_every_documented_counter_is_there_from_the_start(mosquitto, tmp_path) -> None:
    access = HubAccess()
    hub = access.hub(mine_registry(1502, 1.0), tmp_path, mosquitto.port)
    async with running_hub(hub), access.client() as api:
        text = (await api.get("/metrics")).text
    helps, types, samples = parse(text)
    names = documented()
    assert len(names) > 30, names
    for name in sorted(names):
        assert name in helps and helps[name] not in ("", name), (name, helps.get(name))
        expected = "gauge" if not name.endswith(("_total", "_sum")) else "counter"
        assert types.get(name) == expected, (name, types.get(name))
        if name in _KNOWN:
            label, values = _KNOWN[name]
            for v in values:
                assert samples.get(f'{name}{{{label}="{v}"}}') == 0, (name, v)
        elif name not in _OPEN:
            assert samples.get(name) == 0, (name, samples.get(name))
    for name in ("hazardhub_notifications_dead_total", "hazardhub_notification_failures_total"):
        for channel in ("webhook", "email", "mqtt"):
            assert samples[f'{name}{{channel="{channel}"}}'] == 0
