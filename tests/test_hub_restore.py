"""The hub restored from `hazardhub backup` as docs/operations.md says (stop, move the folder
aside, copy the backup in its place, start) sends no key again for another notification
(helper-196: `...:e23@1a7df15c4e` was the gas panel's comm loss before the restore and the tank2
RTU's after, and receivers dropping repeats by key dropped it), and a notification pending in
the backup arrives with its old key. Through the hub's process, a real broker and a real
webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import pytest

from hazardhub.cli import main
from telemetry.codec import TelemetryBatch, encode
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, start_hub_process
from receivers import WebhookReceiver
from services import free_port

TENANT = "north-coal"
TOPIC = TopicLayout().telemetry(TENANT, "face-1301", "kj-sub-3")
SECRET = "restore-hook"
POINTS = ("ch4_t0", "ch4_t1", "ch4_t2")  # yellow above 1.0 (T0, T1: red above 1.5)


def _config(url: str) -> str:
    sensors = "\n".join(
        f"              - {{id: ch4-t{i}, point: ch4_t{i}, kind: methane, tag: T{i}, "
        f"rule: coal-methane.{rule}}}"
        for i, rule in enumerate(("upper-corner-t0", "face-t1", "return-t2"))
    )
    return f"""version: 1
notify: {{retry_initial_s: 0.5, retry_max_s: 1}}
tenants:
  - id: {TENANT}
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: coal-substation
            sensors:
{sensors}
    subscriptions:
      - id: hook
        match: {{alarm_kinds: [above]}}
        channel: {{type: webhook, url: "{url}", secret: "{SECRET}"}}
"""


async def _publish(port: int, seq: int, values: Sequence[float]) -> None:
    batch = TelemetryBatch(
        "gw1",
        "kj-sub-3",
        7,
        seq,
        POINTS,
        np.arange(3, dtype=np.uint16),
        np.full(3, time.time_ns() // 1_000_000 - 500, np.int64),
        np.array(values, np.float64),
        np.zeros(3, np.uint8),
    )
    async with aiomqtt.Client("127.0.0.1", port) as mq:
        await mq.publish(TOPIC, encode(batch), qos=1)


def _read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as con:
        return con.execute(sql).fetchall()


async def _ready(proc: Any, port: int, log: Path) -> None:
    async def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        except httpx.TransportError:
            return False
        return r.status_code == 200

    await eventually(up, 60, "the hub to subscribe and serve", interval_s=0.2)


def _told(receiver: WebhookReceiver) -> dict[str, set[str]]:
    """Each key received, with the distinct bodies it came with."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in receiver.requests:
        assert r.key is not None and r.signature_ok is True
        seen[r.key].add(json.dumps(r.json(), sort_keys=True))
    return seen


def _ids(receiver: WebhookReceiver) -> list[tuple[int, int]]:
    """(alarm id, journal event id) of each request's event, in order of arrival."""
    return [
        (int(ev["alarm_id"]), int(ev["event_id"]))
        for r in receiver.requests
        for ev in r.json()["events"]
    ]


def _events(receiver: WebhookReceiver) -> list[tuple[str, str, str]]:
    """(key, sensor, kind) of each request's event, in order of arrival."""
    out = []
    for r in receiver.requests:
        (event,) = r.json()["events"]
        out.append((str(r.key), event["sensor"], event["kind"]))
    return out


@pytest.mark.slow
async def test_a_hub_restored_as_the_docs_say_reuses_no_key(mosquitto, tmp_path: Path) -> None:
    receiver = WebhookReceiver(secret=SECRET).start()
    cfg, data, log = tmp_path / "hub.yaml", tmp_path / "hazardhub", tmp_path / "hub.log"
    cfg.write_text(_config(receiver.url))
    outbox, bk = data / "state-outbox.db", tmp_path / "backups" / "bk1"
    api = free_port()
    proc = start_hub_process(cfg, mosquitto.port, data, api, log)
    try:
        await _ready(proc, api, log)
        await _publish(mosquitto.port, 0, (0.4, 0.4, 0.4))
        await _publish(mosquitto.port, 1, (0.4, 1.2, 0.4))  # T1 raised
        await receiver.wait_for(1, 30)
        receiver.stop()  # T0's raise stays pending: in the backup, not delivered yet

        await _publish(mosquitto.port, 2, (1.2, 1.2, 0.4))

        def t0_tried() -> bool:
            rows = _read(outbox, "SELECT status, attempts FROM outbox")
            return len(rows) == 2 and rows[1][0] == "pending" and rows[1][1] >= 1

        await eventually(lambda: asyncio.to_thread(t0_tried), 30, "T0's raise tried, pending")
        assert main(["backup", "--data-dir", str(data), "--to", str(bk)]) == 0
        receiver.start()
        await receiver.wait_for(2, 30)  # T0's raise, delivered after the backup
        await _publish(mosquitto.port, 3, (1.2, 1.8, 1.2))  # T1 escalated, T2 raised
        await receiver.wait_for(4, 30)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
        before = _told(receiver)
        ids_before = _ids(receiver)
        events_before = _events(receiver)
        pending_key = events_before[1][0]
        assert events_before[1][1:] == ("ch4-t0", "raised")
        receiver.clear()

        # docs/operations.md, Restore
        os.rename(data, tmp_path / "hazardhub.old")
        shutil.copytree(bk, data, copy_function=shutil.copy2)
        api = free_port()
        proc = start_hub_process(cfg, mosquitto.port, data, api, log)
        await _ready(proc, api, log)
        (again,) = await receiver.wait_for(1, 30)
        assert again.key == pending_key  # pending in the backup: its key, its body
        await _publish(mosquitto.port, 4, (0.5, 1.2, 1.3))  # T0 cleared, T2 raised again
        await receiver.wait_for(3, 30)
        await asyncio.sleep(1.5)  # room for a repeat, were there one
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
    finally:
        receiver.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    after = _told(receiver)
    # the alarm and journal ids the lost hub gave after the backup are never given again: a
    # receiver keeping alarms by id, a stream client resuming from one, sees no other alarm
    ids_after = [
        i for r, i in zip(receiver.requests, _ids(receiver), strict=True) if r.key != pending_key
    ]
    assert len(ids_after) == 2
    ((backup_top,),) = _read(bk / "state.db", "SELECT MAX(id) FROM alarms")
    given_after_backup = {a for a, _ in ids_before if a > backup_top}
    assert given_after_backup  # T2's alarm
    assert all(a <= backup_top or a > max(a for a, _ in ids_before) for a, _ in ids_after), (
        ids_before,
        ids_after,
    )
    assert min(e for _, e in ids_after) > max(e for _, e in ids_before), (ids_before, ids_after)
    assert [e[1:] for e in _events(receiver)] == [
        ("ch4-t0", "raised"),
        ("ch4-t0", "cleared"),
        ("ch4-t2", "raised"),
    ] or [e[1:] for e in _events(receiver)] == [
        ("ch4-t0", "raised"),
        ("ch4-t2", "raised"),
        ("ch4-t0", "cleared"),
    ]
    both: dict[str, set[str]] = defaultdict(set)
    for seen in (before, after):
        for key, bodies in seen.items():
            both[key] |= bodies
    assert all(len(b) == 1 for b in both.values()), {k: len(b) for k, b in both.items()}
    old = {k.rpartition("@")[2] for k in before}
    new = {k.rpartition("@")[2] for k in after if k != pending_key}
    assert len(old) == 1 and len(new) == 1 and old != new
    text = log.read_text()
    assert text.count("started from a backup taken at") == 2, text  # the outbox, state.db
    assert text.count("new notifications get keys of a new series") == 1, text
    assert text.count("new alarms are numbered from") == 1, text
