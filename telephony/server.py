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
        ws_ping_interval=20,
        ws_ping_timeout=20,
        lifespan="off",
    )


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
