"""What the agent did after one caller line of a conversation test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telephony.call.record import ToolRecord


@dataclass
class AgentTurn:
    """What the agent did after one caller line."""

    said: str
    """The agent's words (its transcript), as the caller heard them."""
    tool_calls: list[ToolRecord]
    """Tools the model called, with the arguments and what each returned."""
    response_ms: float | None = None
    """From the end of the caller's speech to the first agent audio at the caller's phone
    (call time, measured at the Twilio emulator); None if the agent said nothing."""
