"""Why a process cannot start here, said in one line by the CLI before anything starts: its
API address (taken, or not this machine's) and its folders (not makeable or not writable). Each
was found by whichever part first used it, after the others had started, in a traceback."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

__all__ = ["api_address_problem", "folder_problem"]


def api_address_problem(host: str, port: int) -> str | None:
    """Why the API cannot listen on host:port (in use, or not an address of this machine), or
    None: said in one line before anything starts, instead of the tracebacks of every part
    already started when the API fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"the API address {host}:{port} cannot be used: {exc}"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            return (
                f"the API address {host}:{port} is not free ({exc.strerror}): another hub or "
                "demo may be running; give another with --api HOST:PORT"
            )
    return None


def folder_problem(option: str, path: Path) -> str | None:
    """Why `path` (given with `option`) cannot be the process's folder, or None: made if
    missing, and a file written in it and removed. A folder that is a file, under a file or not
    writable stopped the start with a traceback of whichever part first wrote there
    (helper-149): said here in one line instead, before anything starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".hazardhub-check-"):
            pass
    except FileExistsError:
        return f"{option} {path}: it is a file, not a folder"
    except OSError as exc:
        return f"{option} {path}: cannot make or write the folder: {exc.strerror or exc}"
    return None
