"""The webhook channel's HTTP/1.1 client (`alerts.notify.http`) against a real server on a
loopback socket that answers with scripted bytes: framing (Content-Length, chunked, to the end,
interim 100), keep-alive and a kept connection the server closed, long answers, broken ones,
TLS (a certificate made for the test, trusted or not), and what the request carries."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.notify.http import HttpError, HttpPool
from alerts.notify.netguard import AddressGuard

from services import self_signed

# the n-th request (0-based) -> the bytes to answer (None: close the connection unanswered)
Answer = Callable[[int], bytes | None]


class Scripted:
    """Reads each request whole, answers `answer(n)`; closes after it when `close_after`."""

    def __init__(self, answer: Answer, close_after: bool = False, piece: int = 0) -> None:
        self.answer = answer
        self.close_after = close_after
        self.piece = piece  # above 0: the answer is written in pieces of this many bytes
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, tls: ssl.SSLContext | None = None) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                answer = self.answer(len(self.requests) - 1)
                if answer is None:
                    break
                step = self.piece or max(1, len(answer))
                for at in range(0, len(answer), step):
                    writer.write(answer[at : at + step])
                    await writer.drain()
                    if self.piece:
                        await asyncio.sleep(0)
                if self.close_after:
                    break
        writer.close()

    def drop_idle(self) -> None:
        """Close every connection from the server's side (a keep-alive timeout)."""
        for w in self._writers:
            w.close()

    async def stop(self) -> None:
        assert self._server is not None
        self.drop_idle()
        self._server.close()
        await self._server.wait_closed()


@contextlib.asynccontextmanager
async def scripted(answer: Answer, **kw: object) -> AsyncIterator[Scripted]:
    server = await Scripted(answer, **kw).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        await server.stop()


def ok(body: bytes = b"ok", extra: str = "") -> Answer:
    return lambda n: (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
    )


async def post(pool: HttpPool, port: int, body: bytes = b'{"a": 1}', **headers: str):
    return await pool.post(
        f"http://127.0.0.1:{port}/hook?x=1", body, {"X-Test": "1", **headers}, 64 * 1024
    )


async def test_a_post_carries_the_body_and_headers_and_keeps_its_connection():
    pool = HttpPool()
    async with scripted(ok()) as server:
        for i in range(3):
            resp = await post(pool, server.port, body=b"x" * i, Idempotency_Key=f"k{i}")
            assert (resp.status, resp.reason) == (200, "OK")
        await pool.aclose()
    assert server.connections == 1
    head, body = server.requests[2]
    assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in head
    assert b"Content-Length: 2\r\n" in head and b"X-Test: 1\r\n" in head
    assert body == b"xx"


async def test_a_connection_kept_under_wider_networks_serves_no_request_under_narrower():
    """An enterprise's webhook to an address the centre's networks allowed, then the networks
    narrowed (a reload): the kept connection was checked under the old ones and must not carry
    the next request (helper-143: the pool kept guarded connections apart only from unguarded
    ones, for up to 15 s)."""
    pool = HttpPool()
    url = "http://127.0.0.1:{}/hook"
    wide = AddressGuard.of([ip_network("127.0.0.0/8")])
    async with scripted(ok()) as server:
        resp = await pool.post(url.format(server.port), b"{}", {}, 1024, wide)
        assert resp.status == 200
        with pytest.raises(HttpError, match="Refused"):
            await pool.post(url.format(server.port), b"{}", {}, 1024, AddressGuard.of([]))
        assert (await pool.post(url.format(server.port), b"{}", {}, 1024, wide)).status == 200
        await pool.aclose()
    assert len(server.requests) == 2 and server.connections == 1  # the wide one was kept


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Many: a\r\nX-Many: b\r\n\r\n",
    ],
)
async def test_framed_answers_keep_the_connection(answer):
    pool = HttpPool()
    async with scripted(lambda n: answer) as server:
        for _ in range(2):
            assert (await post(pool, server.port)).status in (200, 204)
        await pool.aclose()
    assert server.connections == 1


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000, "too long"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "close"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.0"),
    ],
)
async def test_answers_that_end_the_connection_are_read_and_not_kept(answer, why):
    pool = HttpPool()
    async with scripted(lambda n: answer) as server:
        for _ in range(2):
            assert (await post(pool, server.port)).status == 200, why
        await pool.aclose()
    assert server.connections == 2, why


async def test_an_answer_running_to_the_end_of_the_connection():
    pool = HttpPool()
    answer = b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\n\r\nplease wait"
    async with scripted(lambda n: answer, close_after=True) as server:
        resp = await post(pool, server.port)
        assert (resp.status, resp.reason, resp.headers["retry-after"]) == (503, "Busy", "7")
        assert (await post(pool, server.port)).status == 503
        await pool.aclose()
    assert server.connections == 2


async def test_a_kept_connection_the_server_closed_is_tried_once_more_on_a_new_one():
    pool = HttpPool()
    async with scripted(ok()) as server:
        assert (await post(pool, server.port)).status == 200
        server.drop_idle()  # its keep-alive timeout, seen before the next request
        await asyncio.sleep(0.05)
        assert (await post(pool, server.port, body=b"second")).status == 200
        await pool.aclose()
    assert server.connections == 2
    assert [b for _, b in server.requests] == [b'{"a": 1}', b"second"]


async def test_a_kept_connection_closed_as_the_request_went_is_sent_once_more():
    """The server closes the kept connection with the request in flight (its keep-alive timeout
    racing the request): nothing comes back on it, so the request goes again on a new one; on a
    new connection the same is an error, never a third try."""
    pool = HttpPool()
    answers = {0: ok()(0), 1: None, 2: ok()(2), 3: None}
    async with scripted(lambda n: answers[n]) as server:
        assert (await post(pool, server.port)).status == 200
        assert (await post(pool, server.port, body=b"again")).status == 200
        assert server.connections == 2
        await pool.aclose()
        with pytest.raises(HttpError) as err:
            await post(pool, server.port)
        assert err.value.kind == "RemoteProtocolError"
    assert [b for _, b in server.requests] == [b'{"a": 1}', b"again", b"again", b'{"a": 1}']


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"SMTP ready\r\n\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "RemoteProtocolError"),
        (b"", "RemoteProtocolError"),
        # framing numbers are read strictly (helper-47: `int` took 1_0, -2, 0x2)
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\nok", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", "RemoteProtocolError"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n",
            "RemoteProtocolError",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
            "RemoteProtocolError",
        ),
    ],
)
async def test_broken_answers_are_errors_of_their_kind(answer, kind):
    pool = HttpPool()
    async with scripted(lambda n: answer, close_after=True) as server:
        with pytest.raises(HttpError) as err:
            await post(pool, server.port)
        await pool.aclose()
    assert err.value.kind == kind


async def test_nothing_listening_bad_urls_and_header_injection():
    pool = HttpPool()
    async with scripted(ok()) as server:
        port = server.port
    with pytest.raises(HttpError) as err:
        await post(pool, port)
    assert err.value.kind == "ConnectError"
    for url, kind in [
        ("ftp://127.0.0.1/x", "UnsupportedProtocol"),
        ("http:///x", "InvalidURL"),
        ("http://127.0.0.1:99999/x", "InvalidURL"),
        ("http://127.0.0.1/a b", "InvalidURL"),
    ]:
        with pytest.raises(HttpError) as err:
            await pool.post(url, b"", {}, 1024)
        assert err.value.kind == kind, url
    with pytest.raises(HttpError) as err:
        await pool.post(f"http://127.0.0.1:{port}/", b"", {"X": "a\r\nEvil: 1"}, 1024)
    assert err.value.kind == "InvalidHeader"


async def head_sent(url: str) -> bytes:
    """The head of the request a POST to `url` ({port}: the scripted server's) sends."""
    pool = HttpPool()
    async with scripted(ok()) as server:
        assert (await pool.post(url.format(port=server.port), b"{}", {}, 1024)).status == 200
        await pool.aclose()
    return server.requests[0][0]


async def test_user_info_in_the_url_becomes_basic_authorization():
    head = await head_sent("http://ops:p%40ss@127.0.0.1:{port}/hook")
    token = base64.b64encode(b"ops:p@ss").decode()
    assert f"Authorization: Basic {token}\r\n".encode() in head


async def test_a_cancelled_request_does_not_leave_its_connection_for_the_next():
    pool = HttpPool()

    def answer(n: int) -> bytes:
        return b"" if n == 0 else ok()(n)

    async with scripted(answer) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await post(pool, server.port)  # the first gets no answer
        assert (await post(pool, server.port)).status == 200
        await pool.aclose()
    assert server.connections == 2


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def test_tls_checks_the_servers_certificate(certificate):
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = await Scripted(ok()).start(server_tls)
    try:
        url = f"https://127.0.0.1:{server.port}/hook"
        with pytest.raises(HttpError) as err:  # not signed by a CA the system trusts
            await HttpPool().post(url, b"{}", {}, 1024)
        assert err.value.kind == "ConnectError" and "certificate" in str(err.value).lower()
        trusting = HttpPool()
        trusting._ssl = ssl.create_default_context(cafile=str(cert))
        assert (await trusting.post(url, b"{}", {}, 1024)).status == 200
        await trusting.aclose()
    finally:
        await server.stop()
    assert server.requests[0][0].startswith(b"POST /hook HTTP/1.1\r\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.binary(max_size=300), max_size=6),
    st.sampled_from(["length", "chunked"]),
    st.integers(1, 7),
)
async def test_any_framed_answer_is_read_whole_and_the_connection_kept(chunks, framing, split):
    """Bodies of any bytes, as one Content-Length body or in chunks, written in pieces of any
    size: the next request goes on the same connection and gets its own answer."""
    body = b"".join(chunks)
    if framing == "length":
        answer = f"HTTP/1.1 201 Created\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    else:
        parts = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
        answer = (
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" + parts + b"0\r\n\r\n"
        )
    pool = HttpPool()
    first = {"piece": split}
    async with scripted(lambda n: answer if n == 0 else ok()(n), **first) as server:
        assert (await post(pool, server.port)).status == 201
        assert (await post(pool, server.port)).status == 200
        await pool.aclose()
    assert server.connections == 1


def test_a_machine_without_a_certificate_store_falls_back_to_certifi(monkeypatch):
    from alerts.notify import http

    def empty() -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, trusts nobody

    assert http._tls_context().cert_store_stats()["x509_ca"] > 0  # this machine's own
    monkeypatch.setattr(http.ssl, "create_default_context", empty)
    ctx = http._tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 100  # the Mozilla bundle


# -- found in review (helper-47) ---------------------------------------------------------------


async def test_bytes_nobody_asked_for_never_become_the_next_requests_answer():
    """A receiver that sends a second answer after a 204 (or anything while the connection is
    idle): the connection is not used again, the next request gets its own answer."""
    stray = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    pool = HttpPool()
    async with scripted(lambda n: stray if n == 0 else ok()(n)) as server:
        assert (await post(pool, server.port)).status == 204
        await asyncio.sleep(0.05)
        assert (await post(pool, server.port)).status == 200
        await pool.aclose()
    assert server.connections == 2


async def test_a_refusal_does_not_keep_its_connection():
    """A receiver may refuse before reading the body; the rest of the body must not be read
    as the next request, so a connection is kept after a 2xx only."""
    refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    pool = HttpPool()
    async with scripted(lambda n: refused if n == 0 else ok()(n)) as server:
        assert (await post(pool, server.port)).status == 401
        assert (await post(pool, server.port)).status == 200
        await pool.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",  # bare LF line ends (RFC 9112 2.2)
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",  # the same twice
        b"HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 2\r\n\r\nok",  # obs-fold
    ],
)
async def test_answers_the_rfc_lets_a_client_accept(answer):
    pool = HttpPool()
    async with scripted(lambda n: answer) as server:
        for _ in range(2):
            resp = await post(pool, server.port)
            assert resp.status == 200
        await pool.aclose()
    assert server.connections == 1
    if b"X-Long" in answer:
        assert resp.headers["x-long"] == "a b"


async def test_non_ascii_urls_are_encoded_as_a_browser_would():
    head = await head_sent("http://127.0.0.1:{port}/hooks/告警/caf%C3%A9?site=罐区&x=1")
    assert head.startswith(
        b"POST /hooks/%E5%91%8A%E8%AD%A6/caf%C3%A9?site=%E7%BD%90%E5%8C%BA&x=1 HTTP/1.1\r\n"
    )
    target = HttpPool()._target("https://告警.例子.cn/hook")
    assert (target.origin, target.host_header) == (
        ("https", "xn--4rr859j.xn--fsqu00a.cn", 443),
        "xn--4rr859j.xn--fsqu00a.cn",
    )


def test_bad_urls_are_invalid_and_never_quote_the_user_info():
    pool = HttpPool()
    for url in (
        "http://a..b.example/hook",
        "http://127.0.0.1:0/hook",
        "https://user:s3cr＃t-pw@hooks.example/h",
    ):
        with pytest.raises(HttpError) as err:
            pool._target(url)
        assert err.value.kind == "InvalidURL", url
        assert "s3cr" not in str(err.value)


async def test_kept_connections_expire_and_are_capped(monkeypatch):
    from alerts.notify import http

    clock = [1000.0]
    monkeypatch.setattr(http.time, "monotonic", lambda: clock[0])
    pool = HttpPool()
    async with scripted(ok()) as server:
        assert (await post(pool, server.port)).status == 200
        clock[0] += http._IDLE_S + 1  # unused too long: closed, not used again
        assert (await post(pool, server.port)).status == 200
        assert server.connections == 2
        await pool.aclose()
    # over every receiver at most _IDLE_ALL are kept, the oldest closed first
    servers = [await Scripted(ok()).start() for _ in range(http._IDLE_ALL + 6)]
    try:
        for s in servers:
            clock[0] += 0.001
            assert (await post(pool, s.port)).status == 200
        assert sum(map(len, pool._idle.values())) == http._IDLE_ALL
        assert servers[0].port not in {o[2] for o in pool._idle}
        await pool.aclose()
    finally:
        for s in servers:
            await s.stop()
