"""What a tool sees of the call it runs in: a small protocol, so that tools never import the
driver (and the driver never imports the tools).

A tool is an async function `handler(call, tool_call) -> ToolOutcome`. It runs in its own
task, off the audio path. Its `response` goes back to the model; `then`, if given, runs
after the response was sent (for example: wait for the goodbye to be heard, then hang up).
If the caller interrupts the turn that made the call, the tool's task (and its `then`) is
cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from telephony.gemini.events import ToolCall


class CallHandle(Protocol):
    """The running call, as a tool may use it."""

    @property
    def call_sid(self) -> str | None: ...

    @property
    def log(self) -> logging.LoggerAdapter[Any]: ...

    async def play_audio(self, mulaw: bytes, timeout: float = 30.0) -> bool:
        """Play mu-law 8 kHz audio to the caller; True once Twilio says it was heard."""
        ...

    async def wait_until_heard(self, timeout: float = 30.0) -> bool:
        """Wait until everything sent to the caller so far has been played."""
        ...

    async def wait_for_goodbye(self, grace_s: float | None = None, timeout: float = 30.0) -> bool:
        """Wait until the agent's last words have been heard (its turn completed and played,
        or nothing more said within `grace_s`). False if the caller talked over them."""
        ...

    def end_call(self, reason: str) -> None:
        """Close the stream now (after the REST hang-up, or instead of it)."""
        ...


@dataclass(frozen=True)
class ToolOutcome:
    """The tool response for the model, and what to do after it was sent."""

    response: dict[str, Any]
    then: Callable[[], Awaitable[None]] | None = None


ToolHandler = Callable[[CallHandle, ToolCall], Awaitable[ToolOutcome]]
