"""The call history store: one small interface over SQLite (the default: a file, no set-up)
or PostgreSQL (shared by every instance), in SQLAlchemy Core: SQLite on threads of its own
(`sqlite_threads`), PostgreSQL on asyncpg through SQLAlchemy's async engine. Either way the
store lends `begin()` (a transaction) and `connect()` (reads), used as async context managers.

The schema is created and upgraded by alembic (`telephony db upgrade`, and on first use by
a server). Reads are plain queries; writes come from `StoreWriter`, off the audio path.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool, StaticPool

from telephony.store.schema import SCHEMA_REVISION, call_statuses, calls, tool_calls, turns
from telephony.store.sqlite_threads import SqliteLanes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

SQLITE_LANES = 4
"""Connections (each on its thread) to a SQLite file: SQLite writes one at a time anyway, and
four keep a stream's claim from waiting behind a history write or a dashboard page."""

PAGE_SIZE = 50

_MIGRATION_LOCK_KEY = 0x7E1E_0001
"""PostgreSQL advisory lock held while migrating: instances starting at once take turns."""

_MIGRATING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
"""One migration at a time per event loop: alembic keeps its context in module globals, so two
stores migrating at once in one process (two apps, or a router mounted twice) interleave on
them (a KeyError deep in alembic, a half-made schema)."""


def _migrating() -> asyncio.Lock:
    return _MIGRATING.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def async_url(url: str) -> str:
    """The async driver's URL for a PostgreSQL one (postgres://, postgresql://, or with
    another driver such as +psycopg2): asyncpg, the one the store runs on."""
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    if scheme == "postgres" or scheme.split("+", 1)[0] == "postgresql":
        return "postgresql+asyncpg://" + rest
    return url


def upgrade_schema(connection: Connection) -> None:
    """Run every alembic migration not yet applied (on a sync connection: `run_sync`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("telephony.store") / "migrations"))
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":  # released with the transaction
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    command.upgrade(config, "head")


@dataclass(frozen=True)
class CallQuery:
    """A page of the history: newest first, optionally by number (either side) and date."""

    number: str | None = None
    since: float | None = None
    until: float | None = None
    page: int = 1
    page_size: int = PAGE_SIZE


class CallStore:
    """Calls, their turns, tool calls and status callbacks, in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lanes: SqliteLanes | None = None
        self._engine: AsyncEngine | None = None
        if url.startswith("sqlite"):
            url = "sqlite://" + url.split("://", 1)[1]  # sqlite+aiosqlite:// and the like: the stdlib driver
            if ":memory:" in url:  # one connection, or each would see a database of its own
                # Closed by whichever thread disposes of the engine: not the lane that opened it.
                engine, lanes = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False}), 1
            else:
                Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
                engine, lanes = create_engine(url, poolclass=NullPool), SQLITE_LANES  # each lane keeps its connection
                # Several workers (serve --workers) share one file: readers never wait for the
                # writer, and a writer waits a moment for another instead of failing at once.
                event.listen(engine, "connect", _sqlite_for_many_processes)
            self._lanes = SqliteLanes(engine, lanes)
            self.kind = "sqlite"
        else:
            from sqlalchemy.ext.asyncio import create_async_engine

            target = async_url(url)
            options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5} if target.startswith("postgresql") else {}
            self._engine = create_async_engine(target, **options)
            self.kind = self._engine.dialect.name
        self._ready = False
        self._lock = asyncio.Lock()

    def begin(self) -> Any:
        """`async with store.begin() as connection:` one transaction, committed at the end
        (`connection.execute`, `.scalar`, `.run_sync`; results are fetched whole)."""
        return self._lanes.begin() if self._lanes is not None else self._async_engine.begin()

    def connect(self) -> Any:
        """`async with store.connect() as connection:` reads."""
        return self._lanes.connect() if self._lanes is not None else self._async_engine.connect()

    @property
    def _async_engine(self) -> AsyncEngine:
        assert self._engine is not None
        return self._engine

    async def schema_is_current(self) -> bool:
        """Whether the tables are at `SCHEMA_REVISION` (one query; False when there are none,
        they are older, or the database cannot be reached)."""
        try:
            async with self.connect() as connection:
                return await connection.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_REVISION
        except (DBAPIError, OSError):  # asyncpg's refused connection is a bare OSError
            return False

    async def ensure_schema(self) -> None:
        """Create or upgrade the tables once (every instance may race to do it: an advisory
        lock on PostgreSQL, alembic's version table and a transaction make the loser a no-op).
        Alembic is imported only when there is something to migrate."""
        if self._ready:
            return
        async with self._lock, _migrating():
            if not self._ready and await self.schema_is_current():
                self._ready = True
            if not self._ready:
                for attempt in range(3):
                    try:
                        async with self.begin() as connection:
                            await connection.run_sync(upgrade_schema)
                        break
                    except DBAPIError as exc:  # another process created the tables a moment ago (SQLite DDL)
                        if attempt == 2 or "already exists" not in str(exc):
                            raise
                        await asyncio.sleep(0.2)
                self._ready = True

    async def close(self) -> None:
        if self._lanes is not None:
            await self._lanes.close()
        else:
            await self._async_engine.dispose()

    # --- writes (from StoreWriter) ----------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        # Imported here: only the dialect in use is loaded (PostgreSQL's is 2.4 MB a process).
        if self.kind == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    async def save_call(self, row: dict[str, Any], lines: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
        """Insert or replace one call with its turns and tool calls, in one transaction."""
        await self.ensure_schema()
        statement = self._insert(calls).values(**row)
        statement = statement.on_conflict_do_update(index_elements=["call_sid"], set_={k: v for k, v in row.items() if k != "call_sid"})
        async with self.begin() as connection:
            await connection.execute(statement)
            await connection.execute(delete(turns).where(turns.c.call_sid == row["call_sid"]))
            await connection.execute(delete(tool_calls).where(tool_calls.c.call_sid == row["call_sid"]))
            if lines:
                await connection.execute(turns.insert(), [{"call_sid": row["call_sid"], **line} for line in lines])
            if tools:
                await connection.execute(tool_calls.insert(), [{"call_sid": row["call_sid"], **tool} for tool in tools])

    async def add_status(self, call_sid: str, entry: dict[str, str], received_at: float, limit: int) -> None:
        await self.ensure_schema()
        async with self.begin() as connection:
            count = await connection.scalar(select(func.count()).where(call_statuses.c.call_sid == call_sid))
            if (count or 0) >= limit:
                return
            await connection.execute(
                call_statuses.insert().values(
                    call_sid=call_sid,
                    status=entry.get("CallStatus", ""),
                    sequence=entry.get("SequenceNumber"),
                    timestamp=entry.get("Timestamp"),
                    call_duration=entry.get("CallDuration"),
                    received_at=received_at,
                )
            )

    async def annotate(self, call_sid: str, key: str, value: Any) -> bool:
        """Keep `value` under `key` in a stored call's summary (an eval run's verdict, ...);
        False when the call is not stored."""
        await self.ensure_schema()
        async with self.begin() as connection:
            summary = await connection.scalar(select(calls.c.summary).where(calls.c.call_sid == call_sid))
            if summary is None:
                return False
            await connection.execute(update(calls).where(calls.c.call_sid == call_sid).values(summary=dict(summary) | {key: value}))
            return True

    async def delete_older_than(self, cutoff: float) -> int:
        await self.ensure_schema()
        async with self.begin() as connection:
            result = await connection.execute(delete(calls).where(calls.c.started_at < cutoff))
            return int(result.rowcount or 0)

    # --- reads ------------------------------------------------------------------------------

    async def call(self, call_sid: str) -> dict[str, Any] | None:
        """One call as the API shows it: its summary, turns, tool calls and statuses."""
        await self.ensure_schema()
        async with self.connect() as connection:
            row = (await connection.execute(select(calls).where(calls.c.call_sid == call_sid))).mappings().first()
            statuses = await self._statuses(connection, call_sid)
            if row is None:
                return {"call_sid": call_sid, "statuses": statuses} if statuses else None
            lines = (await connection.execute(select(turns).where(turns.c.call_sid == call_sid).order_by(turns.c.seq))).mappings()
            tools = (
                await connection.execute(select(tool_calls).where(tool_calls.c.call_sid == call_sid).order_by(tool_calls.c.seq))
            ).mappings()
            return _call_body(dict(row), [dict(line) for line in lines], [dict(tool) for tool in tools], statuses)

    async def statuses(self, call_sid: str) -> list[dict[str, str]]:
        await self.ensure_schema()
        async with self.connect() as connection:
            return await self._statuses(connection, call_sid)

    async def _statuses(self, connection: Any, call_sid: str) -> list[dict[str, str]]:
        rows = (
            await connection.execute(select(call_statuses).where(call_statuses.c.call_sid == call_sid).order_by(call_statuses.c.id))
        ).mappings()
        out = []
        for row in rows:
            entry = {"CallStatus": row["status"]}
            for key, column in (("SequenceNumber", "sequence"), ("Timestamp", "timestamp"), ("CallDuration", "call_duration")):
                if row[column] is not None:
                    entry[key] = row[column]
            out.append(entry)
        return out

    async def calls(self, query: CallQuery) -> tuple[list[dict[str, Any]], int]:
        """A page of calls (newest first) and how many match in all."""
        await self.ensure_schema()
        conditions = []
        if query.number:
            pattern = f"%{query.number.strip()}%"
            conditions.append(or_(calls.c.from_number.like(pattern), calls.c.to_number.like(pattern)))
        if query.since is not None:
            conditions.append(calls.c.started_at >= query.since)
        if query.until is not None:
            conditions.append(calls.c.started_at < query.until)
        columns = [c for c in calls.c if c.name != "summary"]
        statement = select(*columns).where(*conditions).order_by(calls.c.started_at.desc())
        offset = (max(1, query.page) - 1) * query.page_size
        async with self.connect() as connection:
            total = await connection.scalar(select(func.count()).select_from(calls).where(*conditions))
            rows = (await connection.execute(statement.limit(query.page_size).offset(offset))).mappings()
            return [dict(row) for row in rows], int(total or 0)


def _call_body(
    row: dict[str, Any], lines: list[dict[str, Any]], tools: list[dict[str, Any]], statuses: list[dict[str, str]]
) -> dict[str, Any]:
    body = dict(row.pop("summary") or {})
    body.update({k: v for k, v in row.items() if v is not None or k not in body})
    body["transcript"] = [{k: line[k] for k in ("at_ms", "end_ms", "speaker", "text", "interrupted")} for line in lines]
    body["tool_calls"] = [
        {k: t[k] for k in ("name", "arguments", "at_ms", "duration_ms", "error")} | {"response": t["result"]} for t in tools
    ]
    body["statuses"] = statuses
    body["finished"] = row.get("ended_at") is not None
    body["transcript_text"] = "\n".join(
        f"[{line['at_ms'] / 1000:7.2f} s] {line['speaker']}: {line['text']}{' (interrupted)' if line['interrupted'] else ''}"
        for line in body["transcript"]
    )
    return body


def _sqlite_for_many_processes(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
