"""The registry's relational state behind one module: configuration revisions and API keys.

SQLite by default (``registry.db`` under the data folder, WAL). The methods are synchronous and
thread-safe; async callers run them in a worker thread. Every SQL statement of the registry is
here, so that PostgreSQL can replace SQLite when several hub processes share state.

* **Configuration revisions.** Every accepted configuration is kept whole (JSON of `HubConfig`),
  numbered, with who made it, why and where it came from (``file``, ``api``, ``import``). The
  newest revision is the one the hub runs. A revision from the configuration file also records
  the file's digest: at start the hub uses the newest revision unless the file changed since it
  was last read, in which case the file wins (an administrator edited it on purpose).
* **API keys** made through the API: only the SHA-256 digest of a key is stored; the key is
  shown once, when it is made. A key has an expiry and can be revoked; neither is undone. Its
  maker is kept by name (`created_by`) and kind (`maker`: a key of the configuration or of the
  API; NULL for a key made before it was kept): a key works only while its maker does.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["KeyRow", "Maker", "RegistryDB", "RegistryDBError", "Revision"]

Source = Literal["file", "api", "import"]
Maker = Literal["config", "api"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config_revisions (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('file', 'api', 'import')),
    file_sha256 TEXT,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenants TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    revoked_by TEXT,
    maker TEXT CHECK (maker IN ('config', 'api'))
);
CREATE TABLE IF NOT EXISTS config_key_changes (
    sha256 TEXT PRIMARY KEY,
    spec TEXT,
    changed_ms INTEGER NOT NULL,
    actor TEXT NOT NULL
);
"""
# columns added since a table was first made: (table, column, its definition)
_ADDED = (("api_keys", "maker", "TEXT CHECK (maker IN ('config', 'api'))"),)
_KEEP_REVISIONS = 1000  # older revisions are pruned; the newest is never


class RegistryDBError(Exception):
    """A registry write the database refused (for example, a key name already taken)."""


@dataclass(frozen=True, slots=True)
class Revision:
    rev: int
    created_ms: int
    actor: str
    comment: str
    source: Source
    file_sha256: str | None
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeyRow:
    name: str
    sha256: str
    role: str
    tenants: tuple[str, ...]
    created_ms: int
    created_by: str
    expires_ms: int
    revoked_ms: int | None
    revoked_by: str | None
    # what `created_by` names: a key of the configuration or of the API (None: made before the
    # maker was kept; `api.auth.KeyRing` finds it by name)
    maker: Maker | None = None

    def valid_at(self, now_ms: int) -> bool:
        return self.revoked_ms is None and now_ms < self.expires_ms


class RegistryDB:
    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")  # a change said saved is on disk
        with self._tx() as c:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            for table, column, definition in _ADDED:
                have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            finally:  # the body or the COMMIT failed: never leave the transaction open
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    # -- configuration revisions --------------------------------------------------------------

    def add_revision(
        self,
        document: dict[str, Any],
        *,
        actor: str,
        comment: str,
        source: Source,
        now_ms: int,
        file_sha256: str | None = None,
    ) -> int:
        text = json.dumps(document, ensure_ascii=False, sort_keys=True, allow_nan=False)
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO config_revisions"
                " (created_ms, actor, comment, source, file_sha256, document)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now_ms, actor, comment, source, file_sha256, text),
            )
            rev = int(cur.lastrowid or 0)
            c.execute("DELETE FROM config_revisions WHERE rev <= ?", (rev - _KEEP_REVISIONS,))
        return rev

    # -- the API's changes to the configuration's keys (api.keycarry) -------------------------

    def record_key_changes(
        self, changes: dict[str, dict[str, Any] | None], *, actor: str, now_ms: int
    ) -> None:
        """Keep what a change through the API did to the configuration's keys, by digest (None:
        taken away), over what an earlier one did."""
        if not changes:
            return
        with self._tx() as c:
            c.executemany(
                "INSERT INTO config_key_changes (sha256, spec, changed_ms, actor)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET spec = excluded.spec,"
                " changed_ms = excluded.changed_ms, actor = excluded.actor",
                [
                    (
                        digest,
                        None if spec is None else json.dumps(spec, sort_keys=True),
                        now_ms,
                        actor,
                    )
                    for digest, spec in changes.items()
                ],
            )

    def file_document_before(self, rev: int) -> dict[str, Any] | None:
        """The configuration as last read from the file before revision `rev` (None: none)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT document FROM config_revisions WHERE source = 'file' AND rev < ?"
                " ORDER BY rev DESC LIMIT 1",
                (rev,),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def key_changes(self) -> dict[str, dict[str, Any] | None]:
        """What the API last did to each configuration key it changed (`record_key_changes`)."""
        with self._lock:
            rows = self._conn.execute("SELECT sha256, spec FROM config_key_changes").fetchall()
        return {str(d): None if spec is None else json.loads(spec) for d, spec in rows}

    def latest_revision(self) -> Revision | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT rev, created_ms, actor, comment, source, file_sha256, document"
                " FROM config_revisions ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        return None if row is None else _revision(row)

    def revision(self, rev: int) -> Revision | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT rev, created_ms, actor, comment, source, file_sha256, document"
                " FROM config_revisions WHERE rev = ?",
                (rev,),
            ).fetchone()
        return None if row is None else _revision(row)

    def last_file_digest(self) -> str | None:
        """The digest of the configuration file the newest file revision was read from."""
        with self._lock:
            row = self._conn.execute(
                "SELECT file_sha256 FROM config_revisions WHERE source = 'file'"
                " ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        return None if row is None else row[0]

    def revisions(self, limit: int = 100, before: int | None = None) -> list[Revision]:
        """Newest first, without their documents (empty dicts)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT rev, created_ms, actor, comment, source, file_sha256, '{}'"
                " FROM config_revisions WHERE rev < ? ORDER BY rev DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [_revision(r) for r in rows]

    # -- API keys ---------------------------------------------------------------------------

    def add_key(self, row: KeyRow) -> None:
        try:
            with self._tx() as c:
                c.execute(
                    "INSERT INTO api_keys (name, sha256, role, tenants, created_ms, created_by,"
                    " expires_ms, maker) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.name,
                        row.sha256,
                        row.role,
                        json.dumps(list(row.tenants)),
                        row.created_ms,
                        row.created_by,
                        row.expires_ms,
                        row.maker,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise RegistryDBError(f"an API key named {row.name!r} exists already") from exc

    def revoke_key(self, name: str, *, actor: str, now_ms: int) -> bool:
        """Revoke a key; False when there is no such key or it was revoked before."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE api_keys SET revoked_ms = ?, revoked_by = ?"
                " WHERE name = ? AND revoked_ms IS NULL",
                (now_ms, actor, name),
            )
            return cur.rowcount > 0

    def api_keys(self) -> list[KeyRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, sha256, role, tenants, created_ms, created_by, expires_ms,"
                " revoked_ms, revoked_by, maker FROM api_keys ORDER BY name"
            ).fetchall()
        return [
            KeyRow(
                name=r[0],
                sha256=r[1],
                role=r[2],
                tenants=tuple(json.loads(r[3])),
                created_ms=int(r[4]),
                created_by=r[5],
                expires_ms=int(r[6]),
                revoked_ms=None if r[7] is None else int(r[7]),
                revoked_by=r[8],
                maker=r[9],
            )
            for r in rows
        ]


def _revision(row: tuple[Any, ...]) -> Revision:
    return Revision(
        rev=int(row[0]),
        created_ms=int(row[1]),
        actor=str(row[2]),
        comment=str(row[3]),
        source=row[4],
        file_sha256=row[5],
        document=json.loads(row[6]),
    )
