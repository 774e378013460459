"""What one MQTT message became (`Handled`), and the refusal and time window every kind of
message shares (`Refusing`); moved out of `ingest.pipeline`, which still exports `Handled`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alerts.gatewayalarms import DataLoss
from alerts.supervisionanswers import SupervisionAnswer
from alerts.vehiclereports import PlatformReport
from ingest.metrics import Metrics
from ingest.store.base import PositionBatch, ReadingBatch

__all__ = ["Handled", "Refusing"]


@dataclass(slots=True)
class Handled:
    """What one message became."""

    kind: str  # telemetry | position | status | dropped | supervision | vehicle_info | other
    readings: ReadingBatch | None = None
    positions: PositionBatch | None = None
    mark: tuple[tuple[str, str, str], int, int] | None = None  # (device key, epoch, seq)
    duplicate: bool = False
    reasons: list[str] = field(default_factory=list)  # why (some of) it was rejected
    rejected_whole: bool = False
    # a gateway's status: (tenant, gateway, online, the hub's clock when it arrived)
    status: tuple[str, str, bool, int] | None = None
    # a gateway's report of batches its spool dropped, per point (`alerts.gatewayalarms`)
    losses: tuple[DataLoss, ...] = ()
    # a JT/T 809 platform's answer to the centre's supervision (journaled on the alarm)
    answer: SupervisionAnswer | None = None
    # what a JT/T 809 platform reported of a vehicle (its registration, driver, waybill)
    report: PlatformReport | None = None


class Refusing:
    """A message refused whole (counted, its reason for the dead letter) and the hub's window of
    event times; `ingest.pipeline.Pipeline` sets the attributes."""

    metrics: Metrics
    max_future_ms: int
    max_past_ms: int

    def _reject(self, kind: str, reason: str, text: str) -> Handled:
        self.metrics.inc("hazardhub_messages_rejected_total", reason=reason)
        return Handled(kind, reasons=[f"{reason}: {text}"], rejected_whole=True)

    def _time_mask(self, ts: np.ndarray, arrival_ms: int) -> tuple[np.ndarray, np.ndarray]:
        future = ts > arrival_ms + self.max_future_ms
        past = ts < arrival_ms - self.max_past_ms
        return future, past
