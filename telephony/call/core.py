"""The call core: every decision about one phone call, and no I/O.

Like h11's `Connection`, a `Call` is a plain object. The driver feeds it what happened -
a frame from Twilio, an event from Gemini, a tool's result, the time - and takes back what to
do, as `Action` values: send this to Twilio, send this to Gemini, run or cancel this tool,
settle this waiter, close the stream. It never awaits, never touches a socket, never reads
the clock or the settings, so every ordering of inputs can be replayed in a unit test.

Where things happen:
- barge-in: `_barge_in()` - on Gemini's `interrupted`, or when the caller talks over agent
  audio that is held here or still playing at Twilio (local voice detection);
- paced playout: `playout.Playout` - at most `playout_lead_ms` of agent audio at Twilio;
- how a call ends: `CallState` and `_close()` - one state, one place.

    call = Call(CallConfig(...), now=0.0)
    call.twilio_frame('{"event": "start", ...}', now=0.01)
    for action in call.take_actions(): ...
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from telephony.audio.agc import CallerLevel
from telephony.audio.mulaw import decode_mulaw, halve_rate
from telephony.audio.tones import hold_tone_mulaw
from telephony.audio.transcode import FRAME_BYTES, CallerToGemini, GeminiToCaller
from telephony.call.actions import (
    Action,
    CancelTools,
    CloseStream,
    OpenAgent,
    RestartAgent,
    RunTool,
    SendGemini,
    SendTwilio,
    Settle,
)
from telephony.call.goodbye import GoodbyeWatch
from telephony.call.inbound import InboundGuard
from telephony.call.playout import MarkOut, MediaOut, Playout, Source
from telephony.call.recording import StereoTimeline
from telephony.call.rules import CallConfig
from telephony.call.stall import Escalate, HoldOn, Recovered, StallWatch, Step
from telephony.call.state import CallState, IllegalTransition, move
from telephony.call.tally import Tally
from telephony.call.turn import AgentTurn
from telephony.call.voice_activity import CallerVoice
from telephony.call_record import CallRecord, ToolRecord
from telephony.gemini import tool_results
from telephony.gemini.events import (
    AgentAudio,
    GeminiEvent,
    GenerationComplete,
    GoAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    Reconnected,
    SessionClosed,
    ToolCall,
    ToolCallCancelled,
    TurnComplete,
    Usage,
    VoiceActivity,
)
from telephony.gemini.messages import (
    ActivityEnd,
    ActivityStart,
    CallerAudio,
    GeminiMessage,
    RealtimeText,
    ToolResult,
)
from telephony.gemini.models import Scheduling
from telephony.logs import mask_number
from telephony.playback import MarkOutcome
from telephony.twilio_protocol import (
    TOKEN_PARAMETER,
    Dtmf,
    Mark,
    Media,
    Outbound,
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

__all__ = [
    "Action",
    "Call",
    "CallConfig",
    "CallState",
    "CancelTools",
    "CloseStream",
    "IllegalTransition",
    "OpenAgent",
    "RestartAgent",
    "RunTool",
    "SendGemini",
    "SendTwilio",
    "Settle",
]

DTMF_TEXT = "The caller pressed the keypad key {digit}."
PHONE_PARAMETERS = ("caller", "called")
"""Stream parameters that hold phone numbers (masked in the log)."""
MAX_TOOL_RECORDS = 500
"""Tool calls kept in a call's record (the transcript keeps a line for every one)."""
MALFORMED_LOGGED = 20
"""Bad messages logged one by one per stream; then every 100th, and a summary at the end."""
CONTINUE_NUDGE = (
    "(Our connection dropped while you were speaking{heard}. Continue your answer from where it broke off, "
    "briefly and without starting over.)"
)
"""Sent after a reconnect that cut the agent's reply off: the rest of the sentence is lost
with the old connection, and without a nudge the caller would sit in silence."""
RECONNECT_NUDGE = (
    "(Our connection dropped for a moment just after the caller finished speaking, so their last words may not "
    "have reached you. Answer them if you can; otherwise briefly ask them to repeat.)"
)
"""Sent after a reconnect when the caller spoke last: without it, a turn that ended as the
connection dropped is never answered and the caller waits in silence."""
STALL_NUDGE = "(The caller is waiting for your answer to what they just said. Answer them now, briefly.)"
"""A stalled model is asked for its answer as realtime text: it never interrupts, on any family."""
PREROLL_MS = 300
"""Manual turn-taking: caller audio kept from before speech onset, sent after activityStart."""


@dataclass
class _Ending:
    token: int
    deadline: float
    code: int
    reason: str


# --- the call ------------------------------------------------------------------------------


class Call:
    """One phone call, from the socket's first frame to its close."""

    def __init__(
        self,
        config: CallConfig,
        now: float,
        *,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        record: CallRecord | None = None,
    ) -> None:
        self.config = config
        self.log = logger or log
        self.tally = Tally()
        """What this call counted since the driver last published it (`telephony.call.tally`)."""
        self.record = record or CallRecord()
        self.state = CallState.AWAITING_START
        self.admitted = False
        """The stream passed `admit_stream` (its CallSid is this call's until it ends)."""
        self._turn_away: tuple[str, str] | None = None
        self._wideband = False
        self._halving: Any = None
        self.inbound = InboundGuard(
            config.malformed_limit, config.malformed_per_second, config.max_dtmf_per_second, config.media_rate_limit
        )
        self.stream_sid = ""
        self.outcome = "completed"
        self.playout = Playout(config.playout_lead_ms, config.playout_batch_ms)
        self.to_gemini = CallerToGemini(CallerLevel() if config.caller_agc else None)
        self.to_caller = GeminiToCaller()
        self.voice: CallerVoice | None = None
        if config.manual_activity or config.barge_in_min_speech_ms > 0:
            self.voice = CallerVoice(min_speech_ms=config.barge_in_min_speech_ms or 10**9, silence_ms=config.activity_silence_ms)
        self.stereo = StereoTimeline() if config.record_audio else None
        self._actions: list[Action] = []
        self._created_at = now
        self._started_at = now
        self._last_twilio_at = now
        self._caller_pcm = bytearray()
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._in_activity = False
        self.turn = AgentTurn()
        """The agent's reply being spoken (`telephony.call.turn`)."""
        self._caller_spoke_last = False
        """The caller's speech ended after the last agent audio: an answer is due."""
        self._caller_turn_from: float | None = None
        self._caller_stopped_at: float | None = None
        self._tools_running: set[str] = set()
        self._goodbye: GoodbyeWatch | None = None
        self._ending: _Ending | None = None
        self._own_tokens = -1  # tokens the core makes for itself are negative
        self._holds = 0  # slow tools the caller is waiting for
        self._hold_due: dict[str, float] = {}
        """Running tools (by call id) and when their hold tone starts if they still run."""
        self._holding_for: set[str] = set()
        self._hold_token: int | None = None
        """The hold tone is playing (or queued): its period's marker."""
        self.stall = StallWatch(config.stall)

    # --- what the driver reads ------------------------------------------------------------

    def take_recording(self) -> bytes:
        """Stereo PCM16 8 kHz (caller left, agent right) since the last take; b"" if off."""
        return self.stereo.take() if self.stereo is not None else b""

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick()` has something to decide."""
        if self.state is CallState.ENDED:
            return None
        if self.state is CallState.AWAITING_START:
            return self._created_at + self.config.start_timeout_s
        times = [self._last_twilio_at + self.config.idle_timeout_s]
        if self.state is not CallState.ENDING:
            times.append(self._started_at + self.config.max_call_s)
        if self._ending is not None:
            times.append(self._ending.deadline)
        if self._goodbye is not None:
            times.extend(self._goodbye.deadlines())
        if self.state is CallState.ACTIVE and (stalled_at := self.stall.deadline()) is not None:
            times.append(stalled_at)
        if self._hold_due:
            times.append(min(self._hold_due.values()))
        return min(times)

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    # --- inputs: Twilio -------------------------------------------------------------------

    def twilio_frame(self, raw: str | bytes, now: float) -> None:
        """One WebSocket frame from Twilio."""
        self._at(now)
        if self.state is CallState.ENDED:
            return
        self._last_twilio_at = now
        if isinstance(raw, bytes):
            self._malformed("binary_frame", f"binary frame of {len(raw)} bytes")
        else:
            try:
                message = parse_message(raw)
            except TwilioProtocolError as exc:
                self._malformed("unparseable", str(exc))
            else:
                self._twilio_message(message, now)
        if not self.ended and (abuse := self.inbound.closing_reason()) is not None:
            self._end_now("malformed", abuse, 1008)

    def turn_away(self, reason: str, prompt: str, now: float) -> None:
        """Take no call on this stream (the server is shutting down): once it starts, the
        caller hears `prompt` and the stream closes; no agent is opened."""
        self._at(now)
        if self.state is CallState.AWAITING_START:
            self._turn_away = (reason, prompt)

    def twilio_closed(self, now: float) -> None:
        """The socket closed under us (the caller's side went away)."""
        self._at(now)
        if self.state is not CallState.ENDED:
            self._end_now("completed", "twilio socket closed", 1000)

    def _twilio_message(self, message: Any, now: float) -> None:
        if isinstance(message, Media):
            if self.state is CallState.AWAITING_START:
                self._malformed("before_start", "media before start")
            else:
                self._caller_media(message, now)
        elif isinstance(message, Mark):
            if self.playout.mark_echoed(message.mark.name) is MarkOutcome.UNKNOWN:
                self._malformed("unknown_mark", "a mark we never sent")
            self._after_playout_change(now)
        elif isinstance(message, Dtmf):
            if self.state is CallState.AWAITING_START:
                self._malformed("before_start", "dtmf before start")
            elif self.inbound.dtmf_flood(now):
                self._malformed("dtmf_flood", f"more than {self.config.max_dtmf_per_second} keypad digits in a second")
            else:
                digit = message.dtmf.digit
                self.record.say("keypad", digit)
                self.record.end_turn()
                self._gemini(RealtimeText(DTMF_TEXT.format(digit=digit)))
        elif isinstance(message, Start):
            if self.state is CallState.AWAITING_START:
                self._start(message, now)
            else:
                self._malformed("second_start", "second start on one stream")
        elif isinstance(message, Stop):
            if self.state is CallState.AWAITING_START:
                self._end_now("no_start", "refused: stop before start", 1000)
            else:
                self._end_now("completed", "caller hung up", 1000)
        elif isinstance(message, UnknownEvent):
            # Twilio may add events; one now and then is skipped, a stream of them is abuse.
            self._malformed("unknown_event", f"unknown event {message.event[:40]!r}")

    def _start(self, start: Start, now: float) -> None:
        details = start.start
        self.stream_sid = start.stream_sid
        self.record.call_sid, self.record.stream_sid = details.call_sid, start.stream_sid
        params = {k: v for k, v in details.custom_parameters.items() if k != TOKEN_PARAMETER}
        self.record.parameters = params
        if hasattr(self.log, "bind"):
            self.log.bind(details.call_sid, start.stream_sid)
        try:
            self._wideband = check_media_format(start, self.config.accept_wideband)
        except TwilioProtocolError as exc:
            self._refuse(str(exc), 1003, "refused")
            return
        admit = self.config.admit_stream
        refusal = admit(details.call_sid, details.custom_parameters.get(TOKEN_PARAMETER)) if admit is not None else None
        if refusal is not None:
            kind, reason = refusal
            self._refuse(reason, 1008, kind)
            return
        self.admitted = True
        self._started_at = now
        self._move(CallState.CONNECTING)
        if self._turn_away is not None:
            reason, prompt = self._turn_away
            self._finish_with_prompt("turned_away", reason, prompt, now)
            return
        logged = params if self.config.log_phone_numbers else {k: mask_number(v) if k in PHONE_PARAMETERS else v for k, v in params.items()}
        self.log.info("call started", extra={"parameters": logged})
        notice = self.config.prompts.get("recording_notice") if self.config.record_audio and self.config.recording_notice else None
        if notice:
            self.playout.hold_mulaw(notice, Source.PROMPT)  # before anything the agent says
            self._release()
        self._actions.append(OpenAgent(params))

    def _caller_media(self, message: Media, now: float) -> None:
        payload = message.media.payload
        if message.stream_sid != self.stream_sid:
            self._malformed("wrong_stream", "media for another stream")
            return
        if not payload or len(payload) > self.config.max_payload_bytes:
            self._malformed("bad_payload_size", f"media payload of {len(payload)} bytes")
            return
        if self.inbound.media_too_fast(len(payload) / (32 if self._wideband else 8), now, self._started_at):
            self._malformed("media_too_fast", f"caller audio faster than {self.config.media_rate_limit:g}x real time")
            return
        self.record.frames_in += 1
        self.tally.inc("frames_in")
        if self._wideband:  # 16 kHz from the browser: as it is for Gemini, halved for voice detection
            pcm16k = payload[: len(payload) & ~1]
            pcm8k, self._halving = halve_rate(pcm16k, self._halving)
        else:
            pcm8k = decode_mulaw(payload)
            pcm16k = b""
        if self.stereo is not None:
            self.stereo.caller(pcm8k)
        if not self._wideband:
            pcm16k = self.to_gemini.process_pcm8k(pcm8k)
        updates = self.voice.feed(pcm8k) if self.voice is not None else []
        if self.config.manual_activity:
            self._manual_activity(pcm16k, updates)
        else:
            self._send_caller_audio(pcm16k)
        for update in updates:
            if update.started and self.voice is not None:
                self._caller_turn_from = now - self.voice.onset_ms / 1000
                self.stall.caller_started()
            if update.barged_in and self.playout.agent_audible and self.state is CallState.ACTIVE:
                self._barge_in("caller")
            if update.ended:
                self._caller_spoke_last = True
                self._caller_turn_ended(now)
            if update.started and self._holds:
                self._end_hold()

    def _caller_turn_ended(self, now: float) -> None:
        silence_s = self.voice.silence_ms / 1000 if self.voice is not None else 0.0
        self._caller_stopped_at = now - silence_s
        turn = self.turn
        if turn.open and turn.latency_ms is None and turn.started_at is not None and turn.started_at >= self._caller_stopped_at:
            # The answer began before our voice detection saw the end of the speech (it waits
            # for the same silence as Gemini's): it is the answer, and its wait counts from there.
            turn.latency_ms = (turn.started_at - self._caller_stopped_at) * 1000
            self._caller_spoke_last = False
        self.stall.caller_ended(self._caller_stopped_at)
        if self._caller_turn_from is not None:
            took_s = max(0.0, self._caller_stopped_at - self._caller_turn_from)
            ended_ms = self.record.elapsed_ms() - silence_s * 1000
            self.record.heard("caller", ended_ms - took_s * 1000, ended_ms)
            self.log.info("caller turn: %.1f s of speech", took_s, extra={"turn": "caller", "duration_ms": round(took_s * 1000)})
        self._caller_turn_from = None

    def _send_caller_audio(self, pcm16k: bytes, flush: bool = False) -> None:
        self._caller_pcm += pcm16k
        if self._caller_pcm and (flush or len(self._caller_pcm) >= self.config.caller_block_bytes):
            self._gemini(CallerAudio(bytes(self._caller_pcm)))
            self._caller_pcm.clear()

    def _manual_activity(self, pcm16k: bytes, updates: list[Any]) -> None:
        """Gemini's VAD is off: the caller's turns are framed by local voice detection,
        with the audio from just before the onset sent after activityStart."""
        for update in updates:
            if update.started and not self._in_activity:
                self._in_activity = True
                self._gemini(ActivityStart())
                if self.state is CallState.ACTIVE and self.playout.agent_audible:
                    self._barge_in("caller")
                for block in self._preroll:
                    self._send_caller_audio(block)
                self._preroll.clear()
                self._preroll_bytes = 0
        if self._in_activity:
            self._send_caller_audio(pcm16k)
        else:
            self._preroll.append(pcm16k)
            self._preroll_bytes += len(pcm16k)
            while self._preroll_bytes > PREROLL_MS * 32:
                self._preroll_bytes -= len(self._preroll.popleft())
        if self._in_activity and any(update.ended for update in updates):
            self._in_activity = False
            self._send_caller_audio(b"", flush=True)
            self._gemini(ActivityEnd())

    # --- inputs: Gemini -------------------------------------------------------------------

    def agent_ready(self, now: float) -> None:
        """The Gemini session is open."""
        self._at(now)
        if self.state is CallState.CONNECTING:
            self._move(CallState.ACTIVE)

    def agent_failed(self, reason: str, now: float) -> None:
        """Gemini could not be reached for this call at all."""
        self._at(now)
        if self.state not in (CallState.CONNECTING, CallState.ACTIVE):
            return
        self.record.errors.append(reason)
        self.log.error("could not open the Gemini session: %s", reason)
        self._finish_with_prompt("gemini_unavailable", f"gemini unavailable: {reason}", "apology_trouble", now)

    def gemini_event(self, event: GeminiEvent, now: float) -> None:
        self._at(now)
        if self.state is CallState.ENDED:
            return
        if isinstance(event, AgentAudio):
            self._agent_audio(event.pcm24k, now)
        elif isinstance(event, Interrupted):
            if self.turn.discarding:
                self.turn.discarding = False  # we already cut this reply off ourselves
            else:
                self._barge_in("gemini")
            self.turn.open = False
            self.turn.working = False
            self.stall.agent_working(False)
            self.stall.interrupted(now, caller_speaking=self.voice is not None and self.voice.speaking)
        elif isinstance(event, TurnComplete):
            self._turn_complete(event, now)
        elif isinstance(event, InputTranscript):
            self.record.say("caller", event.text)
            self.stall.caller_heard()
        elif isinstance(event, VoiceActivity):
            if not event.started:
                self.stall.caller_heard()
        elif isinstance(event, GenerationComplete):
            self.stall.generation_complete()
        elif isinstance(event, OutputTranscript):
            if not self.turn.discarding and self.state is not CallState.ENDING:
                self.turn.line = self.record.say("agent", event.text) or self.turn.line
                self.stall.agent_transcript()
        elif isinstance(event, ToolCall):
            if self.state in (CallState.CONNECTING, CallState.ACTIVE):
                self._tools_running.add(event.id)
                self.stall.tools_running(True)
                if self.config.hold_after_s > 0 and event.name not in self.config.tools_without_hold:
                    self._hold_due[event.id] = now + self.config.hold_after_s
                self.log.info("tool call %s", event.name, extra={"tool_args": event.args})
                self._actions.append(RunTool(event))
        elif isinstance(event, ToolCallCancelled):
            # The caller interrupted the turn that made these calls ("Bye!" - "Wait!"): a
            # running tool, or what an answered one still had to do (hang up), must stop.
            self._tools_running.difference_update(event.ids)
            self.stall.tools_running(bool(self._tools_running))
            for call_id in event.ids:
                self._tool_over(call_id)
            self._actions.append(CancelTools(tuple(event.ids)))
            self.log.info("tool calls cancelled by the caller's interruption", extra={"ids": list(event.ids)})
        elif isinstance(event, Reconnected):
            # Whatever the old connection left half-said is played out, not kept.
            if self.state is not CallState.ENDING:
                self.playout.hold(self.to_caller.flush(), Source.AGENT)
                self._release()
            cut_off = self.turn.open and not self.turn.discarding and self.turn.audio_ms > 0
            heard = self.turn.line.text if cut_off and self.turn.line is not None else ""
            self.turn.discarding = False
            self.turn.open = False
            self.turn.working = False
            self.record.end_turn()
            self.record.reconnects += 1
            if self.stall.current is not None:
                pass  # a stall's recovery: its own nudge is already on its way
            elif self.state is CallState.ACTIVE and self._caller_spoke_last:
                self._gemini(RealtimeText(RECONNECT_NUDGE))
            elif self.state is CallState.ACTIVE and cut_off:
                said = f'; the caller last heard you say: "{heard[-300:]}"' if heard else ""
                self._gemini(RealtimeText(CONTINUE_NUDGE.format(heard=said)))
            self.tally.inc("gemini_reconnects", "resumed" if event.resumed else "fresh")
            self.log.warning(
                "Gemini session reconnected", extra={"resumed": event.resumed, "reason": event.reason, "attempts": event.attempts}
            )
        elif isinstance(event, Usage):
            counts: dict[str, int | None] = {
                "prompt_tokens": event.prompt_tokens,
                "response_tokens": event.response_tokens,
                "total_tokens": event.total_tokens,
            }
            counts |= {f"prompt_{m.lower()}": n for m, n in event.prompt_by_modality}
            counts |= {f"response_{m.lower()}": n for m, n in event.response_by_modality}
            extra = {"thoughts_tokens": event.thoughts_tokens, "tool_use_prompt_tokens": event.tool_use_prompt_tokens}
            counts |= {name: n for name, n in extra.items() if n is not None}
            self.record.add_usage(counts)
        elif isinstance(event, GoAway):
            self.log.info("Gemini goAway: switching connection (%.1f s left)", event.time_left_s)
        elif isinstance(event, SessionClosed):
            self.record.errors.append(f"gemini closed {event.code}: {event.reason}")
            self.log.error("Gemini session lost for good: %s %s", event.code, event.reason)
            self._finish_with_prompt("gemini_failed", f"gemini failed: {event.code} {event.reason}", "apology_trouble", now)

    def _turn_complete(self, event: TurnComplete, now: float) -> None:
        """The model ended a turn. On Extended Thinking an IN_PROGRESS turn is a filler
        before background work: it is played like any speech, but the agent's turn is not
        over (a goodbye or a transfer announcement is waited for until IDLE)."""
        self.turn.discarding = False
        if self.turn.open and self.turn.audio_ms:
            # Generated is not heard: the turn is logged once played out, or cut by a barge-in.
            self.turn.log_pending = True
        if self.state is not CallState.ENDING:
            self.playout.hold(self.to_caller.flush(), Source.AGENT)
        had_audio = self.turn.open
        self.turn.open = False
        self.turn.working = not event.final
        self.stall.agent_working(self.turn.working)
        if event.final:
            waiting = bool(event.waiting_for_input) or event.reason == "NEED_MORE_INPUT"
            self.stall.turn_complete(had_audio, waiting_for_more=waiting)
        self.record.end_turn()
        if event.unusual_reason:
            self.record.say("system", f"the agent's turn ended: {event.unusual_reason}")
            self.record.end_turn()
            self.log.warning(
                "Gemini ended the agent's turn: %s", event.unusual_reason, extra={"turn_complete_reason": event.unusual_reason}
            )
        if self._goodbye is not None:
            self._goodbye.turn_complete(event.final)
        self._after_playout_change(now)

    def _agent_audio(self, pcm24k: bytes, now: float) -> None:
        if self.turn.discarding or self.state is CallState.ENDING:
            return
        if not self.turn.open:
            self.stall.turn_started()
        decisions = self.stall.agent_audio(now, len(pcm24k) / 48)
        if decisions:
            self._on_stall(decisions, now)
            if self.turn.discarding:
                return  # the stall was this audio (a tone): it is not played
        answering = self._caller_spoke_last and self._caller_stopped_at is not None
        self._caller_spoke_last = False
        if self._hold_token is not None:
            self._pause_hold()  # the agent speaks (a NON_BLOCKING tool runs on): no hold tone over it
        if not self.turn.open:
            self._finish_turn_log()
            self.turn.open = True
            self.turn.started_at = now
            # Our side of the caller's wait: from the end of their speech to the reply's first audio here.
            self.turn.latency_ms = (now - self._caller_stopped_at) * 1000 if answering and self._caller_stopped_at is not None else None
            self.turn.audio_ms = 0.0
            self.turn.start_position_ms = self.playout.ledger.sent_ms + self.playout.held_agent_ms
            # Heard from when what is ahead of it has played (sent and held audio of earlier turns).
            ahead_ms = max(0.0, self.turn.start_position_ms - self.playout.heard_ms)
            self.turn.heard_from_ms = self.record.elapsed_ms() + ahead_ms
            self.turn.line = None
        self.turn.audio_ms += len(pcm24k) / 48
        self.record.agent_audio_ms += len(pcm24k) / 48
        if self._goodbye is not None:
            self._goodbye.agent_audio(now)
        self.playout.hold(self.to_caller.process(pcm24k), Source.AGENT)
        self._release()

    def _on_stall(self, decisions: list[Escalate | HoldOn | Recovered], now: float) -> None:
        """The stall watch's decisions, as actions (see `telephony.call.stall`)."""
        for decision in decisions:
            if isinstance(decision, HoldOn):
                self._add_hold()
            elif isinstance(decision, Recovered):
                stall = decision.stall
                if self.stall.stop_holding():
                    self._drop_hold()
                silence_s = (stall.recovered_after_ms or 0.0) / 1000
                self.record.stalls.append(
                    {"kind": stall.kind.value, "answered_at": stall.step.name.lower(), "silence_ms": stall.recovered_after_ms}
                )
                self.record.say(
                    "system",
                    f"the model went silent ({stall.kind.value}); back after a {stall.step.name.lower()} ({silence_s:.1f} s of silence)",
                )
                self.record.end_turn()
                self.log.warning(
                    "Gemini stall (%s) recovered by a %s after %.1f s of silence",
                    stall.kind.value,
                    stall.step.name.lower(),
                    silence_s,
                    extra={"stall": stall.kind.value, "step": stall.step.name.lower(), "silence_ms": stall.recovered_after_ms},
                )
                self.tally.observe("stall_silence", silence_s)
            elif isinstance(decision, Escalate):
                self._escalate(decision.stall.kind.value, decision.stall.step, now)

    def _escalate(self, kind: str, step: Step, now: float) -> None:
        self.tally.inc("stalls", kind, step.name.lower())
        self.log.warning("Gemini stalled (%s): %s", kind, step.name.lower(), extra={"stall": kind, "step": step.name.lower()})
        if step is Step.GIVE_UP:
            self.record.stalls.append({"kind": kind, "answered_at": "gave_up", "silence_ms": None})
            self._finish_with_prompt("gemini_stalled", f"the model stalled ({kind}) too often", "apology_trouble", now)
            return
        if kind == "tone" and step is Step.NUDGE:
            self._silence_agent()  # not speech: the caller hears none of it
            self.turn.discarding = self.turn.open
            self.turn.audio_ms = 0.0
        if step is Step.RESUME:
            self._actions.append(RestartAgent(fresh=False, reason=f"stalled ({kind})"))
        elif step is Step.FRESH:
            self._actions.append(RestartAgent(fresh=True, reason=f"stalled ({kind}), resuming did not help"))
        self._gemini(RealtimeText(STALL_NUDGE))

    # --- inputs: tools and waiters ----------------------------------------------------------

    def tool_finished(
        self,
        call: ToolCall,
        response: dict[str, Any],
        now: float,
        duration_ms: float | None = None,
        scheduling: Scheduling | None = None,
    ) -> bool:
        """A tool's result. Returns False when it is no longer wanted (cancelled, call over),
        in which case nothing is sent and whatever the tool meant to do next must not run.
        The model gets it with `status`, `retryable` and a message (`tool_results`)."""
        self._at(now)
        self._tool_over(call.id)
        if call.id not in self._tools_running:
            return False
        self._tools_running.discard(call.id)
        self.stall.tools_running(bool(self._tools_running))
        if self.state in (CallState.ENDING, CallState.ENDED):
            return False
        self._gemini(ToolResult(call.id, call.name, tool_results.for_model(response), scheduling))
        if len(self.record.tool_calls) < MAX_TOOL_RECORDS:
            error = response.get("error")
            self.record.tool_calls.append(
                ToolRecord(
                    call.name,
                    dict(call.args),
                    response,
                    self.record.elapsed_ms(),
                    None if duration_ms is None else round(duration_ms, 1),
                    str(error) if error else None,
                )
            )
        arguments = ", ".join(f"{k}={v!r}" for k, v in call.args.items())
        self.record.say("tool", f"{call.name}({arguments}) -> {json.dumps(response, default=str)[:300]}")
        self.record.end_turn()
        return True

    def play_audio(self, mulaw: bytes, token: int, now: float) -> None:
        """Our own mu-law 8 kHz audio (keypad tones), then settle `token` once it was heard."""
        self._at(now)
        if self.state is CallState.ENDED:
            self._actions.append(Settle(token, False))
            return
        self.playout.hold_mulaw(mulaw, Source.PROMPT)
        self.wait_heard(token, now)

    def start_hold(self, now: float) -> None:
        """A tool is slow: the caller hears the hold tone until `stop_hold` (or they speak),
        but only into silence: while the agent talks (a NON_BLOCKING tool) the tone waits."""
        self._at(now)
        self._add_hold()

    def stop_hold(self, now: float) -> None:
        self._at(now)
        self._drop_hold()

    def _add_hold(self) -> None:
        """One more reason for the hold tone (a slow tool, a stalled model)."""
        self._holds += 1
        self._resume_hold()

    def _drop_hold(self) -> None:
        """One reason fewer; the tone stops with the last."""
        self._holds = max(0, self._holds - 1)
        if not self._holds:
            self._end_hold()

    def _hold_more(self) -> None:
        self.playout.hold_mulaw(hold_tone_mulaw(), Source.HOLD)
        self._hold_token = self._new_token()
        self.playout.hold_marker(self._hold_token)
        self._release()

    def _pause_hold(self) -> None:
        """The agent speaks while a tool still runs: the tone stops, and comes back only
        into silence (`_resume_hold`)."""
        self._hold_token = None
        self.playout.drop_held(Source.HOLD)

    def _resume_hold(self) -> None:
        """A tool still runs and nothing is playing or coming from the agent: the tone again."""
        if (
            self._holds
            and self._hold_token is None
            and self.state is CallState.ACTIVE
            and (not self.turn.open or self.stall.holding)
            and not self.playout.agent_audible
        ):
            self._hold_more()

    def _end_hold(self) -> None:
        self._holds = 0
        self._hold_token = None
        self.playout.drop_held(Source.HOLD)

    def wait_heard(self, token: int, now: float) -> None:
        """Settle `token` once everything sent or held so far has been played."""
        self._at(now)
        if self.state is CallState.ENDED:
            self._actions.append(Settle(token, False))
            return
        self.playout.hold_marker(token)
        self._release()

    def watch_goodbye(self, token: int, now: float, grace_s: float | None = None) -> None:
        """Settle `token` (ok) once the agent's goodbye has been heard: its turn is complete
        and played, or nothing more was said within `grace_s`. Settled not ok if the caller
        talks over it first."""
        self._at(now)
        if self.state is CallState.ENDED:
            self._actions.append(Settle(token, False))
            return
        self._goodbye = GoodbyeWatch(token, now, self.config.goodbye_grace_s if grace_s is None else grace_s, self.config.goodbye_max_s)
        self._check_goodbye(now)

    def forget(self, token: int) -> None:
        """The driver stopped waiting for `token` (its tool was cancelled)."""
        if self._goodbye is not None and self._goodbye.token == token:
            self._goodbye = None

    def request_end(self, outcome: str, reason: str, now: float, prompt: str | None = None) -> None:
        """End the call from our side (agent hung up, shutdown, time limit)."""
        self._at(now)
        if self.state is CallState.ENDED:
            return
        if prompt is None:
            self._end_now(outcome, reason, 1000)
        else:
            self._finish_with_prompt(outcome, reason, prompt, now)

    def tick(self, now: float) -> None:
        """Let time-based rules run; the driver calls it at `next_deadline()`."""
        self._at(now)
        if self.state is CallState.ENDED:
            return
        if self.state is CallState.AWAITING_START:
            if now >= self._created_at + self.config.start_timeout_s:
                self._refuse(f"no start message within {self.config.start_timeout_s:.0f} s", 1008, "no_start")
            return
        if now >= self._last_twilio_at + self.config.idle_timeout_s:
            self.log.warning("idle timeout: nothing from Twilio for %.0f s", self.config.idle_timeout_s)
            self._end_now("idle_timeout", f"nothing from Twilio for {self.config.idle_timeout_s:.0f} s", 1000)
            return
        if self._ending is not None and now >= self._ending.deadline:
            self._close(self._ending.code, self._ending.reason)
            return
        if self.state is not CallState.ENDING and now >= self._started_at + self.config.max_call_s:
            self.log.warning("call time limit reached")
            self._finish_with_prompt("time_limit", f"call reached its {self.config.max_call_s:.0f} s limit", "apology_closing", now)
            return
        if self.state is CallState.ACTIVE:
            self._on_stall(self.stall.tick(now), now)
            for call_id, due in list(self._hold_due.items()):
                if now >= due:  # a slow tool: the caller hears the hold tone (into silence)
                    del self._hold_due[call_id]
                    self._holding_for.add(call_id)
                    self._add_hold()
        self._check_goodbye(now)

    # --- decisions ------------------------------------------------------------------------

    def _finish_turn_log(self) -> None:
        """The last reply was played to its end: its turn line and heard span."""
        if self.turn.log_pending:
            self.turn.log_pending = False
            self._log_agent_turn("complete")
            self.turn.audio_ms = 0.0

    def _log_agent_turn(self, how: str, heard_ms: float | None = None) -> None:
        span_ms = self.turn.audio_ms if heard_ms is None else heard_ms
        self.record.heard("agent", self.turn.heard_from_ms, self.turn.heard_from_ms + span_ms, heard_ms is not None)
        extra: dict[str, Any] = {"turn": "agent", "duration_ms": round(self.turn.audio_ms), "ended": how}
        if self.turn.latency_ms is not None:
            extra["latency_ms"] = round(self.turn.latency_ms)
        after = f", {self.turn.latency_ms / 1000:.2f} s after the caller stopped" if self.turn.latency_ms is not None else ""
        if heard_ms is not None:
            extra["heard_ms"] = round(heard_ms)
            self.log.info("agent turn: interrupted after %.1f of %.1f s%s", heard_ms / 1000, self.turn.audio_ms / 1000, after, extra=extra)
        else:
            self.log.info("agent turn: %.1f s%s", self.turn.audio_ms / 1000, after, extra=extra)
        self.turn.latency_ms = None

    def _barge_in(self, source: str) -> None:
        """The caller took the turn: empty Twilio's buffer now, drop what we hold of the reply."""
        if source == "caller" and self.turn.open:
            self.turn.discarding = True  # Gemini is still sending this reply
        heard_in_turn = max(0.0, self.playout.heard_ms - self.turn.start_position_ms)
        if self.turn.audio_ms:
            self._log_agent_turn("interrupted", min(heard_in_turn, self.turn.audio_ms))
        self.turn.log_pending = False
        dropped_ms = self._silence_agent()
        if self.turn.audio_ms and self.turn.line is not None:
            self.turn.line.cut_to(min(1.0, heard_in_turn / self.turn.audio_ms))
        self.turn.line = None
        self.record.interruptions += 1
        self.record.end_turn()
        self.turn.audio_ms = 0.0
        self.log.info(
            "interrupted (%s) -> clear sent, %.0f ms of held agent audio dropped",
            "the caller spoke" if source == "caller" else "Gemini",
            dropped_ms,
            extra={"source": source, "held_dropped_ms": round(dropped_ms)},
        )
        self.tally.inc("barge_ins", source)
        if self._goodbye is not None:  # "Bye!" - "Wait, one more thing": no hang-up
            self._actions.append(Settle(self._goodbye.token, False))
            self._goodbye = None
        self._release()  # our own prompts still held go out

    def _silence_agent(self) -> float:
        """Empty Twilio's buffer and drop what we hold of the agent, the resampler's tail
        included; returns the ms of agent audio dropped here."""
        self._twilio(clear_message(self.stream_sid), Outbound.CLEAR)
        if self.stereo is not None:
            self.stereo.cleared()
        dropped_ms = self.playout.clear()
        self.to_caller.reset()
        return dropped_ms

    def _release(self) -> None:
        # The frames of one batch (up to `media_message_ms`) go out as one media message:
        # Twilio plays any length, marks still close every batch, and 100 ms messages cost
        # a fifth of the sends of 20 ms ones.
        limit = max(FRAME_BYTES, self.config.media_message_ms * 8)
        pending = bytearray()
        for item in self.playout.release():
            if isinstance(item, MediaOut):
                if len(pending) + len(item.mulaw) > limit:
                    self._twilio(media_message(self.stream_sid, bytes(pending)), Outbound.MEDIA)
                    pending.clear()
                pending += item.mulaw
                if self.stereo is not None:
                    self.stereo.agent_sent(decode_mulaw(item.mulaw))
                self.record.frames_out += 1
                self.tally.inc("frames_out")
            elif isinstance(item, MarkOut):
                if pending:
                    self._twilio(media_message(self.stream_sid, bytes(pending)), Outbound.MEDIA)
                    pending.clear()
                self._twilio(mark_message(self.stream_sid, item.name), Outbound.MARK)
        if pending:
            self._twilio(media_message(self.stream_sid, bytes(pending)), Outbound.MEDIA)
        self._settle_resolved()

    def _settle_resolved(self) -> None:
        resolved, self.playout.resolved = self.playout.resolved, []
        last_prompt_heard = False
        for token, ok in resolved:
            if self._ending is not None and token == self._ending.token:
                last_prompt_heard = True
            elif token == self._hold_token and self._holds:
                self._hold_more()  # still waiting: one more period of the hold tone
            elif token >= 0:
                self._actions.append(Settle(token, ok))
        if last_prompt_heard and self._ending is not None:
            self._close(self._ending.code, self._ending.reason)

    def _after_playout_change(self, now: float) -> None:
        self._release()
        if self.turn.log_pending and not self.playout.agent_audible:
            self._finish_turn_log()
        if self.turn.open and not self.playout.agent_audible:
            self.stall.agent_quiet(now, turn_open=True)
        self._resume_hold()
        if self.state is not CallState.ENDED:
            self._check_goodbye(now)

    def _check_goodbye(self, now: float) -> None:
        watch = self._goodbye
        # Extended Thinking's IN_PROGRESS: the agent works on and will speak again, unless what
        # it waits for is one of our tools (a transfer announced before its call).
        still_working = self.turn.working and not self._tools_running
        if watch is not None and watch.heard(now, self.playout.idle, still_working):
            self._goodbye = None
            self._actions.append(Settle(watch.token, True))

    def _finish_with_prompt(self, outcome: str, reason: str, prompt: str, now: float) -> None:
        """Silence the agent, play `prompt` to the caller, close once it has been heard."""
        if self.state in (CallState.ENDING, CallState.ENDED):
            return
        self._set_outcome(outcome, reason)
        if self.playout.agent_audible:
            self._silence_agent()
        self.to_caller.reset()
        self._move(CallState.ENDING)
        self._cancel_tools()
        if self._goodbye is not None:
            self._actions.append(Settle(self._goodbye.token, False))
            self._goodbye = None
        self.record.say("system", prompt.replace("_", " "))
        self.record.end_turn()
        token = self._new_token()
        self._ending = _Ending(token, now + self.config.final_prompt_timeout_s, 1000, reason)
        self.playout.hold_mulaw(self.config.prompts.get(prompt, b""), Source.PROMPT)
        self.playout.hold_marker(token)
        self._release()

    def _refuse(self, reason: str, code: int, outcome: str) -> None:
        self._set_outcome(outcome, f"refused: {reason}")
        if code != 1000:
            self.log.warning("stream refused: %s", reason)
            self.tally.inc("refused", outcome)
        self._close(code, reason)

    def _end_now(self, outcome: str, reason: str, code: int) -> None:
        self._set_outcome(outcome, reason)
        self._close(code, reason if code != 1000 else "call ended")

    def _close(self, code: int, reason: str) -> None:
        if self.state is CallState.ENDED:
            return
        self._move(CallState.ENDED)
        self._finish_turn_log()
        self._cancel_tools()
        if self._goodbye is not None:
            self._actions.append(Settle(self._goodbye.token, False))
            self._goodbye = None
        self._end_hold()
        self.playout.drop_all()
        self._settle_resolved()  # every waiter still held learns it will not be heard
        self.record.agent_audio_heard_ms = self.playout.heard_ms
        self.record.end_reason = self.record.end_reason or "twilio socket closed"
        if self.record.malformed > MALFORMED_LOGGED:  # the lines in between were not logged
            skipped = self.record.malformed
            self.log.warning("%d bad messages skipped on this stream in all", skipped, extra={"malformed": skipped})
        self._actions.append(CloseStream(code, reason.encode()[:120].decode(errors="ignore")))  # a close reason fits 123 bytes

    def _cancel_tools(self) -> None:
        if self._tools_running:
            self._actions.append(CancelTools(tuple(sorted(self._tools_running))))
            self._tools_running.clear()
        self._hold_due.clear()
        self._holding_for.clear()

    def _tool_over(self, call_id: str) -> None:
        """A tool ended (result, cancellation): its hold tone, if it had started, stops."""
        self._hold_due.pop(call_id, None)
        if call_id in self._holding_for:
            self._holding_for.discard(call_id)
            self._drop_hold()

    # --- helpers --------------------------------------------------------------------------

    def _at(self, now: float) -> None:
        """Every input carries the time; the record keeps the call's own clock from it."""
        self.record.set_clock(int((now - self._created_at) * 1000))

    def _move(self, new: CallState) -> None:
        self.state = move(self.state, new)

    def _set_outcome(self, outcome: str, reason: str) -> None:
        if not self.record.end_reason:
            self.outcome, self.record.end_reason = outcome, reason

    def _twilio(self, text: str, kind: Outbound) -> None:
        self._actions.append(SendTwilio(text, kind))

    def _gemini(self, message: GeminiMessage) -> None:
        self._actions.append(SendGemini(message))

    def _new_token(self) -> int:
        token = self._own_tokens
        self._own_tokens -= 1
        return token

    def _malformed(self, kind: str, detail: str) -> None:
        self.record.malformed = self.inbound.bad_message(self._last_twilio_at)
        self.tally.inc("malformed", kind)
        if self.record.malformed <= MALFORMED_LOGGED or self.record.malformed % 100 == 0:  # never flood the log
            self.log.warning("bad message skipped (%s): %s", kind, detail[:200], extra={"malformed": self.record.malformed})
