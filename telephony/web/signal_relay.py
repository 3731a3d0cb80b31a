"""Twilio's callbacks reach the call on whichever worker or instance carries it.

The process a callback lands on acts on it when the call is its own; otherwise it passes the
callback on (`pass_on`: a row in the shared store, `telephony.store.signals`). Each process
with calls (or warm transfers) of its own takes what was passed on for them every
`POLL_S` and acts on it as if Twilio had called it. The loop runs only while this process has
something to wait for: an idle server does not query the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from telephony.store.signals import CallSignal, CallSignals

POLL_S = 0.25
"""How often a process with live calls looks for callbacks passed on to it (the most a
passed-on machine detection or transfer status waits on top of Twilio's own delay)."""
STORE_TIMEOUT_S = 2.0

log = logging.getLogger("telephony.web")


class SignalRelay:
    def __init__(self, signals: CallSignals, waiting_for: Callable[[], Iterable[str]], act: Callable[[CallSignal], bool]) -> None:
        self.signals = signals
        self.waiting_for = waiting_for
        """The CallSids this process carries or waits on (calls, transfer legs)."""
        self.act = act
        """Acts on a signal for one of them; False when it was no longer waiting."""
        self._task: asyncio.Task[None] | None = None

    async def pass_on(self, signal: CallSignal) -> bool:
        """Leave `signal` for the process that carries its call (False: the store is down)."""
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                await self.signals.send(signal, time.time())
        except Exception as exc:  # noqa: BLE001 - the store is down or slow: Twilio's request is answered anyway
            log.warning("could not pass on %s=%s: %s", signal.kind, signal.value, type(exc).__name__, extra={"call_sid": signal.call_sid})
            return False
        return True

    def wake(self) -> None:
        """Something to wait for has begun here (a call admitted, a transfer dialled)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="signal-relay")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        failing = False
        while wanted := list(self.waiting_for()):
            try:
                async with asyncio.timeout(STORE_TIMEOUT_S):
                    taken = await self.signals.take(wanted, time.time())
                failing = False
            except Exception as exc:  # noqa: BLE001 - the store is down: try again, say so once
                if not failing:
                    log.warning("could not look for callbacks passed on from other instances: %s", type(exc).__name__)
                failing, taken = True, []
            for signal in taken:
                acted = self.act(signal)
                log.info("%s=%s passed on from another instance%s", signal.kind, signal.value, "" if acted else " (too late)",
                         extra={"call_sid": signal.call_sid})  # fmt: skip
            await asyncio.sleep(POLL_S)
