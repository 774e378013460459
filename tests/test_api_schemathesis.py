"""Schemathesis over the whole HTTP API: requests generated from its OpenAPI description, with
an admin key, never get a server error, and every answer is JSON of the declared kind or a
problem (RFC 9457), or YAML (the configuration), or nothing (204). The stream is left out (it never
ends). The app is built as the hub builds it, with API keys in a registry database and the
configuration changed live."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from alerts.alarms import AlarmBook
from alerts.desk import AlarmDesk
from alerts.evaluate import CoreState, evaluate
from alerts.notify.channels import Senders
from alerts.notify.notifier import Notifier
from alerts.statedb import StateDB
from alerts.table import compile_table
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec
from telemetry.notifyconfig import SmtpSpec

from e2e_helpers import live_config, mine_registry

KEY = "k-schemathesis-admin"
ROOT = Path(__file__).resolve().parent.parent


def _app():
    tmp = Path(tempfile.mkdtemp(prefix="hazardhub-schemathesis-"))
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp / "ts.db")
    asyncio.run(store.open())
    db = StateDB(tmp / "state.db")
    t1 = reg.sensor("ch4-t1").index
    batch = ReadingBatch(
        np.full(3, t1, np.int32),
        np.array([1000, 2000, 3000], np.int64),
        np.array([0.5, 1.2, 1.6]),
        np.zeros(3, np.uint8),
        np.zeros(3, np.int64),
        np.arange(3, dtype=np.int64),
    )
    asyncio.run(store.write_readings(batch))
    table = compile_table(reg.sensors)
    state, tr, _ = evaluate(
        table, CoreState.empty(len(reg.sensors)), batch.sensor, batch.ts, batch.value, batch.quality
    )
    book = AlarmBook(db, reg, table)
    book.apply(tr, 5000, state)
    # as the hub builds it: API keys in the registry database, the configuration changed live
    # (without them, those routes answer 503, a server error to schemathesis)
    rdb, admin = live_config(reg, tmp, lambda: ctx)
    ctx = AppContext(
        reg,
        store,
        db,
        Metrics(),
        KeyRing([ApiKeySpec(name="admin", sha256=hash_key(KEY), role="admin")], rdb),
        desk=AlarmDesk(db, reg, book),
        notifier=Notifier(db, reg, Senders(smtp=SmtpSpec())),
        config=admin,
    )
    return create_app(ctx)


# the app is built once when the module is collected (schemathesis reads its OpenAPI then)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app()).exclude(path="/api/v1/stream")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_no_request_makes_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code == 204:  # no content, and so no content type
        assert not response.content
        return
    kind = response.headers.get("content-type", [""])[0].split(";")[0]
    assert kind in (
        "application/json",
        "application/problem+json",
        "application/yaml",  # the configuration's export (`GET /api/v1/config`)
        "text/csv",  # the alarm list's export (`GET /api/v1/alarms?format=csv`)
        "text/plain",
        "text/html",
    ), kind
