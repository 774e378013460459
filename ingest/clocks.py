"""Devices whose gateway's clock fell back (an RTC reset, a gateway restarted with the wrong
time): their readings come stamped far behind what the device already sent.

Such readings used to be accepted (anything up to 400 days back is), stored at the wrong times
(over the real readings of those milliseconds) and never judged (older than the sensors' last
judged readings): the device went unwatched, silently (helper-150). `ClockWatch` keeps, per
device, the newest reading time the hub has judged and acknowledged; the pipeline refuses, as
`clock_behind`, the readings more than `CLOCK_BEHIND_MS` behind it: counted, kept with the message
as a dead letter, and said once per device with the gap (and again when its clock is back in
step). Refused, the device's readings are not judged: the device raises its `clock_behind`
alarm (through `on_change`, recorded at the dispatcher's tick), cleared at its first message in
step. Only what was acknowledged moves the mark: messages delivered again after a session ended
(oldest first) are never taken for a clock gone back. The marks are in memory; a device whose
alarm is active at a start is seeded from it (`seed`): its readings behind the alarm's raise are
refused again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from alerts.gatewayalarms import ClockChange
from ingest.metrics import Metrics

__all__ = ["CLOCK_BEHIND_MS", "ClockWatch"]

log = logging.getLogger("ingest.pipeline")

# readings further behind their device's newest acknowledged reading are its clock's fault: far
# beyond the reorderings of a gateway (its spool drains in order) and the 5 minutes a clock may
# run ahead (a clock set back by NTP after running 5 minutes fast is not refused)
CLOCK_BEHIND_MS = 3_600_000

Device = tuple[str, str, str]


class ClockWatch:
    def __init__(self, metrics: Metrics, behind_ms: int = CLOCK_BEHIND_MS) -> None:
        self.metrics = metrics
        self.behind_ms = behind_ms
        self._newest: dict[Device, int] = {}
        self._behind: set[Device] = set()  # said behind, not yet back in step
        # told of each device said behind and back in step: its `clock_behind` alarm
        self.on_change: Callable[[ClockChange], None] | None = None

    def seed_newest(self, newest: Mapping[Device, int]) -> None:
        """At start: each device's newest reading judged before (the saved analytics state's
        last times: helper-158 found a clock gone back while the hub was stopped unrefused,
        every reading stored late and never judged)."""
        for device, ts in newest.items():
            self.advance(device, ts)

    def seed(self, behind: Mapping[Device, int]) -> None:
        """At start: the devices whose `clock_behind` alarm is active, with the newest reading
        they had before (the alarm's raise): refused again as far behind it, until in step."""
        self._behind.update(behind)
        self.seed_newest(behind)
        self.metrics.set("hazardhub_devices_clock_behind", len(self._behind))

    def floor(self, device: Device) -> int | None:
        """Readings of `device` older than this are refused (None: none known yet)."""
        newest = self._newest.get(device)
        return None if newest is None else newest - self.behind_ms

    def advance(self, device: Device, newest_ts: int) -> None:
        """A message of `device` with readings up to `newest_ts` was judged and acknowledged."""
        if newest_ts > self._newest.get(device, newest_ts - 1):
            self._newest[device] = newest_ts

    def is_behind(self, device: Device) -> bool:
        return device in self._behind

    def behind(
        self, device: Device, refused: int, oldest_ts: int, epoch: int, last_epoch: int | None
    ) -> None:
        """`refused` readings of `device` (the oldest at `oldest_ts`) were refused: said once
        until its clock is back in step."""
        if device in self._behind:
            return
        self._behind.add(device)
        self.metrics.set("hazardhub_devices_clock_behind", len(self._behind))
        gap_s = (self._newest[device] - oldest_ts) // 1000
        back = (
            f"; its gateway restarted with its clock behind (epoch {epoch} below {last_epoch})"
            if last_epoch is not None and epoch < last_epoch
            else ""
        )
        tenant, site, name = device
        log.error(
            "%s/%s/%s: %d reading(s) stamped up to %d s (%.1f days) behind the device's newest "
            "refused as clock_behind (dead letters)%s: its gateway's clock fell back; set it "
            "(NTP). Until then the device is not watched: its readings are refused (sensors with "
            "a no_data_s raise their no-data alarm)",
            tenant,
            site,
            name,
            refused,
            gap_s,
            gap_s / 86_400,
            back,
        )
        if self.on_change is not None:
            self.on_change(
                ClockChange(tenant, site, name, True, self._newest[device], gap_s / 86_400)
            )

    def in_step(self, device: Device, ts: int | None = None) -> None:
        """A message of `device` none of whose readings was behind (`ts`: its newest)."""
        if device not in self._behind:
            return
        self._behind.discard(device)
        self.metrics.set("hazardhub_devices_clock_behind", len(self._behind))
        log.warning("%s/%s/%s: its gateway's clock is back in step", *device)
        if self.on_change is not None:
            at = ts if ts is not None else self._newest.get(device, 0)
            self.on_change(ClockChange(*device, False, at))
