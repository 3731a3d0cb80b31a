"""Where a call list's progress is kept (`telephony dial --list`): one row per list row, its
state (dialing with its CallSid, retry at a time, done with an outcome), written before and
after every step, so that a run stopped at any moment resumes without calling anyone twice."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import select

from telephony.store.database import CallStore
from telephony.store.schema import list_calls


@dataclass
class ListEntry:
    row_key: str
    line: int
    number: str
    state: str = "new"
    """new, dialing (the call may be placed: never dial again), retry, done, unknown."""
    attempts: int = 0
    call_sid: str | None = None
    outcome: str | None = None
    answered_by: str | None = None
    duration_s: float | None = None
    voicemail_left: bool | None = None
    summary: str | None = None
    next_at: float | None = None


class ListProgress:
    """A list's entries in memory, mirrored to the call store when there is one."""

    def __init__(self, list_id: str, store: CallStore | None) -> None:
        self.list_id = list_id
        self.store = store

    async def load(self) -> dict[str, ListEntry]:
        if self.store is None:
            return {}
        await self.store.ensure_schema()
        query = select(list_calls).where(list_calls.c.list_id == self.list_id)
        async with self.store.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        fields = set(ListEntry.__dataclass_fields__)
        return {row["row_key"]: ListEntry(**{k: v for k, v in row.items() if k in fields}) for row in rows}

    async def save(self, entry: ListEntry) -> None:
        if self.store is None:
            return
        await self.store.ensure_schema()
        row = {"list_id": self.list_id, **asdict(entry), "updated_at": time.time()}
        statement = self.store._insert(list_calls).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["list_id", "row_key"], set_={k: v for k, v in row.items() if k not in ("list_id", "row_key")}
        )
        async with self.store.begin() as connection:
            await connection.execute(statement)
