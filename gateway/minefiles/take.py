"""Reading one file, off the event loop: its bytes (at most `max_bytes`), its records and, of a
real-time (SS) file, its readings as the hub's columns. Pure apart from the read; run in a worker
thread (`asyncio.to_thread`) so a big file holds neither the folder's other files nor the MQTT
link's keep-alive up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gateway.minefiles.config import Mines
from gateway.minefiles.convert import Converted, Ranges, convert
from telemetry.mt1201 import FileError, Record, RecordError, parse, parse_name

__all__ = ["Taken", "take"]


@dataclass(frozen=True, slots=True)
class Taken:
    """What a file holds; `refused` says why it is refused whole ("" when taken)."""

    kind: str = ""
    mine: str = ""
    records: tuple[Record, ...] = ()  # JC and YC records (an SS file's are in `converted`)
    errors: tuple[RecordError, ...] = ()
    converted: Converted = field(default_factory=Converted)
    count: int = 0  # the records taken
    refused: str = ""
    read: tuple[int, int] = (0, 0)  # the file's (size, mtime_ns) when read


def take(path: str, mines: Mines, max_bytes: int, ranges: Ranges | None = None) -> Taken:
    """Read and parse the file at `path` (OSError when it cannot be read)."""
    try:
        name = parse_name(path.rsplit("/", 1)[-1])
    except FileError as exc:
        return Taken(refused=str(exc))
    mine = name.mine_code
    if mine not in mines.config.mines:
        return Taken(refused=f"mine code {mine} is not configured")
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        read = (st.st_size, st.st_mtime_ns)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        return Taken(refused=f"bigger than max_file_bytes ({max_bytes} bytes): not read")
    try:
        parsed = parse(data, name.kind, mines.config.mines[mine].encoding)
    except FileError as exc:
        return Taken(refused=str(exc))
    del data
    if parsed.header.mine_code != mine:
        return Taken(refused=f"the header's mine code {parsed.header.mine_code} is not the name's")
    if not parsed.records and parsed.errors:
        return Taken(refused="no record could be taken:\n" + "\n".join(map(str, parsed.errors)))
    n = len(parsed.records)
    if name.kind == "SS":
        converted = convert(mines, mine, parsed.records, ranges)  # type: ignore[arg-type]
        return Taken(name.kind, mine, (), parsed.errors, converted, n, read=read)
    return Taken(name.kind, mine, parsed.records, parsed.errors, count=n, read=read)
