"""Claims that hold across processes and machines, in the shared store: a stream token is used
once wherever the stream lands, and a live CallSid has one stream wherever a second one
arrives (a replayed upgrade on another worker or instance opens nothing). A claim is one row
whose primary key is the claim: inserting it is the atomic test-and-set on SQLite (WAL, one
file for the workers of a machine) and PostgreSQL (instances) alike. One transaction per
stream start; expired claims are swept a minute apart, not on every call."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from telephony.store.database import CallStore
from telephony.store.schema import stream_claims

SWEEP_EVERY_S = 60.0


class StreamClaims:
    def __init__(self, store: CallStore) -> None:
        self.store = store
        self._swept_at = 0.0

    async def claim(self, claims: list[tuple[str, float]], now: float) -> str | None:
        """Take every (key, until) at once; None when all were free (or expired), else the
        first key another process holds (and nothing is taken)."""
        await self.store.ensure_schema()
        keys = [key for key, _ in claims]
        try:
            async with self.store.begin() as connection:
                if now - self._swept_at > SWEEP_EVERY_S:
                    self._swept_at = now
                    await connection.execute(delete(stream_claims).where(stream_claims.c.expires_at < now))
                else:  # an expired claim on one of these keys gives way
                    await connection.execute(delete(stream_claims).where(stream_claims.c.key.in_(keys), stream_claims.c.expires_at < now))
                await connection.execute(stream_claims.insert(), [{"key": key, "expires_at": until} for key, until in claims])
        except IntegrityError:
            async with self.store.connect() as connection:
                held = set((await connection.execute(select(stream_claims.c.key).where(stream_claims.c.key.in_(keys)))).scalars())
            return next((key for key in keys if key in held), keys[0])
        return None

    async def release(self, key: str) -> None:
        await self.store.ensure_schema()
        async with self.store.begin() as connection:
            await connection.execute(delete(stream_claims).where(stream_claims.c.key == key))
