"""`LineWriter`, the lean HTTP/1.1 writer of InfluxStore, against canned servers: answers with a
length, chunked or to the end of the connection; kept connections reused, a closed one replaced;
refused connections and silence raised for the store to map (tests/test_store_influx.py maps them
to retryable errors, against the real server too)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ingest.store.influx_write import LineWriter

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(serve: Serve) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = next(
        int(h.split(":")[1]) for h in head.split("\r\n") if h.lower().startswith("content-length")
    )
    return head, await reader.readexactly(length)


async def test_answers_by_length_chunked_and_to_the_end() -> None:
    answers = [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b'HTTP/1.1 400 Bad\r\nContent-Length: 13\r\n\r\n{"error":"x"}',
        b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.0 503 X\r\n\r\nto the end",
    ]
    heads: list[str] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while answers:
            head, body = await _request(reader)
            heads.append(head)
            assert body == b"lines\n"
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if answer.startswith(b"HTTP/1.0"):
                break
        writer.close()

    server, port = await _server(serve)
    w = LineWriter("127.0.0.1", port, 5.0)
    try:
        got = [await w.post("/write?db=x", b"lines\n", {"X-A": "1"}) for _ in range(4)]
    finally:
        await w.close()
        server.close()
    assert [(s, b) for s, _, b in got] == [
        (204, b""),
        (400, b'{"error":"x"}'),
        (500, b"abcde"),
        (503, b"to the end"),
    ]
    assert got[1][1]["content-length"] == "13"
    assert connections == 1  # one kept-alive connection for all four
    assert heads[0].startswith("POST /write?db=x HTTP/1.1\r\n")
    assert "X-A: 1\r\n" in heads[0] and f"Host: 127.0.0.1:{port}\r\n" in heads[0]


async def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # says keep-alive, closes all the same
        await writer.drain()
        writer.close()

    server, port = await _server(serve)
    w = LineWriter("127.0.0.1", port, 5.0)
    try:
        for _ in range(3):
            status, _, _ = await w.post("/write", b"x", {})
            assert status == 204
            await asyncio.sleep(0.05)
    finally:
        await w.close()
        server.close()
    assert connections == 3


async def test_refused_and_silent_servers_raise() -> None:
    server, port = await _server(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await LineWriter("127.0.0.1", port, 5.0).post("/write", b"x", {})

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    server, port = await _server(silent)
    try:
        with pytest.raises(TimeoutError):
            await LineWriter("127.0.0.1", port, 0.2).post("/write", b"x", {})
    finally:
        server.close()


async def test_a_connection_closed_before_the_answer_is_a_connection_error() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 204")
        writer.close()

    server, port = await _server(rude)
    try:
        with pytest.raises(ConnectionError):
            await LineWriter("127.0.0.1", port, 5.0).post("/write", b"x", {})
    finally:
        server.close()


async def test_an_interim_answer_is_read_past_and_a_broken_chunk_is_an_error() -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 70_000 + b"\r\n",
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            await _request(reader)
            writer.write(answers.pop(0))
            await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    server, port = await _server(serve)
    w = LineWriter("127.0.0.1", port, 5.0)
    try:
        # the second write gets its own answer, not the first write's left unread
        assert (await w.post("/write", b"lines\n", {}))[0] == 204
        assert (await w.post("/write", b"lines\n", {}))[0] == 204
        with pytest.raises(ConnectionError):  # a chunk size line no server sends: not a crash
            await w.post("/write", b"lines\n", {})
    finally:
        await w.close()
        server.close()


async def test_a_connection_idle_past_keepalive_is_not_reused() -> None:
    """The first connection goes silent after its first answer, as one a NAT or firewall
    dropped without a word: a write on it would wait for the whole timeout. Idle past
    `keepalive_s`, it is closed and the write goes on a new connection at once; within
    `keepalive_s` a connection is reused."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        while True:
            try:
                await _request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
            if first:  # then silence: requests read, never answered
                while await reader.read(1024):
                    pass
                break
        writer.close()

    server, port = await _server(serve)
    w = LineWriter("127.0.0.1", port, 3.0, keepalive_s=0.2)
    try:
        assert (await w.post("/write", b"x", {}))[0] == 204
        await asyncio.sleep(0.4)
        async with asyncio.timeout(1.5):  # not the writer's 3 s: the silent one is not tried
            assert (await w.post("/write", b"x", {}))[0] == 204
        assert connections == 2
        assert (await w.post("/write", b"x", {}))[0] == 204  # kept, and reused at once
        assert connections == 2
    finally:
        await w.close()
        server.close()
