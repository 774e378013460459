"""The upload folder: which files are there to take, and where taken files go.

A file is taken once it is complete: it ends with the ``||`` end marker and has not changed for
`settle_s` (an FTP upload in progress grows; a writer may put ``||`` down before its last
flush). A ``.txt`` file still without its end marker after `incomplete_after_s` is refused.
Hidden files and files not ending in ``.txt`` (an FTP server's temporary names) are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Arrival", "look", "move", "reject", "remove_older", "txt_files"]

END = b"||"


@dataclass(frozen=True, slots=True)
class Arrival:
    state: Literal["ready", "settling", "unfinished", "incomplete"]
    data: bytes = b""


def txt_files(incoming: Path) -> list[Path]:
    """The candidate files, by name (a mine's files sort by their time)."""
    try:
        entries = list(os.scandir(incoming))
    except FileNotFoundError:
        return []
    return sorted(
        Path(e.path)
        for e in entries
        if not e.name.startswith(".") and e.name.lower().endswith(".txt") and e.is_file()
    )


def look(path: Path, now: float, settle_s: float, incomplete_after_s: float) -> Arrival:
    """Whether `path` is complete (and its bytes), changed within `settle_s`, settled without
    its end marker, or without it for `incomplete_after_s` (given up on)."""
    try:
        before = path.stat()
    except FileNotFoundError:
        return Arrival("settling")
    age = now - before.st_mtime
    if age < settle_s:
        return Arrival("settling")
    data = path.read_bytes()
    if data.rstrip().endswith(END):
        return Arrival("ready", data)
    return Arrival("incomplete" if age >= incomplete_after_s else "unfinished")


def move(path: Path, folder: Path) -> Path:
    """Put `path` into `folder` (same name; one there before is replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    os.replace(path, target)
    return target


def reject(path: Path, folder: Path, reason: str) -> Path:
    """Put `path` into `folder` with ``{name}.reason`` beside it saying why."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{path.name}.reason").write_text(reason.rstrip() + "\n", encoding="utf-8")
    return move(path, folder)


def remove_older(
    folder: Path, before: float, halt: Callable[[], bool] = lambda: False
) -> tuple[int, list[tuple[Path, OSError]]]:
    """Remove the files of `folder` (not its sub-folders) last changed before `before` (epoch
    s), until `halt()` says stop: (how many went, those that could not go and why). A missing
    folder has none."""
    removed, failed = 0, []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a move into it fails)
        return 0, []
    except OSError as exc:
        return 0, [(folder, exc)]
    for i, e in enumerate(entries):
        if i % 1000 == 999 and halt():
            break
        try:
            if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < before:
                os.unlink(e.path)
                removed += 1
        except FileNotFoundError:
            continue  # gone meanwhile
        except OSError as exc:
            failed.append((Path(e.path), exc))
    return removed, failed
