"""The newest batch seq judged of each device and gateway epoch, kept across hub restarts
(`ingest-seqs.jsonl` in the data folder), and of each vehicle's position envelopes (site
``vehicles``, `ingest.positionmsg`), so that the first batch of a device after a restart
is compared with it: batches the broker lost while the hub was away are counted in
``hazardhub_telemetry_batches_missing_total`` and said like a gap within a run (helper-149: a
broker restarted while the hub was stopped lost 25 batches of every device, and nothing said so).

The file is a journal of JSON lines ``[tenant, site, device, epoch, seq, recent]``: `seq` the
newest judged, `recent` which of the `KEPT_SEQS` (128) seqs up to it were judged, in hex (bit
d: seq - d), so that a copy of one of them sent again after the restart (a gateway's re-send of
its unacknowledged QoS 1 window, 100 messages by default, or the broker's redelivery of what the
hub had not acknowledged) is a duplicate, not judged a second time as a late batch. A copy of a
seq further below is judged late as before (the bound: a few dozen bytes a line; within a run
the hub knows 4,096 seqs a device and epoch, `ingest.seen`). A line of an older hub, without
`recent`, knows its `seq` alone. Lines of a device and epoch add up (a later one knows at least
as much). A flush appends the seqs it raised just before it acknowledges its messages, so the
file is never behind what the broker was told is done. A ``kill -9`` loses nothing written (the
kernel has it); the worst it can do is a line written whose messages were not acknowledged: the
broker delivers them again and they are duplicates (acknowledged, not judged again). Never a
false gap. A power loss may lose the lines written since the kernel last flushed its cache
(~30 s): those seqs then look missing once, on the first batch after the start. The journal is
rewritten whole (written to a temporary file, synced and renamed over it) at the start,
whenever it has grown past `compact_bytes`, and at a clean stop: at most 4 epochs per device,
under a hundred bytes each. A file that cannot be read or written is said, never stops ingest:
gaps across that restart go uncounted as before. An older hub reads none of the lines (they
have one more field): it says so and counts no gap across that one restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

from ingest.positionmsg import VEHICLES
from ingest.seen import SeenSeqs
from telemetry.registry import Registry

__all__ = ["KEPT_SEQS", "SEQ_FILE", "SeqJournal", "configured"]

log = logging.getLogger(__name__)

SEQ_FILE = "ingest-seqs.jsonl"
KEPT_SEQS = 128  # the seqs up to the newest of a device and epoch known across a restart

Dev = tuple[str, str, str]


def configured(registry: Registry) -> Callable[[Dev], bool]:
    """Whether a key of the journal is still configured in `registry`: a device, or a vehicle
    (its position envelopes, numbered under site ``vehicles``)."""

    def known(dev: Dev) -> bool:
        if dev[1] == VEHICLES:
            return (dev[0], dev[2]) in registry.vehicles
        return dev in registry.devices

    return known


def _line(dev: Dev, epoch: int, seq: int, recent: int) -> bytes:
    return orjson.dumps([*dev, epoch, seq, format(recent, "x")]) + b"\n"


def _read(line: bytes) -> tuple[Dev, int, int, int]:
    """(device, epoch, seq, recent) of a line; raise ValueError (or JSONDecodeError, TypeError)
    for one torn or not the journal's."""
    t, s, d, epoch, seq, *more = orjson.loads(line)
    if not isinstance(epoch, int) or not isinstance(seq, int) or len(more) > 1:
        raise ValueError("not a line of the journal")
    recent = 1  # an older hub's line: its seq alone
    if more:
        if not isinstance(more[0], str) or not 0 < len(more[0]) <= KEPT_SEQS // 4:
            raise ValueError("not a line of the journal")
        recent = int(more[0], 16)
    return (str(t), str(s), str(d)), epoch, seq, recent


class SeqJournal:
    def __init__(
        self,
        path: Path,
        seen: SeenSeqs,
        *,
        known: Callable[[Dev], bool] | None = None,
        compact_bytes: int = 1 << 20,
    ) -> None:
        """Read `path` into `seen` (the devices `known` keeps: those still configured) and
        rewrite it whole."""
        self.path = path
        self.seen = seen
        self._compact_bytes = compact_bytes
        self._fd: int | None = None
        self._size = 0
        self._failing = False
        self._load(known)
        self.compact()

    def _load(self, known: Callable[[Dev], bool] | None) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning(
                "%s not read (%s): gaps across this restart are not counted", self.path, exc
            )
            return
        bad = 0
        for line in raw.splitlines():
            try:
                dev, epoch, seq, recent = _read(line)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                bad += 1  # a line torn by a crash, the last one: what it said is lost
                continue
            if known is None or known(dev):
                self.seen.restore(dev, epoch, seq, recent)
        if bad:
            log.warning("%s: %d line(s) not readable, skipped", self.path, bad)

    def record(self, marks: Iterable[tuple[Dev, int]]) -> None:
        """Append the newest seq of each (device, epoch) of `marks` (a flush's, judged and about
        to be acknowledged)."""
        lines = b"".join(self._lines(dict.fromkeys(marks)))
        if not lines:
            return
        if self._fd is None or self._size + len(lines) > self._compact_bytes:
            self.compact()
            return
        try:
            os.write(self._fd, lines)
            self._size += len(lines)
        except OSError as exc:
            self._failed(exc)

    def _lines(self, marks: Iterable[tuple[Dev, int]]) -> Iterable[bytes]:
        """The line of each (device, epoch) of `marks` that `seen` knows."""
        for dev, epoch in marks:
            seq = self.seen.high(dev, epoch)
            recent = self.seen.recent(dev, epoch, KEPT_SEQS)
            if seq is not None and recent is not None:
                yield _line(dev, epoch, seq, recent)

    def compact(self) -> None:
        """Rewrite the journal whole from what `seen` knows, atomically."""
        self._close_fd()
        data = b"".join(self._lines((dev, epoch) for dev, epoch, _ in self.seen.highs()))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._size = len(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._failed(exc)
            return
        if self._failing:
            log.info("%s written again", self.path)
            self._failing = False

    def _failed(self, exc: OSError) -> None:
        self._close_fd()  # the next record tries a whole rewrite
        if not self._failing:
            log.warning(
                "%s not written (%s): a gap in a device's batches across a hub restart may go "
                "uncounted until it is",
                self.path,
                exc,
            )
        self._failing = True

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """At a clean stop: rewritten whole, then closed."""
        self.compact()
        self._close_fd()
