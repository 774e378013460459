"""A terminal's position messages sent again, recognised (pure): JT/T 808's retransmission.

A terminal that does not get the platform's 0x8001 within its answer timeout T (parameter
0x0002) sends the same message again, unchanged, same serial number, T x (k + 1) after its k-th
retransmission (parameter 0x0003 times). When it was the answer that was lost (or late), the
gateway had taken the message already: published again, each position became a second record
of the same instant, which the hub counted as a late position. So the gateway keeps, per
vehicle, the last `WINDOW` location messages (0x0200, 0x0704) it took, each as one 64-bit
digest of (message id, serial number, body): a message whose digest is there is answered again
(0x8001 result 0) and not published. A serial number reused after it wrapped round (65,536
messages later) with another body is another digest: a new message.

The bound: `WINDOW` (128) messages per vehicle, the newest; 1 KiB per vehicle ever
authenticated since the gateway started. At a message a second, 128 are two minutes: a
terminal with T = 10 s and 3 retransmissions sends its last one 60 s after the first (10 + 20
+ 30 s), the simulator's (5 s, 2) 15 s after. The window is in memory: a gateway restarted
between a message and its retransmission publishes it twice, as before.
"""

from __future__ import annotations

import hashlib
import struct
from array import array

from gateway.jt808.directory import VehicleRef

__all__ = ["WINDOW", "Repeats", "repeat_key"]

WINDOW = 128  # location messages remembered per vehicle


def repeat_key(msg_id: int, serial: int, body: bytes) -> int:
    """One message's digest: its id, its serial number and its (whole) body."""
    digest = hashlib.blake2b(struct.pack(">HH", msg_id, serial), digest_size=8)
    digest.update(body)
    return int.from_bytes(digest.digest(), "big")


class _Ring:
    """The newest keys of one vehicle, at most `size` (a ring of unsigned 64-bit integers)."""

    __slots__ = ("keys", "next")

    def __init__(self) -> None:
        self.keys = array("Q")
        self.next = 0  # where the next key goes once the ring is full

    def add(self, key: int, size: int) -> None:
        if len(self.keys) < size:
            self.keys.append(key)
            return
        self.keys[self.next] = key
        self.next = (self.next + 1) % size


class Repeats:
    """Each vehicle's location messages taken lately (`remember`), so that one sent again is
    known (`seen`). Shared by the server's connections: a terminal may send again on a new
    connection what it had no answer for on the one before."""

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window {window} must be at least 1")
        self.window = window
        self._by_vehicle: dict[VehicleRef, _Ring] = {}

    def seen(self, ref: VehicleRef, key: int) -> bool:
        ring = self._by_vehicle.get(ref)
        return ring is not None and key in ring.keys

    def remember(self, ref: VehicleRef, key: int) -> None:
        """The message was taken (its positions durable): a copy of it is a retransmission."""
        ring = self._by_vehicle.get(ref)
        if ring is None:
            ring = self._by_vehicle[ref] = _Ring()
        ring.add(key, self.window)

    def __len__(self) -> int:
        """Keys remembered in all."""
        return sum(len(r.keys) for r in self._by_vehicle.values())
