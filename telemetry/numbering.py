"""A publisher session's numbers for what it publishes (pure): its `epoch`, the ms since 1970 when
it started, and per device (or vehicle) a seq from 0. The hub dedupes on (device, epoch, seq) and
counts the seqs it never got (docs/mqtt.md), so a message keeps its number however often it is
sent: numbered once, when it is made, and spooled with it."""

from __future__ import annotations

__all__ = ["Numbering"]


class Numbering:
    """The Modbus pollers' telemetry batches, the JT/T 808 uplink's and the fleet simulator's
    position envelopes."""

    def __init__(self, epoch: int) -> None:
        if not 0 <= epoch < 2**64:
            raise ValueError(f"an epoch is ms since 1970, an unsigned 64-bit integer, not {epoch}")
        self.epoch = epoch
        self._next: dict[str, int] = {}

    def take(self, device: str) -> int:
        """The next seq of `device` (0 for its first)."""
        seq = self._next.get(device, 0)
        self._next[device] = seq + 1
        return seq
