"""A gateway's counters for Prometheus: `GET /metrics` on an address of the operator's choosing
(`--metrics HOST:PORT`), in the text exposition format.

What a gateway counts (the names its log reports once a minute: `positions`, `publish_refused`,
`acme-gps.logins` ...) is one counter family, `hazardhub_gateway_events_total{gateway, counter}`,
and what it holds now (connections open ...) one gauge family, `hazardhub_gateway_state{gateway,
what}`; `hazardhub_gateway_start_time_seconds` says when the process started (a restart sets the
counters to 0: `rate()` and `increase()` take that).

Nothing else is served (404), a request is read within 5 s and 8 KiB or the connection closed.
The counters name platforms, devices' sites and addresses: with a token
(`HAZARDHUB_METRICS_TOKEN` in the environment) every request must carry it
(`Authorization: Bearer ...`, else 401); an address other than loopback needs one (refused at
the start without it)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping

from telemetry.promtext import label_value, prom_number

__all__ = ["FAMILIES", "MetricsServer", "exposition", "metrics_problem"]

log = logging.getLogger(__name__)

# what a gateway serves (the hub's own /metrics has none of them: docs/operations.md)
FAMILIES = (
    "hazardhub_gateway_events_total",
    "hazardhub_gateway_state",
    "hazardhub_gateway_start_time_seconds",
)
Collect = Callable[[], tuple[Mapping[str, int], Mapping[str, float]]]
_MAX_REQUEST = 8192
_READ_TIMEOUT_S = 5.0


def exposition(
    gateway: str, counters: Mapping[str, int], state: Mapping[str, float], started: float
) -> str:
    """The text exposition of a gateway's counters and state."""
    g = label_value(gateway)
    lines = [
        "# HELP hazardhub_gateway_events_total What the gateway counted since it started, by "
        "counter (the names of its log reports)",
        "# TYPE hazardhub_gateway_events_total counter",
    ]
    for name in sorted(counters):
        lines.append(
            f'hazardhub_gateway_events_total{{gateway="{g}",counter="{label_value(name)}"}} '
            f"{prom_number(counters[name])}"
        )
    lines += [
        "# HELP hazardhub_gateway_state What the gateway holds now (connections open ...)",
        "# TYPE hazardhub_gateway_state gauge",
    ]
    for name in sorted(state):
        lines.append(
            f'hazardhub_gateway_state{{gateway="{g}",what="{label_value(name)}"}} '
            f"{prom_number(state[name])}"
        )
    lines += [
        "# HELP hazardhub_gateway_start_time_seconds When the gateway process started (Unix time)",
        "# TYPE hazardhub_gateway_start_time_seconds gauge",
        f'hazardhub_gateway_start_time_seconds{{gateway="{g}"}} {started:.3f}',
    ]
    return "\n".join(lines) + "\n"


def metrics_problem(host: str, token: str | None) -> str | None:
    """Why a metrics address cannot be served as asked, or None: an address other than loopback
    with no token would show every enterprise's counters to the network."""
    if token:
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    return (
        f"--metrics {host}: an address other than loopback needs a token "
        "(HAZARDHUB_METRICS_TOKEN in the environment; the scraper sends it as a bearer token)"
    )


class MetricsServer:
    """`GET /metrics` of one gateway process on `address` until `stop`."""

    def __init__(
        self, address: tuple[str, int], gateway: str, collect: Collect, token: str | None = None
    ) -> None:
        self.address = address
        self.gateway = gateway
        self._collect = collect
        self._token = token or None
        self._started = time.time()
        self.bound: tuple[str, int] | None = None  # (the port, when 0 was asked)
        self.ready = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (OSError when the address cannot be had: said before the gateway starts)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, *self.address)
        sock = self._server.sockets[0].getsockname()
        self.bound = (str(sock[0]), int(sock[1]))
        self.ready.set()
        log.info("%s: metrics on http://%s:%d/metrics", self.gateway, *self.bound)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        assert self._server is not None
        try:
            await stop.wait()
        finally:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        try:
            if len(head) > _MAX_REQUEST:
                status, body = "431 Request Header Fields Too Large", b""
            else:
                status, body = self._answer(head.decode("latin-1"))
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(writer.drain(), _READ_TIMEOUT_S)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    def _answer(self, head: str) -> tuple[str, bytes]:
        request, _, rest = head.partition("\r\n")
        parts = request.split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            return "405 Method Not Allowed", b""
        if parts[1].split("?", 1)[0] != "/metrics":
            return "404 Not Found", b""
        if self._token is not None:
            given = ""
            for line in rest.split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "authorization":
                    given = value.strip()
            if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                return "401 Unauthorized", b"a bearer token is needed\n"
        counters, state = self._collect()
        text = exposition(self.gateway, counters, state, self._started)
        return "200 OK", text.encode()
