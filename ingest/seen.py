"""The (epoch, seq) numbers of the messages already judged, per device or vehicle: what ingest
dedupes on and counts the gaps of (moved out of `ingest.pipeline`, which still exports it)."""

from __future__ import annotations

__all__ = ["SeenSeqs"]

Mark = tuple[tuple[str, str, str], int, int]  # (device key, epoch, seq)


class SeenSeqs:
    """The (epoch, seq) numbers already stored, per device: for each of its last `epochs`
    epochs (a gateway's starts), the highest seq seen and a bitmask of the `per_device` seqs
    below it. A few hundred bytes per device, however long the hub runs (an ordered set of
    pairs took about 250 bytes per message until it was full: 200 MB for 200 devices).
    A seq older than the window is not known (stored again: the store's writes are
    idempotent, the core counts it late).

    Beside the window, the marks `held`: of messages taken and not judged yet (their flush is
    in flight). A copy of one (an MQTT QoS 1 re-send, often in the same second) is a duplicate
    too: the window alone knew only finished flushes, so both copies were judged (helper-170)."""

    def __init__(self, per_device: int = 4096, epochs: int = 4) -> None:
        self._limit = per_device
        self._full = (1 << per_device) - 1
        self._epochs = epochs
        # device -> epoch -> [highest seq, bit d set: seq highest - d seen]
        self._seen: dict[tuple[str, str, str], dict[int, list[int]]] = {}
        self._held: set[Mark] = set()

    def __contains__(self, item: Mark) -> bool:
        """Judged already, or being judged (`hold`)."""
        if item in self._held:
            return True
        dev, epoch, seq = item
        found = self._seen.get(dev, {}).get(epoch)
        if found is None:
            return False
        high, mask = found
        d = high - seq
        return 0 <= d < self._limit and bool(mask >> d & 1)

    def hold(self, item: Mark) -> None:
        """A message of `item` is taken to be judged: until `release`, a copy of it is a
        duplicate (the hub's flush calls both: `ingest.flush`)."""
        self._held.add(item)

    def release(self, item: Mark) -> None:
        """The message of `item` is judged (`add` said so first) or left to the broker to
        deliver again (then its next copy is judged)."""
        self._held.discard(item)

    def release_all(self) -> None:
        """The hub's MQTT session ended: what it had taken and not judged comes again."""
        self._held.clear()

    def last_epoch(self, dev: tuple[str, str, str]) -> int | None:
        """The highest epoch of `dev` in the window, if any."""
        return max(self._seen.get(dev, {}), default=None)

    def highs(self) -> list[Mark]:
        """(device, epoch, highest seq) of every epoch in the window, oldest epoch first."""
        return [
            (dev, e, found[0]) for dev, epochs in self._seen.items() for e, found in epochs.items()
        ]

    def recent(self, dev: tuple[str, str, str], epoch: int, bits: int) -> int | None:
        """Which of the `bits` seqs up to the highest of `dev` in `epoch` were seen (bit d: the
        highest - d), if the epoch is in the window (`ingest.seqjournal` keeps it)."""
        found = self._seen.get(dev, {}).get(epoch)
        return None if found is None else found[1] & ((1 << bits) - 1)

    def high(self, dev: tuple[str, str, str], epoch: int) -> int | None:
        """The highest seq of `dev` seen in `epoch`, if it is in the window."""
        found = self._seen.get(dev, {}).get(epoch)
        return None if found is None else found[0]

    def restore(self, dev: tuple[str, str, str], epoch: int, seq: int, mask: int = 1) -> None:
        """What a hub before this one judged (`ingest.seqjournal`): `seq` of `epoch` and the
        seqs below it that `mask` has (bit d: seq - d) were seen, added to what is known. A seq
        below it that no mask has is not known (one of them again is stored again and judged
        late, never counted missing)."""
        mask = (mask | 1) & self._full
        epochs = self._seen.setdefault(dev, {})
        found = epochs.get(epoch)
        if found is None:
            while len(epochs) >= self._epochs:
                del epochs[next(iter(epochs))]
            epochs[epoch] = [seq, mask]
            return
        high, known = found
        if seq > high:
            shift = seq - high
            found[0] = seq
            found[1] = ((known << shift) | mask) & self._full if shift < self._limit else mask
        elif high - seq < self._limit:
            found[1] = (known | (mask << (high - seq))) & self._full

    def add(self, item: Mark) -> int:
        """Mark a batch stored; the number of the device's batches its seq jumped past (within
        its epoch: a gateway numbers its batches from 0 at each start), never received."""
        dev, epoch, seq = item
        epochs = self._seen.setdefault(dev, {})
        found = epochs.get(epoch)
        if found is None:
            while len(epochs) >= self._epochs:  # the oldest epoch the window heard of goes
                del epochs[next(iter(epochs))]
            epochs[epoch] = [seq, 1]
            return 0
        high, mask = found
        if seq > high:
            shift = seq - high
            found[0] = seq
            found[1] = ((mask << shift) | 1) & self._full if shift < self._limit else 1
            return shift - 1
        if high - seq < self._limit:
            found[1] = mask | (1 << (high - seq))
        return 0
