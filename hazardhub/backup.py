"""`hazardhub backup`: a consistent copy of the hub's data folder (or of a gateway's spool
folder) while the hub runs.

The hub's databases run in WAL mode: while it runs, `state.db` and the others may hold a few
pages and everything else is in their `-wal` files, so a plain copy of the folder can give files
that open empty or half written. Each SQLite database (`*.db`) is copied with SQLite's online
backup API instead: a snapshot of its last commit, read beside the hub's writes (a transaction
open in the hub is not in it), into one self-contained file (rollback journal, no `-wal` beside
it). `state.db` is copied before `state-outbox.db` (docs/alarms.md: an outbox older than the
alarm book routes again under the same keys; the other way round loses keys). The other files
(`analytics-state.npz`, the InfluxDB spool's segments ...) are copied as they are; the `-wal`,
`-shm` and `-journal` files of a database are not (their commits are in its copy).

Every copy is made readable by its owner alone (0600, the folder 0700): the data folder holds
secrets (hazardhub.private). Restore: stop the hub, put the copied files back in its data folder
(docs/operations.md, "Backup").

The copies of the outbox and of `state.db` are marked restored copies
(`alerts.notify.outboxdb.mark_restored`, `alerts.restoredcopy.mark_state_restored`): a hub started
on them gives its new notifications keys of a new series and numbers its alarms and journal events
on from `alerts.restoredcopy.GAP` above the backup's, never the keys and ids the hub gave after
the backup to other alarms. Files put
back otherwise (a copy of a stopped hub's folder) get the mark from `hazardhub restored`
(`mark_folder_restored`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from alerts.notify.outboxdb import mark_restored, outbox_path
from alerts.restoredcopy import mark_state_restored
from telemetry.clock import wall_ms

__all__ = ["Copied", "back_up", "mark_folder_restored"]

# copied first, in this order: the alarm book before its outbox (docs/alarms.md)
_FIRST = ("registry.db", "state.db", "state-outbox.db")
_SIDE_FILES = ("-wal", "-shm", "-journal")
# not copied: the newest batch judged of each device (`ingest.seqjournal`) would, restored, count
# every batch since the backup as missing; without it the hub starts as on a new folder
_NOT_KEPT = frozenset({"ingest-seqs.jsonl"})


@dataclass(frozen=True, slots=True)
class Copied:
    """One file copied: its path under the folder, its size in the copy, and how (sqlite: with
    the online backup API; file: as it is)."""

    name: str
    size: int
    how: str


def _order(path: Path) -> tuple[int, str]:
    rank = _FIRST.index(path.name) if path.parent.name == "" and path.name in _FIRST else 99
    return (rank, path.as_posix())


def _sources(src: Path) -> list[Path]:
    """The files to copy, relative to `src`: regular files, not a database's side files."""
    found = [
        p.relative_to(src)
        for p in src.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name not in _NOT_KEPT
    ]
    names = {p.as_posix() for p in found}
    kept = [
        p
        for p in found
        if not any(
            p.name.endswith(side) and p.as_posix().removesuffix(side) in names
            for side in _SIDE_FILES
        )
    ]
    return sorted(kept, key=_order)


def _private_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _copy_database(source: Path, target: Path) -> None:
    _private_file(target)  # before SQLite makes it with the umask's mode
    # read-only: the copy never writes the hub's file (nor makes its -wal when there is none)
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            # one file to keep: no -wal to go with it (the hub sets WAL again when it opens it)
            dst.execute("PRAGMA journal_mode=DELETE")
            ok = dst.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(f"{target}: the copy fails its check: {ok}")
        finally:
            dst.close()
    finally:
        src.close()


def back_up(src: Path, to: Path) -> list[Copied]:
    """Copy the folder `src` into `to`, a folder that does not exist or is empty (never into
    an older backup: a mix of two is no backup). Raises ValueError when it cannot start."""
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder")
    if to.resolve().is_relative_to(src.resolve()):
        raise ValueError(f"{to} is inside {src}: give a folder elsewhere")
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise ValueError(f"{to} exists and is not an empty folder: give a new one")
    to.mkdir(mode=0o700, parents=True, exist_ok=True)
    to.chmod(0o700)
    copied: list[Copied] = []
    for rel in _sources(src):
        source, target = src / rel, to / rel
        if rel.suffix == ".db":
            taken_at = wall_ms()
            _copy_database(source, target)
            if rel.name.endswith("-outbox.db"):
                mark_restored(target, taken_at)  # (no outbox database: not marked)
            elif rel.as_posix() == "state.db":
                mark_state_restored(target, taken_at)  # its ids go on from far above
            how = "sqlite"
        else:
            _private_file(target)
            try:
                shutil.copyfile(source, target)
            except FileNotFoundError:  # gone since listed (a spool segment drained)
                target.unlink()
                continue
            how = "file"
        copied.append(Copied(rel.as_posix(), target.stat().st_size, how))
    return copied


def mark_folder_restored(data: Path) -> Path:
    """Mark the outbox and `state.db` of the hub's data folder `data` restored copies (`hazardhub
    restored`, after putting back files that `hazardhub backup` did not copy): the hub's next
    start gives new notifications keys of a new series and numbers alarms and journal events on
    from far above. Returns the outbox file marked; raises ValueError when there is no outbox
    there."""
    path = outbox_path(data / "state.db")
    mark_state_restored(data / "state.db", None)  # its ids go on from far above
    if not mark_restored(path, None):
        raise ValueError(
            f"{path} is no notification outbox: nothing to mark (a hub started without one "
            "makes keys of a series of its own)"
        )
    return path
