"""The call history store: one small interface over SQLite (the default: a file, no set-up)
or PostgreSQL (shared by every instance), with SQLAlchemy's async engine.

The schema is created and upgraded by alembic (`telephony db upgrade`, and on first use by
a server). Reads are plain queries; writes come from `StoreWriter`, off the audio path.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, event, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from telephony.store.schema import call_statuses, calls, tool_calls, turns

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
    """The async driver's URL for a plain one: sqlite:// -> aiosqlite, postgresql:// -> asyncpg."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
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
        target = async_url(url)
        options: dict[str, Any] = {}
        if target.startswith("sqlite") and ":memory:" in target:
            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif target.startswith("sqlite"):
            path = target.split(":///", 1)[1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        elif target.startswith("postgresql"):
            options = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
        self.engine: AsyncEngine = create_async_engine(target, **options)
        if target.startswith("sqlite"):
            # Several workers (serve --workers) share one file: readers never wait for the
            # writer, and a writer waits a moment for another instead of failing at once.
            event.listen(self.engine.sync_engine, "connect", _sqlite_for_many_processes)
        self._ready = False
        self._lock = asyncio.Lock()

    @property
    def kind(self) -> str:
        return self.engine.dialect.name

    async def ensure_schema(self) -> None:
        """Create or upgrade the tables once (every instance may race to do it: an advisory
        lock on PostgreSQL, alembic's version table and a transaction make the loser a no-op)."""
        if self._ready:
            return
        async with self._lock, _migrating():
            if not self._ready:
                for attempt in range(3):
                    try:
                        async with self.engine.begin() as connection:
                            await connection.run_sync(upgrade_schema)
                        break
                    except DBAPIError as exc:  # another process created the tables a moment ago (SQLite DDL)
                        if attempt == 2 or "already exists" not in str(exc):
                            raise
                        await asyncio.sleep(0.2)
                self._ready = True

    async def close(self) -> None:
        await self.engine.dispose()

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
        async with self.engine.begin() as connection:
            await connection.execute(statement)
            await connection.execute(delete(turns).where(turns.c.call_sid == row["call_sid"]))
            await connection.execute(delete(tool_calls).where(tool_calls.c.call_sid == row["call_sid"]))
            if lines:
                await connection.execute(turns.insert(), [{"call_sid": row["call_sid"], **line} for line in lines])
            if tools:
                await connection.execute(tool_calls.insert(), [{"call_sid": row["call_sid"], **tool} for tool in tools])

    async def add_status(self, call_sid: str, entry: dict[str, str], received_at: float, limit: int) -> None:
        await self.ensure_schema()
        async with self.engine.begin() as connection:
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
        async with self.engine.begin() as connection:
            summary = await connection.scalar(select(calls.c.summary).where(calls.c.call_sid == call_sid))
            if summary is None:
                return False
            await connection.execute(update(calls).where(calls.c.call_sid == call_sid).values(summary=dict(summary) | {key: value}))
            return True

    async def delete_older_than(self, cutoff: float) -> int:
        await self.ensure_schema()
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(calls).where(calls.c.started_at < cutoff))
            return int(result.rowcount or 0)

    # --- reads ------------------------------------------------------------------------------

    async def call(self, call_sid: str) -> dict[str, Any] | None:
        """One call as the API shows it: its summary, turns, tool calls and statuses."""
        await self.ensure_schema()
        async with self.engine.connect() as connection:
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
        async with self.engine.connect() as connection:
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
        async with self.engine.connect() as connection:
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
