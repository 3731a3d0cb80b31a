"""Twilio's callbacks for a call this process does not carry, passed on through the shared store.

A load balancer sends Twilio's `/amd` and `/status` callbacks to any worker or instance; the
call (or the warm transfer waiting on a person's leg) lives on one of them. The receiver that
does not carry it leaves a signal row; the process that carries it takes the signals for its
live CallSids a few times a second (`telephony.web.signal_relay`) and acts as if the callback
had reached it. Signals nobody takes (a call that ended, or never ran here) go after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete

from telephony.store.database import CallStore
from telephony.store.schema import call_signals

KEEP_S = 3600.0
SWEEP_EVERY_S = 60.0


@dataclass(frozen=True)
class CallSignal:
    call_sid: str
    kind: str
    value: str


class CallSignals:
    def __init__(self, store: CallStore) -> None:
        self.store = store
        self._swept_at = 0.0

    async def send(self, signal: CallSignal, now: float) -> None:
        await self.store.ensure_schema()
        async with self.store.begin() as connection:
            row = {"call_sid": signal.call_sid, "kind": signal.kind, "value": signal.value[:64], "created_at": now}
            await connection.execute(call_signals.insert(), [row])

    async def take(self, call_sids: list[str], now: float) -> list[CallSignal]:
        """The signals waiting for these calls, oldest first; each is taken once (deleted in
        the same transaction: two processes never both act on one)."""
        await self.store.ensure_schema()
        async with self.store.begin() as connection:
            if now - self._swept_at > SWEEP_EVERY_S:
                self._swept_at = now
                await connection.execute(delete(call_signals).where(call_signals.c.created_at < now - KEEP_S))
            if not call_sids:
                return []
            taken = (
                await connection.execute(
                    delete(call_signals)
                    .where(call_signals.c.call_sid.in_(call_sids))
                    .returning(call_signals.c.id, call_signals.c.call_sid, call_signals.c.kind, call_signals.c.value)
                )
            ).all()
        return [CallSignal(row.call_sid, row.kind, row.value) for row in sorted(taken, key=lambda row: row.id)]
