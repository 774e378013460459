"""The Prometheus text exposition format's small pieces, shared by the hub's `/metrics`
(`ingest.metrics`) and the gateways' (`gateway.metricsserver`)."""

from __future__ import annotations

__all__ = ["label_value", "prom_number"]


def label_value(value: str) -> str:
    """Escape a label value of the Prometheus text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prom_number(value: float) -> str:
    """A counter to the unit (`:g` said 3.23229e+06 past a million: no count reconciles)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
