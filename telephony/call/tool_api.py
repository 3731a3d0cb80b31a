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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from telephony.call.keypad import KeypadResult, KeypadRules
from telephony.call.rules import CallLimits
from telephony.gemini.events import ToolCall
from telephony.gemini.models import Scheduling

if TYPE_CHECKING:
    from google.genai import types

    from telephony.gemini.config import AgentOptions


class CallHandle(Protocol):
    """The running call, as a tool may use it."""

    @property
    def call_sid(self) -> str | None: ...

    @property
    def stream_sid(self) -> str | None: ...

    @property
    def parameters(self) -> dict[str, str]:
        """The stream's custom parameters: caller, called, direction, per-call settings."""
        ...

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

    def moving_off(self, reason: str | None) -> None:
        """A transfer is about to move the call off this stream (`reason`: how the record
        will say it ended); None when that failed and the call stays."""
        ...

    async def collect_keypad(self, rules: KeypadRules) -> KeypadResult:
        """Collect digits the caller types (muted toward the model, masked everywhere):
        the digits, or why there are none (`telephony.call.keypad`)."""
        ...


@dataclass(frozen=True)
class ToolOutcome:
    """The tool response for the model, and what to do after it was sent."""

    response: dict[str, Any]
    then: Callable[[], Awaitable[None]] | None = None
    scheduling: Scheduling | None = None
    """For a NON_BLOCKING tool: what this result makes the model do (None: the tool's own
    choice, else WHEN_IDLE). Ignored for BLOCKING calls and by Extended Thinking."""


ToolHandler = Callable[[CallHandle, ToolCall], Awaitable[ToolOutcome]]


class CallTool(Protocol):
    """A tool as the call runs it (`telephony.Tool` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def declaration(self) -> types.FunctionDeclaration: ...

    @property
    def handler(self) -> ToolHandler: ...

    @property
    def timeout_s(self) -> float | None: ...

    @property
    def scheduling(self) -> Scheduling | None: ...


class CallAgent(Protocol):
    """An agent as the call uses it (`telephony.Agent` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def greeting(self) -> str | None: ...

    @property
    def builtin_tools(self) -> tuple[str, ...]: ...

    @property
    def tool_timeout_s(self) -> float | None: ...

    @property
    def call_limits(self) -> CallLimits: ...

    @property
    def tools(self) -> Mapping[str, CallTool]: ...

    def options(self, base: AgentOptions) -> AgentOptions: ...


class AgentDirectory(Protocol):
    """Where a call finds the agent its TwiML named (`telephony.agents.agent.AgentBook` is one)."""

    def named(self, name: str | None) -> CallAgent: ...
