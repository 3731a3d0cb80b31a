"""The Twilio side of the call core: frames from the caller's stream, checked and turned
into the call's life (start, hang-up), the caller's audio for Gemini, keypad digits and the
marks that say what the caller has heard.

`Call` (in `core`) is made of this side and the Gemini side (`agent_side`); both work on the
same parts, so this class only declares what it uses from the rest of the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telephony.audio.mulaw import decode_mulaw
from telephony.call.actions import OpenAgent
from telephony.call.caller_audio import SPEECH_STARTED
from telephony.call.keypad import MASK
from telephony.call.mark_ledger import MarkOutcome
from telephony.call.nudges import DTMF_TEXT
from telephony.call.parts import CallParts
from telephony.call.playout import Source
from telephony.call.state import CallState
from telephony.gemini.messages import RealtimeText
from telephony.logs import mask_number
from telephony.twilio.media_streams import (
    TOKEN_PARAMETER,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    TwilioProtocolError,
    UnknownEvent,
    check_media_format,
    media_payload,
    parse_message,
)

if TYPE_CHECKING:
    from telephony.call.inbound import InboundGuard
    from telephony.call.keypad import KeypadResult

PHONE_PARAMETERS = ("caller", "called")
"""Stream parameters that hold phone numbers (masked in the log)."""
MALFORMED_LOGGED = 20
"""Bad messages logged one by one per stream; then every 100th, and a summary at the end."""


class CallerSide(CallParts):
    if TYPE_CHECKING:  # what this side uses beyond the shared parts (`parts.CallParts`)
        admitted: bool
        inbound: InboundGuard
        _turn_away: tuple[str, str] | None
        _started_at: float
        _last_twilio_at: float

        @property
        def ended(self) -> bool: ...
        @property
        def stream_sid(self) -> str: ...
        def _barge_in(self, source: str) -> None: ...
        def _refuse(self, reason: str, code: int, outcome: str) -> None: ...
        def _end_now(self, outcome: str, reason: str, code: int) -> None: ...
        def _keypad_done(self, result: KeypadResult) -> None: ...
        def _voicemail_frame(self, pcm8k: bytes, now: float) -> None: ...
        def _listen_for_beep(self) -> None: ...

    def twilio_frame(self, raw: str | bytes, now: float) -> None:
        """One WebSocket frame from Twilio."""
        self._at(now)
        if self.state is CallState.ENDED:
            return
        self._last_twilio_at = now
        if isinstance(raw, bytes):
            self._malformed("binary_frame", f"binary frame of {len(raw)} bytes")
        elif self.state is not CallState.AWAITING_START and (payload := media_payload(raw, self.stream_sid)) is not None:
            self._caller_media(payload, now)  # the 50 frames a second, read the short way
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
        started = self.state is not CallState.AWAITING_START
        if isinstance(message, Media):
            if started and message.stream_sid != self.stream_sid:
                self._malformed("wrong_stream", "media for another stream")
            elif started:
                self._caller_media(message.media.payload, now)
            else:
                self._malformed("before_start", "media before start")
        elif isinstance(message, Mark):
            if self.playout.mark_echoed(message.mark.name) is MarkOutcome.UNKNOWN:
                self._malformed("unknown_mark", "a mark we never sent")
            self._after_playout_change(now)
        elif isinstance(message, Dtmf):
            if not started:
                self._malformed("before_start", "dtmf before start")
            elif self.inbound.dtmf_flood(now):
                self._malformed("dtmf_flood", f"more than {self.config.max_dtmf_per_second} keypad digits in a second")
            else:
                digit = message.dtmf.digit
                self.silence.caller_spoke()
                if self.keypad.collecting:  # for a tool: never the model's, nor the transcript's
                    self.record.say("keypad", MASK)
                    self.record.end_turn()
                    if (done := self.keypad.press(digit)) is not None:
                        self._keypad_done(done)
                elif self.keypad.grace_s > 0:  # a keypad tool call may be on its way for it
                    self.keypad.hold(digit, now)
                else:
                    self._keypad_to_model(digit)
        elif isinstance(message, Start):
            if started:
                self._malformed("second_start", "second start on one stream")
            else:
                self._start(message, now)
        elif isinstance(message, Stop):
            if started and self.moving_to is not None:  # our own transfer took the call off the stream
                self._end_now("transferred", self.moving_to, 1000)
            elif started:
                self._end_now("completed", "caller hung up", 1000)
            else:
                self._end_now("no_start", "refused: stop before start", 1000)
        elif isinstance(message, UnknownEvent):
            # Twilio may add events; one now and then is skipped, a stream of them is abuse.
            self._malformed("unknown_event", f"unknown event {message.event[:40]!r}")

    shared_refusal: tuple[str, str] | None = None
    """What the shared store said of this stream's `start` (another worker or instance has its
    token or its CallSid), given before the `start` itself."""

    def shared_admission(self, refusal: tuple[str, str] | None, now: float) -> None:
        self.shared_refusal = refusal

    moving_to: str | None = None
    """Set while a transfer moves the call off this stream: why its `stop` came."""

    def moving_off(self, reason: str | None) -> None:
        """A transfer is moving the call elsewhere (`reason`, e.g. "transferred to +1555..."):
        the `stop` that follows is that, not a hang-up. None: the move failed after all."""
        self.moving_to = reason

    def _start(self, start: Start, now: float) -> None:
        details = start.start
        self.out.stream_sid = start.stream_sid
        self.record.call_sid, self.record.stream_sid = details.call_sid, start.stream_sid
        params = {k: v for k, v in details.custom_parameters.items() if k != TOKEN_PARAMETER}
        self.record.parameters = params
        if hasattr(self.log, "bind"):
            self.log.bind(details.call_sid, start.stream_sid)
        try:
            self.caller.wideband = check_media_format(start, self.config.accept_wideband)
        except TwilioProtocolError as exc:
            self._refuse(str(exc), 1003, "refused")
            return
        admit = self.config.admit_stream
        refusal = self.shared_refusal or (admit(details.call_sid, details.custom_parameters.get(TOKEN_PARAMETER)) if admit else None)
        if refusal is not None:
            kind, reason = refusal
            self._refuse(reason, 1008, kind)
            return
        self.admitted = True
        self._started_at = now
        self._move(CallState.CONNECTING)
        if params.get("direction") == "outbound-api":  # `telephony dial`: it may be a machine that answered
            self._listen_for_beep()
        if self._turn_away is not None:
            reason, prompt = self._turn_away
            self._finish_with_prompt("turned_away", reason, prompt, now)
            return
        logged = params if self.config.log_phone_numbers else {k: mask_number(v) if k in PHONE_PARAMETERS else v for k, v in params.items()}
        self.log.info("call started", extra={"parameters": logged})
        notice = self.config.prompts.get("recording_notice") if self.config.record_audio and self.config.recording_notice else None
        if notice:
            self.playout.hold(notice, Source.PROMPT)  # before anything the agent says
            self._release()
        self._actions.append(OpenAgent(params))

    def _caller_media(self, payload: bytes, now: float) -> None:
        if not payload or len(payload) > self.config.max_payload_bytes:
            self._malformed("bad_payload_size", f"media payload of {len(payload)} bytes")
            return
        if self.inbound.media_too_fast(self.caller.ms_in(payload), now, self._started_at):
            self._malformed("media_too_fast", f"caller audio faster than {self.config.media_rate_limit:g}x real time")
            return
        self.record.frames_in += 1
        self.tally.frames_in += 1
        if self.voicemail.detector is not None and not self.caller.wideband:  # the machine's own audio, before it is muted
            self._voicemail_frame(decode_mulaw(payload), now)
        muted = self.keypad.collecting or self.voicemail.muted
        # Quiet frames may wait for a bigger block unless an answer to the caller is due: then
        # Gemini's voice detection needs each 20 ms of their silence to end their turn.
        quiet_may_wait = self.state is CallState.ACTIVE and self.caller.voice is not None and not self.stall.answer_due
        frame = self.caller.feed(payload, mute=muted, quiet_may_wait=quiet_may_wait)
        if self.out.stereo is not None:
            self.out.stereo.caller(frame.pcm8k)
        # A machine recording the agent's message (its beep, its line noise) never cuts it off.
        may_barge_in = self.state is CallState.ACTIVE and self.playout.agent_audible and not self.voicemail.muted
        for item in frame.out:
            if item == SPEECH_STARTED:
                if may_barge_in:
                    self._barge_in("caller")
            else:
                self._gemini(item)
        voice = self.caller.voice
        for update in frame.updates:
            if update.started and voice is not None:
                self.caller_turn.started_at = now - voice.onset_ms / 1000
                self.stall.caller_started()
                self.silence.caller_spoke()
            if update.barged_in and may_barge_in:
                self._barge_in("caller")
            if update.ended:
                self.caller_turn.spoke_last = True
                self._caller_turn_ended(now)
            if update.started and self.hold.reasons:
                self.hold.end()

    def _caller_turn_ended(self, now: float) -> None:
        silence_s = self.caller.voice.silence_ms / 1000 if self.caller.voice is not None else 0.0
        stopped_at = self.caller_turn.stopped_at = now - silence_s
        turn = self.turn
        if turn.started_at is not None and turn.started_at >= stopped_at:
            # The answer began before our voice detection saw the end of the speech (it waits
            # for the same silence as Gemini's, and a short answer may be generated whole by
            # then): it is the answer, and its wait counts from there.
            if turn.latency_ms is None:
                turn.latency_ms = (turn.started_at - stopped_at) * 1000
            self.caller_turn.spoke_last = False
        self.stall.caller_ended(stopped_at)
        if (began := self.caller_turn.started_at) is not None:
            took_s = max(0.0, stopped_at - began)
            ended_ms = self.record.elapsed_ms() - silence_s * 1000
            self.record.heard("caller", ended_ms - took_s * 1000, ended_ms)
            self.log.info("caller turn: %.1f s of speech", took_s, extra={"turn": "caller", "duration_ms": round(took_s * 1000)})
        self.caller_turn.started_at = None

    def _keypad_to_model(self, digit: str) -> None:
        self.record.say("keypad", digit)
        self.record.end_turn()
        self._gemini(RealtimeText(DTMF_TEXT.format(digit=digit)))

    def _malformed(self, kind: str, detail: str) -> None:
        self.record.malformed = self.inbound.bad_message(self._last_twilio_at)
        self.tally.inc("malformed", kind)
        if self.record.malformed <= MALFORMED_LOGGED or self.record.malformed % 100 == 0:  # never flood the log
            self.log.warning("bad message skipped (%s): %s", kind, detail[:200], extra={"malformed": self.record.malformed})
