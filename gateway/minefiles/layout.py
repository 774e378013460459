"""Where the mines upload: one folder per mine (``{incoming}/{mine code}/`` or its `folder:`),
each the root of that mine's FTP login alone. A file's mine is its folder's: a file whose name
names another mine is refused, so that one mine's login cannot publish readings as another's.

`unsafe_shared_folder` keeps the older layout (every mine uploads into `incoming`, a file's mine
is its name's alone) for one mine, or until the FTP server has a folder per mine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gateway.minefiles.config import MineFilesConfig
from gateway.minefiles.folder import txt_files

__all__ = ["STRAY", "Uploads", "misplaced", "shared_warning", "start_problems", "uploads"]

STRAY = ""  # the mine of a file at the top of incoming when each mine has a folder: none


@dataclass(slots=True)
class Uploads:
    """The candidate files, each with the mine of its folder (None: the shared folder, the
    name's mine; `STRAY`: at the top of incoming, no mine's), and the folders not listed."""

    files: list[tuple[Path, str | None]] = field(default_factory=list)
    errors: list[tuple[Path, OSError]] = field(default_factory=list)


def uploads(config: MineFilesConfig) -> Uploads:
    """The `.txt` files of each mine's folder (by name), then those at the top of incoming."""
    found = Uploads()
    if config.unsafe_shared_folder:
        folders: list[tuple[Path, str | None]] = [(config.incoming, None)]
    else:
        folders = [(config.folder_of(m), m) for m in sorted(config.mines)]
        folders.append((config.incoming, STRAY))
    for folder, mine in folders:
        try:
            found.files += ((path, mine) for path in txt_files(folder))
        except OSError as exc:
            found.errors.append((folder, exc))
    return found


def misplaced(name_mine: str, folder_mine: str | None, config: MineFilesConfig) -> str | None:
    """Why a file whose name's mine code is `name_mine` cannot be taken from the folder of
    `folder_mine` (`uploads`), or None."""
    if folder_mine is None or name_mine == folder_mine:
        return None
    if folder_mine == STRAY:
        return (
            f"not in a mine's folder: {config.incoming} holds one folder per mine (each mine "
            f"uploads into {config.incoming}/{{mine code}}/, its FTP login's root); an FTP "
            "login still rooted at incoming is to be moved (docs/minefiles.md)"
        )
    return (
        f"the name's mine code {name_mine} is not mine {folder_mine}'s, whose folder it was "
        f"uploaded into ({config.folder_of(folder_mine)}): a mine's login uploads only its "
        "own files; nothing of it was published"
    )


def start_problems(config: MineFilesConfig) -> list[str]:
    """What keeps the gateway from starting: a mine's folder missing (its FTP login has none
    yet: the layout before a folder per mine), or files at the top of incoming (uploads of
    that layout, which would otherwise all be refused)."""
    if config.unsafe_shared_folder:
        return []
    problems = []
    missing = [m for m in sorted(config.mines) if not config.folder_of(m).is_dir()]
    if missing:
        shown = ", ".join(f"{config.folder_of(m)}" for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        problems.append(
            f"the upload folder of mine(s) {', '.join(missing[:5])}{more} does not exist "
            f"({shown}): each mine uploads into a folder of its own, {config.incoming}/"
            "{mine code}/ or its folder:, the root of its FTP login (chrooted); create it, "
            "owned by that login, and point the login at it (docs/minefiles.md, The FTP side; "
            "from one folder for all mines: Moving to a folder per mine, or, for one mine or "
            "meanwhile, unsafe_shared_folder: true)"
        )
    try:
        top = [p.name for p in txt_files(config.incoming)]
    except OSError:
        top = []  # said at each scan
    if top:
        problems.append(
            f"{config.incoming} holds {len(top)} file(s) at its top ({', '.join(top[:3])}"
            f"{' ...' if len(top) > 3 else ''}): uploads of the layout where every mine shared "
            "one folder, which is unsafe (any mine's login can upload as another mine); move "
            "each mine's FTP login into its own folder and these files into their mine's "
            "folder (docs/minefiles.md, Moving to a folder per mine), or, for one mine or "
            "meanwhile, set unsafe_shared_folder: true"
        )
    return problems


def shared_warning(config: MineFilesConfig) -> str | None:
    """What is said at each start with `unsafe_shared_folder` and more than one mine."""
    if not config.unsafe_shared_folder or len(config.mines) < 2:
        return None
    return (
        f"unsafe_shared_folder: the {len(config.mines)} mines upload into one folder "
        f"({config.incoming}) and a file's mine is its name's alone: any mine's FTP login can "
        "upload files as another mine (its readings published as that mine's tenant's) and "
        "read or delete the other mines' files; give each mine a folder of its own "
        f"({os.path.join(config.incoming, '{mine code}')}/, docs/minefiles.md)"
    )
