"""What the call sends to Gemini Live, as plain values (no I/O, no SDK objects).

The call core decides *what* to send and returns these; the Gemini session turns each into
the SDK call that puts it on the wire. Keeping them as values lets a send wait in a queue
while a connection is being replaced, and be delivered in order on the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telephony.gemini.models import Scheduling


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """Caller speech: PCM16 LE mono at 16 kHz (`realtimeInput.audio`)."""

    pcm16k: bytes


@dataclass(frozen=True, slots=True)
class RealtimeText:
    """Text as realtime input (`realtimeInput.text`), e.g. a keypad digit the caller pressed."""

    text: str


@dataclass(frozen=True, slots=True)
class UserTurn:
    """A complete user turn of text (`clientContent`, turnComplete): the model answers it."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The answer to a `ToolCall` (`toolResponse.functionResponses[]`)."""

    call_id: str
    name: str
    response: dict[str, Any]
    scheduling: Scheduling | None = None
    """For a NON_BLOCKING call: what the result makes the model do (None: WHEN_IDLE). The
    session sends it only where the family takes it (never to Extended Thinking)."""


@dataclass(frozen=True, slots=True)
class ActivityStart:
    """Manual turn-taking (Gemini's VAD off): the caller started speaking."""


@dataclass(frozen=True, slots=True)
class ActivityEnd:
    """Manual turn-taking (Gemini's VAD off): the caller stopped speaking."""


GeminiMessage = CallerAudio | RealtimeText | UserTurn | ToolResult | ActivityStart | ActivityEnd
