"""The call: one Twilio Media Stream bridged to one Gemini Live session.

One `CallBridge` per stream owns everything of its call: the two transcoders, the Gemini
session, the playback bookkeeping, the transcript, and the two tasks that pump audio each
way. When the call ends, for whatever reason, `run()` ends both tasks, closes the Gemini
session and writes the call record; nothing of the call outlives it.

Barge-in happens in `clear_playback()`: when Gemini says the caller interrupted, Twilio is told
to `clear` its playback buffer at once, and everything we still hold of the interrupted reply
(the partial frame, the resampler's history) is dropped, so nothing stale reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from telephony.audio.transcode import CallerToGemini, GeminiToCaller
from telephony.call_record import CallRecord, CallRecorder, append_call_log
from telephony.gemini.config import AgentOptions
from telephony.gemini.events import (
    AgentAudio,
    GoAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ResumptionHandle,
    SessionClosed,
    ToolCall,
    ToolCallCancelled,
    TurnComplete,
)
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
from telephony.logs import CallLogger
from telephony.playback import MarkOutcome, Playback
from telephony.security import TOKEN_PARAMETER, CallTokens
from telephony.twilio_protocol import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    TwilioProtocolError,
    UnknownEvent,
    check_media_format,
    clear_message,
    mark_message,
    media_message,
    parse_message,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
DTMF_TEXT = "The caller pressed the keypad key {digit}."


class TwilioConnection(Protocol):
    """The Media Streams socket, as the bridge needs it (the app adapts its WebSocket)."""

    async def receive(self) -> str | bytes | None:
        """The next frame; None once the socket is closed."""

    async def send(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class CallRefused(Exception):
    """The stream cannot be served (bad start, bad token); `code` is the WebSocket close code."""

    def __init__(self, reason: str, code: int = 1008) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class CallServices:
    """What every call gets from the server: settings-derived, shared, immutable."""

    open_gemini: Callable[[AgentOptions], GeminiLiveSession]
    agent_options: AgentOptions
    call_tokens: CallTokens | None = None
    """When set, `start.customParameters.token` must match the CallSid (see security.py)."""
    call_log_dir: Path | None = None
    record_dir: Path | None = None
    on_call_end: Callable[[CallRecord], Awaitable[None] | None] | None = None
    tool_handlers: dict[str, Callable[["CallBridge", ToolCall], Awaitable[dict]]] = field(default_factory=dict)


class CallBridge:
    """One phone call, from Twilio's `start` to its end."""

    def __init__(self, twilio: TwilioConnection, services: CallServices) -> None:
        self.twilio = twilio
        self.services = services
        self.record = CallRecord()
        self.log = CallLogger(log)
        self.playback = Playback()
        self.to_gemini = CallerToGemini()
        self.to_caller = GeminiToCaller()
        self.gemini: GeminiLiveSession | None = None
        self.stream_sid = ""
        self.resumption_handle: str | None = None
        self.recorder = CallRecorder(services.record_dir) if services.record_dir else None
        self._mark_waiters: dict[str, asyncio.Future[MarkOutcome]] = {}
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> CallRecord:
        """Serve the call until it ends; returns its record. Never raises for a bad call."""
        try:
            start = await asyncio.wait_for(self._await_start(), START_TIMEOUT_S)
            await self._begin(start)
            await self._bridge()
        except asyncio.TimeoutError:
            await self._refuse(CallRefused("no start message within 10 s", 1008))
        except CallRefused as refused:
            await self._refuse(refused)
        except GeminiSessionError as exc:
            self.record.end_reason = f"gemini unavailable: {exc}"
            self.record.errors.append(str(exc))
            self.log.error("could not open the Gemini session: %s", exc)
            await self._close_twilio(1011, "agent unavailable")
        except Exception as exc:  # a bug in one call must never take others down
            self.record.end_reason = f"internal error: {type(exc).__name__}"
            self.log.exception("call failed")
            await self._close_twilio(1011, "internal error")
        finally:
            await self._finish()
        return self.record

    async def _await_start(self) -> Start:
        while True:
            raw = await self.twilio.receive()
            if raw is None:
                raise CallRefused("socket closed before start", 1000)
            message = self._parse(raw)
            if isinstance(message, Start):
                return message
            if isinstance(message, (Connected, UnknownEvent)) or message is None:
                continue
            self.log.warning("%s before start ignored", message.event)

    async def _begin(self, start: Start) -> None:
        details = start.start
        self.stream_sid = start.stream_sid
        self.log.bind(details.call_sid, start.stream_sid)
        self.record.call_sid, self.record.stream_sid = details.call_sid, start.stream_sid
        self.record.parameters = {k: v for k, v in details.custom_parameters.items() if k != TOKEN_PARAMETER}
        try:
            check_media_format(start)
        except TwilioProtocolError as exc:
            raise CallRefused(str(exc), 1003) from None
        tokens = self.services.call_tokens
        if tokens is not None and not tokens.check(details.call_sid, details.custom_parameters.get(TOKEN_PARAMETER)):
            raise CallRefused("stream token does not match the CallSid of the signed webhook", 1008)
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.open, details.call_sid)
        self.log.info("call started", extra={"parameters": self.record.parameters})
        self.gemini = self.services.open_gemini(self.services.agent_options)
        await self.gemini.open()

    async def _bridge(self) -> None:
        tasks = {
            asyncio.create_task(self._pump_caller(), name="caller->gemini"),
            asyncio.create_task(self._pump_agent(), name="gemini->caller"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise a pump's failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _finish(self) -> None:
        self._closing = True
        for task in self._tool_tasks:
            task.cancel()
        await asyncio.gather(*self._tool_tasks, return_exceptions=True)
        for waiter in self._mark_waiters.values():
            if not waiter.done():
                waiter.set_result(MarkOutcome.CLEARED)
        if self.gemini is not None:
            await self.gemini.close()
        # The record is complete and stored before the socket closes, so that whoever sees
        # the call end (Twilio, a replay, a test) can read it at once.
        record = self.record
        record.ended_at = time.time()
        record.agent_audio_heard_ms = self.playback.heard_ms
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        if self.services.call_log_dir is not None and record.call_sid:
            try:
                await asyncio.to_thread(append_call_log, self.services.call_log_dir, record)
            except OSError as exc:
                self.log.error("could not write the call log: %s", exc)
        if self.services.on_call_end is not None:
            result = self.services.on_call_end(record)
            if asyncio.iscoroutine(result):
                await result
        await self._close_twilio(1000, "call ended")
        if record.call_sid:
            self.log.info(
                "call ended",
                extra={"reason": record.end_reason, "frames_in": record.frames_in, "frames_out": record.frames_out},
            )

    # --- caller -> Gemini ---------------------------------------------------------------

    async def _pump_caller(self) -> None:
        """Twilio messages in: caller audio to Gemini, keypad digits as text, marks, stop."""
        assert self.gemini is not None
        while True:
            raw = await self.twilio.receive()
            if raw is None:
                self.record.end_reason = self.record.end_reason or "twilio socket closed"
                return
            message = self._parse(raw)
            if isinstance(message, Media):
                self.record.frames_in += 1
                pcm = self.to_gemini.process(message.media.payload)
                if pcm:
                    await self.gemini.send_audio(pcm)
            elif isinstance(message, Mark):
                self._mark_echoed(message.mark.name)
            elif isinstance(message, Dtmf):
                digit = message.dtmf.digit
                self.record.say("keypad", digit)
                self.record.end_turn()
                await self.gemini.send_text(DTMF_TEXT.format(digit=digit))
            elif isinstance(message, Stop):
                self.record.end_reason = "caller hung up"
                return
            elif isinstance(message, Start):
                self.log.warning("second start on one stream ignored")

    # --- Gemini -> caller ---------------------------------------------------------------

    async def _pump_agent(self) -> None:
        """Gemini events in: agent audio to the caller, barge-in, transcripts, tools."""
        assert self.gemini is not None
        async for event in self.gemini.events():
            if isinstance(event, AgentAudio):
                await self._play(event.pcm24k, received_at=time.perf_counter())
            elif isinstance(event, Interrupted):
                await self.clear_playback(received_at=time.perf_counter())
            elif isinstance(event, TurnComplete):
                await self._send_frames(self.to_caller.flush())
                self.record.end_turn()
            elif isinstance(event, InputTranscript):
                self.record.say("caller", event.text)
            elif isinstance(event, OutputTranscript):
                self.record.say("agent", event.text)
            elif isinstance(event, ToolCall):
                # Tools may wait (for playback, for Twilio's REST API): never block the audio.
                task = asyncio.create_task(self._run_tool(event), name=f"tool:{event.name}")
                self._tool_tasks.add(task)
                task.add_done_callback(self._tool_tasks.discard)
            elif isinstance(event, ToolCallCancelled):
                self.log.info("tool calls cancelled", extra={"ids": list(event.ids)})
            elif isinstance(event, ResumptionHandle):
                if event.resumable:
                    self.resumption_handle = event.handle
            elif isinstance(event, GoAway):
                self.log.warning("Gemini will close the session in %.1f s", event.time_left_s)
            elif isinstance(event, SessionClosed):
                self.record.end_reason = f"gemini closed ({event.code})"
                if event.code != 1000:
                    self.record.errors.append(f"gemini closed {event.code}: {event.reason}")
                    self.log.warning("Gemini session closed: %s %s", event.code, event.reason)
                return

    async def _play(self, pcm24k: bytes, received_at: float) -> None:
        frames = self.to_caller.process(pcm24k)
        self.record.agent_audio_ms += len(pcm24k) / 48
        if frames:
            await self._send_frames(frames)
            self.record.chunk_to_frame_ms.append((time.perf_counter() - received_at) * 1000)

    async def _send_frames(self, frames: list[bytes]) -> None:
        """Send 20 ms frames, then a mark so that we learn when the caller has heard them."""
        if not frames:
            return
        for frame in frames:
            await self.twilio.send(media_message(self.stream_sid, frame))
            self.playback.audio_sent(len(frame))
        self.record.frames_out += len(frames)
        await self.twilio.send(mark_message(self.stream_sid, self.playback.new_mark("reply")))

    async def clear_playback(self, received_at: float | None = None) -> None:
        """Barge-in: empty Twilio's buffer now and drop everything held for the old reply."""
        await self.twilio.send(clear_message(self.stream_sid))
        if received_at is not None:
            self.record.interrupted_to_clear_ms.append((time.perf_counter() - received_at) * 1000)
        self.to_caller.reset()
        self.playback.cleared()
        self.record.interruptions += 1
        self.record.end_turn()

    def _mark_echoed(self, name: str) -> None:
        outcome = self.playback.mark_echoed(name)
        waiter = self._mark_waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def wait_until_heard(self, timeout: float = 30.0) -> bool:
        """Wait until everything sent so far has been played (its mark came back)."""
        if not self.playback.playing:
            return True
        name = self.playback.new_mark("sync")
        waiter: asyncio.Future[MarkOutcome] = asyncio.get_running_loop().create_future()
        self._mark_waiters[name] = waiter
        await self.twilio.send(mark_message(self.stream_sid, name))
        try:
            return await asyncio.wait_for(waiter, timeout) == MarkOutcome.PLAYED
        except asyncio.TimeoutError:
            return False

    # --- tools --------------------------------------------------------------------------

    async def _run_tool(self, call: ToolCall) -> None:
        assert self.gemini is not None
        handler = self.services.tool_handlers.get(call.name)
        try:
            result = await handler(self, call) if handler else {"error": f"unknown tool {call.name!r}"}
        except Exception as exc:  # a failing tool is reported to the model, never fatal
            self.log.exception("tool %s failed", call.name)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        if self._closing:
            return
        with contextlib.suppress(GeminiSessionError):
            await self.gemini.send_tool_response(call.id, call.name, result)

    # --- helpers ------------------------------------------------------------------------

    def _parse(self, raw: str | bytes):
        if self.recorder is not None and isinstance(raw, str):
            self.recorder.write(raw)
        if isinstance(raw, bytes):
            self.log.warning("binary frame of %d bytes ignored (Media Streams sends text)", len(raw))
            return None
        try:
            message = parse_message(raw)
        except TwilioProtocolError as exc:
            self.log.warning("malformed message ignored: %s", exc)
            return None
        if isinstance(message, UnknownEvent):
            self.log.info("unknown event %r ignored", message.event)
        return message

    async def _refuse(self, refused: CallRefused) -> None:
        self.record.end_reason = f"refused: {refused}"
        if refused.code != 1000:
            self.log.warning("stream refused: %s", refused)
        await self._close_twilio(refused.code, str(refused)[:120])

    async def _close_twilio(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.twilio.close(code, reason)
