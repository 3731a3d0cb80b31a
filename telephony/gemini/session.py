"""One Gemini Live connection for one call, on the real google-genai client.

The session does not reconnect by itself: it reports how it ended (`SessionClosed`, with a
close code) and the call decides whether and how to resume.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from google import genai
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed, InvalidStatus

from telephony.gemini.config import INPUT_MIME_TYPE, AgentOptions, build_live_config
from telephony.gemini.events import GeminiEvent, SessionClosed
from telephony.gemini.messages import (
    ActivityEnd,
    ActivityStart,
    CallerAudio,
    GeminiMessage,
    RealtimeText,
    ToolResult,
    UserTurn,
)
from telephony.gemini.models import Scheduling, ToolBehavior
from telephony.gemini.receive import events_from_message
from telephony.live_objects import track

log = logging.getLogger(__name__)


class GeminiSessionError(RuntimeError):
    """Sending to or opening a Live session failed; `code` is the WebSocket close code."""

    def __init__(self, message: str, code: int = 1006) -> None:
        super().__init__(message)
        self.code = code


def audio_message(pcm16k: bytes) -> str:
    """`send_realtime_input(audio=Blob(...))` as google-genai serialises it for the Developer
    API: URL-safe base64 and `mime_type`, byte for byte."""
    data = base64.urlsafe_b64encode(pcm16k).decode("ascii")
    return '{"realtime_input": {"audio": {"data": "' + data + '", "mime_type": "' + INPUT_MIME_TYPE + '"}}}'


def close_reason(exc: errors.APIError) -> str:
    """The server's own words. For a WebSocket close the SDK passes the close reason as the
    error's body, so `.message` and `.status` are None and the text is in `.details`."""
    if exc.message:
        return str(exc.message)
    if isinstance(exc.details, str) and exc.details:
        return exc.details
    if isinstance(exc.details, dict):
        error = exc.details.get("error", exc.details)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.status or "")


def _closed_from(exc: BaseException) -> SessionClosed:
    if isinstance(exc, errors.APIError):
        return SessionClosed(code=int(exc.code or 1006), reason=close_reason(exc))
    if isinstance(exc, InvalidStatus):  # the upgrade was refused: keep the HTTP status
        return SessionClosed(code=exc.response.status_code, reason=f"HTTP {exc.response.status_code} at connect")
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd or exc.sent
        return SessionClosed(code=frame.code if frame else 1006, reason=frame.reason if frame else "connection lost")
    return SessionClosed(code=1006, reason=f"{type(exc).__name__}: {exc}")


class GeminiLiveSession:
    """A Live API session: `open()`, send caller audio, iterate `events()`, `close()`."""

    def __init__(self, client: genai.Client, options: AgentOptions) -> None:
        self.client = client
        self.options = options
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Any = None
        self.closed = False
        track(self)

    async def open(self, resume_handle: str | None = None, history: tuple[tuple[str, str], ...] = ()) -> None:
        """Connect and send the setup; returns once the server answered `setupComplete`.

        `history`: the conversation so far, for a fresh session replacing a lost one; it is
        seeded before anything else is sent, the way the model's family expects."""
        stack = contextlib.AsyncExitStack()
        config = build_live_config(self.options, resume_handle, seed_history=bool(history))
        try:
            self._session = await stack.enter_async_context(self.client.aio.live.connect(model=self.options.model, config=config))
            track(self._session, "google.genai.AsyncSession")
            if history:
                self._stack = stack
                await self.send_history(history)
        except Exception as exc:
            self._stack = None
            await stack.aclose()
            if isinstance(exc, GeminiSessionError):
                raise
            closed = _closed_from(exc)
            raise GeminiSessionError(f"could not open Gemini Live session: {closed.reason}", closed.code) from exc
        except BaseException:  # a cancelled call stays cancelled (never a retryable failure)
            self._stack = None
            await stack.aclose()
            raise
        self._stack = stack

    async def send(self, message: GeminiMessage) -> None:
        """Put one of the call's messages on the wire (see `gemini.messages`)."""
        if isinstance(message, CallerAudio):
            await self.send_audio(message.pcm16k)
        elif isinstance(message, RealtimeText):
            await self.send_text(message.text)
        elif isinstance(message, ToolResult):
            await self.send_tool_response(message.call_id, message.name, message.response, message.scheduling)
        elif isinstance(message, UserTurn):
            if self.options.rules.greets_with_client_content:
                await self.send_client_text(message.text)
            else:
                await self.send_text(message.text)
        elif isinstance(message, ActivityStart):
            await self.send_activity_start()
        elif isinstance(message, ActivityEnd):
            await self.send_activity_end()
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"not a Gemini message: {message!r}")

    async def send_audio(self, pcm16k: bytes) -> None:
        """Caller audio, PCM16 LE mono 16 kHz: 50 messages a second per call, so on the
        Developer API the message is written as the SDK would write it (`audio_message`, the
        same bytes: tests/test_gemini_live.py) on the SDK's own connection, without its
        per-message model building (34 us -> 1.2 us a message); Vertex AI goes through the SDK."""
        session = self._require_open()
        ws = getattr(session, "_ws", None)
        if ws is None or self.client._api_client.vertexai:
            await self._send(audio=types.Blob(data=pcm16k, mime_type=INPUT_MIME_TYPE))
            return
        try:
            await ws.send(audio_message(pcm16k))
        except (ConnectionClosed, errors.APIError, OSError) as exc:
            closed = _closed_from(exc)
            raise GeminiSessionError(f"Gemini Live send failed: {closed.reason}", closed.code) from exc

    async def send_text(self, text: str) -> None:
        """Text as realtime input (e.g. keypad digits the caller pressed)."""
        await self._send(text=text)

    async def send_client_text(self, text: str) -> None:
        """A complete user turn of text: the model answers it (used for the greeting)."""
        session = self._require_open()
        try:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True)
        except (ConnectionClosed, errors.APIError, OSError) as exc:
            closed = _closed_from(exc)
            raise GeminiSessionError(f"Gemini Live send failed: {closed.reason}", closed.code) from exc

    async def send_history(self, turns: tuple[tuple[str, str], ...]) -> None:
        """Seed the conversation so far without asking for an answer: on 2.5 as client
        content without `turnComplete`; on 3.x (whose setup then carried `historyConfig`) as
        the initial history, closed by `turnComplete`, which the service takes in without
        answering (a bare `turnComplete` there would otherwise interrupt the agent)."""
        session = self._require_open()
        contents = [types.Content(role=role, parts=[types.Part(text=text)]) for role, text in turns]
        try:
            await session.send_client_content(turns=contents, turn_complete=self.options.rules.seeds_with_history_config)
        except (ConnectionClosed, errors.APIError, OSError) as exc:
            closed = _closed_from(exc)
            raise GeminiSessionError(f"Gemini Live send failed: {closed.reason}", closed.code) from exc

    async def send_activity_start(self) -> None:
        """Manual turn-taking (VAD disabled): the caller started speaking."""
        await self._send(activity_start=types.ActivityStart())

    async def send_activity_end(self) -> None:
        """Manual turn-taking (VAD disabled): the caller stopped speaking."""
        await self._send(activity_end=types.ActivityEnd())

    async def send_tool_response(self, call_id: str, name: str, response: dict[str, Any], scheduling: Scheduling | None = None) -> None:
        """Answer a `ToolCall` so that the model knows what happened. A NON_BLOCKING call's
        result says when to use it (`scheduling`, WHEN_IDLE unless the tool chose), in the
        field and in the response as Google's guide writes it; never where the family
        refuses scheduling (Extended Thinking) or the call was BLOCKING (ignored there)."""
        session = self._require_open()
        result = types.FunctionResponse(id=call_id, name=name, response=response)
        if self.options.rules.accepts_scheduling and self.options.tool_behavior(name) is ToolBehavior.NON_BLOCKING:
            chosen = scheduling or Scheduling.WHEN_IDLE
            result = types.FunctionResponse(
                id=call_id,
                name=name,
                response={**response, "scheduling": chosen.value},
                scheduling=types.FunctionResponseScheduling(chosen.value),
            )
        try:
            await session.send_tool_response(function_responses=[result])
        except (ConnectionClosed, errors.APIError, OSError) as exc:
            closed = _closed_from(exc)
            raise GeminiSessionError(f"tool response not delivered: {closed.reason}", closed.code) from exc

    async def events(self) -> AsyncGenerator[GeminiEvent, None]:
        """Everything the server says, as typed events; ends with one `SessionClosed`."""
        session = self._require_open()
        while True:
            try:
                async for message in session.receive():
                    for event in events_from_message(message):
                        yield event
            except TypeError as exc:
                # google-genai (3.6) raises TypeError on a server message that has only fields
                # it does not know (a newer server): skip that message, keep the connection.
                log.warning("skipped a Gemini message the SDK could not read: %s", exc)
                continue
            except (ConnectionClosed, errors.APIError, OSError, ValueError) as exc:
                self.closed = True
                yield _closed_from(exc)
                return

    async def close(self) -> None:
        """Close the connection normally (1000); safe to call more than once.

        The server may still be streaming a reply. websockets stops reading a socket whose
        unread messages pile up, and would then not see the server's close frame for its
        whole close timeout (10 s), so messages are drained while the handshake completes.
        """
        self.closed = True
        stack, self._stack = self._stack, None
        if stack is None:
            return
        drain = asyncio.create_task(self._drain())
        try:
            with contextlib.suppress(Exception):
                await stack.aclose()
        finally:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)  # our own cancellation still propagates
            self._session = None  # the SDK's connection and its sockets go with the call

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                async for _ in self._session.receive():
                    pass

    async def _send(self, **realtime_input: Any) -> None:
        session = self._require_open()
        try:
            await session.send_realtime_input(**realtime_input)
        except (ConnectionClosed, errors.APIError, OSError) as exc:
            closed = _closed_from(exc)
            raise GeminiSessionError(f"Gemini Live send failed: {closed.reason}", closed.code) from exc

    def _require_open(self) -> Any:
        if self._session is None or self._stack is None:
            raise GeminiSessionError("the Gemini Live session is not open")
        return self._session
