"""Gemini Live through the google-genai SDK.

- `config`: where Gemini is configured (client, model, voice, VAD, transcription, resumption).
- `events`: the typed events the call receives from a session.
- `session`: one Live session per call: send caller audio, receive events, send tool results.
- `models`: every Live model family and what it takes and does.

The names below are imported when first used: `telephony.gemini.events` (what the call core
speaks) must not bring the SDK in with it.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "AgentOptions": "config",
    "build_live_config": "config",
    "make_client": "config",
    "GeminiLiveSession": "session",
    "GeminiSessionError": "session",
}
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'telephony.gemini' has no attribute {name!r}")
    return getattr(import_module(f"telephony.gemini.{_WHERE.get(name, 'events')}"), name)
