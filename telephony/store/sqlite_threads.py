"""SQLite for the event loop: Python's own sqlite3 driver, each connection on a thread of its own.

This is what aiosqlite does, without SQLAlchemy's asyncio layer: that layer imports the ORM
and greenlet, 7 MB in every server process for a store that uses SQLAlchemy Core alone.
PostgreSQL keeps the asyncio layer (asyncpg is async itself); both give the store the same
three calls on a connection: `execute`, `scalar` and `run_sync`.

A lane is one connection and the one thread that ever touches it, so a statement still
running when its caller is cancelled is followed, in order, by the rollback. Work waits for
a free lane on the event loop, never on a thread: a lane held by a transaction that waits
for SQLite's write lock (busy_timeout) blocks only its own thread. The first lane keeps its
connection; the others, used when work comes at once, close theirs when lent back (an idle
server holds one connection's files, as before a burst).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")


def _buffered(connection: Connection, statement: Any, parameters: Any = None) -> Any:
    """Run a statement and fetch its rows whole, on the lane's thread (a result read later
    on the event loop must not touch the cursor)."""
    result = connection.execute(statement, parameters)
    return result.freeze()() if result.returns_rows else result


class LaneConnection:
    """One transaction's view of a lane: each call runs on the lane's thread."""

    def __init__(self, lane: _Lane) -> None:
        self._lane = lane

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await self._lane.run(_buffered, statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await self._lane.run(lambda connection: connection.scalar(statement, parameters))

    async def run_sync(self, function: Callable[..., T], *args: Any) -> T:
        return await self._lane.run(function, *args)


class _Lane:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telephony-sqlite")
        self._connection: Connection | None = None

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._connection is None:
            self._connection = self._engine.connect()
        return function(self._connection, *args)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(self._call, function, *args))

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def drop_connection(self) -> None:
        """Close the connection after whatever the thread still has to do (reopened on next use)."""
        with contextlib.suppress(RuntimeError):  # the store was closed meanwhile: so was this
            self._thread.submit(self._close)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        # The thread is idle now and exits at once; waiting for it matters before a fork
        # (`serve --workers` upgrades the store, then forks its workers).
        self._thread.shutdown(wait=True)


class SqliteLanes:
    """`lanes` connections to one SQLite database, lent out one transaction at a time."""

    def __init__(self, engine: Engine, lanes: int) -> None:
        self.engine = engine
        self._all = [_Lane(engine) for _ in range(lanes)]
        self._free: asyncio.LifoQueue[_Lane] | None = None

    def _queue(self) -> asyncio.LifoQueue[_Lane]:
        if self._free is None:  # last in, first out: the first lane does the work of a quiet server
            self._free = asyncio.LifoQueue()
            for lane in reversed(self._all):
                self._free.put_nowait(lane)
        return self._free

    @contextlib.asynccontextmanager
    async def _lent(self, commit: bool) -> AsyncIterator[LaneConnection]:
        free = self._queue()
        lane = await free.get()
        try:
            try:
                yield LaneConnection(lane)
                await lane.run(Connection.commit if commit else Connection.rollback)
            except BaseException:
                # Queued behind whatever the thread still runs for this transaction.
                await asyncio.shield(lane.run(Connection.rollback))
                raise
        finally:
            if lane is not self._all[0]:  # opened for calls that came at once: no files held at idle
                lane.drop_connection()
            free.put_nowait(lane)

    def begin(self) -> contextlib.AbstractAsyncContextManager[LaneConnection]:
        """A transaction, committed when the block ends (rolled back if it raises)."""
        return self._lent(commit=True)

    def connect(self) -> contextlib.AbstractAsyncContextManager[LaneConnection]:
        """Reads: whatever the block did is rolled back, which ends SQLite's read snapshot."""
        return self._lent(commit=False)

    async def close(self) -> None:
        for lane in self._all:
            await lane.close()
        self.engine.dispose()
