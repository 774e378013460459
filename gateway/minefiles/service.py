"""The mine-files gateway: takes MT/T 1201 files from the FTP upload folder, publishes their
real-time readings like a gateway, and keeps and checks their point definitions.

At-least-once: a file's batches go through a spool and a QoS 1 publisher per tenant; the file
moves to ``done/{day}/`` only when the broker acknowledged every batch of it. The file itself is the
durable copy: the spool is emptied at each start and a file still in the folder is taken again
(its readings re-sent: harmless, the hub's stores write a sensor's reading at a time once and a
reading at or before one already judged is counted late, not judged again). At most
`max_files_in_flight` files wait for the broker; then the folder waits, said once (``queue_full``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.counters import changed_since
from gateway.logtext import shown
from gateway.minefiles import said
from gateway.minefiles.config import Mines
from gateway.minefiles.convert import Converted, Ranges
from gateway.minefiles.folder import look, move, reject
from gateway.minefiles.keep import Keeper
from gateway.minefiles.layout import misplaced, shared_warning, start_problems, uploads
from gateway.minefiles.newest import Newest
from gateway.minefiles.points import check, load_points, ranges_of, save_points
from gateway.minefiles.take import Taken, take
from gateway.minefiles.uplinks import uplinks
from gateway.spool import Spooled
from telemetry.brokertls import BrokerTls
from telemetry.clock import wall_ms
from telemetry.codec import MAX_KEYS, TelemetryBatch, encode
from telemetry.errors import ConfigError
from telemetry.mt1201 import AlarmRecord, FileError, PointDef, parse_name
from telemetry.topics import TopicLayout

__all__ = ["MineFilesGateway"]

log = logging.getLogger(__name__)
_ERRORS_SAID = 5  # a file's broken records logged; the rest counted
_FAILURES = 2  # a file whose taking failed this often (not an OSError) is refused


class MineFilesGateway:
    def __init__(
        self,
        mines: Mines,
        *,
        broker_host: str,
        broker_port: int,
        state_dir: Path,
        layout: TopicLayout | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        report_every_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mines = mines
        self.config = mines.config
        self.layout = layout or TopicLayout()
        self.state_dir = state_dir
        self.report_every_s = report_every_s
        self._clock = clock
        self.epoch = wall_ms()
        self.counters: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._seq: dict[str, int] = {}  # by topic
        self._pending: dict[tuple[str, int, int], Path] = {}  # (topic, epoch, seq) -> file
        self._left: dict[Path, int] = {}  # file -> its batches not yet acknowledged
        self._said: set[tuple[str, str, str]] = set()  # (what, mine, item) logged once
        self._full = False
        self._failures: Counter[Path] = Counter()  # file -> its failed takings
        self._unfinished: dict[Path, tuple[int, int]] = {}  # (size, mtime_ns) without ||
        self._newest = Newest()  # each sensor's newest event time sent
        self._ranges: dict[str, Ranges] = {}  # mine -> point -> its JC's measuring range
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            for mine, (_, kept) in load_points(state_dir / "points").items():
                self._ranges[mine] = ranges_of(kept)
        self._read: dict[Path, tuple[int, int]] = {}  # taken file -> (size, mtime_ns) read
        # a file taken but not moved -> (size, mtime_ns) taken, the reason it was refused (None:
        # to done/): only the move is tried again while it is unchanged
        self._unmoved: dict[Path, tuple[tuple[int, int], str | None]] = {}
        self._again: set[Path] = set()  # changed after its readings were sent: taken again
        self.keeper = Keeper(
            (self.config.done_dir, self.config.rejected_dir),
            self.config.keep_days,
            self.counters,
            clock,
        )
        if problems := start_problems(self.config):
            raise ConfigError("\n".join(problems))
        if warning := shared_warning(self.config):
            log.warning("mine-files: %s", warning)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.publishers = uplinks(
            self.config,
            state_dir,
            broker_host=broker_host,
            broker_port=broker_port,
            layout=self.layout,
            username=username,
            password=password,
            tls=tls,
            on_sent=self._acked,
        )

    @property
    def in_flight(self) -> int:
        return len(self._left)

    async def run(self, stop: asyncio.Event) -> None:
        """Take files until `stop` is set; then drain the uplinks (what is not acknowledged
        stays in the folder for the next start)."""
        uplink_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for tenant, pub in self.publishers.items():
                tg.create_task(pub.run(uplink_stop), name=f"minefiles-uplink-{tenant}")
            tg.create_task(self._report(uplink_stop), name="minefiles-report")
            tg.create_task(self.keeper.run(stop), name="minefiles-keep")
            while not stop.is_set():
                await self.scan()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.scan_s):
                        await stop.wait()
            uplink_stop.set()
        for pub in self.publishers.values():
            pub.spool.close()
        log.info("mine-files: stopped with %d files not yet acknowledged", len(self._left))

    async def scan(self) -> None:
        """Take the complete files of the folder, as many as the queue holds. A file that cannot
        be read or moved (its owner, a full disk) is said once and tried again at each scan; any
        other failure of a file is that file's: counted (`files_failed`), and the file refused
        once it failed twice."""
        now = self._clock()
        found = uploads(self.config)
        for folder, exc in found.errors:
            self._file_error(folder, exc)
        present = {path for path, _ in found.files}
        for known in (self._unfinished, self._failures, self._unmoved):
            for gone in [p for p in known if p not in present]:  # removed or renamed meanwhile
                del known[gone]
        for path, mine in found.files:
            if path in self._left or (path in self._unmoved and self._move_again(path)):
                continue
            if len(self._left) >= self.config.max_files_in_flight:
                if not self._full:
                    self._full = True
                    self.counters["queue_full"] += 1
                    log.warning(
                        "mine-files: queue full: %d files wait for the broker's acknowledgement; "
                        "the others stay in %s until it takes them",
                        len(self._left),
                        self.config.incoming,
                    )
                return
            try:
                await self._look(path, mine, now)
            except OSError as exc:
                self._file_error(path, exc)
            except Exception as exc:  # one file's failure is not the process's
                self._failed(path, exc)
        self._full = False

    async def _look(self, path: Path, mine: str | None, now: float) -> None:
        """Take `path` once complete; `mine`: its folder's (None: the name's, `uploads`)."""
        c = self.config
        unfinished = self._unfinished.pop(path, None)
        arrival = look(path, now, c.settle_s, c.incomplete_after_s, c.max_file_bytes, unfinished)
        if arrival.state == "settling":
            return
        try:
            name = parse_name(path.name)
        except FileError as exc:  # not a networking file: refused, whole or not
            self._reject(path, str(exc))
            return
        if (wrong := misplaced(name.mine_code, mine, c)) is not None:
            self.counters["files_wrong_folder"] += 1
            self._reject(path, wrong)
            return
        if arrival.state == "unfinished":
            self._unfinished[path] = (arrival.size, arrival.mtime_ns)
            return
        if arrival.state == "incomplete":
            self._reject(path, f"incomplete: no || end marker after {c.incomplete_after_s:g} s")
        elif arrival.state == "too_big":
            self._reject(
                path,
                f"{arrival.size} bytes, bigger than max_file_bytes ({c.max_file_bytes}): not "
                "read; a mine's system uploading files this big is asked to upload more often, "
                "or max_file_bytes is raised",
            )
        else:
            ranges = self._ranges.get(name.mine_code)
            taken = await asyncio.to_thread(take, str(path), self.mines, c.max_file_bytes, ranges)
            self._read[path] = taken.read
            self._take(path, taken)
            self._failures.pop(path, None)

    def _failed(self, path: Path, exc: Exception) -> None:
        self.counters["files_failed"] += 1
        self._failures[path] += 1
        failures = self._failures[path]
        log.error(
            "mine-files: %s could not be taken (%d times): %s: %s",
            shown(path.name),
            failures,
            type(exc).__name__,
            shown(exc),
            exc_info=failures == 1,
        )
        if failures >= _FAILURES:
            del self._failures[path]
            self._reject(path, f"taking it failed {failures} times: {type(exc).__name__}: {exc}")

    def _file_error(self, path: Path, exc: OSError) -> None:
        self.counters["file_errors"] += 1
        if self._once("file", str(path), f"{type(exc).__name__} {exc.errno}"):
            log.error("mine-files: %s: %s; tried again at each scan", shown(path), shown(exc))

    def _reject(self, path: Path, reason: str) -> None:
        first = reason.splitlines()[0] if reason else ""
        log.warning("mine-files: %s rejected: %s", shown(path.name), shown(first))
        self._finish(path, reason)

    def _done(self, path: Path) -> None:
        self._finish(path, None)

    def _finish(self, path: Path, reason: str | None) -> None:
        """Move `path` to done/ (`reason` None) or rejected/; one that cannot be moved is
        remembered with the (size, mtime_ns) taken: only its move is tried again."""
        read = self._read.pop(path, None)
        try:
            self._move(path, reason)
        except OSError as exc:
            if read is None:
                with contextlib.suppress(OSError):
                    st = path.stat()
                    read = (st.st_size, st.st_mtime_ns)
            if read is not None:
                self._unmoved[path] = (read, reason)
            self._file_error(path, exc)

    def _move(self, path: Path, reason: str | None) -> None:
        if reason is None:
            move(path, self.config.done_dir, self._clock())
            self.counters["files_done"] += 1
        else:
            reject(path, self.config.rejected_dir, reason, self._clock())
            self.counters["files_rejected"] += 1

    def _move_again(self, path: Path) -> bool:
        """Try again to move a file taken but not moved; False when it changed since (it is
        taken again)."""
        read, reason = self._unmoved[path]
        try:
            st = path.stat()
            if (st.st_size, st.st_mtime_ns) != read:
                del self._unmoved[path]
                return False
            self._move(path, reason)
            del self._unmoved[path]
        except OSError as exc:
            self._file_error(path, exc)
        return True

    def _once(self, what: str, mine: str, item: str) -> bool:
        if (what, mine, item) in self._said:
            return False
        self._said.add((what, mine, item))
        return True

    def _take(self, path: Path, taken: Taken) -> None:
        if taken.refused:
            self._reject(path, taken.refused)
            return
        if taken.errors:
            self.counters["records_bad"] += len(taken.errors)
            for err in taken.errors[:_ERRORS_SAID]:
                log.warning("mine-files: %s: record refused: %s", path.name, shown(err))
        self.counters[f"records_{taken.kind}"] += taken.count
        if taken.kind == "JC":
            points = [r for r in taken.records if isinstance(r, PointDef)]
            self._definitions(path, taken.mine, points)
        elif taken.kind == "YC":
            alarms = [r for r in taken.records if isinstance(r, AlarmRecord)]
            self._mine_alarms(path, taken.mine, alarms)
        else:
            self._readings(path, taken.mine, taken.converted)

    def _definitions(self, path: Path, mine: str, points: list[PointDef]) -> None:
        save_points(self.state_dir / "points", mine, path.name, tuple(points))
        self._ranges[mine] = ranges_of(points)
        said.findings(check(self.mines, mine, points), self.counters, self._once)
        self._done(path)

    def _mine_alarms(self, path: Path, mine: str, alarms: list[AlarmRecord]) -> None:
        said.mine_alarms(path.name, mine, alarms, self.counters)
        self._done(path)

    def _readings(self, path: Path, mine: str, conv: Converted) -> None:
        said.conversion(mine, conv, self.counters, self._once)
        if any(len(d.keys) > MAX_KEYS for d in conv.devices):
            self._reject(path, f"more than {MAX_KEYS} points of one hub device in one file")
            return
        if not conv.devices:
            self._done(path)
            return
        tenant = self.config.mines[mine].tenant
        rows = []
        for d in (piece for device in conv.devices for piece in device.batches()):
            topic = self.layout.telemetry(d.device.tenant, d.device.site, d.device.spec.id)
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            batch = TelemetryBatch(
                self.config.gateway,
                d.device.spec.id,
                self.epoch,
                seq,
                d.keys,
                d.key,
                d.ts,
                d.value,
                d.quality,
            )
            rows.append((topic, encode(batch), batch.device, self.epoch, seq, len(batch)))
            self._pending[(topic, self.epoch, seq)] = path
        self._left[path] = len(rows)
        self.counters["readings"] += conv.readings
        again = path in self._again  # its earlier readings are no backlog
        self._again.discard(path)
        said.times(path.name, conv, self._clock(), self._newest, self.counters, again)
        pub = self.publishers[tenant]
        pub.spool.push_many(rows)
        pub.wake()

    def _acked(self, items: Sequence[Spooled]) -> None:
        for item in items:
            path = self._pending.pop((item.topic, item.epoch, item.seq), None)
            if path is None:
                continue
            self._left[path] -= 1
            if self._left[path] == 0:
                del self._left[path]
                self._sent(path)

    def _sent(self, path: Path) -> None:
        """Every batch of `path` acknowledged: to done/, unless it changed since it was read
        (overwritten while it waited): then it is taken again at the next scan."""
        read = self._read.get(path)
        try:
            st = path.stat()
            now = (st.st_size, st.st_mtime_ns)
        except OSError:
            now = None
        if now is not None and read is not None and now != read:
            del self._read[path]
            self.counters["files_changed"] += 1
            self._again.add(path)
            log.warning(
                "mine-files: %s changed while its readings waited for the broker: taken again "
                "(its earlier readings are sent again: harmless)",
                shown(path.name),
            )
            return
        self._done(path)

    def report_counters(self) -> str | None:
        since = changed_since(self.counters, self._reported)
        if since is None:
            return None
        self._reported = self.counters.copy()
        line = f"mine-files: {len(self._left)} files in flight; since the last report: {since}"
        log.info("%s", line)
        return line

    async def _report(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.report_every_s):
                    await stop.wait()
            self.report_counters()
            for pub in self.publishers.values():
                pub.report_counters()
