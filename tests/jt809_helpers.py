"""Building blocks of the JT/T 809 tests: a lower platform played over a real TCP socket with
the codec (`telemetry.jt809`), the platforms' configuration, a gateway run on a free port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from jt808_helpers import CST

from gateway.jt809 import Jt809Config, Jt809Gateway
from telemetry.jt808 import Location, ms_to_bcd_time
from telemetry.jt809 import (
    ExgMsg,
    Frame,
    FrameSplitter,
    Gnss2011,
    Gnss2019,
    Header,
    HistoryLocation,
    Keys,
    Login,
    RealLocation,
    SubId,
    VehicleReport,
    decode_frame,
    encode_frame,
)
from telemetry.registry import Registry

KEYS = Keys(m1=30000000, ia1=20000000, ic1=20000000)  # SmallChi/JT809's test keys
PLATFORMS = {
    "platforms": [
        {
            "name": "acme-gps",
            "access_code": 20180920,
            "user_id": 7001,
            "password": "s3cret!8",
            "tenant": "chem-logistics",
            "version": 2011,
            "keys": {"m1": KEYS.m1, "ia1": KEYS.ia1, "ic1": KEYS.ic1},
        },
        {
            "name": "coach-gps",
            "access_code": 33000001,
            "user_id": 8001,
            "password": "pw2019",
            "tenant": "coach-co",
            "version": 2019,
        },
        {
            "name": "far-away",
            "access_code": 44000001,
            "user_id": 9001,
            "password": "pw",
            "tenant": "chem-logistics",
            "allow_from": ["10.0.0.0/8"],
        },
    ]
}


def config(**changes: Any) -> Jt809Config:
    return Jt809Config.model_validate(PLATFORMS | changes)


def gnss_2011(when: datetime, lat: float, lon: float, speed: int, alarm: int = 0) -> Gnss2011:
    """A 2011 GNSS_DATA at `when` (its date and time written in China time), positioned."""
    t = when.astimezone(CST)
    return Gnss2011(
        0, t.year, t.month, t.day, t.hour, t.minute, t.second,
        round(lon * 1e6), round(lat * 1e6), speed, speed, 1234, 90, 20, 0b11, alarm,
    )  # fmt: skip


def gnss_2019(ts_ms: int, lat: float, lon: float, speed: int, alarm: int = 0) -> Gnss2019:
    """A 2019 position: the JT/T 808 0x0200 body it carries."""
    loc = Location(
        alarm, 0b11, round(lat * 1e6), round(lon * 1e6), 20, speed * 10, 90, ms_to_bcd_time(ts_ms)
    )
    return Gnss2019(0, loc.encode(True))


class LowerPlatform:
    """A lower platform's main link: frames encoded by the codec, over a socket."""

    def __init__(
        self, code: int, v2019: bool = False, keys: Keys | None = None, encrypt: bool = False
    ) -> None:
        self.code, self.v2019, self.keys, self.encrypt = code, v2019, keys, encrypt
        self.sn = 0
        self.frames: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int, source: str | None = None) -> None:
        """Connect from the address `source` (another of 127.0.0.0/8: another peer)."""
        local = (source, 0) if source is not None else None
        self._reader, self._writer = await asyncio.open_connection(host, port, local_addr=local)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        splitter = FrameSplitter()
        while data := await self._reader.read(65536):
            for item in splitter.feed(data):
                assert isinstance(item, bytes)
                await self.frames.put(decode_frame(item, self.v2019))
        await self.frames.put(None)  # closed

    def frame(self, msg_id: int, body: bytes, code: int | None = None) -> bytes:
        self.sn += 1
        t = int(datetime.now().timestamp()) if self.v2019 else None
        version = (1, 2, 15) if self.v2019 else (1, 0, 0)
        h = Header(
            msg_id,
            self.sn,
            self.code if code is None else code,
            version,
            self.encrypt,
            99991 if self.encrypt else 0,
            t,
        )
        return encode_frame(h, body, self.keys)

    async def send(self, msg_id: int, body: bytes = b"", code: int | None = None) -> None:
        await self.send_raw(self.frame(msg_id, body, code))

    async def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def answer(self, within_s: float = 5.0) -> Frame | None:
        """The next frame from the gateway; None when it closed the link."""
        return await asyncio.wait_for(self.frames.get(), within_s)

    async def login(
        self, user: int, password: bytes, access_code: int | None = None, down_port: int = 9809
    ) -> Frame | None:
        code = access_code if access_code is not None else self.code
        body = Login(user, password, "127.0.0.1", down_port, code)
        await self.send(0x1001, body.encode(self.v2019))
        return await self.answer()

    async def positions(
        self, plate: str, items: list[Gnss2011] | list[Gnss2019], color: int = 2
    ) -> None:
        if len(items) == 1:
            sub, data = SubId.REAL_LOCATION, RealLocation(items[0]).encode()
        else:
            sub, data = SubId.HISTORY_LOCATION, HistoryLocation(tuple(items)).encode()
        await self.send(0x1200, ExgMsg(plate, color, sub, data).encode(self.v2019))

    async def report(self, plate: str, item: VehicleReport, color: int = 2) -> None:
        """What the platform says of a vehicle: its terminal's registration (0x1201), its
        driver (0x120C) or its e-waybill (0x120D)."""
        data = item.encode(self.v2019)
        await self.send(0x1200, ExgMsg(plate, color, item.sub_id, data).encode(self.v2019))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def make_gateway(
    cfg: Jt809Config, registry: Registry, broker_port: int, spool_dir: Path, **kw: Any
) -> Jt809Gateway:
    return Jt809Gateway(
        cfg,
        registry,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", broker_port),
        spool_dir=spool_dir,
        **kw,
    )


@contextlib.asynccontextmanager
async def running(gw: Jt809Gateway) -> AsyncIterator[tuple[str, int]]:
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        assert gw.server.address is not None
        yield gw.server.address
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
