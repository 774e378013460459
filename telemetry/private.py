"""Files readable by their process's user alone: the hub's databases hold secrets in clear
(webhook HMAC keys, passwords in URLs, API-key digests), a gateway's spool an enterprise's
readings and positions. Each SQLite database and the write-ahead logs SQLite makes beside it
(with the database file's own permissions) are mode 0600, those made before too."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["keep_private"]


def keep_private(folder: Path, names: tuple[str, ...]) -> None:
    """Make (empty, for SQLite to fill) or narrow each database of `folder` and its -wal and
    -shm files to mode 0600, before SQLite opens them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for file in (path, path.with_name(name + "-wal"), path.with_name(name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                if file.stat().st_mode & 0o077:
                    file.chmod(0o600)
