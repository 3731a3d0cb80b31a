"""What a call event says (`telephony.web.events`): the call's facts as the user's systems want
them, from its record. Keypad digits typed for tools are masked in the transcript already;
phone numbers are in full (the receiver is the business's own system)."""

from __future__ import annotations

from typing import Any

from telephony.call.record import CallRecord
from telephony.gemini.pricing import estimated_cost_usd


def call_started(record: CallRecord) -> dict[str, Any]:
    parameters = record.parameters
    return {
        "call_sid": record.call_sid,
        "stream_sid": record.stream_sid,
        "agent": parameters.get("agent"),
        "direction": parameters.get("direction"),
        "from": parameters.get("caller"),
        "to": parameters.get("called"),
        "started_at": record.started_at,
    }


def call_ended(record: CallRecord, public_url: str | None, prices: dict[str, float] | None) -> dict[str, Any]:
    recording_url = f"{public_url.rstrip('/')}/calls/{record.call_sid}/recording.wav" if record.recording and public_url else None
    return call_started(record) | {
        "ended_at": record.ended_at,
        "duration_s": round((record.ended_at or record.started_at) - record.started_at, 3),
        "outcome": record.outcome or "completed",
        "end_reason": record.end_reason,
        "transcript": [
            {"at_ms": line.at_ms, "speaker": line.speaker, "text": line.text.strip(), "interrupted": line.interrupted}
            for line in record.transcript
        ],
        "tool_calls": [
            {"name": t.name, "arguments": t.arguments, "response": t.response, "at_ms": t.at_ms, "duration_ms": t.duration_ms}
            for t in record.tool_calls
        ],
        "recording_url": recording_url,
        "cost_usd": estimated_cost_usd(record.usage, prices),
        "analysis": record.analysis,
    }
