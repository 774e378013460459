"""The webhook receiver of `bench/notify.py`, a process of its own: a plain asyncio HTTP/1.1
server with keep-alive that checks each signature and records, per event, its arrival at the
receiver against the event's `arrival` (when the hub judged the transition). `GET /_stats`
answers what it recorded (an `.npz`), `POST /_reset` forgets it. Run as a script it prints its
port on the first line."""

from __future__ import annotations

import asyncio
import hmac
import io
import sys
import time
from pathlib import Path

# run as a script: the checkout goes first on the import path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import orjson

from alerts.notify.channels import SIGNATURE_HEADER, sign
from bench.notify_load import SECRET

__all__ = ["Receiver", "serve"]


class Receiver:
    """Counts webhooks; for each event the receive time and the event's `arrival` (ms)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.req_at: list[float] = []
        self.ev_at: list[float] = []
        self.ev_arrival: list[int] = []
        self.keys: set[bytes] = set()
        self.bad_signatures = 0
        self.connections = 0

    def stats(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            req_at=np.array(self.req_at),
            ev_at=np.array(self.ev_at),
            ev_arrival=np.array(self.ev_arrival, np.int64),
            counts=np.array([len(self.keys), self.bad_signatures, self.connections]),
        )
        return buf.getvalue()

    def hook(self, head: bytes, body: bytes, now: float) -> None:
        sig = _header(head, SIGNATURE_HEADER.lower().encode())
        expected = sign(SECRET, body).encode()
        if sig is None or not hmac.compare_digest(sig, expected):
            self.bad_signatures += 1
        self.req_at.append(now)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = {}
        # one notification, or a batch of them ({"notifications": [...]}, webhook batch_max)
        for note in data.get("notifications", [data]):
            self.keys.add(str(note.get("key", "")).encode())
            for e in note.get("events", ()):
                self.ev_at.append(now)
                self.ev_arrival.append(int(e["arrival"]))

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                length = int(_header(head, b"content-length") or b"0")
                body = await reader.readexactly(length) if length else b""
                now = time.time() * 1000
                answer = b""
                if head.startswith(b"get /_stats"):
                    answer = self.stats()
                elif head.startswith(b"post /_reset"):
                    self.reset()
                else:
                    self.hook(head, body, now)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(answer))
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _header(head: bytes, name: bytes) -> bytes | None:
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    return head[start : head.index(b"\r\n", start)].strip()


async def serve() -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.connection, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve())
