"""Typed events from a Gemini Live session, as the call acts on them: our own plain types,
so that the call core never imports the SDK (which brings its client and asyncio with it).

One `LiveServerMessage` may carry several of these (audio and a transcript and the end of the
turn); `telephony.gemini.receive.events_from_message` splits it in the order the call must
act on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """Agent speech: PCM16 LE mono at 24 kHz."""

    pcm24k: bytes


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The caller talked over the agent: stop playback now (barge-in)."""


@dataclass(frozen=True, slots=True)
class TurnComplete:
    """The model finished a turn. On Extended Thinking a turn with `interaction_status`
    IN_PROGRESS is only an utterance (a filler before background work): more audio follows,
    and the agent's turn is over only at IDLE (`final`)."""

    interaction_status: str | None = None
    """IN_PROGRESS or IDLE where the service says (Extended Thinking); None elsewhere."""
    reason: str | None = None
    """`turnCompleteReason` where given: NEED_MORE_INPUT, GENERATED_AUDIO_SAFETY, ..."""
    waiting_for_input: bool | None = None

    @property
    def final(self) -> bool:
        """The agent's turn is over (no more audio of it will come)."""
        return self.interaction_status != "IN_PROGRESS"

    @property
    def unusual_reason(self) -> str | None:
        """A reason worth telling a person (a safety stop, a rejected response), or None."""
        if self.reason in (None, "", "TURN_COMPLETE_REASON_UNSPECIFIED", "NEED_MORE_INPUT"):
            return None
        return self.reason


@dataclass(frozen=True, slots=True)
class GenerationComplete:
    """The model has generated its whole reply (`turnComplete` may follow later, once the
    service thinks playback is done)."""


@dataclass(frozen=True, slots=True)
class VoiceActivity:
    """The service's own voice detection heard the caller start or stop (`voiceActivity`)."""

    started: bool


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """Text of what the caller said (may arrive in pieces)."""

    text: str


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    """Text of what the agent said (may arrive in pieces)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks us to run a function; answer with `send_tool_response`."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCallCancelled:
    """The model no longer wants these calls' results (the caller interrupted)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GoAway:
    """The server will close this connection in `time_left_s`: reconnect before then."""

    time_left_s: float


@dataclass(frozen=True, slots=True)
class ResumptionHandle:
    """A handle to resume this session on a new connection (use only when resumable)."""

    handle: str
    resumable: bool
    last_consumed_client_message_index: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model turn (Gemini sends `usageMetadata` after each); the
    `*_by_modality` maps give them per modality (AUDIO, TEXT), where the server says."""

    total_tokens: int | None
    prompt_tokens: int | None
    response_tokens: int | None
    prompt_by_modality: tuple[tuple[str, int], ...] = ()
    response_by_modality: tuple[tuple[str, int], ...] = ()
    thoughts_tokens: int | None = None
    """Extended Thinking's reasoning (billed as output)."""
    tool_use_prompt_tokens: int | None = None
    cached_tokens: int | None = None

    def counts(self) -> dict[str, int | None]:
        """Flat counts for a call's record: `prompt_tokens`, `response_audio`, ..."""
        counts: dict[str, int | None] = {
            "prompt_tokens": self.prompt_tokens,
            "response_tokens": self.response_tokens,
            "total_tokens": self.total_tokens,
        }
        counts |= {f"prompt_{m.lower()}": n for m, n in self.prompt_by_modality}
        counts |= {f"response_{m.lower()}": n for m, n in self.response_by_modality}
        extra = {"thoughts_tokens": self.thoughts_tokens, "tool_use_prompt_tokens": self.tool_use_prompt_tokens}
        return counts | {name: n for name, n in extra.items() if n is not None}


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The connection ended. Always the last event of a session.

    `retryable` is for a connection being set up: true for failures worth another attempt
    (1006 drop, 1011 internal, 503), false for a refusal (1000, 1007, 1008, 4xx: a bad key,
    model or voice). Mid-call, see `fatal_mid_call`.
    """

    code: int
    reason: str

    @property
    def fatal_mid_call(self) -> bool:
        """Mid-call, only 1007 (something we sent or set up is invalid) is not worth a new
        connection: the real service also closes healthy sessions with 1000 (no reason),
        1008 ("Operation is not implemented...", intermittent on native-audio models) and
        1011, and Google's own guidance is to reconnect."""
        return self.code == 1007 or 400 <= self.code < 500

    @property
    def refused_by_server(self) -> bool:
        """The server answered and said no (as opposed to being unreachable: 1006, 5xx)."""
        return self.code != 1006 and not 500 <= self.code < 600

    @property
    def retryable(self) -> bool:
        return self.code not in (1000, 1007, 1008) and not 4000 <= self.code < 5000 and not 400 <= self.code < 500


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The session moved to a new connection; `resumed` is False for a fresh session (the
    model has lost the conversation so far)."""

    resumed: bool
    reason: str
    attempts: int
    took_s: float = 0.0
    """From the connection's loss to the new one's set-up."""
    replayed_speech_s: float = 0.0
    """The caller's unanswered words sent again to the new connection (it hears them whole)."""


GeminiEvent = (
    AgentAudio
    | Interrupted
    | TurnComplete
    | GenerationComplete
    | VoiceActivity
    | InputTranscript
    | OutputTranscript
    | ToolCall
    | ToolCallCancelled
    | GoAway
    | ResumptionHandle
    | Usage
    | SessionClosed
    | Reconnected
)
