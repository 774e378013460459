"""The gateways' counters, reported as what changed since the last report (a line a minute at
most: the Modbus gateway's uplink, the JT/T 808 server)."""

from __future__ import annotations

from collections import Counter

__all__ = ["changed_since"]


def changed_since(counters: Counter[str], reported: Counter[str]) -> str | None:
    """`name +n (total in all)` of each counter changed since `reported`, sorted by name;
    None when none changed."""
    changed = sorted(k for k, n in counters.items() if n != reported[k])
    if not changed:
        return None
    return ", ".join(f"{k} +{counters[k] - reported[k]} ({counters[k]} in all)" for k in changed)
