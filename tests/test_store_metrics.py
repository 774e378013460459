"""The store's numbers on /metrics typed right: its counters are counters named `..._total`,
its gauges gauges, each with a HELP of its own (helper-149: hazardhub_store_written_rows and
..._spool_full_refusals were typed gauge, without _total, and hazardhub_store_inner_up and
..._spool_pending_bytes, the only signs that the store is behind, were not documented). The old
names stay, deprecated, for one release."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from test_metrics_declared import parse

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.buffered import BufferedStore
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec

from e2e_helpers import ROOT, mine_registry

RENAMED = {
    "hazardhub_store_written_rows": "hazardhub_store_written_rows_total",
    "hazardhub_store_spool_full_refusals": "hazardhub_store_spool_full_refusals_total",
    "hazardhub_store_unavailable_failures": "hazardhub_store_unavailable_failures_total",
}


async def test_the_store_metrics_are_typed_and_documented(tmp_path: Path) -> None:
    reg = mine_registry(1502, 1.0)
    store = BufferedStore(SqliteStore(reg, tmp_path / "ts.db"), reg, tmp_path / "spool")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    key = ApiKeySpec(name="a", sha256=hash_key("k-admin"), role="admin")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([key])))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            text = (await client.get("/metrics", headers={"Authorization": "Bearer k-admin"})).text
    finally:
        await store.close()
        db.close()
    helps, types, samples = parse(text)
    store_names = {n for n in types if n.startswith("hazardhub_store_")} - {
        "hazardhub_store_retries_total",
        "hazardhub_store_unavailable_total",
    }
    for name in store_names:
        assert helps[name] not in ("", name), name
        if name in RENAMED:  # kept for one release, said so
            assert types[name] == "gauge" and "Deprecated" in helps[name], name
            assert samples[name] == samples[RENAMED[name]]
            continue
        counter = name.endswith("_total")
        assert types[name] == ("counter" if counter else "gauge"), name
    for new in RENAMED.values():
        assert types[new] == "counter" and samples[new] == 0, new
    assert types["hazardhub_store_inner_up"] == "gauge"
    assert samples["hazardhub_store_inner_up"] == 1
    assert types["hazardhub_store_spool_pending_bytes"] == "gauge"
    # the signs that the store is behind are documented, and the renamed names in Upgrading
    docs = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    for name in ("hazardhub_store_inner_up", "hazardhub_store_spool_pending_bytes", *RENAMED):
        assert name in docs, name
    documented = set(re.findall(r"hazardhub_store_[a-z0-9_]*[a-z0-9]", docs))
    assert (
        documented
        - store_names
        - {
            "hazardhub_store_retries_total",
            "hazardhub_store_unavailable_total",
        }
        == set()
    )
    upgrading = (
        (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split("## Upgrading")[1]
    )
    for old, new in RENAMED.items():
        assert old in upgrading and new in upgrading, old
