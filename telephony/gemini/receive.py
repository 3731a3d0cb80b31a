"""What the server said, as the call's events: google-genai's `LiveServerMessage` turned into
`telephony.gemini.events` at the session, the one place that reads SDK messages."""

from __future__ import annotations

import re
from typing import Any

from google.genai import types

from telephony.gemini.events import (
    AgentAudio,
    GeminiEvent,
    GenerationComplete,
    GoAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ResumptionHandle,
    ToolCall,
    ToolCallCancelled,
    TurnComplete,
    Usage,
    VoiceActivity,
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
