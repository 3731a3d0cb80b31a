"""Running the app under uvicorn: in the foreground (`telephony serve`) or in the background
of an event loop (the demo, the tests, the benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from telephony.twilio.media_streams import MAX_MESSAGE_BYTES

log = logging.getLogger("telephony.web.server")


class GuardedHttpProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol with two limits it lacks: request headers must arrive within
    `header_timeout_s` (a client dribbling one byte a second holds a descriptor forever
    otherwise), and one client address may hold at most `max_per_client` connections
    (WebSockets included: the count is of live transports, upgraded or not).

    At the cap, a new connection takes the place of the address's oldest one still waiting for
    its headers: behind a proxy (or on one host) real requests share the address of those
    trickling theirs, and a real call must still be answered. Only an address whose every
    connection is a real request or a live stream is refused."""

    header_timeout_s: float = 10.0
    max_per_client: int = 200
    _by_client: ClassVar[dict[str, dict[asyncio.Transport, GuardedHttpProtocol]]] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._received_any = False
        self._pending_request = False  # bytes of a request whose headers are not complete yet
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else "?"
        live = self._by_client.setdefault(host, {})
        for other in [t for t in live if t.is_closing()]:
            del live[other]
        if len(live) >= self.max_per_client:
            stalled = next((t for t, protocol in live.items() if protocol._stalled()), None)
            if stalled is None:
                log.warning("connection refused: %d connections open from one client", len(live))
                transport.abort()
                return
            del live[stalled]
            stalled.abort()  # the oldest trickling its headers gives way
        live[transport] = self
        self._client_host = host
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        if self._awaiting_headers():
            self._pending_request = True
            if self._header_timer is None:
                self._arm_header_timer()  # a keep-alive connection starting its next request
        super().data_received(data)
        if not self._awaiting_headers():
            self._pending_request = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        live = self._by_client.get(getattr(self, "_client_host", ""), {})
        live.pop(self.transport, None)
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is None or bool(cycle.response_complete)

    def _arm_header_timer(self) -> None:
        self._header_timer = asyncio.get_running_loop().call_later(self.header_timeout_s, self._headers_overdue)

    def _stalled(self) -> bool:
        """A request that started and has not finished its headers, or a connection mute from
        the start (idle between requests is uvicorn's keep-alive timeout's business)."""
        upgraded = self.transport.get_protocol() is not self
        waiting = self._pending_request or not self._received_any
        return not upgraded and waiting and self._awaiting_headers() and not self.transport.is_closing()

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self._stalled():
            log.warning("connection closed: no complete request headers within %.0f s", self.header_timeout_s)
            self.transport.abort()


def uvicorn_config(
    app: FastAPI,
    host: str,
    port: int,
    log_level: str = "warning",
    header_timeout_s: float = 10.0,
    max_connections_per_client: int = 200,
) -> uvicorn.Config:
    protocol = type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout_s": header_timeout_s, "max_per_client": max_connections_per_client, "_by_client": {}},
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        # Forwarded headers are believed only from TELEPHONY_TRUSTED_PROXIES, by the app
        # (telephony.twilio.signatures.public_base_url): the client address stays the real peer.
        proxy_headers=False,
        timeout_graceful_shutdown=5,  # after the drain, what is still open is cut, never waited on
        log_config=None,
        # uvicorn's own lines ("Started server process", one per WebSocket accepted) only when
        # debugging: our banner and our call lines say the same for a person.
        log_level=log_level if log_level.lower() == "debug" else "warning",
        # A line per request (the browser phone polls twice a second) only when debugging: the
        # routes log what matters themselves (a call answered, a status, a refusal).
        access_log=log_level.lower() == "debug",
        ws_max_size=MAX_MESSAGE_BYTES,  # bigger frames are refused by the server itself
        # Base64 mu-law barely compresses; deflating 100 small messages a second per call
        # costs CPU and latency for nothing (see docs/benchmarks.md, "Where the time goes").
        ws_per_message_deflate=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        lifespan="on",  # the routes deliver events left by an earlier run (`telephony.web.events`)
    )


class DrainingServer(uvicorn.Server):
    """uvicorn that drains live calls on the first SIGTERM/SIGINT before it stops.

    While draining, /readyz answers 503 and the webhook answers busy TwiML, so a platform
    stops sending calls here; live calls go on for up to `drain_seconds`. A second signal
    stops at once.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app, self.drain_seconds = app, drain_seconds
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        # What start-up made (modules, the app, the agent) lives as long as the process: moved
        # out of the collector's reach, a full collection scans only what calls made. Python
        # runs one when the objects that survived collections grow by a quarter of those it
        # tracks; with the start-up's objects counted, a finished call's reference cycles
        # (asyncio transports, callbacks) waited minutes for it (a 5-minute soak held 30 calls'
        # sessions and sockets at idle, and RSS grew without levelling off).
        gc.collect()
        gc.freeze()
        await super().serve(sockets)

    def handle_exit(self, sig, frame) -> None:
        # The first signal is handled here, by draining: not re-raised at exit (uvicorn would),
        # so a clean drain exits 0. A second one is uvicorn's: stop now, exit by the signal.
        if self._drain is None and self._loop is not None and not self.should_exit:
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        from telephony.web.app import drain_calls

        async def drain_then_exit() -> None:
            try:
                await drain_calls(self.app, self.drain_seconds)
            finally:
                self.should_exit = True

        self._drain = asyncio.create_task(drain_then_exit())


def listen_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """The server's listening socket, bound here so that a busy port is an OSError we can
    report in one line (uvicorn would log it and exit the process). `reuse_port`: one of
    several sockets on the same port (one per worker; the kernel spreads connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0, **limits: Any) -> AsyncIterator[str]:
    """Serve `app` in this event loop; yields its base URL (http://host:port). A busy port
    raises OSError. `limits`: `uvicorn_config`'s header timeout and per-client cap."""
    server = uvicorn.Server(uvicorn_config(app, host, port, **limits))
    listening = listen_socket(host, port)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task
