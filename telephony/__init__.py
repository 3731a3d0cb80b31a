"""telephony: a Twilio Media Streams <-> Gemini Live voice bridge.

The call path, one direction per line:

    caller -> Twilio -> /media-stream (mu-law 8 kHz) -> audio.CallerToGemini (PCM 16 kHz) -> Gemini Live
    caller <- Twilio <- /media-stream (mu-law 8 kHz) <- audio.GeminiToCaller (PCM 24 kHz) <- Gemini Live
"""

from typing import TYPE_CHECKING, Any

from telephony.agent import Agent, CallContext, IncomingCall, Refuse, Tool, ToolError

if TYPE_CHECKING:
    from telephony.app import create_app, router

__version__ = "0.1.0"
__all__ = ["Agent", "CallContext", "IncomingCall", "Refuse", "Tool", "ToolError", "create_app", "router"]


def __getattr__(name: str) -> Any:
    """`telephony.router` and `telephony.create_app`, imported when first used (they bring
    in the web server; `from telephony import Agent` stays light)."""
    if name in ("router", "create_app"):
        from telephony import app

        return getattr(app, name)
    raise AttributeError(f"module 'telephony' has no attribute {name!r}")
