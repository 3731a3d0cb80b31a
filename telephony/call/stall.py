"""Silent stalls: the model has gone quiet with its socket open, and the caller is waiting.

The most reported Gemini Live failure of 2026 is not a closed socket (the supervisor survives
those) but a session that stays open and says nothing: an empty `turnComplete` after the
caller's words (python-genai #2117), the caller transcribed and then nothing for 50 s
(gemini-live-api-examples #48), a reply that stops mid-sentence (pipecat #4633), a phantom
`interrupted` that wedges the session (python-genai #2333), seconds of tone-like audio while
the transcript has stopped (python-genai #2715).

`StallWatch` notices each of these with a deadline, like every other timer of the call core,
and escalates: a nudge on the same session (realtime text, which never interrupts), then a
resumed connection (the nudge goes with it), then a fresh session seeded with the
conversation; once the silence passes `hold_after_s` the caller hears the hold tone, never
dead air. A call that stalls again and again (`max_per_call`) is ended with an apology
instead of looping. Pure: the call core feeds it and turns its decisions into actions.

Bounds (defaults, `TELEPHONY_STALL_*`): a healthy answer starts 0.6-1 s after the caller's
speech is over as Gemini sees it (Google's published first-audio figures; the realistic
emulator answers in about 0.5 s on loopback), so 2 s of silence after the caller's speech is
a stall; a later nudge costs nothing if the answer was only slow (it is text the model reads,
not an interruption). Each further step waits 1 s for the first audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class StallKind(str, Enum):
    NO_ANSWER = "no_answer"
    """The caller's turn was heard (transcribed) and nothing came back."""
    EMPTY_TURN = "empty_turn"
    """A turn completed with no audio after the caller's turn."""
    MID_SENTENCE = "mid_sentence"
    """The agent's audio stopped mid-turn (played out, no more coming, no turnComplete)."""
    PHANTOM_INTERRUPT = "phantom_interrupt"
    """`interrupted` while the caller was silent, and nothing after it."""
    TONE = "tone"
    """Agent audio goes on while its transcript has stopped: not speech."""


class Step(IntEnum):
    NUDGE = 1
    """Ask for the answer on the same session (realtime text)."""
    RESUME = 2
    """A new connection resuming the session (the nudge goes with it)."""
    FRESH = 3
    """A fresh session seeded with the conversation so far."""
    GIVE_UP = 4
    """The call ends with an apology."""


@dataclass(frozen=True)
class StallRules:
    answer_s: float = 2.0
    """Silence after the caller's speech (or mid-turn, after the agent's last audio was
    heard) that counts as a stall; 0 turns the watch off."""
    step_s: float = 1.0
    """How long each recovery step waits for the agent's first audio before the next."""
    hold_after_s: float = 2.0
    """The caller hears the hold tone once the silence has lasted this long."""
    tone_ms: float = 6000.0
    """Agent audio without any transcript for this long (within one turn) is not speech."""
    max_per_call: int = 3
    """Stalls one call may recover from; the next ends it with an apology."""

    @property
    def on(self) -> bool:
        return self.answer_s > 0


@dataclass
class Stall:
    """One stall of a call, as recorded and counted."""

    kind: StallKind
    silent_since: float
    step: Step = Step.NUDGE
    step_at: float = 0.0
    recovered_after_ms: float | None = None
    """The silence the caller heard, from the end of their speech (or of the agent's last
    audio) to the agent's first audio after recovery; None while it lasts or when given up."""


@dataclass(frozen=True)
class Escalate:
    """Take `stall.step` now (the core turns it into actions)."""

    stall: Stall


@dataclass(frozen=True)
class HoldOn:
    """The silence is long: the hold tone, until the agent speaks."""


@dataclass(frozen=True)
class Recovered:
    stall: Stall


Decision = Escalate | HoldOn | Recovered


class StallWatch:
    """Per call: when is the model late, and what to do about it."""

    def __init__(self, rules: StallRules) -> None:
        self.rules = rules
        self.stalls: list[Stall] = []
        self.current: Stall | None = None
        self._caller_turn = False
        """The caller has spoken since the agent last did: an answer is due."""
        self._waiting_since: float | None = None
        """The caller's speech ended at this time and no answer has started."""
        self._heard = False
        """Gemini has the caller's turn (their words were transcribed)."""
        self._empty_turn = False
        self._phantom = False
        self._quiet_since: float | None = None
        """The agent's turn is open, its audio has all been heard, and nothing more came."""
        self._generation_complete = False
        self._tools = False
        self._working = False
        self._untranscribed_ms = 0.0
        self._holding = False

    # --- what happened --------------------------------------------------------------------

    def caller_started(self) -> None:
        """The caller talks: whatever we were waiting for, their new turn comes first."""
        self._caller_turn = True
        self._waiting_since = None
        self._heard = False
        self._empty_turn = self._phantom = False

    def caller_ended(self, speech_end: float) -> None:
        """Their speech is over (our voice detection). Gemini may have said so already."""
        if self.rules.on and self._caller_turn:
            self._waiting_since = speech_end

    def caller_heard(self) -> None:
        """Gemini transcribed the caller (or its own voice detection ended their turn)."""
        self._heard = True

    def agent_audio(self, now: float, ms: float) -> list[Decision]:
        decisions: list[Decision] = []
        self._caller_turn = False
        self._waiting_since = None
        self._empty_turn = self._phantom = False
        self._quiet_since = None
        self._untranscribed_ms += ms
        stall = self.current
        if stall is not None:  # (a tone's own audio is dropped before it gets here)
            stall.recovered_after_ms = round((now - stall.silent_since) * 1000, 1)
            self.current = None
            decisions.append(Recovered(stall))
        elif stall is None and self.rules.on and self._untranscribed_ms >= self.rules.tone_ms:
            decisions += self._stalled(StallKind.TONE, now, now)
        return decisions

    def agent_transcript(self) -> None:
        self._untranscribed_ms = 0.0

    def agent_quiet(self, now: float, turn_open: bool) -> None:
        """Everything the agent sent has been heard. Mid-turn (no `turnComplete` nor
        `generationComplete` yet) that silence is watched."""
        if turn_open and not self._generation_complete and self._quiet_since is None:
            self._quiet_since = now

    def turn_started(self) -> None:
        self._generation_complete = False
        self._untranscribed_ms = 0.0

    def generation_complete(self) -> None:
        self._generation_complete = True
        self._quiet_since = None

    def turn_complete(self, had_audio: bool, waiting_for_more: bool) -> None:
        """A final `turnComplete`. Without audio after the caller's turn it is an empty turn
        (unless the model said it waits for the caller to go on)."""
        self._quiet_since = None
        self._untranscribed_ms = 0.0
        if waiting_for_more:
            self._caller_turn = False
            self._waiting_since = None
        elif not had_audio and self._caller_turn:
            self._empty_turn = True
            self._heard = True

    def interrupted(self, now: float, caller_speaking: bool) -> None:
        """Gemini said `interrupted`. With the caller silent it may be a phantom: the model
        now waits for a turn that never comes."""
        self._quiet_since = None
        if not caller_speaking and self.rules.on:
            # Still owed an answer to the caller's last words: the silence counts from them.
            pending = self._caller_turn and self._waiting_since is not None
            self._waiting_since = self._waiting_since if pending else now
            self._heard = True
            self._phantom = True

    def tools_running(self, running: bool) -> None:
        self._tools = running

    def agent_working(self, working: bool) -> None:
        """Extended Thinking's IN_PROGRESS: background work, not a stall."""
        self._working = working

    # --- time -----------------------------------------------------------------------------

    def deadline(self) -> float | None:
        if not self.rules.on:
            return None
        stall = self.current
        if stall is not None:
            times = [stall.step_at + self.rules.step_s]
            if not self._holding:
                times.append(stall.silent_since + self.rules.hold_after_s)
            return min(times)
        since = self._silent_since()
        return None if since is None else since + self.rules.answer_s

    def tick(self, now: float) -> list[Decision]:
        stall = self.current
        if stall is not None:
            decisions: list[Decision] = []
            if not self._holding and now >= stall.silent_since + self.rules.hold_after_s:
                self._holding = True
                decisions.append(HoldOn())
            if now >= stall.step_at + self.rules.step_s and stall.step < Step.GIVE_UP:
                stall.step = Step(stall.step + 1)
                stall.step_at = now
                decisions.append(Escalate(stall))
            return decisions
        since = self._silent_since()
        if since is None or now < since + self.rules.answer_s:
            return []
        if self._quiet_since is not None and self._waiting_since is None:
            return self._stalled(StallKind.MID_SENTENCE, since, now)
        kind = StallKind.PHANTOM_INTERRUPT if self._phantom else StallKind.EMPTY_TURN if self._empty_turn else StallKind.NO_ANSWER
        return self._stalled(kind, since, now)

    @property
    def answer_due(self) -> bool:
        """The caller has spoken since the agent last did (whether or not the watch is on)."""
        return self._caller_turn

    @property
    def holding(self) -> bool:
        """The hold tone is on for the current stall (it plays even mid-turn)."""
        return self._holding

    def stop_holding(self) -> bool:
        """Whether the hold tone of a stall was on (it stops when the agent speaks)."""
        holding, self._holding = self._holding, False
        return holding

    # --- helpers --------------------------------------------------------------------------

    def _silent_since(self) -> float | None:
        if self._tools or self._working:
            return None
        if self._waiting_since is not None and self._heard:
            return self._waiting_since
        return self._quiet_since

    def _stalled(self, kind: StallKind, since: float, now: float) -> list[Decision]:
        self._waiting_since = self._quiet_since = None
        self._empty_turn = self._phantom = False
        self._untranscribed_ms = 0.0
        step = Step.GIVE_UP if len(self.stalls) >= self.rules.max_per_call else Step.NUDGE
        stall = Stall(kind, since, step, now)
        self.stalls.append(stall)
        self.current = None if step is Step.GIVE_UP else stall
        decisions: list[Decision] = [Escalate(stall)]
        if step is not Step.GIVE_UP and now >= since + self.rules.hold_after_s:
            self._holding = True
            decisions.append(HoldOn())
        return decisions
