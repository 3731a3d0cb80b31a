"""Events waiting for the user's systems, kept in the call store until their receiver has
taken them: an outage of the receiver, or a restart of ours, loses none (`telephony.web.events`
delivers them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from telephony.store.database import CallStore
from telephony.store.schema import events


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    url: str
    body: str
    attempts: int


class EventOutbox:
    def __init__(self, store: CallStore) -> None:
        self.store = store

    async def add(self, event_id: str, kind: str, url: str, body: str, now: float) -> None:
        await self.store.ensure_schema()
        row: dict[str, Any] = {"id": event_id, "type": kind, "url": url, "body": body, "created_at": now, "next_attempt_at": now}
        async with self.store.begin() as connection:
            await connection.execute(insert(events).values(attempts=0, **row))

    async def due(self, now: float, limit: int = 20) -> list[StoredEvent]:
        await self.store.ensure_schema()
        query = (
            select(events.c.id, events.c.type, events.c.url, events.c.body, events.c.attempts)
            .where(events.c.delivered_at.is_(None), events.c.next_attempt_at <= now)
            .order_by(events.c.next_attempt_at)
            .limit(limit)
        )
        async with self.store.connect() as connection:
            return [StoredEvent(*row) for row in (await connection.execute(query)).all()]

    async def next_due(self) -> float | None:
        await self.store.ensure_schema()
        query = select(events.c.next_attempt_at).where(events.c.delivered_at.is_(None)).order_by(events.c.next_attempt_at).limit(1)
        async with self.store.connect() as connection:
            value = await connection.scalar(query)
        return float(value) if value is not None else None

    async def delivered(self, event_id: str, now: float) -> None:
        async with self.store.begin() as connection:
            await connection.execute(update(events).where(events.c.id == event_id).values(delivered_at=now, last_error=None))

    async def failed(self, event_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        values = {"attempts": attempts, "next_attempt_at": next_attempt_at, "last_error": error[:500]}
        async with self.store.begin() as connection:
            await connection.execute(update(events).where(events.c.id == event_id).values(**values))

    async def pending(self) -> int:
        await self.store.ensure_schema()
        async with self.store.connect() as connection:
            rows = await connection.execute(select(events.c.id).where(events.c.delivered_at.is_(None)))
            return len(rows.all())
