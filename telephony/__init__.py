"""telephony: a Twilio Media Streams <-> Gemini Live voice bridge.

The call path, one direction per line:

    caller -> Twilio -> /media-stream (mu-law 8 kHz) -> audio.CallerToGemini (PCM 16 kHz) -> Gemini Live
    caller <- Twilio <- /media-stream (mu-law 8 kHz) <- audio.GeminiToCaller (PCM 24 kHz) <- Gemini Live
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telephony.agents.agent import Agent, CallContext, IncomingCall, Refuse, Tool, ToolError
    from telephony.agents.keypad_input import Keypad
    from telephony.web.app import create_app, router

__version__ = "0.1.0"
__all__ = ["Agent", "CallContext", "IncomingCall", "Keypad", "Refuse", "Tool", "ToolError", "create_app", "router"]


def __getattr__(name: str) -> Any:
    """Imported when first used: `telephony.router` and `telephony.create_app` bring in the web
    server, `telephony.Agent` the SDK's types; importing one module of the package (the call
    core, say) brings in neither."""
    if name in ("router", "create_app"):
        from telephony.web import app

        return getattr(app, name)
    if name == "Keypad":
        from telephony.agents.keypad_input import Keypad

        return Keypad
    if name in ("Agent", "CallContext", "IncomingCall", "Refuse", "Tool", "ToolError"):
        from telephony.agents import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'telephony' has no attribute {name!r}")
