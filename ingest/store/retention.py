"""How long time series are kept: per domain, raw readings and statistics (rollups).

Floors from the regulations (``../shared/DOMAIN.md``; the defaults keep a little more):

============  =====================================  ==============  ===========================
domain        what                                   raw             statistics
============  =====================================  ==============  ===========================
``mine``      coal mine monitoring (CH4 and others)  3 months (92 d)  2 years (731 d)
``chemical``  major hazard sources                   30 days          2 years (not required)
``vehicle``   dynamic data (positions, speed)        6 months (184 d) 2 years (not required)
``crane``     special equipment                      92 d (no floor)  2 years
``other``     anything else                          92 d (no floor)  2 years
alarms        alarm events, all domains              3 years (1096 d): violations of vehicles
============  =====================================  ==============  ===========================

A sensor's domain is its site's ``kind`` (``mine``, ``chemical``, ``crane``, ``other``); a
vehicle's speed sensor and positions are ``vehicle``. The embedded store applies this per domain
(`ingest.store.sqlite.SqliteStore.apply_retention`). InfluxDB 1.x keeps the readings and
positions in one retention policy (`InfluxRetention`), so its default is the longest raw floor,
6 months; the alarm events in a second one of 3 years.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.store.schema import ALARM_EVENT
from telemetry.registry import Registry, SensorInfo

__all__ = [
    "DAY_MS",
    "DOMAINS",
    "DomainRetention",
    "InfluxRetention",
    "RetentionPolicy",
    "domain_of",
]

DAY_MS = 86_400_000
DOMAINS = ("mine", "chemical", "vehicle", "crane", "other")
_DURATION = re.compile(r"^(INF|\d+(ns|u|µ|ms|s|m|h|d|w))$")


@dataclass(frozen=True, slots=True)
class DomainRetention:
    raw_days: int
    stats_days: int

    def __post_init__(self) -> None:
        if self.raw_days < 1 or self.stats_days < 1:
            raise ValueError("retention is at least one day")


def _defaults() -> dict[str, DomainRetention]:
    return {
        "mine": DomainRetention(raw_days=92, stats_days=731),
        "chemical": DomainRetention(raw_days=30, stats_days=731),
        "vehicle": DomainRetention(raw_days=184, stats_days=731),
        "crane": DomainRetention(raw_days=92, stats_days=731),
        "other": DomainRetention(raw_days=92, stats_days=731),
    }


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep times per domain (see the module docstring for the defaults)."""

    domains: Mapping[str, DomainRetention] = field(default_factory=_defaults)
    alarm_days: int = 1096

    def __post_init__(self) -> None:
        missing = set(DOMAINS) - set(self.domains)
        if missing:
            raise ValueError(f"retention policy lacks domains {sorted(missing)}")
        if self.alarm_days < 1:
            raise ValueError("alarm retention is at least one day")

    def raw_ms(self, domain: str) -> int:
        return self.domains[domain].raw_days * DAY_MS

    def stats_ms(self, domain: str) -> int:
        return self.domains[domain].stats_days * DAY_MS


def domain_of(registry: Registry, sensor: SensorInfo) -> str:
    """The retention domain of a sensor: its site's kind, ``vehicle`` for vehicles."""
    if sensor.site == "vehicles":
        return "vehicle"
    for tenant in registry.config.tenants:
        if tenant.id == sensor.tenant:
            for site in tenant.sites:
                if site.id == sensor.site:
                    return site.kind if site.kind in DOMAINS else "other"
    return "other"


@dataclass(frozen=True, slots=True)
class InfluxRetention:
    """The InfluxDB 1.x retention policies the store creates (or alters) and writes to: named
    `name`, keeping `duration` (InfluxQL duration: ``184d``, ``26w``, ``INF``), made the
    database's default so that Grafana and the ``influx`` CLI read it without naming it; and
    `alarm_name`, keeping `alarm_duration` (3 years: violations and their handling, DOMAIN
    3.1), not the default, which alarm events are written to and read from (they sat in the
    6-month default, which dropped them after 6 months: helper-195's sysadmin)."""

    name: str = "hazardhub"
    duration: str = "184d"
    shard_duration: str | None = None
    alarm_name: str = "hazardhub_3y"
    alarm_duration: str = "1096d"

    def __post_init__(self) -> None:
        for name in (self.name, self.alarm_name):
            if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$", name):
                raise ValueError(f"retention policy name {name!r} is not a plain name")
        if self.alarm_name == self.name:
            raise ValueError(f"the alarm events' retention policy is {self.name!r} already")
        for d in (self.duration, self.shard_duration, self.alarm_duration):
            if d is not None and not _DURATION.match(d):
                raise ValueError(f"{d!r} is not an InfluxQL duration (e.g. 30d, 26w, INF)")

    def policy_of(self, measurement: str) -> str:
        """The policy `measurement` is written to and read from."""
        return self.alarm_name if measurement == ALARM_EVENT else self.name
