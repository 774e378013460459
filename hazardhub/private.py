"""The hub's data folder holds secrets in clear: webhook HMAC keys, passwords and tokens in
webhook URLs (`state.db`, its configuration revisions in `registry.db`), API-key digests. Its
databases are made readable by the hub's user alone (0600), those of before too, and so are the
write-ahead logs SQLite makes beside them (with the database file's own permissions)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PRIVATE_FILES", "keep_private"]

# the hub's databases in its data folder
PRIVATE_FILES = ("registry.db", "state.db", "state-outbox.db", "timeseries.db")


def keep_private(data_dir: Path, names: tuple[str, ...] = PRIVATE_FILES) -> None:
    """Make (empty, for SQLite to fill) or narrow each database and its -wal and -shm files to
    mode 0600, before SQLite opens them."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = data_dir / name
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for file in (path, path.with_name(name + "-wal"), path.with_name(name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                if file.stat().st_mode & 0o077:
                    file.chmod(0o600)
