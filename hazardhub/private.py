"""The hub's data folder holds secrets in clear: webhook HMAC keys, passwords and tokens in
webhook URLs (`state.db`, its configuration revisions in `registry.db`), API-key digests. Its
databases are made readable by the hub's user alone (0600), those of before too, and so are the
write-ahead logs SQLite makes beside them (`telemetry.private`)."""

from __future__ import annotations

from pathlib import Path

from telemetry import private

__all__ = ["PRIVATE_FILES", "keep_private"]

# the hub's databases in its data folder
PRIVATE_FILES = ("registry.db", "state.db", "state-outbox.db", "timeseries.db")


def keep_private(data_dir: Path, names: tuple[str, ...] = PRIVATE_FILES) -> None:
    """The hub's databases (`names`) in `data_dir` at mode 0600, before SQLite opens them."""
    private.keep_private(data_dir, names)
