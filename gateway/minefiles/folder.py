"""The upload folder: which files are there to take, and where taken files go.

A file is taken once it is complete: it ends with the ``||`` end marker and has not changed for
`settle_s` (an FTP upload in progress grows; a writer may put ``||`` down before its last
flush). A ``.txt`` file still without its end marker after `incomplete_after_s` is refused.
Hidden files and files not ending in ``.txt`` (an FTP server's temporary names) are left alone.

Taken and refused files go into a folder per day (``done/2026-03-01/``): the China-time day of
the file name's time, or the day it was taken for a name without one. Fifty mines uploading every
10 s make over 400,000 files a day: one flat folder of a month of them was slow to list for the
housekeeping, an operator's ``ls`` and backups; a day's folder is removed whole once older than
`keep_days`. Files an older version left flat in ``done/`` are still removed by their mtime.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from telemetry.mt1201 import FileError, format_time, parse_name, parse_time

__all__ = [
    "Arrival",
    "day_of",
    "ends_complete",
    "look",
    "move",
    "recent_names",
    "reject",
    "remove_older",
    "txt_files",
]

END = b"||"
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


_TAIL = 4096  # the bytes of a file's end read for its end marker


@dataclass(frozen=True, slots=True)
class Arrival:
    state: Literal["ready", "settling", "unfinished", "incomplete", "too_big"]
    size: int = 0
    mtime_ns: int = 0


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


def look(
    path: Path,
    now: float,
    settle_s: float,
    incomplete_after_s: float,
    max_bytes: int,
    unfinished: tuple[int, int] | None = None,
) -> Arrival:
    """Whether `path` is complete (its end marker on its tail), changed within `settle_s`,
    settled without its end marker, without it for `incomplete_after_s` (given up on), or bigger
    than `max_bytes` (never read whole). Only the file's last bytes are read, and not again
    while its (size, mtime_ns) is still `unfinished`'s (found without its end marker before)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return Arrival("settling")
    size, mtime_ns = st.st_size, st.st_mtime_ns
    age = now - st.st_mtime
    if age < settle_s:
        return Arrival("settling", size, mtime_ns)
    if size > max_bytes:
        return Arrival("too_big", size, mtime_ns)
    if unfinished != (size, mtime_ns) and ends_complete(path, size):
        return Arrival("ready", size, mtime_ns)
    return Arrival("incomplete" if age >= incomplete_after_s else "unfinished", size, mtime_ns)


def ends_complete(path: Path, size: int) -> bool:
    """Whether the file ends with the ``||`` end marker (trailing white space aside)."""
    with path.open("rb") as f:
        f.seek(max(0, size - _TAIL))
        return f.read(_TAIL).rstrip().endswith(END)


def day_of(name: str, now: float) -> str:
    """The day folder (``yyyy-MM-dd``, China time) of a file named `name`: the day of its name's
    time, or of `now` (epoch s, when it is taken) for a name without one."""
    try:
        stamp_ms = parse_name(name).stamp_ms
    except FileError:
        stamp_ms = int(now * 1000)
    return format_time(stamp_ms)[:10]


def _day(name: str) -> float | None:
    """When the day a day folder's name says starts (epoch s), None for any other name."""
    if _DAY.match(name) is None:
        return None
    try:
        return parse_time(f"{name} 00:00:00") / 1000.0
    except ValueError:  # 2026-02-30
        return None


def _free(day: Path, name: str) -> Path:
    """`day/name`, or, when a file of that name is there already (a mine's system uploading a
    name again), ``{stem}.{n}{suffix}`` with the first n free: both are kept."""
    target = day / name
    stem, dot, suffix = name.rpartition(".")
    n = 1
    while target.exists() or target.with_name(f"{target.name}.reason").exists():
        n += 1
        target = day / (f"{stem}.{n}.{suffix}" if dot else f"{name}.{n}")
    return target


def move(path: Path, folder: Path, now: float, reason: str | None = None) -> Path:
    """Put `path` into its day's folder of `folder` (beside one of the same name there: a
    suffix ``.2``, ``.3`` ... before ``.txt``), with ``{name}.reason`` beside it saying
    `reason` when given."""
    day = folder / day_of(path.name, now)
    day.mkdir(parents=True, exist_ok=True)
    target = _free(day, path.name)
    os.replace(path, target)
    if reason is not None:
        (day / f"{target.name}.reason").write_text(reason.rstrip() + "\n", encoding="utf-8")
    return target


def reject(path: Path, folder: Path, reason: str, now: float) -> Path:
    """Put `path` into its day's folder of `folder` with ``{name}.reason`` beside it saying why."""
    return move(path, folder, now, reason)


def recent_names(folder: Path, prefix: str, at_least: int) -> list[str]:
    """The names starting with `prefix` of the newest day folders of `folder`, newest days first
    until there are `at_least`, with those an older version left flat in `folder`."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [e.name for e in entries if e.name.startswith(prefix) and e.is_file()]
    days = sorted(
        (e.name for e in entries if _day(e.name) is not None and e.is_dir()), reverse=True
    )
    found: list[str] = []
    for day in days:
        if len(found) >= at_least:
            break
        found += (n for n in os.listdir(folder / day) if n.startswith(prefix))
    return names + found


def _remove_files(
    folder: Path, before: float | None, halt: Callable[[], bool]
) -> tuple[int, list[tuple[Path, OSError]], bool]:
    """Remove the files of `folder` last changed before `before` (None: all of them): (how many
    went, those that could not go, whether `halt` stopped it)."""
    removed, failed = 0, list[tuple[Path, OSError]]()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a move into it fails)
        return 0, [], False
    except OSError as exc:
        return 0, [(folder, exc)], False
    for i, e in enumerate(entries):
        if i % 1000 == 999 and halt():
            return removed, failed, True
        try:
            if e.is_file(follow_symlinks=False) and (
                before is None or e.stat(follow_symlinks=False).st_mtime < before
            ):
                os.unlink(e.path)
                removed += 1
        except FileNotFoundError:
            continue  # gone meanwhile
        except OSError as exc:
            failed.append((Path(e.path), exc))
    return removed, failed, False


def remove_older(
    folder: Path, before: float, halt: Callable[[], bool] = lambda: False
) -> tuple[int, list[tuple[Path, OSError]]]:
    """Remove the day folders of `folder` whose whole day (China time) is before `before` (epoch
    s), and the files an older version left flat in `folder` last changed before it, until
    `halt()` says stop: (how many files went, those that could not go and why). Other
    sub-folders are left alone; a missing folder has none."""
    removed, failed, halted = _remove_files(folder, before, halt)
    if halted:
        return removed, failed
    try:
        days = sorted(e.name for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return removed, failed
    except OSError as exc:
        return removed, [*failed, (folder, exc)]
    for name in days:
        start = _day(name)
        if start is None or start + 86400.0 > before:  # China has one offset all year
            continue
        went, could_not, halted = _remove_files(folder / name, None, halt)
        removed += went
        failed += could_not
        if halted:
            break
        if not could_not:
            try:
                (folder / name).rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:  # something else in it (a folder of the operator's)
                failed.append((folder / name, exc))
    return removed, failed
