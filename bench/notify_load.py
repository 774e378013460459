"""The load of `bench/notify.py`: a registry of tenants x sites x devices x sensors with a
yellow and a red level per kind, each tenant's 10 subscriptions, and a stream of transitions
that follow each sensor's level."""

from __future__ import annotations

from typing import Any

import numpy as np

from alerts.evaluate import Transitions
from alerts.table import ABOVE, FAULT
from telemetry.config import HubConfig
from telemetry.notifyconfig import SubscriptionSpec
from telemetry.registry import Registry, build_registry

__all__ = ["KINDS", "RULES", "SECRET", "VALUES", "Stream", "registry", "subscriptions"]

SECRET = "bench-secret"
KINDS = ("methane", "methane", "co", "flammable_gas")  # half methane
RULES = {
    "methane": [
        {"name": "alarm", "tier": "yellow", "above": 1.0, "recover": 1.0},
        {"name": "power_cut", "tier": "red", "above": 1.5, "recover": 1.0},
    ],
    "co": [
        {"name": "high", "tier": "yellow", "above": 24, "recover": 20},
        {"name": "very_high", "tier": "red", "above": 50, "recover": 45},
    ],
    "flammable_gas": [
        {"name": "level1", "tier": "yellow", "above": 25, "recover": 23},
        {"name": "level2", "tier": "red", "above": 50, "recover": 45},
    ],
}
VALUES = {"methane": (0.4, 1.2, 1.8), "co": (5, 30, 60), "flammable_gas": (3, 30, 60)}


def registry(tenants: int, sites: int, devices: int, sensors: int) -> Registry:
    """`tenants` x `sites` x `devices` x `sensors`, sensor kinds cycling through `KINDS`."""
    kinds = [KINDS[i % len(KINDS)] for i in range(sensors)]
    config = HubConfig.model_validate(
        {
            "device_profiles": [
                {"name": "p", "points": [{"name": f"p{i}", "address": i} for i in range(sensors)]}
            ],
            "rule_packs": [
                {"name": "bench", "rules": {k: {"levels": v} for k, v in RULES.items()}}
            ],
            "tenants": [
                {
                    "id": f"t{t}",
                    "sites": [
                        {
                            "id": f"s{s}",
                            "kind": "mine",
                            "devices": [
                                {
                                    "id": f"d{d}",
                                    "profile": "p",
                                    "sensors": [
                                        {
                                            "id": f"t{t}.s{s}.d{d}.{i}",
                                            "point": f"p{i}",
                                            "kind": kinds[i],
                                            "rule": f"bench.{kinds[i]}",
                                        }
                                        for i in range(sensors)
                                    ],
                                }
                                for d in range(devices)
                            ],
                        }
                        for s in range(sites)
                    ],
                }
                for t in range(tenants)
            ],
        }
    )
    return build_registry(config)


def subscriptions(sites: int, url: str, group_s: float, batch: int = 1) -> list[SubscriptionSpec]:
    """The 10 subscriptions of a tenant: 5 of two sites each (grouped by `group_s`), the red
    raises of all sites, CO, sensor faults, the LEL of site 0, and acknowledgements (an audit
    feed no transition matches)."""
    hook = {"type": "webhook", "url": url, "secret": SECRET, "batch_max": batch}
    specs: list[dict[str, Any]] = [
        {"id": f"sites{k}", "match": {"sites": [f"s{j}" for j in range(k, sites, 5)]}}
        for k in range(5)
    ]
    for spec in specs:
        spec["group_window_s"] = group_s
    specs += [
        {"id": "red", "match": {"tiers": ["red"], "events": ["raised", "escalated"]}},
        {"id": "co", "match": {"sensor_kinds": ["co"], "tiers": ["yellow", "red"]}},
        {"id": "faults", "match": {"alarm_kinds": ["fault", "no_data"]}},
        {"id": "lel-s0", "match": {"sites": ["s0"], "sensor_kinds": ["flammable_gas"]}},
        {"id": "acks", "match": {"events": ["acknowledged"]}},
    ]
    return [SubscriptionSpec.model_validate({**s, "channel": hook}) for s in specs]


class Stream:
    """Batches of transitions that follow each sensor's level: round robin over a shuffled
    order, so a sensor moves once every n / batch batches. Every 20th sensor reports sensor
    faults (raised, cleared); the others move between normal, yellow and red."""

    def __init__(self, reg: Registry, seed: int = 3) -> None:
        self.n = len(reg.sensors)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.n).astype(np.int32)
        self.pos = 0
        self.level = np.zeros(self.n, np.int8)
        self.side = np.where(np.arange(self.n) % 20 == 0, FAULT, ABOVE).astype(np.uint8)
        self.values = np.array([VALUES[s.kind] for s in reg.sensors], float)
        self.t = 1_700_000_000_000

    def next(self, size: int, step_ms: int) -> Transitions:
        idx = np.take(self.order, np.arange(self.pos, self.pos + size), mode="wrap")
        self.pos = (self.pos + size) % self.n
        idx.sort()
        before = self.level[idx]
        u = self.rng.random(size)
        # 0 -> 1 (70 %) or 2; 1 -> 0 (70 %) or 2; 2 -> 0 (60 %) or 1; faults toggle
        after = np.where(
            before == 0,
            np.where(u < 0.7, 1, 2),
            np.where(before == 1, np.where(u < 0.7, 0, 2), np.where(u < 0.6, 0, 1)),
        ).astype(np.int8)
        fault = self.side[idx] == FAULT
        after[fault] = np.where(before[fault] == 0, 1, 0)
        self.level[idx] = after
        self.t += step_ms
        ts = self.t + self.rng.integers(0, step_ms // 2 + 1, size)
        value = self.values[idx, after]
        value[fault] = np.nan
        return Transitions(idx, ts.astype(np.int64), value, self.side[idx], before, after)
