"""Gemini Live through the google-genai SDK.

- `config`: where Gemini is configured (client, model, voice, VAD, transcription, resumption).
- `events`: the typed events the call receives from a session.
- `session`: one Live session per call: send caller audio, receive events, send tool results.
"""

from telephony.gemini.config import AgentOptions, build_live_config, make_client
from telephony.gemini.events import (
    AgentAudio,
    GeminiEvent,
    GoAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ResumptionHandle,
    SessionClosed,
    ToolCall,
    ToolCallCancelled,
    TurnComplete,
    Usage,
)
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError

__all__ = [
    "AgentAudio",
    "AgentOptions",
    "GeminiEvent",
    "GeminiLiveSession",
    "GeminiSessionError",
    "GoAway",
    "InputTranscript",
    "Interrupted",
    "OutputTranscript",
    "ResumptionHandle",
    "SessionClosed",
    "ToolCall",
    "ToolCallCancelled",
    "TurnComplete",
    "Usage",
    "build_live_config",
    "make_client",
]
