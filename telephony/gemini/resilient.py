"""A Gemini Live session that survives its connections: the call sees one unbroken session.

Live connections end on their own: a `goAway` warns before the server's connection limit,
and connections also fail with 1011 (internal), 1006 (dropped) or a send error. One
supervisor task per session (the livekit-agents shape) owns the connection: it sends, it
receives, and when the connection is lost it closes the old socket (resuming while it is
open can fail), reconnects with the latest resumable handle, falling back to a fresh session
with the same configuration when the handle is refused, with bounded backoff.

Producers never wait for the socket: `send()` puts a message in an outbound queue and
returns. While a connection is being replaced the queue simply fills, and it is delivered in
order on the new connection, so a keypad digit, a tool result or an activity signal is never
lost to a reconnect. Only caller audio is bounded (`buffer_seconds`; the oldest is dropped
and counted). What the old connection may not have consumed is sent again on a resumed one:
exactly what follows `lastConsumedClientMessageIndex` where the server reports it (Vertex
AI's transparent resumption), else every non-audio message sent since the last resumable
handle; and on any new connection, what the caller said that no answer has begun for. A
tool call that a fresh session knows nothing about is answered as text, so the model still
learns the result.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
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
    Reconnected,
    ResumptionHandle,
    SessionClosed,
    ToolCall,
    TurnComplete,
)
from telephony.gemini.ledger import ResumptionLedger
from telephony.gemini.messages import CallerAudio, GeminiMessage
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
from telephony.live_objects import track

__all__ = ["Reconnected", "ResilientGeminiSession", "RetryPolicy"]

log = logging.getLogger(__name__)

GO_AWAY_MARGIN_S = 1.0
"""Switch connections at least this long before a goAway's deadline."""
COALESCED_AUDIO_BYTES = 16_000
"""Caller audio that waits behind a send (a busy loop, a replay after a reconnect) goes as one
message of up to half a second: no later for it, and one websocket frame and TLS write
instead of many when the process is behind, which is when they cost the most."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a call tries to reach Gemini: budgets in time, as the caller lives them.

    At the start of a call the caller hears nothing until the session is up, so every try
    (TCP, TLS, the upgrade and the set-up answer) must fit in `open_timeout_s`. Mid-call the
    caller's speech is held for `buffer_seconds`, so reconnecting goes on, with backoff, for
    as long as that buffer lasts; past either budget the caller hears the apology.
    """

    open_timeout_s: float = 5.0
    """The caller's wait at call start, and the most one connection try may take."""
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0
    buffer_seconds: float = 10.0
    """Caller audio held during a reconnect (16 kHz PCM: 32 kB a second); also how long a
    reconnect keeps trying."""
    max_reconnects: int = 10
    """Connections one call may go through before it gives up (and apologises); 0: none."""
    switched_off_by: str = "max_reconnects=0"
    """How the caller's operator turned reconnecting off, for the message when they did (the
    composition root names its setting)."""

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: 0.1, 0.2, 0.4 ... capped."""
        base = min(self.max_delay_s, self.first_delay_s * (2**attempt))
        return float(base * (0.5 + random.random() / 2))


class _Closed:
    """Marks the end of `events()` when the session is closed from our side."""


_CLOSED = _Closed()


class ResilientGeminiSession:
    """One call's Gemini session across as many connections as it takes."""

    def __init__(
        self,
        open_session: Callable[[], GeminiLiveSession],
        policy: RetryPolicy | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        history: Callable[[], list[tuple[str, str]]] | None = None,
    ) -> None:
        """`logger`: the call's logger, so that reconnect lines carry its SIDs. `history`:
        the conversation so far as (role, text), to seed a fresh session that replaces a
        lost one, so that the agent keeps the thread."""
        self._history = history
        self._new_session = open_session
        track(self)
        self.policy = policy or RetryPolicy()
        self.log = logger or log
        self._session: GeminiLiveSession | None = None
        self.handle: str | None = None
        self.reconnects = 0
        self.dropped_audio_bytes = 0
        self._outbox: collections.deque[GeminiMessage] = collections.deque()
        self._outbox_audio = 0
        self._audio_limit = int(self.policy.buffer_seconds * 32000)
        self._wake = asyncio.Event()
        self.ledger = ResumptionLedger()
        """What the conversation owes and is owed across connections (`gemini.ledger`)."""
        self._events: asyncio.Queue[GeminiEvent | _Closed] = asyncio.Queue()
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._opened = False
        self._restart: tuple[str, bool] | None = None
        self._restart_requested = asyncio.Event()

    # --- the call's side ------------------------------------------------------------------

    async def open(self) -> None:
        """Open the first connection (retrying what is worth a retry), then supervise it."""
        self._session, _ = await self._connect(self.policy.open_timeout_s)
        self._supervisor = asyncio.create_task(self._supervise(), name="gemini-supervisor")

    def send(self, message: GeminiMessage) -> None:
        """Queue a message for Gemini; never waits. Safe before `open()` and while
        reconnecting: it goes out, in order, as soon as a connection can take it."""
        if self._closed:
            return
        self._outbox.append(message)
        if isinstance(message, CallerAudio):
            self._outbox_audio += len(message.pcm16k)
            if self._outbox_audio > self._audio_limit:
                self._drop_oldest_audio()
        self._wake.set()

    async def events(self) -> AsyncIterator[GeminiEvent]:
        """Events of every connection in turn, with `Reconnected` between connections;
        ends after a final `SessionClosed`, or when the session is closed."""
        while True:
            event = await self._events.get()
            if isinstance(event, _Closed):
                return
            yield event
            if isinstance(event, SessionClosed):
                return

    def restart(self, reason: str, fresh: bool = False) -> None:
        """Replace the connection now (a stalled model): resumed with the latest handle, or
        `fresh`: a new session seeded with the conversation so far. Never waits; queued
        messages (a nudge) go out on the new connection."""
        if self._closed or self._supervisor is None:
            return
        self._restart = (reason, fresh)
        self._restart_requested.set()

    @property
    def queued(self) -> int:
        """Messages waiting to be sent (tests, metrics)."""
        return len(self._outbox)

    async def close(self) -> None:
        """End the session and its supervisor; safe to call more than once."""
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self._events.put_nowait(_CLOSED)

    # --- the supervisor -------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._closed and self._session is not None:
            session = self._session
            sender = asyncio.create_task(self._send_loop(session), name="gemini-send")
            receiver = asyncio.create_task(self._receive_loop(session), name="gemini-receive")
            restart = asyncio.create_task(self._restart_requested.wait(), name="gemini-restart")
            try:
                done, _ = await asyncio.wait({sender, receiver, restart}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sender, receiver, restart):
                    task.cancel()
                await asyncio.gather(sender, receiver, restart, return_exceptions=True)
            reason: str | None
            if restart in done and self._restart is not None:
                reason, fresh = self._restart
                self._restart = None
                self._restart_requested.clear()
                if fresh:
                    self.handle = None  # the next connection starts a fresh, seeded session
            else:
                first = receiver if receiver in done else sender
                failure = first.exception()
                if failure is not None:
                    self.log.error("Gemini connection task failed: %r", failure)
                reason = "internal error" if failure is not None else first.result()
            if self._closed or reason is None:
                return
            outcome = await self._reconnect(session, reason)
            self._events.put_nowait(outcome)
            if isinstance(outcome, SessionClosed):
                return

    async def _send_loop(self, session: GeminiLiveSession) -> str:
        """Send queued messages in order; returns why it stopped (a failed send)."""
        while True:
            while not self._outbox:
                self._wake.clear()
                await self._wake.wait()
            batch = self._next_batch()
            queued = batch[0] if len(batch) == 1 else CallerAudio(b"".join(m.pcm16k for m in batch if isinstance(m, CallerAudio)))
            message = self.ledger.on_the_wire(queued)
            try:
                await session.send(message)
            except GeminiSessionError as exc:
                return f"send failed: {exc} ({exc.code})"  # the messages stay first in line
            for sent in batch:  # unless an overflow dropped them meanwhile (counted there)
                if self._outbox and self._outbox[0] is sent:
                    self._outbox.popleft()
                    if isinstance(sent, CallerAudio):
                        self._outbox_audio -= len(sent.pcm16k)
            self.ledger.sent(queued, message)

    def _next_batch(self) -> list[GeminiMessage]:
        """The first queued message, with the caller audio queued right behind it if it is
        caller audio too (up to `COALESCED_AUDIO_BYTES`)."""
        first = self._outbox[0]
        if not isinstance(first, CallerAudio) or len(self._outbox) == 1:
            return [first]
        batch: list[GeminiMessage] = [first]
        size = len(first.pcm16k)
        for message in itertools.islice(self._outbox, 1, None):
            if not isinstance(message, CallerAudio) or size + len(message.pcm16k) > COALESCED_AUDIO_BYTES:
                break
            batch.append(message)
            size += len(message.pcm16k)
        return batch

    async def _receive_loop(self, session: GeminiLiveSession) -> str | None:
        """Forward events; returns why the connection must be replaced, or None when the
        session is over for good (its final event already queued).

        On `goAway` the switch waits for the agent to finish its sentence (the turn's end)
        and for every tool call to be answered and covered by a resumable handle (handles
        are not resumable while a call runs), but never past the deadline less a margin.
        """
        switch: str | None = None
        deadline: float | None = None
        in_turn = False
        self.ledger.resumable_now = self.handle is not None
        async with contextlib.aclosing(session.events()) as stream:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    async with asyncio.timeout(timeout):
                        event = await anext(stream)
                except TimeoutError:
                    return switch
                except StopAsyncIteration:
                    return None if self._closed else "events ended"
                if isinstance(event, AgentAudio):
                    if not in_turn:
                        self.ledger.answer_began()
                    in_turn = True
                elif isinstance(event, Interrupted) or isinstance(event, TurnComplete) and event.final:
                    in_turn = False  # Extended Thinking's IN_PROGRESS turn is not over: more audio follows
                elif isinstance(event, ToolCall):
                    self.ledger.tool_called(event.id)
                elif isinstance(event, ResumptionHandle):
                    if event.resumable:
                        self.handle = event.handle
                        self.ledger.handle(event.last_consumed_client_message_index)
                elif isinstance(event, GoAway):
                    switch = f"goAway ({event.time_left_s:.1f} s left)"
                    deadline = time.monotonic() + max(0.0, event.time_left_s - GO_AWAY_MARGIN_S)
                elif isinstance(event, SessionClosed):
                    if self._closed or event.fatal_mid_call:
                        self._events.put_nowait(event)
                        return None
                    return switch or f"closed {event.code} {event.reason}".strip()
                self._events.put_nowait(event)
                if deadline is not None and self.ledger.may_switch(agent_speaking=in_turn):
                    return switch  # nothing being said or awaited: switch now

    # --- connecting -----------------------------------------------------------------------

    async def _connect(self, budget_s: float) -> tuple[GeminiLiveSession, int]:
        """A new connection, resumed with the latest handle if there is one, within
        `budget_s` seconds; returns it and how many connections it tried.

        Each try is bounded (a server that accepts the socket but never answers the set-up,
        or never speaks TLS, costs one try, not the call). Failures worth a retry (1006 drop,
        1011 internal, HTTP 503, no answer) are retried with backoff until the budget is
        spent. A resumption the server refuses (1007, 1008, or 1011 after a backend error,
        when the same handle often fails again) is not insisted on: the handle is forgotten
        and the next try starts a fresh session with the same configuration. Any other
        refusal (a bad key's 403, a bad model or voice at setup) is raised at once.
        """
        deadline = time.monotonic() + budget_s
        failures = tries = 0
        while True:
            tries += 1
            if self._closed:
                raise GeminiSessionError("the call ended while connecting", code=1000)
            handle = self.handle
            session = self._new_session()
            limit = max(0.05, min(self.policy.open_timeout_s, deadline - time.monotonic()))
            # A fresh session that replaces a lost one starts from the conversation so far.
            history = tuple(self._history()) if self._opened and handle is None and self._history is not None else ()
            try:
                async with asyncio.timeout(limit):
                    await session.open(resume_handle=handle, history=history)
            except (GeminiSessionError, TimeoutError) as raised:
                if isinstance(raised, TimeoutError):
                    await session.close()
                    exc = GeminiSessionError(f"no answer from Gemini within {limit:.1f} s (connect and set-up)", code=1006)
                else:
                    exc = raised
                failure = SessionClosed(exc.code, "")
                if handle and failure.refused_by_server:
                    self.log.warning("resuming the Gemini session was refused (%s, %s): starting a fresh one", exc, exc.code)
                    self.handle = None
                    continue
                if not failure.retryable:
                    raise exc from None
                delay = self.policy.delay(failures)
                failures += 1
                left = deadline - time.monotonic()
                if left <= delay:
                    raise GeminiSessionError(f"{exc} (gave up after {tries} tries in {budget_s:.1f} s)", exc.code) from None
                self.log.warning("connecting to Gemini failed (try %d, %.1f s left): %s (%s)", tries, left, exc, exc.code)
                await asyncio.sleep(delay)
                continue
            self._opened = True
            return session, tries

    async def _reconnect(self, old: GeminiLiveSession, reason: str) -> Reconnected | SessionClosed:
        lost_at = time.monotonic()
        await old.close()  # before resuming with its handle
        if self.policy.max_reconnects == 0:
            return SessionClosed(code=1011, reason=f"reconnecting is switched off ({self.policy.switched_off_by}); {reason}")
        if self.reconnects >= self.policy.max_reconnects:
            self.log.error("Gemini session lost (%s) after %d reconnects: giving up", reason, self.reconnects)
            return SessionClosed(code=1011, reason=f"gave up after {self.reconnects} reconnects; last: {reason}")
        if "deadline expired" in reason.lower():
            # 3.8 sessions have been seen closing at exactly 58:00 so; the resume is then often refused (1007)
            self.log.warning("Gemini closed the session at its deadline (%s): reconnecting", reason)
        else:
            self.log.warning("Gemini session lost (%s): reconnecting", reason)
        resuming = self.handle is not None
        try:
            session, attempts = await self._connect(max(self.policy.buffer_seconds, self.policy.open_timeout_s))
        except GeminiSessionError as exc:
            return SessionClosed(code=1011, reason=f"could not reconnect to Gemini: {exc} ({exc.code})")
        resumed = resuming and self.handle is not None
        replayed_s = self.ledger.speech.seconds
        # What the old connection may not have taken in goes first, in its order: the caller's
        # words no answer has begun for (else a sentence cut by the drop is never answered),
        # then on a resumed session what its handle may not cover. A fresh session was seeded
        # with the conversation as it opened, but knows nothing of the old one's tool calls:
        # their results go to it as text.
        again = self.ledger.resumed() if resumed else self.ledger.fresh()
        self._outbox.extendleft(reversed(again))
        self._outbox_audio += sum(len(m.pcm16k) for m in again if isinstance(m, CallerAudio))
        self._session = session
        self.reconnects += 1
        self._wake.set()
        return Reconnected(
            resumed=resumed, reason=reason, attempts=attempts, took_s=time.monotonic() - lost_at, replayed_speech_s=replayed_s
        )

    # --- bookkeeping ----------------------------------------------------------------------

    def _drop_oldest_audio(self) -> None:
        kept: collections.deque[GeminiMessage] = collections.deque()
        while self._outbox and self._outbox_audio > self._audio_limit:
            message = self._outbox.popleft()
            if isinstance(message, CallerAudio):
                self._outbox_audio -= len(message.pcm16k)
                self.dropped_audio_bytes += len(message.pcm16k)
            else:
                kept.append(message)
        self._outbox.extendleft(reversed(kept))
