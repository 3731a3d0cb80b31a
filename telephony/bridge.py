"""The call: one Twilio Media Stream bridged to one Gemini Live session.

One `CallBridge` per stream owns everything of its call: the two transcoders, the Gemini
session (which survives reconnects), the playback bookkeeping, the transcript, and the tasks
that pump audio each way. When the call ends, for whatever reason, `run()` ends every task,
closes the Gemini session and writes the call record; nothing of the call outlives it.

Barge-in happens in `clear_playback()`: when Gemini says the caller interrupted, Twilio is told
to `clear` its playback buffer at once, and everything we still hold of the interrupted reply
(the partial frame, the resampler's history) is dropped, so nothing stale reaches the caller.

Bad input from the socket is counted, logged with the call's SIDs and skipped; a call whose
socket sends mostly garbage is closed with 1008. Nothing a caller sends can raise out of
`run()`, so one bad call never touches another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from telephony.audio.agc import CallerLevel
from telephony.audio.transcode import FRAME_BYTES, CallerToGemini, GeminiToCaller
from telephony.call_control import ToolHandler, ToolOutcome
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
from telephony.gemini.resilient import Reconnected, ResilientGeminiSession, RetryPolicy
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
from telephony.logs import CallLogger
from telephony.metrics import Metrics
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
MAX_PAYLOAD_BYTES = 8000  # 1 s of mu-law; Twilio sends 160
MALFORMED_LIMIT = 200
DTMF_TEXT = "The caller pressed the keypad key {digit}."


def load_prompt(name: str) -> bytes:
    """A recorded mu-law 8 kHz prompt shipped with the package (see scripts/make_fixtures.py)."""
    return resources.files("telephony.assets").joinpath(f"{name}.ulaw").read_bytes()


class TwilioConnection(Protocol):
    """The Media Streams socket, as the bridge needs it (the app adapts its WebSocket)."""

    async def receive(self) -> str | bytes | None:
        """The next frame; None once the socket is closed."""

    async def send(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class CallRefused(Exception):
    """The stream cannot be served (bad start, bad token); `code` is the WebSocket close code."""

    def __init__(self, reason: str, code: int = 1008, outcome: str = "refused") -> None:
        super().__init__(reason)
        self.code = code
        self.outcome = outcome


@dataclass
class CallServices:
    """What every call gets from the server: settings-derived, shared, immutable."""

    open_gemini: Callable[[AgentOptions], GeminiLiveSession]
    agent_options: AgentOptions
    metrics: Metrics = field(default_factory=Metrics)
    call_tokens: CallTokens | None = None
    """When set, `start.customParameters.token` must match the CallSid (see security.py)."""
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    caller_agc: bool = True
    caller_block_bytes: int = 640
    """Caller audio goes to Gemini in blocks of this many bytes of 16 kHz PCM (640 = 20 ms).
    Bigger blocks cost less CPU per call and add their length to the caller's wait."""
    idle_timeout_s: float = 15.0
    max_call_s: float = 3600.0
    call_log_dir: Path | None = None
    record_dir: Path | None = None
    on_call_end: Callable[[CallRecord], Awaitable[None] | None] | None = None
    tool_handlers: dict[str, ToolHandler] = field(default_factory=dict)
    greeting: str | None = None
    """When set, the agent speaks first: this is sent to Gemini as the opening user turn."""


class CallBridge:
    """One phone call, from Twilio's `start` to its end."""

    def __init__(self, twilio: TwilioConnection, services: CallServices) -> None:
        self.twilio = twilio
        self.services = services
        self.metrics = services.metrics
        self.record = CallRecord()
        self.log = CallLogger(log)
        self.playback = Playback()
        self.to_gemini = CallerToGemini(CallerLevel() if services.caller_agc else None)
        self.to_caller = GeminiToCaller()
        self.gemini: ResilientGeminiSession | None = None
        self.stream_sid = ""
        self.outcome = "completed"
        self.recorder = CallRecorder(services.record_dir) if services.record_dir else None
        self._mark_waiters: dict[str, asyncio.Future[MarkOutcome]] = {}
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}  # by tool call id, while running
        self._end_requested = asyncio.Event()
        self._end_prompt: str | None = None
        self._caller_pcm = bytearray()
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> CallRecord:
        """Serve the call until it ends; returns its record. Never raises for a bad call."""
        self.metrics.active_calls.inc()
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                start = await self._await_start()
            await self._begin(start)
            await self._bridge()
        except TimeoutError:
            await self._refuse(CallRefused("no start message within 10 s", 1008, "no_start"))
        except CallRefused as refused:
            await self._refuse(refused)
        except GeminiSessionError as exc:
            self._ended("gemini_unavailable", f"gemini unavailable: {exc}")
            self.record.errors.append(str(exc))
            self.log.error("could not open the Gemini session: %s", exc)
            await self._apologise_without_agent()
            await self._close_twilio(1000, "agent unavailable")
        except Exception as exc:  # a bug in one call must never take others down
            self._ended("error", f"internal error: {type(exc).__name__}")
            self.log.exception("call failed")
            await self._close_twilio(1011, "internal error")
        finally:
            await self._finish()
            self.metrics.active_calls.dec()
        return self.record

    def end_call(self, reason: str, prompt: str | None = None) -> None:
        """Ask the call to end (shutdown, time limit), after playing `prompt` if given."""
        self._end_prompt = prompt
        if not self.record.end_reason:
            self._ended("ended_by_server", reason)
        self._end_requested.set()

    def _ended(self, outcome: str, reason: str) -> None:
        if not self.record.end_reason:
            self.outcome, self.record.end_reason = outcome, reason

    async def _await_start(self) -> Start:
        while True:
            raw = await self.twilio.receive()
            if raw is None:
                raise CallRefused("socket closed before start", 1000, "no_start")
            message = self._parse(raw)
            if isinstance(message, Start):
                return message
            if message is None or isinstance(message, (Connected, UnknownEvent)):
                continue
            self._malformed("before_start", f"{message.event} before start")

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
            raise CallRefused("stream token does not match the CallSid of the signed webhook", 1008, "bad_token")
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.open, details.call_sid)
        self.log.info("call started", extra={"parameters": self.record.parameters})
        # Per-call agent settings travel as Stream <Parameter>s of our own (signed) TwiML.
        params = details.custom_parameters
        options = self.services.agent_options.with_overrides(
            voice=params.get("voice") or None, instructions=params.get("instructions") or None
        )
        if params.get("vad"):
            try:
                options = options.with_vad_preset(params["vad"])
            except ValueError as exc:
                self.log.warning("per-call VAD preset ignored: %s", exc)
        self.gemini = ResilientGeminiSession(lambda: self.services.open_gemini(options), self.services.retry_policy, self.log)
        await self.gemini.open()
        greeting = params.get("greeting") or self.services.greeting
        if greeting:
            await self.gemini.send_client_text(greeting)

    async def _bridge(self) -> None:
        caller = asyncio.create_task(self._pump_caller(), name="caller->gemini")
        agent = asyncio.create_task(self._pump_agent(), name="gemini->caller")
        end_request = asyncio.create_task(self._end_requested.wait(), name="end-request")
        tasks = {caller, agent, end_request}
        try:
            done, _ = await asyncio.wait(tasks, timeout=self.services.max_call_s, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                self._ended("time_limit", f"call reached its {self.services.max_call_s:.0f} s limit")
                self._end_prompt = self._end_prompt or "apology_closing"
                self.log.warning("call time limit reached")
            for task in done:
                task.result()  # re-raise a pump's failure
            if self._end_prompt and not caller.done():
                # Ending on our side: silence the agent, say goodbye, and stop early if the
                # caller hangs up meanwhile (the caller pump still reads the mark echoes).
                agent.cancel()
                prompt = asyncio.create_task(self._play_prompt(self._end_prompt, timeout=10.0))
                tasks.add(prompt)
                await asyncio.wait({caller, prompt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _finish(self) -> None:
        self._closing = True
        tool_tasks = list(self._tool_tasks.values())
        for task in tool_tasks:
            task.cancel()
        await asyncio.gather(*tool_tasks, return_exceptions=True)
        for waiter in self._mark_waiters.values():
            if not waiter.done():
                waiter.set_result(MarkOutcome.CLEARED)
        if self.gemini is not None:
            await self.gemini.close()
            dropped = self.gemini.dropped_audio_bytes
            if dropped:
                self.metrics.dropped_audio_ms.labels("gemini_reconnect").inc(dropped / 32)
        # The record is complete and stored before the socket closes, so that whoever sees
        # the call end (Twilio, a replay, a test) can read it at once.
        record = self.record
        record.ended_at = time.time()
        record.agent_audio_heard_ms = self.playback.heard_ms
        record.end_reason = record.end_reason or "twilio socket closed"
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
            self.metrics.calls.labels(self.outcome).inc()
            self.log.info(
                "call ended",
                extra={"reason": record.end_reason, "frames_in": record.frames_in, "frames_out": record.frames_out},
            )

    # --- caller -> Gemini ---------------------------------------------------------------

    async def _pump_caller(self) -> None:
        """Twilio messages in: caller audio to Gemini, keypad digits as text, marks, stop."""
        assert self.gemini is not None
        idle = self.services.idle_timeout_s
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that lands as the receive completes, and this pump would outlive its call.
            try:
                async with asyncio.timeout(idle):
                    raw = await self.twilio.receive()
            except TimeoutError:
                self._ended("idle_timeout", f"nothing from Twilio for {idle:.0f} s")
                self.log.warning("idle timeout: nothing from Twilio for %.0f s", idle)
                return
            if raw is None:
                self._ended("completed", "twilio socket closed")
                return
            message = self._parse(raw)
            if isinstance(message, Media):
                payload = message.media.payload
                if message.stream_sid != self.stream_sid:
                    self._malformed("wrong_stream", "media for another stream")
                elif not payload or len(payload) > MAX_PAYLOAD_BYTES:
                    self._malformed("bad_payload_size", f"media payload of {len(payload)} bytes")
                else:
                    self.record.frames_in += 1
                    self.metrics.frames_in.inc()
                    self._caller_pcm += self.to_gemini.process(payload)
                    if len(self._caller_pcm) >= self.services.caller_block_bytes:
                        block = bytes(self._caller_pcm)
                        self._caller_pcm.clear()
                        await self.gemini.send_audio(block)
            elif isinstance(message, Mark):
                self._mark_echoed(message.mark.name)
            elif isinstance(message, Dtmf):
                digit = message.dtmf.digit
                self.record.say("keypad", digit)
                self.record.end_turn()
                with contextlib.suppress(GeminiSessionError):
                    await self.gemini.send_text(DTMF_TEXT.format(digit=digit))
            elif isinstance(message, Stop):
                self._ended("completed", "caller hung up")
                return
            elif isinstance(message, Start):
                self._malformed("second_start", "second start on one stream")
            if self.record.malformed > MALFORMED_LIMIT:
                self._ended("malformed", "too many malformed messages")
                await self._close_twilio(1008, "too many malformed messages")
                return

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
                key = event.id or f"unnamed-{id(task)}"
                self._tool_tasks[key] = task
                task.add_done_callback(lambda _, key=key: self._tool_tasks.pop(key, None))
            elif isinstance(event, ToolCallCancelled):
                # The caller interrupted the turn that made these calls ("Bye!" - "Wait!"):
                # whatever they still had to do (hang up, transfer) must not happen.
                for call_id in event.ids:
                    task = self._tool_tasks.get(call_id)
                    if task is not None:
                        task.cancel()
                self.log.info("tool calls cancelled by the caller's interruption", extra={"ids": list(event.ids)})
            elif isinstance(event, GoAway):
                self.log.info("Gemini goAway: switching connection (%.1f s left)", event.time_left_s)
            elif isinstance(event, Reconnected):
                # Whatever the old connection left half-said is played out, not kept.
                await self._send_frames(self.to_caller.flush())
                self.record.end_turn()
                self.record.reconnects += 1
                self.metrics.gemini_reconnects.labels("resumed" if event.resumed else "fresh").inc()
                self.log.warning(
                    "Gemini session reconnected",
                    extra={"resumed": event.resumed, "reason": event.reason, "attempts": event.attempts},
                )
            elif isinstance(event, ResumptionHandle):
                pass  # kept by the resilient session
            elif isinstance(event, SessionClosed):
                if event.code == 1000:
                    self._ended("completed", "gemini ended the session")
                    return
                self._ended("gemini_failed", f"gemini failed: {event.code} {event.reason}")
                self.record.errors.append(f"gemini closed {event.code}: {event.reason}")
                self.log.error("Gemini session lost for good: %s %s", event.code, event.reason)
                await self._play_prompt("apology_trouble", timeout=8.0)
                return

    async def _play(self, pcm24k: bytes, received_at: float) -> None:
        frames = self.to_caller.process(pcm24k)
        self.record.agent_audio_ms += len(pcm24k) / 48
        if frames:
            await self._send_frames(frames)
            latency = time.perf_counter() - received_at
            self.record.chunk_to_frame_ms.append(latency * 1000)
            self.metrics.chunk_to_frame.observe(latency)

    async def _send_frames(self, frames: list[bytes]) -> None:
        """Send 20 ms frames, then a mark so that we learn when the caller has heard them."""
        if not frames:
            return
        for frame in frames:
            await self.twilio.send(media_message(self.stream_sid, frame))
            self.playback.audio_sent(len(frame))
        self.record.frames_out += len(frames)
        self.metrics.frames_out.inc(len(frames))
        await self.twilio.send(mark_message(self.stream_sid, self.playback.new_mark("reply")))

    async def _send_mulaw(self, mulaw: bytes) -> None:
        """Our own mu-law 8 kHz audio (prompts, tones), cut into Twilio's 20 ms frames."""
        await self._send_frames([mulaw[i : i + FRAME_BYTES] for i in range(0, len(mulaw), FRAME_BYTES)])

    async def clear_playback(self, received_at: float | None = None) -> None:
        """Barge-in: empty Twilio's buffer now and drop everything held for the old reply."""
        await self.twilio.send(clear_message(self.stream_sid))
        if received_at is not None:
            latency = time.perf_counter() - received_at
            self.record.interrupted_to_clear_ms.append(latency * 1000)
            self.metrics.interrupted_to_clear.observe(latency)
        self.to_caller.reset()
        self.playback.cleared()
        self.record.interruptions += 1
        self.record.end_turn()

    async def _play_prompt(self, name: str, timeout: float) -> None:
        """Play a recorded prompt to the caller and wait (bounded) until it has been heard.

        The caller pump must be running: it is what reads Twilio's mark echoes.
        """
        if not self.stream_sid:
            return
        self.record.say("system", name.replace("_", " "))
        with contextlib.suppress(Exception):
            await self.play_audio(load_prompt(name), label=name, timeout=timeout)

    async def _apologise_without_agent(self, timeout: float = 10.0) -> None:
        """Gemini could not be reached at all: say so, reading Twilio ourselves until the
        apology's mark comes back (closing the socket earlier would cut it off)."""
        if not self.stream_sid:
            return
        self.record.say("system", "apology trouble")
        with contextlib.suppress(Exception):
            await self._send_mulaw(load_prompt("apology_trouble"))
            deadline = time.monotonic() + timeout
            while self.playback.playing and time.monotonic() < deadline:
                async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                    raw = await self.twilio.receive()
                if raw is None:
                    return
                message = self._parse(raw)
                if isinstance(message, Mark):
                    self._mark_echoed(message.mark.name)
                elif isinstance(message, Stop):
                    return

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
            async with asyncio.timeout(timeout):
                return await waiter == MarkOutcome.PLAYED
        except TimeoutError:
            return False

    # --- tools --------------------------------------------------------------------------

    async def _run_tool(self, call: ToolCall) -> None:
        assert self.gemini is not None
        handler = self.services.tool_handlers.get(call.name)
        try:
            self.log.info("tool call %s", call.name, extra={"tool_args": call.args})
            outcome = await handler(self, call) if handler else ToolOutcome({"error": f"unknown tool {call.name!r}"})
        except Exception as exc:  # a failing tool is reported to the model, never fatal
            self.log.exception("tool %s failed", call.name)
            outcome = ToolOutcome({"error": f"{type(exc).__name__}: {exc}"})
        if self._closing:
            return
        with contextlib.suppress(GeminiSessionError):
            await self.gemini.send_tool_response(call.id, call.name, outcome.response)
        if outcome.then is not None:
            try:
                await outcome.then()
            except Exception:
                self.log.exception("tool %s failed after its response", call.name)

    async def play_audio(self, mulaw: bytes, label: str = "audio", timeout: float = 30.0) -> bool:
        """Play our own mu-law 8 kHz audio to the caller; True once Twilio says it was heard."""
        await self._send_mulaw(mulaw)
        return await self.wait_until_heard(timeout)

    async def wait_for_playout(self, quiet_s: float = 0.4, max_s: float = 20.0) -> bool:
        """Wait until the caller has heard everything and the agent has gone quiet."""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            sent_before = self.record.frames_out
            if not await self.wait_until_heard(max(0.1, deadline - time.monotonic())):
                continue
            await asyncio.sleep(quiet_s)
            if self.record.frames_out == sent_before and not self.playback.playing:
                return True
        return False

    # --- helpers ------------------------------------------------------------------------

    def _parse(self, raw: str | bytes):
        if isinstance(raw, bytes):
            self._malformed("binary_frame", f"binary frame of {len(raw)} bytes")
            return None
        if self.recorder is not None:
            self.recorder.write(raw)
        try:
            message = parse_message(raw)
        except TwilioProtocolError as exc:
            self._malformed("unparseable", str(exc))
            return None
        if isinstance(message, UnknownEvent):
            self.metrics.malformed.labels("unknown_event").inc()
            self.log.info("unknown event %r ignored", message.event[:40])
        return message

    def _malformed(self, kind: str, detail: str) -> None:
        self.record.malformed += 1
        self.metrics.malformed.labels(kind).inc()
        if self.record.malformed <= 20 or self.record.malformed % 100 == 0:  # never flood the log
            self.log.warning("bad message skipped (%s): %s", kind, detail[:200], extra={"malformed": self.record.malformed})

    async def _refuse(self, refused: CallRefused) -> None:
        self._ended(refused.outcome, f"refused: {refused}")
        if refused.code != 1000:
            self.log.warning("stream refused: %s", refused)
            self.metrics.refused.labels(refused.outcome).inc()
        await self._close_twilio(refused.code, str(refused)[:120])

    async def _close_twilio(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.twilio.close(code, reason)
