"""A Gemini Live session that survives its connection: the call sees one unbroken session.

Live connections end on their own: a `goAway` warns before the server's connection limit,
and connections also fail with 1011 (internal), 1006 (dropped) or a send error. On any of
these we close the old socket (resuming while it is open can fail), then reconnect with the
latest resumable handle, falling back to a fresh session with the same configuration when the
handle is refused, with bounded exponential backoff and a cap on attempts. Caller audio that
arrives meanwhile is held in a bounded buffer and sent once the new session is up; what does
not fit is dropped, oldest first, and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from telephony.gemini.events import (
    AgentAudio,
    GeminiEvent,
    GoAway,
    Interrupted,
    ResumptionHandle,
    SessionClosed,
    TurnComplete,
)
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError

log = logging.getLogger(__name__)

GO_AWAY_MARGIN_S = 1.0
"""Switch connections at least this long before a goAway's deadline."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0
    buffer_seconds: float = 10.0
    """Caller audio held during a reconnect (16 kHz PCM: 32 kB a second)."""

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: 0.1, 0.2, 0.4 ... capped."""
        base = min(self.max_delay_s, self.first_delay_s * (2**attempt))
        return base * (0.5 + random.random() / 2)


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The session moved to a new connection; `resumed` is False for a fresh session."""

    resumed: bool
    reason: str
    attempts: int


class ResilientGeminiSession:
    """Same interface as `GeminiLiveSession`, across as many connections as it takes."""

    def __init__(
        self,
        open_session: Callable[[], GeminiLiveSession],
        policy: RetryPolicy | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        """`logger`: the call's logger, so that reconnect lines carry its SIDs."""
        self._new_session = open_session
        self.policy = policy or RetryPolicy()
        self.log = logger or log
        self._session: GeminiLiveSession | None = None
        self.handle: str | None = None
        self.reconnects = 0
        self.dropped_audio_bytes = 0
        self._buffer: collections.deque[bytes] = collections.deque()
        self._buffered_bytes = 0
        self._buffer_limit = int(self.policy.buffer_seconds * 32000)
        self._reconnecting = False
        self._closed = False

    @property
    def reconnecting(self) -> bool:
        return self._reconnecting

    async def open(self) -> None:
        """Open the first connection (retrying what is worth a retry, see `_connect`)."""
        self._session, _ = await self._connect(max(1, self.policy.max_attempts))

    async def send_audio(self, pcm16k: bytes) -> None:
        if self._reconnecting or self._session is None:
            self._hold(pcm16k)
            return
        try:
            await self._session.send_audio(pcm16k)
        except GeminiSessionError:
            self._hold(pcm16k)  # the events loop sees the close and reconnects

    async def send_text(self, text: str) -> None:
        await self._forward("send_text", text)

    async def send_client_text(self, text: str) -> None:
        await self._forward("send_client_text", text)

    async def send_activity_start(self) -> None:
        await self._forward("send_activity_start")

    async def send_activity_end(self) -> None:
        await self._forward("send_activity_end")

    async def send_tool_response(self, call_id: str, name: str, response: dict[str, Any]) -> None:
        await self._forward("send_tool_response", call_id, name, response)

    async def events(self) -> AsyncIterator[GeminiEvent | Reconnected]:
        """Events of every connection in turn; ends with one final `SessionClosed`.

        On `goAway` the switch waits for the agent to finish its sentence (the turn's end),
        but never past the server's deadline less a safety margin, so the caller hears
        neither a cut-off word nor a dropped connection.
        """
        while True:
            session = self._session
            if session is None:
                return
            switch: str | None = None
            deadline: float | None = None
            in_turn = False
            async with contextlib.aclosing(session.events()) as stream:
                while True:
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:  # asyncio.timeout: wait_for can swallow our cancellation (Python 3.11)
                        async with asyncio.timeout(timeout):
                            event = await anext(stream)
                    except (TimeoutError, StopAsyncIteration):
                        break
                    if isinstance(event, AgentAudio):
                        in_turn = True
                    elif isinstance(event, (TurnComplete, Interrupted)):
                        in_turn = False
                    if isinstance(event, ResumptionHandle):
                        if event.resumable:
                            self.handle = event.handle
                    elif isinstance(event, GoAway):
                        switch = f"goAway ({event.time_left_s:.1f} s left)"
                        deadline = time.monotonic() + max(0.0, event.time_left_s - GO_AWAY_MARGIN_S)
                    elif isinstance(event, SessionClosed):
                        if self._closed or not event.retryable:
                            yield event
                            return
                        switch = switch or f"closed {event.code} {event.reason}".strip()
                        break
                    yield event
                    if deadline is not None and not in_turn:
                        break  # nothing being said: switch now
            if switch is None:  # the session's events ended without a close (closed by us)
                return
            outcome = await self._reconnect(session, switch)
            yield outcome
            if isinstance(outcome, SessionClosed):
                return

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def _connect(self, attempts: int) -> tuple[GeminiLiveSession, int]:
        """A new connection, resumed with the latest handle if there is one; returns it and
        the attempts it took.

        Failures worth a retry (1006 drop, 1011 internal, HTTP 503) are retried with backoff;
        a refused handle (1007, 1008) is forgotten so that the next attempt starts a fresh
        session with the same configuration; any other refusal (a bad key's 403, a bad setup)
        is raised at once, as is the last failure when the attempts run out.
        """
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.policy.delay(attempt - 1))
            if self._closed:
                raise GeminiSessionError("the call ended while connecting", code=1000)
            handle = self.handle
            session = self._new_session()
            try:
                await session.open(resume_handle=handle)
            except GeminiSessionError as exc:
                if handle and exc.code in (1007, 1008):
                    self.handle = None
                elif not SessionClosed(exc.code, "").retryable:
                    raise
                if attempt + 1 == attempts:
                    raise
                self.log.warning("connecting to Gemini failed, attempt %d of %d: %s (%s)", attempt + 1, attempts, exc, exc.code)
                continue
            return session, attempt + 1
        raise GeminiSessionError("reconnecting is switched off (TELEPHONY_GEMINI_RECONNECT_ATTEMPTS=0)", code=1011)

    async def _reconnect(self, old: GeminiLiveSession, reason: str) -> Reconnected | SessionClosed:
        self._reconnecting = True
        self.log.warning("Gemini session lost (%s): reconnecting", reason)
        await old.close()  # before resuming with its handle
        resuming = self.handle is not None
        try:
            session, attempts = await self._connect(self.policy.max_attempts)
        except GeminiSessionError as exc:
            self._reconnecting = False
            return SessionClosed(code=1011, reason=f"could not reconnect to Gemini: {exc} ({exc.code})")
        self._session = session
        while self._buffer:  # audio held meanwhile, in order; more may arrive as we send
            chunk = self._buffer.popleft()
            self._buffered_bytes -= len(chunk)
            try:
                await session.send_audio(chunk)
            except GeminiSessionError:
                self._buffer.appendleft(chunk)
                self._buffered_bytes += len(chunk)
                break
        self._reconnecting = False
        self.reconnects += 1
        return Reconnected(resumed=resuming and self.handle is not None, reason=reason, attempts=attempts)

    def _hold(self, pcm16k: bytes) -> None:
        self._buffer.append(pcm16k)
        self._buffered_bytes += len(pcm16k)
        while self._buffered_bytes > self._buffer_limit and self._buffer:
            dropped = self._buffer.popleft()
            self._buffered_bytes -= len(dropped)
            self.dropped_audio_bytes += len(dropped)

    async def _forward(self, method: str, *args: Any) -> None:
        if self._session is None:
            raise GeminiSessionError("the Gemini Live session is not open")
        try:
            await getattr(self._session, method)(*args)
        except GeminiSessionError:
            if not self._reconnecting:
                raise
