"""What the call core decides, as values the driver carries out: the core never awaits.

Each action is one thing to do now - a message for Twilio or for Gemini, a tool to start or
cancel, a waiter to settle, the socket to close - in the order the core decided it.
"""

from __future__ import annotations

from dataclasses import dataclass

from telephony.call.keypad import KeypadResult
from telephony.gemini.events import ToolCall
from telephony.gemini.messages import GeminiMessage
from telephony.twilio.media_streams import Outbound


@dataclass(frozen=True, slots=True)
class SendTwilio:
    """One Media Streams message (media, mark or clear), ready for the wire."""

    text: str
    kind: Outbound


@dataclass(frozen=True, slots=True)
class SendGemini:
    message: GeminiMessage


@dataclass(frozen=True, slots=True)
class OpenAgent:
    """Open the Gemini session for this call; `parameters` are the stream's own (no token)."""

    parameters: dict[str, str]


@dataclass(frozen=True, slots=True)
class RestartAgent:
    """Move the Gemini session to a new connection now: resumed, or `fresh` (seeded with the
    conversation so far). A stalled model's way back."""

    fresh: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RunTool:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class CancelTools:
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Settle:
    """A waiter the driver registered (`wait_heard`, `watch_goodbye`) is settled."""

    token: int
    ok: bool


@dataclass(frozen=True, slots=True)
class CloseStream:
    """The call is over: close the Twilio socket with this code. Always the last action."""

    code: int
    reason: str


Action = SendTwilio | SendGemini | OpenAgent | RestartAgent | RunTool | CancelTools | Settle | KeypadResult | CloseStream
"""(`KeypadResult`: the digits a tool asked for with `collect_keypad`, or why there are none.)"""
