"""A TCP link that delivers one direction late: a far-away service, for tests that must
not depend on how fast a busy machine reads its sockets.

Bytes towards the client arrive `delay_s` after the service sent them (in order); bytes
towards the service pass at once. TLS passes through untouched. The target is looked up at
each connection, so it may be an emulator that starts after the link does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class SlowLink:
    def __init__(self, delay_s: float, target: Callable[[], tuple[str, int]] | None = None) -> None:
        self.delay_s = delay_s
        self.target = target
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "use the link inside `async with SlowLink(...)`"
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> SlowLink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        assert self.target is not None, "the link has no target"
        self.connections += 1
        host, port = self.target()
        service_in, service_out = await asyncio.open_connection(host, port)
        pumps = [
            asyncio.create_task(self._pump(client_in, service_out, 0.0)),
            asyncio.create_task(self._pump(service_in, client_out, self.delay_s)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            for writer in (client_out, service_out):
                writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await held.get()
                if data == b"":
                    return
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                held.put_nowait((time.monotonic() + delay_s, data))
            held.put_nowait((0.0, b""))
            await delivering
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await delivering
