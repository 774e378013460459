"""The API's changes to the configuration's keys outlive a file that wins over them.

When the configuration file changed since the hub last read it, the file runs and the revisions
made through the API since are not running (`ConfigAdmin.startup`). For the keys that would undo
a security action: a key rotated or taken away through the API (a key that leaked) came back to
life with a one-word edit of the file, and the key made to replace it stopped working
(helper-149); carried over the first such edit only, it came back at the second (helper-158).
So every change the API makes to `api_keys` is kept (`RegistryDB.key_changes`, by the key's
digest: taken away, or as the API set it) and applied to the file's keys at every start the file
wins, until the API changes that key again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KeyChanges", "apply_key_changes", "key_diff"]

# by a key's digest: None, taken away through the API; else the key as the API set it
KeyChanges = dict[str, dict[str, Any] | None]


def _keys(doc: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A document's configuration keys by digest."""
    items = (doc or {}).get("api_keys") or []
    return {
        k["sha256"]: k for k in items if isinstance(k, dict) and isinstance(k.get("sha256"), str)
    }


def key_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> KeyChanges:
    """The keys a change took away (None) or made or changed (as it set them)."""
    old, new = _keys(before), _keys(after)
    changes: KeyChanges = dict.fromkeys(old.keys() - new.keys())
    changes.update({d: k for d, k in new.items() if old.get(d) != k})
    return changes


def apply_key_changes(
    file_doc: dict[str, Any], changes: Mapping[str, dict[str, Any] | None]
) -> tuple[dict[str, Any], list[str]]:
    """The file's document with the API's key changes applied: a key taken away is left out, a
    key the API changed takes its settings (role, tenants, name), a key it made is added unless
    the file names another key so. Returns the document and what was applied, for the log; the
    file's document itself when nothing was."""
    said: list[str] = []
    kept: list[Any] = []
    for key in file_doc.get("api_keys") or []:
        digest = key.get("sha256") if isinstance(key, dict) else None
        if not isinstance(digest, str) or digest not in changes:
            kept.append(key)
            continue
        change = changes[digest]
        if change is None:
            said.append(
                f"configuration key {key.get('name')!r} of the file was taken away (rotated or "
                "revoked) through the API: it stays refused; give the file a new key to use one"
            )
        elif change != key:
            said.append(
                f"configuration key {key.get('name')!r} of the file runs as the API last set it "
                f"(role {change.get('role')!r})"
            )
            kept.append(change)
        else:
            kept.append(key)
    names = {k.get("name") for k in kept if isinstance(k, dict)}
    digests = {k.get("sha256") for k in kept if isinstance(k, dict)}
    for digest, change in changes.items():
        if change is None or digest in digests:
            continue
        if change.get("name") in names:
            said.append(
                f"configuration key {change.get('name')!r} made through the API is not kept: the "
                "file names another key so"
            )
            continue
        kept.append(change)
        names.add(change.get("name"))
        said.append(f"configuration key {change.get('name')!r} made through the API is kept")
    if not said:
        return file_doc, []
    return {**file_doc, "api_keys": kept}, said
