"""The call core: every decision about one phone call, and no I/O.

Like h11's `Connection`, a `Call` is a plain object. The driver feeds it what happened -
a frame from Twilio, an event from Gemini, a tool's result, the time - and takes back what to
do, as `Action` values: send this to Twilio, send this to Gemini, run or cancel this tool,
settle this waiter, close the stream. It never awaits, never touches a socket, never reads
the clock or the settings, so every ordering of inputs can be replayed in a unit test.

This module holds the call's life (`CallState`), time, limits and the ending; the Twilio side
is `caller_side.CallerSide`, the Gemini side `agent_side.AgentSide`, what tools ask of the call
`tool_side.ToolSide`. The parts they work on, one job each:
- `inbound`: bad messages, floods and rate limits;  `caller_audio`: the caller's audio
  decoded, resampled and framed for Gemini;  `twilio_out` and `playout`: what the caller
  hears, paced and batched;  `turn`: the agent's reply and the caller's turn;  `tools` and
  `hold`: running tools and the hold tone;  `goodbye`: when a goodbye was heard;  `stall`:
  a model gone silent;  `silence`: a caller gone silent;  `keypad`: digits typed for a tool.
- barge-in: `AgentSide._barge_in()`, on Gemini's `interrupted` or when the caller talks over
  agent audio that is held here or still playing at Twilio (local voice detection).

    call = Call(CallConfig(...), now=0.0)
    call.twilio_frame('{"event": "start", ...}', now=0.01)
    for action in call.take_actions(): ...
"""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any

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
from telephony.call.agent_side import AgentSide
from telephony.call.caller_audio import CallerAudioPath
from telephony.call.caller_side import MALFORMED_LOGGED, CallerSide
from telephony.call.goodbye import GoodbyeWatch
from telephony.call.hold import HoldTone
from telephony.call.inbound import InboundGuard
from telephony.call.keypad import KeypadCollector
from telephony.call.nudges import (
    CONTINUE_NUDGE,
    DTMF_TEXT,
    RECONNECT_NUDGE,
    SILENCE_CHECK_IN,
    SILENCE_GOODBYE,
    STALL_NUDGE,
    TIME_NOTICE,
)
from telephony.call.playout import Source
from telephony.call.record import CallRecord
from telephony.call.rules import CallConfig, CallLimits
from telephony.call.silence import Silence, SilenceRules, SilenceWatch
from telephony.call.stall import StallWatch
from telephony.call.state import CallState, Ending, IllegalTransition, move
from telephony.call.tally import Tally
from telephony.call.tool_side import ToolSide
from telephony.call.tools import ToolsInFlight
from telephony.call.turn import AgentTurn, CallerTurn
from telephony.call.twilio_out import TwilioOut
from telephony.call.voicemail import VoicemailSide
from telephony.call.voicemail_rules import VoicemailState
from telephony.gemini.messages import GeminiMessage, RealtimeText

log = logging.getLogger(__name__)

__all__ = [
    "CONTINUE_NUDGE", "DTMF_TEXT", "RECONNECT_NUDGE", "STALL_NUDGE", "Action", "Call", "CallConfig", "CallState", "CancelTools",
    "CloseStream", "IllegalTransition", "OpenAgent", "RestartAgent", "RunTool", "SendGemini", "SendTwilio", "Settle",
]  # fmt: skip


class Call(CallerSide, AgentSide, ToolSide, VoicemailSide):
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
        self.outcome = "completed"
        self._actions: list[Action] = []
        self._turn_away: tuple[str, str] | None = None
        self._created_at = self._started_at = self._last_twilio_at = now
        self._own_tokens = itertools.count(-1, -1)  # tokens the core makes for itself are negative
        self.inbound = InboundGuard(
            config.malformed_limit, config.malformed_per_second, config.max_dtmf_per_second, config.media_rate_limit
        )
        self.caller = CallerAudioPath(config)
        self.caller_turn = CallerTurn()
        self.out = TwilioOut(config, self.record, self.tally, self._actions.append)
        self.playout = self.out.playout
        self.turn = AgentTurn()
        """The agent's reply being spoken (`telephony.call.turn`)."""
        self.tools = ToolsInFlight(config.hold_after_s, config.tools_without_hold)
        # Not a bound method: a part that points back at the call makes a reference cycle, and the
        # call's objects would wait for the cyclic collector instead of going when the call does.
        self.hold = HoldTone(self.playout, functools.partial(next, self._own_tokens))
        self.stall = StallWatch(config.stall)
        self.keypad = KeypadCollector()
        """Digits a tool asked for, kept from the model (`telephony.call.keypad`)."""
        self.voicemail = VoicemailState(config.voicemail)
        """An answering machine on an outbound call (`telephony.call.voicemail`)."""
        self.silence = SilenceWatch(config.silence)
        """A caller silent on their turn: checked on, then said goodbye to (`telephony.call.silence`)."""
        self.max_call_s = config.max_call_s
        self._time_notice_due = config.time_notice_s > 0 and config.max_call_s > 2 * config.time_notice_s
        self._goodbye: GoodbyeWatch | None = None
        self._ending: Ending | None = None

    # --- what the driver reads ------------------------------------------------------------

    def take_recording(self) -> bytes:
        """Stereo PCM16 8 kHz (caller left, agent right) since the last take; b"" if off."""
        return self.out.stereo.take() if self.out.stereo is not None else b""

    def take_actions(self) -> list[Action]:
        actions = self._actions[:]
        self._actions.clear()  # the list itself is shared with `out`
        return actions

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick()` has something to decide."""
        # Asked after every input (60 times a second in a call), so written for speed: no
        # list, no `min()`, each part asked only where it can be due.
        state = self.state
        if state is CallState.ENDED:
            return None
        config = self.config
        if state is CallState.AWAITING_START:
            return self._created_at + config.start_timeout_s
        soonest = self._last_twilio_at + config.idle_timeout_s
        if state is not CallState.ENDING:
            ends = self._started_at + self.max_call_s
            if self._time_notice_due:
                ends -= config.time_notice_s  # the notice comes before the end
            if ends < soonest:
                soonest = ends
        if self._ending is not None and self._ending.deadline < soonest:
            soonest = self._ending.deadline
        if self._goodbye is not None:
            soonest = min(soonest, *self._goodbye.deadlines())
        active = state is CallState.ACTIVE
        for at in (
            self.stall.deadline() if active else None,
            self.silence.deadline() if active else None,
            self.tools.deadline(),
            self.keypad.deadline(),
            self.voicemail.until,
        ):
            if at is not None and at < soonest:
                soonest = at
        return soonest

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def stream_sid(self) -> str:
        return self.out.stream_sid

    # --- inputs: limits and the end --------------------------------------------------------

    def use_limits(self, limits: CallLimits, now: float) -> None:
        """The call's agent has limits of its own (silence, length) over the server's."""
        self._at(now)
        rules = self.silence.rules
        self.silence.rules = SilenceRules(
            reprompt_s=rules.reprompt_s if limits.silence_reprompt_s is None else limits.silence_reprompt_s,
            hang_up_s=rules.hang_up_s if limits.silence_hang_up_s is None else limits.silence_hang_up_s,
            goodbye_max_s=rules.goodbye_max_s,
        )
        if limits.voicemail is not None:
            self.voicemail.rules = limits.voicemail
        if limits.max_call_s is not None:
            self.max_call_s = limits.max_call_s
            notice_s = self.config.time_notice_s
            self._time_notice_due = notice_s > 0 and self.max_call_s > 2 * notice_s and now < self._started_at + self.max_call_s - notice_s

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
        if self.state is not CallState.ENDING and now >= self._started_at + self.max_call_s:
            self.log.warning("call time limit reached")
            self._finish_with_prompt("time_limit", f"call reached its {self.max_call_s:.0f} s limit", "apology_closing", now)
            return
        if self._time_notice_due and now >= self._started_at + self.max_call_s - self.config.time_notice_s:
            self._time_notice_due = False
            if self.state is CallState.ACTIVE:
                self.log.info("call time limit in %.0f s: the caller is told", self.config.time_notice_s)
                self._gemini(RealtimeText(TIME_NOTICE))
        if (timed_out := self.keypad.tick(now)) is not None:
            self._keypad_done(timed_out)
        for digit in self.keypad.release(now):  # not for a keypad tool after all
            self._keypad_to_model(digit)
        if self.state is CallState.ACTIVE:
            self._voicemail_tick(now)
            if self.ended:
                return
            self._on_silence(self.silence.tick(now), now)
            self._on_stall(self.stall.tick(now), now)
            for _ in range(self.tools.now_slow(now)):  # a slow tool: the caller hears the hold tone (into silence)
                self._add_hold()
        self._check_goodbye(now)

    # --- decisions ------------------------------------------------------------------------

    def _add_hold(self) -> None:
        """One more reason for the hold tone (a slow tool, a stalled model)."""
        if self.hold.add(self._hold_may_play()):
            self._release()

    def _resume_hold(self) -> None:
        if self.hold.resume(self._hold_may_play()):
            self._release()

    def _hold_may_play(self) -> bool:
        # Never over the caller typing digits for a tool: the tone would hide their key presses' feedback.
        return self.state is CallState.ACTIVE and (not self.turn.open or self.stall.holding) and not self.keypad.collecting

    def _release(self) -> None:
        last_prompt_heard = False
        for token, ok in self.out.release():
            if self._ending is not None and token == self._ending.token:
                last_prompt_heard = True
            elif self.hold.period_heard(token):
                self.hold.play_period()  # still waiting: one more period of the hold tone
                self._release()
            elif token >= 0:
                self._actions.append(Settle(token, ok))
        if last_prompt_heard and self._ending is not None:
            self._close(self._ending.code, self._ending.reason)

    def _on_silence(self, decision: Silence | None, now: float) -> None:
        """The silence watch's decision, as actions (see `telephony.call.silence`)."""
        if decision is Silence.CHECK_IN:
            self.log.info("the caller is silent: the agent checks in", extra={"silence": "check_in"})
            self._gemini(RealtimeText(SILENCE_CHECK_IN))
        elif decision is Silence.SAY_GOODBYE:
            self.log.info("the caller is still silent: the agent says goodbye", extra={"silence": "goodbye"})
            self._gemini(RealtimeText(SILENCE_GOODBYE))
        elif decision is Silence.HANG_UP:
            rules = self.silence.rules
            self._end_now("silence", f"the caller said nothing ({rules.reprompt_s + rules.hang_up_s:.0f} s)", 1000)

    def _after_playout_change(self, now: float) -> None:
        self._release()
        if (
            self.state is CallState.ACTIVE
            and not self.playout.agent_audible
            and not self.turn.open
            and not self.turn.working
            and not self.tools.running
        ):
            self._voicemail_heard()
            if not self.ended:
                self._on_silence(self.silence.agent_done(now), now)
            if self.ended:  # the message was left, or the caller's silence ended the call
                return
        if self.turn.log_pending and not self.playout.agent_audible:
            self.turn.played_out(self.record, self.log)
        if self.turn.open and not self.playout.agent_audible:
            self.stall.agent_quiet(now, turn_open=True)
        self._resume_hold()
        if self.state is not CallState.ENDED:
            self._check_goodbye(now)

    def _check_goodbye(self, now: float) -> None:
        watch = self._goodbye
        # Extended Thinking's IN_PROGRESS: the agent works on and will speak again, unless what
        # it waits for is one of our tools (a transfer announced before its call).
        still_working = self.turn.working and not self.tools.running
        if watch is not None and watch.heard(now, self.playout.idle, still_working):
            self._goodbye = None
            self._actions.append(Settle(watch.token, True))

    def _release_goodbye(self) -> None:
        """The goodbye will not be heard (the caller talked over it, the call ends)."""
        if self._goodbye is not None:
            self._actions.append(Settle(self._goodbye.token, False))
            self._goodbye = None

    def _finish_with_prompt(self, outcome: str, reason: str, prompt: str, now: float) -> None:
        """Silence the agent, play `prompt` to the caller, close once it has been heard."""
        if self.state in (CallState.ENDING, CallState.ENDED):
            return
        self._set_outcome(outcome, reason)
        if self.playout.agent_audible:
            self.out.clear()
        self.out.drop_agent_tail()
        self._move(CallState.ENDING)
        self._cancel_tools()
        self._release_goodbye()
        self.record.say("system", prompt.replace("_", " "))
        self.record.end_turn()
        token = self._new_token()
        self._ending = Ending(token, now + self.config.final_prompt_timeout_s, 1000, reason)
        self.playout.hold(self.config.prompts.get(prompt, b""), Source.PROMPT)
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
        self.turn.played_out(self.record, self.log)
        self._cancel_tools()
        self._release_goodbye()
        if (cancelled := self.keypad.cancel()) is not None:
            self._actions.append(cancelled)
        self.hold.end()
        self.playout.drop_all()
        self._release()  # every waiter still held learns it will not be heard
        self.record.agent_audio_heard_ms = self.playout.heard_ms
        self.record.end_reason = self.record.end_reason or "twilio socket closed"
        if self.record.malformed > MALFORMED_LOGGED:  # the lines in between were not logged
            skipped = self.record.malformed
            self.log.warning("%d bad messages skipped on this stream in all", skipped, extra={"malformed": skipped})
        self._actions.append(CloseStream(code, reason.encode()[:120].decode(errors="ignore")))  # a close reason fits 123 bytes

    def _cancel_tools(self) -> None:
        if ids := self.tools.cancel_all():
            self._actions.append(CancelTools(ids))

    # --- helpers --------------------------------------------------------------------------

    def _at(self, now: float) -> None:
        """Every input carries the time; the record keeps the call's own clock from it."""
        self.record.set_clock(int((now - self._created_at) * 1000))

    def _move(self, new: CallState) -> None:
        self.state = move(self.state, new)

    def _set_outcome(self, outcome: str, reason: str) -> None:
        if not self.record.end_reason:
            self.outcome, self.record.end_reason = outcome, reason

    def _gemini(self, message: GeminiMessage) -> None:
        self._actions.append(SendGemini(message))

    def _new_token(self) -> int:
        return next(self._own_tokens)
