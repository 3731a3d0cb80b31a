"""A warm transfer's person may reach any instance (a load balancer picks one for Twilio's
`/transfer-leg` and `/transfer-stream`); the caller and the transfer live on one. The carrying
instance keeps the transfer here (its id, the caller's CallSid, then the briefing once spoken);
the instance the person reaches plays the briefing from here and passes their answer back as
a call signal (`telephony.store.signals`). Rows go when the transfer ends; any left by an
instance that died go after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from telephony.store.database import CallStore
from telephony.store.schema import transfer_legs

KEEP_S = 3600.0


@dataclass(frozen=True)
class SharedLeg:
    caller_call_sid: str
    briefing: bytes | None
    failure: str | None


class TransferLegs:
    def __init__(self, store: CallStore) -> None:
        self.store = store

    async def put(self, transfer_id: str, caller_call_sid: str, now: float) -> None:
        await self.store.ensure_schema()
        async with self.store.begin() as connection:
            await connection.execute(delete(transfer_legs).where(transfer_legs.c.created_at < now - KEEP_S))
            await connection.execute(transfer_legs.insert(), [{"id": transfer_id, "caller_call_sid": caller_call_sid, "created_at": now}])

    async def briefed(self, transfer_id: str, briefing: bytes | None, failure: str | None = None) -> None:
        async with self.store.begin() as connection:
            values = {"briefing": briefing, "failure": failure[:200] if failure else None}
            await connection.execute(update(transfer_legs).where(transfer_legs.c.id == transfer_id).values(**values))

    async def get(self, transfer_id: str) -> SharedLeg | None:
        await self.store.ensure_schema()
        query = select(transfer_legs.c.caller_call_sid, transfer_legs.c.briefing, transfer_legs.c.failure).where(
            transfer_legs.c.id == transfer_id
        )
        async with self.store.connect() as connection:
            row = (await connection.execute(query)).first()
        return SharedLeg(row.caller_call_sid, row.briefing, row.failure) if row is not None else None

    async def remove(self, transfer_id: str) -> None:
        async with self.store.begin() as connection:
            await connection.execute(delete(transfer_legs).where(transfer_legs.c.id == transfer_id))
