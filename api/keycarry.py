"""The API's changes to the configuration's keys outlive a file that wins over them.

When the configuration file changed since the hub last read it, the file runs and the revisions
made through the API since are not running (`ConfigAdmin.startup`). For the keys that would undo
a security action: a key rotated or taken away through the API (a key that leaked) came back to
life with a one-word edit of the file, and the key made to replace it stopped working
(helper-149). So the keys the API took away stay away, and the keys it made stay, whatever else
the file decides.
"""

from __future__ import annotations

from typing import Any

__all__ = ["carry_key_changes"]


def _keys(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A document's configuration keys by digest."""
    items = (doc or {}).get("api_keys") or []
    return {
        k["sha256"]: k for k in items if isinstance(k, dict) and isinstance(k.get("sha256"), str)
    }


def carry_key_changes(
    file_doc: dict[str, Any], base: dict[str, Any] | None, newest: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The file's document with the key changes the API made between `base` (the configuration
    as last read from the file) and `newest` (the newest revision, made through the API) kept:
    a key they took away is left out of the file's, a key they made is added (unless the file
    names another key so: the file's is kept). Returns the document and what was carried, for
    the log; the file's document itself when nothing was."""
    before, after = _keys(base), _keys(newest)
    removed = before.keys() - after.keys()
    said: list[str] = []
    kept: list[dict[str, Any]] = []
    for key in file_doc.get("api_keys") or []:
        digest = key.get("sha256") if isinstance(key, dict) else None
        if digest in removed:
            said.append(
                f"configuration key {key.get('name')!r} of the file was taken away (rotated or "
                "revoked) through the API: it stays refused; give the file a new key to use one"
            )
            continue
        kept.append(key)
    names = {k.get("name") for k in kept if isinstance(k, dict)}
    digests = {k.get("sha256") for k in kept if isinstance(k, dict)}
    for digest, key in after.items():
        if digest in before or digest in digests:
            continue
        if key.get("name") in names:
            said.append(
                f"configuration key {key.get('name')!r} made through the API is not kept: the "
                "file names another key so"
            )
            continue
        kept.append(key)
        said.append(f"configuration key {key.get('name')!r} made through the API is kept")
    if not said:
        return file_doc, []
    return {**file_doc, "api_keys": kept}, said
