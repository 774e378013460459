"""The alarms of gateways, for the alarm book (`alerts.alarms.AlarmBook` is built on this): a
gateway offline (`alerts.gateways`: one alarm per site it serves, raised and cleared by its
status), the data a gateway's spool had to drop (`data_lost`: a moment, raised and returned
at once, on the device or vehicle whose readings are lost, to be acknowledged), and a device whose
gateway's clock fell back (`clock_behind`: its readings refused until the clock is set)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.alarmchange import AlarmRows, cst
from alerts.alarmevent import DEVICE_RULE, AlarmBatch, AlarmEvent, device_alarm_id
from alerts.gateways import GATEWAY_RULE, GatewayChange, gateway_alarm_id, gateway_sites
from alerts.kinds import CLOCK_BEHIND
from alerts.statedb import StateDB
from alerts.table import DATA_LOST, NO_DATA
from telemetry.registry import Registry

_SECONDS = "%Y-%m-%d %H:%M:%S"

__all__ = [
    "NORMAL",
    "ClockChange",
    "DataLoss",
    "GatewayAlarms",
    "configured_gateway_sites",
    "configured_points",
    "device_gateways",
]

# what a clear is described as: level name, tier, action (every alarm's)
NORMAL = ("normal", "none", "")
_GATEWAY = (
    "gateway_offline",
    "orange",
    "检查网关供电、进程与上行链路 check the gateway's power, process and uplink",
)
# the same alarm, for a gateway the hub never heard from (`alerts.gateways`: never connected)
_NEVER = (
    "gateway_offline",
    "orange",
    "网关从未上线: 检查网关调试是否完成、MQTT 账号密码与主题根 the gateway never connected: "
    "check its commissioning, its MQTT login and its topic root",
)
_CLOCK_BEHIND = (
    "clock_behind",
    "orange",
    "网关时钟落后: 设备读数被拒收, 设备未被监测; 校准网关时间 (NTP) the gateway's clock fell "
    "back: the device's readings are refused and it is not watched; set the clock (NTP)",
)
_DATA_LOST = (
    "data_lost",
    "yellow",
    "数据丢失：检查网关缓存容量与上行链路，说明缺失时段 check the gateway's spool and uplink, "
    "account for the gap",
)


def configured_gateway_sites(registry: Registry) -> dict[tuple[str, str], tuple[str, ...]]:
    """The sites each (tenant, gateway) of the configuration serves: a Modbus gateway its
    devices' sites, a JT/T 808 gateway the `vehicles` of every tenant that has some."""
    served = [(t, s, d.spec.gateway) for (t, s, _), d in registry.devices.items()]
    fleets = sorted({t for t, _ in registry.vehicles})
    served += [(t, "vehicles", gw) for t in fleets for gw in registry.config.jt808_gateways]
    return gateway_sites(served)


def device_gateways(registry: Registry) -> set[tuple[str, str]]:
    """The (tenant, gateway) pairs the configuration's devices name: the gateways the hub
    expects to hear from (`alerts.gateways.GatewayWatch.expect`). Not the JT/T 808 ones: a
    fleet may send its positions over MQTT without one."""
    return {(t, d.spec.gateway) for (t, _, _), d in registry.devices.items()}


def configured_points(registry: Registry) -> tuple[set[str], set[str]]:
    """The alarm points (their `sensor` ids) of the configuration's devices, and of its
    gateways per site they serve."""
    devices = {device_alarm_id(*k) for k in registry.devices}
    gateways = {
        gateway_alarm_id(tenant, site, gw)
        for (tenant, gw), sites in configured_gateway_sites(registry).items()
        for site in sites
    }
    return devices, gateways


@dataclass(frozen=True, slots=True)
class DataLoss:
    """A gateway's report of batches its spool dropped (size or age limit), for one point: a
    device (`sensor` its `device:` id) or a vehicle (`sensor` its speed sensor)."""

    tenant: str
    site: str
    device: str  # the device's or vehicle's id
    sensor: str
    gateway: str
    batches: int
    readings: int
    first_ms: int  # when the first and the last batch dropped were made (the gap)
    last_ms: int
    reason: str

    def describe(self) -> str:
        """What an operator reads in the alarm's journal: the gap in China Standard Time, as
        the dashboard shows every time, with the epoch ms for a program."""
        return (
            f"gateway {self.gateway} dropped {self.batches} batches ({self.readings} readings) "
            f"made between {cst(self.first_ms, _SECONDS)} and {cst(self.last_ms, _SECONDS)} CST "
            f"({self.first_ms}-{self.last_ms} ms): {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class ClockChange:
    """A device's gateway clock fell back (`behind`: its readings refused as far behind its
    newest, `ingest.clocks`) or is back in step. `ts`: the device's newest reading taken (event
    time: when the device stopped being watched) or the first in step; `gap_days`: how far
    behind the refused readings were."""

    tenant: str
    site: str
    device: str
    behind: bool
    ts: int
    gap_days: float = math.nan


def _never_said(c: GatewayChange) -> str:
    """What an operator reads in the journal of a gateway never heard from."""
    return (
        f"网关 {c.gateway} 从未上线 never connected: no status heard from it since "
        f"{cst(c.ts, _SECONDS)} CST (the hub's connection to the broker, or the gateway's "
        "configuration)"
    )


class GatewayAlarms(AlarmRows):
    """The gateway alarms of `AlarmBook`, which sets up every attribute declared here."""

    _db: StateDB

    def apply_gateways(self, changes: Sequence[GatewayChange], arrival: int) -> list[AlarmEvent]:
        """Raise and clear the offline alarms of gateways (`alerts.gateways`), in one
        transaction; the device column is the gateway's id."""
        if not changes:
            return []
        with self._db.transaction() as con:
            work = AlarmBatch.over(self._db, con, {c.alarm_id for c in changes}, arrival)
            for c in changes:
                described = (_NEVER if c.never else _GATEWAY) if c.offline else NORMAL
                self._change(
                    work,
                    (c.tenant, c.site, c.gateway, c.alarm_id, GATEWAY_RULE, NO_DATA),
                    1 if c.offline else 0,
                    described,
                    c.ts,
                    math.nan,
                    arrival,
                    comment=_never_said(c) if c.never else "",
                    gateway=c.gateway,
                )
            return work.write(self._db, self._disposal)

    def apply_clocks(self, changes: Sequence[ClockChange], arrival: int) -> list[AlarmEvent]:
        """Raise and clear the `clock_behind` alarms of devices, in one transaction."""
        if not changes:
            return []
        with self._db.transaction() as con:
            ids = {device_alarm_id(c.tenant, c.site, c.device) for c in changes}
            work = AlarmBatch.over(self._db, con, ids, arrival)
            for c in changes:
                point = device_alarm_id(c.tenant, c.site, c.device)
                self._change(
                    work,
                    (c.tenant, c.site, c.device, point, DEVICE_RULE, CLOCK_BEHIND),
                    1 if c.behind else 0,
                    _CLOCK_BEHIND if c.behind else NORMAL,
                    c.ts,
                    c.gap_days,
                    arrival,
                )
            return work.write(self._db, self._disposal)

    def active_clock_alarms(self) -> dict[tuple[str, str, str], int]:
        """The devices whose `clock_behind` alarm is active, with when it was raised (the
        device's newest reading taken before its clock fell back)."""
        return {
            (r.tenant, r.site, r.device): r.started_ts
            for r in self._db.active_alarms()
            if r.rule == DEVICE_RULE and r.side == CLOCK_BEHIND
        }

    def active_gateway_alarms(self) -> set[str]:
        """The ids of the gateway offline alarms active now."""
        return {r.sensor for r in self._db.active_alarms() if r.rule == GATEWAY_RULE}

    def gateway_sites(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return configured_gateway_sites(self._registry)

    def record_losses(self, losses: Sequence[DataLoss], arrival: int) -> list[AlarmEvent]:
        """Record each data loss as a `data_lost` alarm raised at the first batch lost and
        returned at the last, waiting to be acknowledged (value: the readings lost), in one
        transaction. A report already recorded (the same point, gap and count: the broker
        delivered it again) records nothing."""
        if not losses:
            return []
        with self._db.transaction() as con:
            work = AlarmBatch.start(
                self._db, con, [], self._db.shelves(con, arrival), self._db.sensors_out(con)
            )
            done: set[tuple[str, int, int, int]] = set()  # a report twice in one call: once
            for loss in losses:
                gap = (loss.first_ms, loss.last_ms, loss.readings)
                if (loss.sensor, *gap) in done:
                    continue
                done.add((loss.sensor, *gap))
                seen = con.execute(
                    "SELECT 1 FROM alarms WHERE sensor = ? AND rule = ? AND side = ? "
                    "AND started_ts = ? AND ended_ts = ? AND value = ?",
                    (loss.sensor, GATEWAY_RULE, DATA_LOST, *gap),
                ).fetchone()
                if seen is not None:
                    continue
                key = (loss.tenant, loss.site, loss.device, loss.sensor, GATEWAY_RULE, DATA_LOST)
                why = loss.describe()
                value = float(loss.readings)
                for after, described, ts in (
                    (1, _DATA_LOST, loss.first_ms),
                    (0, NORMAL, loss.last_ms),
                ):
                    self._change(
                        work,
                        key,
                        after,
                        described,
                        ts,
                        value,
                        arrival,
                        comment=why,
                        gateway=loss.gateway,
                    )
            return work.write(self._db, self._disposal)
