"""Running the app under uvicorn: in the foreground (`telephony serve`) or in the background
of an event loop (the demo, the tests, the benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from telephony.twilio_protocol import MAX_MESSAGE_BYTES


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=log_level,
        ws_max_size=MAX_MESSAGE_BYTES,  # bigger frames are refused by the server itself
        # Base64 mu-law barely compresses; deflating 100 small messages a second per call
        # costs CPU and latency for nothing (see README, "Where the time goes").
        ws_per_message_deflate=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        lifespan="off",
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
        await super().serve(sockets)

    def handle_exit(self, sig, frame) -> None:
        if self._drain is None and self._loop is not None and not self.should_exit:
            self._captured_signals.append(sig)
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        from telephony.app import drain_calls

        async def drain_then_exit() -> None:
            try:
                await drain_calls(self.app, self.drain_seconds)
            finally:
                self.should_exit = True

        self._drain = asyncio.create_task(drain_then_exit())


@contextlib.asynccontextmanager
async def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` in this event loop; yields its base URL (http://host:port)."""
    server = uvicorn.Server(uvicorn_config(app, host, port))
    task = asyncio.create_task(server.serve())
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
