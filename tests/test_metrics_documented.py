"""Every metric the hub serves on `/metrics` is named in docs/operations.md, whose table of them
says what each means and what to alert on (helper-198: `hazardhub_tick_failures_total`,
`hazardhub_store_retries_total`, `hazardhub_readings_total` and `hazardhub_positions_total` were
named nowhere, and the advice was spread over three pages). tests/test_metrics_declared.py holds
the other way round: what the docs name is served.

The names served are taken three ways, so that none escapes: a fresh hub's `/metrics` (the
embedded store); the InfluxDB store's numbers as `/metrics` renders them (`store_metrics`, named
after the fields of its stats: zeros serve); and every metric name written in the code, which
covers a counter with no HELP that `/metrics` shows only from its first count.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

from ingest.metrics import store_metrics
from ingest.store.buffered import BufferStats

from e2e_helpers import ROOT, HubAccess, mine_registry, running_hub
from services import MosquittoService

_NAME = re.compile(r"hazardhub_[a-z0-9_]*[a-z0-9]")
_PACKAGES = ("alerts", "api", "gateway", "hazardhub", "ingest", "simulators", "telemetry")


def _in_operations_md() -> set[str]:
    return set(_NAME.findall((ROOT / "docs" / "operations.md").read_text(encoding="utf-8")))


def _typed(text: str) -> set[str]:
    """The metrics a text in Prometheus's format declares, but those served under an old name
    for one more release (HELP `Deprecated`: the table names them as a group)."""
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return {n for n in names if f"# HELP {n} Deprecated" not in text}


def zeros(cls: Any) -> Any:
    """An instance of the stats dataclass `cls` with every number 0, nested ones likewise."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        values[f.name] = zeros(kind) if dataclasses.is_dataclass(kind) else 0
    return cls(**values)


def _in_the_code() -> dict[str, str]:
    """Each string in the code that is a whole metric name (`"hazardhub_..."`), with a file
    that has it."""
    found: dict[str, str] = {}
    for package in _PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                name = node.value if isinstance(node, ast.Constant) else None
                if isinstance(name, str) and _NAME.fullmatch(name):
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


async def test_every_metric_the_hub_serves_is_in_the_operations_table(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    access = HubAccess()
    hub = access.hub(mine_registry(1502, 1.0), tmp_path, mosquitto.port)
    async with running_hub(hub), access.client() as api:
        answer = await api.get("/metrics")
    assert answer.status_code == 200, answer.text
    served = _typed(answer.text)
    influx = _typed(store_metrics(zeros(BufferStats)))
    code = _in_the_code()
    assert len(served) > 40 and len(influx) > 15 and len(code) > 40, (served, influx, code)
    documented = _in_operations_md()
    missing = sorted((served | influx | set(code)) - documented)
    assert not missing, (
        f"served on /metrics but not named in docs/operations.md (its table 'Monitoring the hub: "
        f"what to alert on'): {missing}; written in {[code.get(n) for n in missing]}"
    )
