"""Alarm confirmations (0x8203) kept for terminals that are not connected, sans-IO.

A terminal holds bits 0, 3, 20, 21, 27 and 28 until the platform confirms them; a bit that stays
set raises nothing new, so a confirmation dropped because the terminal was away would leave its
alarm active for good. The gateway keeps it instead and sends it when the terminal
authenticates again: one entry per vehicle (the OR of the alarm types asked, serial 0: all of
them), dropped when older than `max_age_ms` (the newest request counts), since a terminal away
that long has likely been reset or replaced. `dump` and `load` carry them over a restart of the
gateway (its owner keeps them in a file).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.jt808.directory import VehicleRef

__all__ = ["HeldConfirmations"]


@dataclass(slots=True)
class _Held:
    alarm_type: int
    since_ms: int  # when the newest request for the vehicle came


class HeldConfirmations:
    """Confirmations waiting for their terminal."""

    def __init__(self, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self._held: dict[VehicleRef, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, ref: VehicleRef, alarm_type: int, now_ms: int) -> None:
        """Keep a confirmation of `alarm_type` for the vehicle's next authentication."""
        held = self._held.get(ref)
        if held is None:
            self._held[ref] = _Held(alarm_type, now_ms)
        else:
            held.alarm_type |= alarm_type
            held.since_ms = max(held.since_ms, now_ms)

    def take(self, ref: VehicleRef, now_ms: int) -> tuple[int, int] | None:
        """The alarm type kept for the vehicle and its age (ms), forgotten here; None when
        nothing is kept (call `expire` first: what is too old is not taken)."""
        held = self._held.pop(ref, None)
        if held is None:
            return None
        return held.alarm_type, now_ms - held.since_ms

    def dump(self) -> bytes:
        """What is kept, as JSON: [[tenant, vehicle, alarm type, since ms], ...]."""
        return orjson.dumps(
            sorted([r.tenant, r.vehicle, h.alarm_type, h.since_ms] for r, h in self._held.items())
        )

    def load(self, data: bytes) -> int:
        """Take up what `dump` wrote (kept before, the newer request wins); how many. Raise
        ValueError for data that is not such a dump (nothing taken then)."""
        try:
            rows = [(str(t), str(v), int(a), int(s)) for t, v, a, s in orjson.loads(data)]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not kept confirmations: {exc}") from exc
        for tenant, vehicle, alarm_type, _ in rows:
            if not 0 < alarm_type < 1 << 32:
                raise ValueError(f"alarm type {alarm_type} of {tenant}/{vehicle} is not a DWORD")
        for tenant, vehicle, alarm_type, since in rows:
            self.hold(VehicleRef(tenant, vehicle), alarm_type, since)
        return len(rows)

    def expire(self, now_ms: int) -> list[VehicleRef]:
        """Forget what is older than `max_age_ms`; the vehicles forgotten."""
        old = [r for r, h in self._held.items() if now_ms - h.since_ms > self.max_age_ms]
        for ref in old:
            del self._held[ref]
        return old
