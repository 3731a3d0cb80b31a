"""Typed events from a Gemini Live session, as the call acts on them.

One `LiveServerMessage` may carry several of these (audio and a transcript and the end of the
turn); `events_from_message` splits it in the order the call must act on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from google.genai import types


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

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)s\s*$")


def parse_duration_s(value: str | None) -> float:
    """Protobuf JSON durations look like '50s' or '0.5s'."""
    match = _DURATION.match(value or "")
    return float(match.group(1)) if match else 0.0


def _by_modality(details: list[types.ModalityTokenCount] | None) -> tuple[tuple[str, int], ...]:
    counts = []
    for item in details or []:
        modality = item.modality.value if item.modality is not None else "UNSPECIFIED"
        counts.append((str(modality), int(item.token_count or 0)))
    return tuple(counts)


def _enum_value(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def events_from_message(message: types.LiveServerMessage) -> list[GeminiEvent]:
    """Split one server message into the call's events, interruptions first."""
    events: list[GeminiEvent] = []
    activity = message.voice_activity
    if activity is not None and activity.voice_activity_type is not None:
        events.append(VoiceActivity(started=activity.voice_activity_type.value == "ACTIVITY_START"))
    content = message.server_content
    if content is not None:
        if content.interrupted:
            events.append(Interrupted())
        if content.input_transcription and content.input_transcription.text:
            events.append(InputTranscript(content.input_transcription.text))
        if content.model_turn and content.model_turn.parts:
            for part in content.model_turn.parts:
                if part.inline_data and part.inline_data.data:
                    events.append(AgentAudio(part.inline_data.data))
        if content.output_transcription and content.output_transcription.text:
            events.append(OutputTranscript(content.output_transcription.text))
        if content.generation_complete:
            events.append(GenerationComplete())
        if content.turn_complete:
            status = content.interaction_status
            reason = content.turn_complete_reason
            events.append(
                TurnComplete(
                    interaction_status=_enum_value(status),
                    reason=_enum_value(reason),
                    waiting_for_input=content.waiting_for_input,
                )
            )
    if message.tool_call and message.tool_call.function_calls:
        for call in message.tool_call.function_calls:
            events.append(ToolCall(id=call.id or "", name=call.name or "", args=dict(call.args or {})))
    if message.tool_call_cancellation and message.tool_call_cancellation.ids:
        events.append(ToolCallCancelled(tuple(message.tool_call_cancellation.ids)))
    if message.go_away is not None:
        events.append(GoAway(parse_duration_s(message.go_away.time_left)))
    update = message.session_resumption_update
    if update is not None and update.new_handle:
        events.append(
            ResumptionHandle(
                handle=update.new_handle,
                resumable=bool(update.resumable),
                last_consumed_client_message_index=update.last_consumed_client_message_index,
            )
        )
    if message.usage_metadata is not None:
        usage = message.usage_metadata
        events.append(
            Usage(
                total_tokens=usage.total_token_count,
                prompt_tokens=usage.prompt_token_count,
                response_tokens=usage.response_token_count,
                prompt_by_modality=_by_modality(usage.prompt_tokens_details),
                response_by_modality=_by_modality(usage.response_tokens_details),
                thoughts_tokens=usage.thoughts_token_count,
                tool_use_prompt_tokens=usage.tool_use_prompt_token_count,
                cached_tokens=usage.cached_content_token_count,
            )
        )
    return events
