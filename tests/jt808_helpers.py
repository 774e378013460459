"""Building blocks of the JT/T 808 tests: the configurations they serve, the time and fixes of
their positions, a gateway (or a bare server) run on a free loopback port, a subscriber to the
position topics, a bare TCP terminal that sends frames as given, and a session authenticated
without a socket. Plain functions and constants; the fixtures stay in the test files."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
from positionpayload import records_of

from gateway.jt808 import HoldPolicy, Jt808Gateway, Jt808Server
from gateway.jt808.directory import Directory
from gateway.jt808.session import Send, Session, State
from hazardhub.settings import load_registry
from ingest.positions import decode_positions
from simulators.jt808 import Fix
from telemetry.jt808 import (
    Authenticate,
    Frame,
    FrameReader,
    Header,
    MsgId,
    PlatformResponse,
    Register,
    decode_body,
    decode_frame,
    encode_frame,
)
from telemetry.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
CST = timezone(timedelta(hours=8))
T0 = int(datetime(2025, 3, 1, 8, 0, 0, tzinfo=CST).timestamp() * 1000)  # 00:00 UTC
PHONE = "013800000001"  # tanker-01's terminal (configured as 13800000001)
POSITIONS = "hazardhub/v1/+/vehicles/+/position"
VEHICLE_TOPIC = "hazardhub/v1/chem-logistics/vehicles/{}/position"  # .format(vehicle)

# one tanker of chem-logistics, known by its terminal's number
ONE_TANKER = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
"""
# tanker-01 by its number, tanker-02 by its plate, and coach-co's coach by a 12-digit number
TWO_TENANTS = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat}
  - id: coach-co
    vehicles:
      - {id: coach-07, plate: 苏B·K5678, class: coach, terminal: "013912344329"}
"""
# the configuration of docs/jt808.md ("How terminals map to vehicles"), as it stands there
DOC_CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat}      # found by its plate
"""


def registry_of(tmp_path: Path, config: str) -> Registry:
    """The registry of `config`, read from `tmp_path`/hub.yaml as a gateway reads it."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(config, encoding="utf-8")
    return load_registry(cfg, [ROOT / "profiles"])


def fix(i: int, **kw: Any) -> Fix:
    """Fix i of a vehicle every 10 s from T0, northward 111 m apart, at 60 km/h heading 90."""
    return Fix(T0 + i * 10_000, 31.2 + i * 0.001, 121.4, 60.0, 90, 12, **kw)


def frame(msg_id: int, serial: int, body: bytes, phone: str = PHONE) -> bytes:
    """A 2013 frame of `phone`'s terminal."""
    return encode_frame(Header(msg_id, serial, phone), body)


async def until(cond: Callable[[], object], within_s: float = 5.0) -> None:
    """Wait until `cond()` holds; fail after `within_s`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# --- a gateway, a server, a subscriber -------------------------------------------------------


def make_gateway(registry: Registry, broker_port: int, spool_dir: Path, **kw: Any) -> Jt808Gateway:
    """A gateway on a free loopback port publishing to the broker at `broker_port`; each
    message handed on as it comes (no blind-area hold) unless `hold` is given."""
    kw.setdefault("hold", HoldPolicy(live_s=0))
    return Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", broker_port),
        spool_dir=spool_dir,
        **kw,
    )


@contextlib.asynccontextmanager
async def running(gw: Jt808Gateway, commands: bool = False) -> AsyncIterator[tuple[str, int]]:
    """`gw` run until the block ends; its address. `commands`: once it listens to the hub's
    commands too."""
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        if commands:
            await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
        assert gw.server.address is not None
        yield gw.server.address
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def gateway_running(
    registry: Registry, broker_port: int, spool_dir: Path, **kw: Any
) -> AsyncIterator[Jt808Gateway]:
    """`make_gateway(...)` run until the block ends (its port: `port_of`)."""
    gw = make_gateway(registry, broker_port, spool_dir, **kw)
    async with running(gw):
        yield gw


def port_of(gw: Jt808Gateway) -> int:
    assert gw.server.address is not None
    return gw.server.address[1]


class NoUplink:
    """An uplink that takes the positions and sends them nowhere (a server alone)."""

    def submit(self, *args: object) -> None:
        pass


@contextlib.asynccontextmanager
async def serving(registry: Registry, **kw: Any) -> AsyncIterator[Jt808Server]:
    """A bare `Jt808Server` (no uplink) on a free loopback port until the block ends."""
    server = Jt808Server(registry, NoUplink(), **kw)  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    try:
        yield server
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


@contextlib.asynccontextmanager
async def _subscribed(
    port: int, topic: str, take: Callable[[str, bytes], None], identifier: str | None = None
) -> AsyncIterator[None]:
    """Each message on `topic` of the broker at `port` given to `take` while inside."""
    ready = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=identifier) as client:
            await client.subscribe(topic, qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                take(str(msg.topic), msg.payload)

    sub = asyncio.create_task(collect())
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield
    finally:
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub


@contextlib.asynccontextmanager
async def positions(port: int) -> AsyncIterator[list[tuple[str, list[dict[str, Any]]]]]:
    """The messages on every tenant's position topics of the broker at `port` while inside, as
    (topic, records), each checked to be accepted whole by the hub's position decoder."""
    got: list[tuple[str, list[dict[str, Any]]]] = []

    def take(topic: str, payload: bytes) -> None:
        assert decode_positions(payload).rejected == ()  # the hub accepts every record
        got.append((topic, records_of(payload)))

    async with _subscribed(port, POSITIONS, take, "jt808-test-sub"):
        yield got


@contextlib.asynccontextmanager
async def positions_on(port: int) -> AsyncIterator[dict[str, list[dict[str, Any]]]]:
    """The positions the broker at `port` carries on chem-logistics' vehicles' position topics
    while inside, by topic, as they come."""
    got: dict[str, list[dict[str, Any]]] = {}

    def take(topic: str, payload: bytes) -> None:
        got.setdefault(topic, []).extend(records_of(payload))

    async with _subscribed(port, VEHICLE_TOPIC.format("+"), take):
        yield got


def stamps(got: list[tuple[str, list[dict[str, Any]]]]) -> list[int]:
    """The times of every record received, sorted."""
    return sorted(r["ts"] for _, records in got for r in records)


# --- a bare terminal -------------------------------------------------------------------------


class RawTerminal:
    """A bare TCP client of `phone`: frames as given; the platform's general responses (0x8001)
    and requests for sub-packages again (0x8003, 2013) as read."""

    def __init__(self, phone: str = PHONE) -> None:
        self.phone = phone
        self.answers: list[PlatformResponse] = []
        self.asks: list[tuple[int, list[int]]] = []  # (first serial, indexes) of each 0x8003
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def acks(self) -> list[tuple[int, int]]:
        """(serial answered, result) of each general response."""
        return [(a.ack_serial, a.result) for a in self.answers]

    async def open(self, host: str, port: int, code: str) -> None:
        """Connect and authenticate with `code` (serial 0); wait for its answer, OK."""
        self._reader, self._writer = await asyncio.open_connection(host, port)
        self._task = asyncio.create_task(self._read())
        auth = Authenticate(code).encode(False)
        await self.send(frame(MsgId.AUTHENTICATE, 0, auth, self.phone), 1)
        assert self.acks[-1] == (0, PlatformResponse.OK)

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def send(self, data: bytes, answers: int) -> None:
        """Send `data`; wait until `answers` more general responses came."""
        want = len(self.answers) + answers
        await self.write(data)
        await until(lambda: len(self.answers) >= want)

    async def _read(self) -> None:
        assert self._reader is not None
        frames = FrameReader()
        while data := await self._reader.read(65536):
            for item in frames.feed(data):
                if not isinstance(item, Frame):
                    continue
                if item.header.msg_id == MsgId.PLATFORM_RESPONSE:
                    msg = decode_body(item.header.msg_id, item.body, False)
                    assert isinstance(msg, PlatformResponse)
                    self.answers.append(msg)
                elif item.header.msg_id == 0x8003:  # 2013: serial WORD, count BYTE, WORDs
                    (first,) = struct.unpack_from(">H", item.body)
                    n = item.body[2]
                    assert len(item.body) == 3 + 2 * n
                    self.asks.append((first, list(struct.unpack_from(f">{n}H", item.body, 3))))

    async def close(self) -> None:
        assert self._writer is not None and self._task is not None
        self._writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# --- the session without a socket ------------------------------------------------------------


class _Spec:
    def __init__(self, id: str, plate: str, terminal: str | None) -> None:
        self.id, self.plate, self.terminal = id, plate, terminal


class Vehicle:
    """What `Directory` reads of a registry's vehicle."""

    def __init__(
        self, id: str, plate: str, terminal: str | None = None, tenant: str = "t1"
    ) -> None:
        self.tenant, self.spec = tenant, _Spec(id, plate, terminal)


def directory() -> Directory:
    """bus-1 of t1 known by its terminal's number 13800000001, bus-2 by its plate."""
    return Directory(
        [Vehicle("bus-1", "粤A12345", "13800000001"), Vehicle("bus-2", "粤B00002")],  # type: ignore[list-item]
    )


def frames_of(events: Sequence[object]) -> list[object]:
    """The messages of the frames a session's events send, decoded."""
    out: list[object] = []
    for e in events:
        if isinstance(e, Send):
            f = decode_frame(e.data)
            out.append(decode_body(f.header.msg_id, f.body, f.header.is_2019))
    return out


def authed(phone: str = PHONE) -> Session:
    """A session of `directory()` registered and authenticated by `phone` (bus-1's, by
    default)."""
    s = Session(directory())
    ev = s.feed(frame(0x0100, 1, Register(0, 0, "", "", "", 1, "").encode(False), phone), 0)
    (resp,) = frames_of(ev)
    s.feed(frame(0x0102, 2, Authenticate(resp.auth_code).encode(False), phone), 0)  # type: ignore[attr-defined]
    assert s.state is State.AUTHENTICATED
    return s
