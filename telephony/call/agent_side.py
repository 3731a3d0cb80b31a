"""The Gemini side of the call core: what the model's events do to the call, and barge-in.

`Call` (in `core`) is made of this side and the Twilio side; both work on the same parts
(the agent's `turn`, `out` to the caller, the `stall` watch, the `hold` tone), so this class
only declares what it uses from the rest of the call. Where barge-in happens: `_barge_in`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telephony.call.actions import CancelTools, RestartAgent, RunTool
from telephony.call.nudges import CONTINUE_NUDGE, RECONNECT_NUDGE, STALL_NUDGE
from telephony.call.parts import CallParts
from telephony.call.stall import Escalate, HoldOn, Recovered, Step
from telephony.call.state import CallState
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
from telephony.gemini.messages import RealtimeText

if TYPE_CHECKING:
    from telephony.call.goodbye import GoodbyeWatch


class AgentSide(CallParts):
    if TYPE_CHECKING:  # what this side uses beyond the shared parts (`parts.CallParts`)
        _goodbye: GoodbyeWatch | None

        def _release_goodbye(self) -> None: ...
        def _add_hold(self) -> None: ...

    def agent_ready(self, now: float) -> None:
        """The Gemini session is open."""
        self._at(now)
        if self.state is CallState.CONNECTING:
            self._move(CallState.ACTIVE)
            self.silence.begin(now)
            took_ms = (now - self._started_at) * 1000
            self.record.connections.append({"kind": "connect", "at_ms": self.record.elapsed_ms() - took_ms, "took_ms": took_ms})

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
            self.turn.stop()
            self.stall.agent_working(False)
            self.stall.interrupted(now, caller_speaking=self.caller.voice is not None and self.caller.voice.speaking)
        elif isinstance(event, TurnComplete):
            self._turn_complete(event, now)
        elif isinstance(event, InputTranscript):
            self.record.say("caller", event.text)
            self.stall.caller_heard()
        elif isinstance(event, VoiceActivity):
            if not event.started:
                self.stall.caller_heard()
            elif self.caller.voice is None:  # no voice detection of our own: Gemini's says the caller speaks
                self.silence.caller_spoke()
        elif isinstance(event, GenerationComplete):
            self.stall.generation_complete()
        elif isinstance(event, OutputTranscript):
            if not self.turn.discarding and self.state is not CallState.ENDING:
                self.turn.line = self.record.say("agent", event.text) or self.turn.line
                self.stall.agent_transcript()
        elif isinstance(event, ToolCall):
            if self.state in (CallState.CONNECTING, CallState.ACTIVE):
                self.tools.started(event, now)
                self.stall.tools_running(True)
                self.silence.agent_busy()
                self.log.info("tool call %s", event.name, extra={"tool_args": event.args})
                self._actions.append(RunTool(event))
        elif isinstance(event, ToolCallCancelled):
            # The caller interrupted the turn that made these calls ("Bye!" - "Wait!"): a
            # running tool, or what an answered one still had to do (hang up), must stop.
            for _ in range(self.tools.cancelled(event.ids)):
                self.hold.drop()
            self.stall.tools_running(bool(self.tools.running))
            self._actions.append(CancelTools(tuple(event.ids)))
            self.log.info("tool calls cancelled by the caller's interruption", extra={"ids": list(event.ids)})
        elif isinstance(event, Reconnected):
            self._reconnected(event)
        elif isinstance(event, Usage):
            self.record.add_usage(event.counts())
        elif isinstance(event, GoAway):
            self.log.info("Gemini goAway: switching connection (%.1f s left)", event.time_left_s)
        elif isinstance(event, SessionClosed):
            self.record.errors.append(f"gemini closed {event.code}: {event.reason}")
            self.log.error("Gemini session lost for good: %s %s", event.code, event.reason)
            self._finish_with_prompt("gemini_failed", f"gemini failed: {event.code} {event.reason}", "apology_trouble", now)

    def _reconnected(self, event: Reconnected) -> None:
        took_ms = event.took_s * 1000
        kind = "resumed" if event.resumed else "fresh"
        self.record.connections.append(
            {"kind": kind, "at_ms": self.record.elapsed_ms() - took_ms, "took_ms": took_ms, "reason": event.reason}
        )
        # Whatever the old connection left half-said is played out, not kept.
        if self.state is not CallState.ENDING:
            self.out.agent_done()
            self._release()
        cut_off = self.turn.open and not self.turn.discarding and self.turn.audio_ms > 0
        heard = self.turn.line.text if cut_off and self.turn.line is not None else ""
        self.turn.stop()
        self.record.end_turn()
        self.record.reconnects += 1
        if self.stall.current is not None:
            pass  # a stall's recovery: its own nudge is already on its way
        elif self.state is CallState.ACTIVE and self.caller_turn.spoke_last and not event.replayed_speech_s:
            self._gemini(RealtimeText(RECONNECT_NUDGE))  # their words are lost with the old connection
        elif self.state is CallState.ACTIVE and cut_off:
            said = f'; the caller last heard you say: "{heard[-300:]}"' if heard else ""
            self._gemini(RealtimeText(CONTINUE_NUDGE.format(heard=said)))
        self.tally.inc("gemini_reconnects", "resumed" if event.resumed else "fresh")
        self.log.warning(
            "Gemini session reconnected",
            extra={
                "resumed": event.resumed,
                "reason": event.reason,
                "attempts": event.attempts,
                "replayed_speech_s": round(event.replayed_speech_s, 2),
            },
        )

    def _turn_complete(self, event: TurnComplete, now: float) -> None:
        """The model ended a turn. On Extended Thinking an IN_PROGRESS turn is a filler
        before background work: it is played like any speech, but the agent's turn is not
        over (a goodbye or a transfer announcement is waited for until IDLE)."""
        self.turn.discarding = False
        if self.turn.open and self.turn.audio_ms:
            # Generated is not heard: the turn is logged once played out, or cut by a barge-in.
            self.turn.log_pending = True
        if self.state is not CallState.ENDING:
            self.out.agent_done()
        had_audio = self.turn.open
        self.turn.open = False
        self.turn.working = not event.final
        self.stall.agent_working(self.turn.working)
        if event.final:
            self.silence.agent_replied()
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
            self.silence.agent_busy()
            if self.voicemail.phase == "leaving":
                self.voicemail.spoke = True  # the message, to the machine
        decisions = self.stall.agent_audio(now, len(pcm24k) / 48)
        self.caller.agent_answered()
        if decisions:
            self._on_stall(decisions, now)
            if self.turn.discarding:
                return  # the stall was this audio (a tone): it is not played
        stopped_at = self.caller_turn.stopped_at
        answering = self.caller_turn.spoke_last and stopped_at is not None
        self.caller_turn.spoke_last = False
        if self.hold.token is not None:
            self.hold.pause()  # the agent speaks (a NON_BLOCKING tool runs on): no hold tone over it
        if not self.turn.open:
            self.turn.played_out(self.record, self.log)
            # Our side of the caller's wait: from the end of their speech to the reply's first audio here.
            latency_ms = (now - stopped_at) * 1000 if answering and stopped_at is not None else None
            position_ms = self.playout.ledger.sent_ms + self.playout.held_agent_ms
            # Heard from when what is ahead of it has played (sent and held audio of earlier turns).
            heard_from_ms = self.record.elapsed_ms() + max(0.0, position_ms - self.playout.heard_ms)
            self.turn.begin(now, latency_ms, position_ms, heard_from_ms)
        self.turn.audio_ms += len(pcm24k) / 48
        self.record.agent_audio_ms += len(pcm24k) / 48
        if self._goodbye is not None:
            self._goodbye.agent_audio(now)
        self.out.agent_audio(pcm24k)
        self._release()

    def _on_stall(self, decisions: list[Escalate | HoldOn | Recovered], now: float) -> None:
        """The stall watch's decisions, as actions (see `telephony.call.stall`)."""
        for decision in decisions:
            if isinstance(decision, HoldOn):
                self._add_hold()
            elif isinstance(decision, Recovered):
                stall = decision.stall
                if self.stall.stop_holding():
                    self.hold.drop()
                kind, step, silence_s = stall.kind.value, stall.step.name.lower(), (stall.recovered_after_ms or 0.0) / 1000
                silence_ms = stall.recovered_after_ms or 0
                at_ms = self.record.elapsed_ms() - silence_ms
                self.record.stalls.append({"kind": kind, "answered_at": step, "silence_ms": stall.recovered_after_ms, "at_ms": at_ms})
                self.record.say("system", f"the model went silent ({kind}); back after a {step} ({silence_s:.1f} s of silence)")
                self.record.end_turn()
                self.log.warning(
                    "Gemini stall (%s) recovered by a %s after %.1f s of silence",
                    *(kind, step, silence_s),
                    extra={"stall": kind, "step": step, "silence_ms": stall.recovered_after_ms},
                )
                self.tally.observe("stall_silence", silence_s)
            elif isinstance(decision, Escalate):
                self._escalate(decision.stall.kind.value, decision.stall.step, now)

    def _escalate(self, kind: str, step: Step, now: float) -> None:
        self.tally.inc("stalls", kind, step.name.lower())
        self.log.warning("Gemini stalled (%s): %s", kind, step.name.lower(), extra={"stall": kind, "step": step.name.lower()})
        if step is Step.GIVE_UP:
            self.record.stalls.append({"kind": kind, "answered_at": "gave_up", "silence_ms": None, "at_ms": self.record.elapsed_ms()})
            self._finish_with_prompt("gemini_stalled", f"the model stalled ({kind}) too often", "apology_trouble", now)
            return
        if kind == "tone" and step is Step.NUDGE:
            self.out.clear()  # not speech: the caller hears none of it
            self.turn.discarding = self.turn.open
            self.turn.audio_ms = 0.0
        if step is Step.RESUME:
            self._actions.append(RestartAgent(fresh=False, reason=f"stalled ({kind})"))
        elif step is Step.FRESH:
            self._actions.append(RestartAgent(fresh=True, reason=f"stalled ({kind}), resuming did not help"))
        self._gemini(RealtimeText(STALL_NUDGE))

    def _barge_in(self, source: str) -> None:
        """The caller took the turn: empty Twilio's buffer now, drop what we hold of the reply."""
        turn = self.turn
        if source in ("caller", "machine") and turn.open:
            turn.discarding = True  # Gemini is still sending this reply
        heard_in_turn = max(0.0, self.playout.heard_ms - turn.start_position_ms)
        if turn.audio_ms:
            turn.write_down(self.record, self.log, "interrupted", min(heard_in_turn, turn.audio_ms))
        turn.log_pending = False
        dropped_ms = self.out.clear()
        if turn.audio_ms and turn.line is not None:
            turn.line.cut_to(min(1.0, heard_in_turn / turn.audio_ms))
        turn.line = None
        self.record.interruptions += 1
        self.record.end_turn()
        turn.audio_ms = 0.0
        self.log.info(
            "interrupted (%s) -> clear sent, %.0f ms of held agent audio dropped",
            {"caller": "the caller spoke", "machine": "an answering machine answered"}.get(source, "Gemini"),
            dropped_ms,
            extra={"source": source, "held_dropped_ms": round(dropped_ms)},
        )
        self.tally.inc("barge_ins", source)
        self._release_goodbye()  # "Bye!" - "Wait, one more thing": no hang-up
        self._release()  # our own prompts still held go out
